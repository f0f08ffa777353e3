//! Layers in PyTorch's words: the model-spec parser, initialisers, and the builder that
//! turns a layer list into graph nodes with `nn.Sequential`'s parameter names.

mod args;
mod init;
mod layer;
mod model;
mod spec;

pub use init::{
    fan_in_and_fan_out, parse_init, Distribution, FanMode, Init, InitScheme, Nonlinearity,
};
pub use layer::Layer;
pub use model::{Built, Mode, Model, MAX_ELEMENTS};
pub use spec::{parse_spec, LayerSpec, SpecArg};

/// The `mlp` preset: 784-256-128-10 with ReLUs.
pub const PRESET_MLP: &str = "linear(784,256),relu,linear(256,128),relu,linear(128,10)";

/// The `cnn` preset: two conv-bn-relu-pool blocks, dropout, two linear layers.
pub const PRESET_CNN: &str = "conv2d(1,32,3,padding=1),batchnorm2d(32),relu,maxpool2d(2),\
conv2d(32,64,3,padding=1),batchnorm2d(64),relu,maxpool2d(2),flatten,dropout(0.25),\
linear(3136,128),relu,linear(128,10)";

/// Expands a preset name (`mlp`, `cnn`) to its layer list; any other text is returned as is.
pub fn expand_preset(spec: &str) -> &str {
    match spec.trim() {
        "mlp" => PRESET_MLP,
        "cnn" => PRESET_CNN,
        other => other,
    }
}
