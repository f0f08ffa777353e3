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
pub use spec::{parse_spec, LayerSpec, SpecArg, CONTAINERS, MAX_NESTING};

/// The `mlp` preset: 784-256-128-10 with ReLUs.
pub const PRESET_MLP: &str = "linear(784,256),relu,linear(256,128),relu,linear(128,10)";

/// The `cnn` preset: two conv-bn-relu-pool blocks, dropout, two linear layers.
pub const PRESET_CNN: &str = "conv2d(1,32,3,padding=1),batchnorm2d(32),relu,maxpool2d(2),\
conv2d(32,64,3,padding=1),batchnorm2d(64),relu,maxpool2d(2),flatten,dropout(0.25),\
linear(3136,128),relu,linear(128,10)";

/// The `resnet` preset: a small ResNet for 28×28 images: a 3×3 stem, then three stages
/// of one basic block each (16, 32 and 64 channels; the last two halve the resolution
/// and project their shortcut with a strided 1×1 convolution and batch norm), global
/// average pooling and a linear classifier.
pub const PRESET_RESNET: &str = "conv2d(1,16,3,padding=1,bias=false),batchnorm2d(16),relu,\
residual(conv2d(16,16,3,padding=1,bias=false),batchnorm2d(16),relu,\
conv2d(16,16,3,padding=1,bias=false),batchnorm2d(16)),relu,\
residual(conv2d(16,32,3,stride=2,padding=1,bias=false),batchnorm2d(32),relu,\
conv2d(32,32,3,padding=1,bias=false),batchnorm2d(32),\
shortcut=(conv2d(16,32,1,stride=2,bias=false),batchnorm2d(32))),relu,\
residual(conv2d(32,64,3,stride=2,padding=1,bias=false),batchnorm2d(64),relu,\
conv2d(64,64,3,padding=1,bias=false),batchnorm2d(64),\
shortcut=(conv2d(32,64,1,stride=2,bias=false),batchnorm2d(64))),relu,\
adaptiveavgpool2d(1),flatten,linear(64,10)";

/// The preset names [`expand_preset`] knows.
pub const PRESETS: &[&str] = &["mlp", "cnn", "resnet"];

/// Expands a preset name (`mlp`, `cnn`, `resnet`) to its layer list; any other text is
/// returned as is.
pub fn expand_preset(spec: &str) -> &str {
    match spec.trim() {
        "mlp" => PRESET_MLP,
        "cnn" => PRESET_CNN,
        "resnet" => PRESET_RESNET,
        other => other,
    }
}
