//! The layers a model spec can name, with PyTorch's arguments and defaults.

use super::args::Args;
use super::spec::{spec_error, LayerSpec};
use crate::error::Result;
use crate::op::Activation;

/// One layer, with PyTorch's arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `nn.Linear(in_features, out_features, bias=True)`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// `nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    /// dilation=1, groups=1, bias=True)`.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel (height, width).
        kernel: (usize, usize),
        /// Stride (vertical, horizontal).
        stride: (usize, usize),
        /// Zero padding (vertical, horizontal).
        padding: (usize, usize),
        /// Spacing of the kernel's taps (vertical, horizontal); 1 is a dense kernel.
        dilation: (usize, usize),
        /// Channel groups: each output channel reads in_channels / groups inputs
        /// (depthwise when groups = in_channels); divides both channel counts.
        groups: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// `nn.MaxPool2d(kernel_size, stride=kernel_size, padding=0, ceil_mode=False)`.
    MaxPool2d {
        /// Window (height, width).
        kernel: (usize, usize),
        /// Stride (vertical, horizontal).
        stride: (usize, usize),
        /// Implicit padding (vertical, horizontal); padded positions never win.
        padding: (usize, usize),
        /// Keep a last window that overhangs the input (output size rounded up).
        ceil_mode: bool,
    },
    /// `nn.AvgPool2d(kernel_size, stride=kernel_size, padding=0, ceil_mode=False,
    /// count_include_pad=True)`.
    AvgPool2d {
        /// Window (height, width).
        kernel: (usize, usize),
        /// Stride (vertical, horizontal).
        stride: (usize, usize),
        /// Zero padding (vertical, horizontal).
        padding: (usize, usize),
        /// Keep a last window that overhangs the input (output size rounded up).
        ceil_mode: bool,
        /// Count padded positions in each window's divisor.
        count_include_pad: bool,
    },
    /// `nn.AdaptiveAvgPool2d(output_size)` (`max: false`) or `nn.AdaptiveMaxPool2d`
    /// (`max: true`): windows chosen so the output is `output` (height, width), PyTorch's
    /// [⌊iL/O⌋, ⌈(i+1)L/O⌉). Runs as uniform pooling wherever those have one length and
    /// one spacing (always when the output divides the input; `(1, 1)` is global pooling;
    /// also e.g. 4 → 3), otherwise as the adaptive ops (`Op::AdaptiveAvgPool`, ...).
    AdaptivePool2d {
        /// Output (height, width).
        output: (usize, usize),
        /// Maximum instead of average.
        max: bool,
    },
    /// `nn.Flatten()`: [N, ...] to [N, rest].
    Flatten,
    /// `nn.BatchNorm1d(num_features)` on [N, C] or [N, C, L], `nn.BatchNorm2d` on [N, C, H, W].
    BatchNorm {
        /// Channels.
        num_features: usize,
        /// Added to the variance.
        eps: f32,
        /// Weight of the new batch in the running statistics.
        momentum: f32,
        /// 2 for BatchNorm2d (4-D input), 1 for BatchNorm1d.
        dims: usize,
    },
    /// `nn.LayerNorm(normalized_shape)` over the last dimension.
    LayerNorm {
        /// Size of the last dimension.
        normalized_shape: usize,
        /// Added to the variance.
        eps: f32,
    },
    /// `nn.GroupNorm(num_groups, num_channels, eps, affine)` on [N, C, ...]: each sample's
    /// channels in `num_groups` groups, each group normalised over its channels and
    /// positions, then a per-channel scale and shift. `nn.InstanceNorm2d(num_features,
    /// eps, affine=False)` is its case of one channel per group on [N, C, H, W]
    /// (`instance`), without running statistics.
    GroupNorm {
        /// Groups (dividing `num_channels`).
        num_groups: usize,
        /// Channels.
        num_channels: usize,
        /// Added to the variance.
        eps: f32,
        /// Whether the layer has `weight` and `bias` (`[C]`).
        affine: bool,
        /// `InstanceNorm2d`: 4-D input only, as PyTorch's.
        instance: bool,
    },
    /// `nn.Dropout(p=0.5)`, or `nn.Dropout2d(p=0.5)` on [N, C, H, W] (or [N, C, L]), which
    /// zeroes whole channels of a sample (`channels`).
    Dropout {
        /// Probability of zeroing an element (a channel).
        p: f32,
        /// `Dropout2d`: one draw per channel of each sample.
        channels: bool,
    },
    /// `nn.PReLU(num_parameters=1, init=0.25)`: leaky relu whose slope is learnt, one for
    /// every channel (dimension 1) or one for all.
    PRelu {
        /// 1, or the channel count.
        num_parameters: usize,
        /// The slopes' initial value.
        init: f32,
    },
    /// An element-wise activation (`nn.ReLU`, `nn.LeakyReLU`, `nn.Sigmoid`, `nn.Tanh`,
    /// `nn.GELU`, `nn.SiLU`, `nn.ELU`, `nn.SELU`, `nn.ReLU6`, `nn.Hardtanh`,
    /// `nn.Hardsigmoid`, `nn.Hardswish`, `nn.Softplus`, `nn.Mish`).
    Activation(Activation),
    /// `nn.Softmax(dim=-1)`, or `nn.LogSoftmax(dim=-1)` (`log`), whose output
    /// `--loss cross_entropy` takes as logits: log-softmax leaves log-probabilities as they
    /// are, so without label smoothing the loss is PyTorch's NLL of them.
    Softmax {
        /// `LogSoftmax`.
        log: bool,
        /// Written `dim=1`: the last dimension only of 2-D input, which the builder checks.
        dim_one: bool,
    },
    /// `residual(body..., shortcut=(layers...))`: `body(x) + shortcut(x)`, the shortcut
    /// being the identity when it has no layers, as the blocks of a ResNet. PyTorch has no
    /// such module; its parameters are named as those of a module with two
    /// `nn.Sequential` attributes `body` and `shortcut` (`3.body.0.weight`,
    /// `3.shortcut.1.running_mean`).
    Residual {
        /// The block's main path.
        body: Vec<Layer>,
        /// The projection added in place of the input (e.g. a strided 1×1 convolution
        /// and batch norm where the body changes the shape); empty for the identity.
        shortcut: Vec<Layer>,
    },
}

const KNOWN: &str = "linear, conv2d, maxpool2d, avgpool2d, adaptiveavgpool2d, \
adaptivemaxpool2d, flatten, batchnorm1d, batchnorm2d, layernorm, groupnorm, instancenorm2d, \
dropout, dropout2d, relu, leaky_relu, prelu, sigmoid, tanh, gelu, silu, elu, selu, relu6, hardtanh, \
hardsigmoid, hardswish, softplus, mish, softmax, logsoftmax, residual";

/// The layer a spec entry names, its arguments checked.
pub fn layer_of(spec: &str, l: &LayerSpec) -> Result<Layer> {
    let args = Args { spec, layer: l };
    let plain = |layer| -> Result<Layer> {
        args.allow(&[])?;
        Ok(layer)
    };
    let positive = |v: (usize, usize), name: &str| -> Result<(usize, usize)> {
        if v.0 == 0 || v.1 == 0 {
            return Err(spec_error(
                spec,
                l.position,
                format!("'{name}' must be positive"),
            ));
        }
        Ok(v)
    };
    let layer = match l.name.as_str() {
        "linear" => {
            args.allow(&["in_features", "out_features", "bias"])?;
            Layer::Linear {
                in_features: args.usize(0, "in_features")?,
                out_features: args.usize(1, "out_features")?,
                bias: args.bool_or(2, "bias", true)?,
            }
        }
        "conv2d" => {
            // PyTorch's positions: Conv2d(in_channels, out_channels, kernel_size, stride,
            // padding, dilation, groups, bias).
            args.allow(&[
                "in_channels",
                "out_channels",
                "kernel_size",
                "stride",
                "padding",
                "dilation",
                "groups",
                "bias",
            ])?;
            let (in_channels, out_channels) = (
                args.usize(0, "in_channels")?,
                args.usize(1, "out_channels")?,
            );
            let groups = match args.get(6, "groups") {
                Some(_) => args.usize(6, "groups")?,
                None => 1,
            };
            if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
                let at = args.get(6, "groups").map_or(l.position, |a| a.position);
                return Err(args.err(
                    at,
                    format!(
                        "groups={groups} must divide in_channels ({in_channels}) and \
                         out_channels ({out_channels})"
                    ),
                ));
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel: positive(args.pair_or(2, "kernel_size", None)?, "kernel_size")?,
                stride: positive(args.pair_or(3, "stride", Some(1))?, "stride")?,
                padding: args.pair_or(4, "padding", Some(0))?,
                dilation: positive(args.pair_or(5, "dilation", Some(1))?, "dilation")?,
                groups,
                bias: args.bool_or(7, "bias", true)?,
            }
        }
        "maxpool2d" | "avgpool2d" => {
            let max = l.name == "maxpool2d";
            // PyTorch's positions: AvgPool2d(kernel_size, stride, padding, ceil_mode,
            // count_include_pad); MaxPool2d's fourth and fifth are dilation and
            // return_indices, which kiln does not take, so its ceil_mode is by name only.
            if max {
                args.allow(&["kernel_size", "stride", "padding", "ceil_mode"])?;
                if let Some(a) = args.get(3, "") {
                    return Err(args.err(
                        a.position,
                        "maxpool2d takes ceil_mode by name (dilation is not supported)".to_string(),
                    ));
                }
            } else {
                args.allow(&[
                    "kernel_size",
                    "stride",
                    "padding",
                    "ceil_mode",
                    "count_include_pad",
                ])?;
            }
            let ceil_mode = args.bool_or(if max { usize::MAX } else { 3 }, "ceil_mode", false)?;
            let kernel = positive(args.pair_or(0, "kernel_size", None)?, "kernel_size")?;
            let stride = match args.get(1, "stride") {
                Some(_) => positive(args.pair_or(1, "stride", None)?, "stride")?,
                None => kernel,
            };
            let padding = args.pair_or(2, "padding", Some(0))?;
            // PyTorch's rule: a window must hold at least one input position.
            if padding.0 > kernel.0 / 2 || padding.1 > kernel.1 / 2 {
                let at = args.get(2, "padding").map_or(l.position, |a| a.position);
                return Err(args.err(
                    at,
                    format!("'padding' must be at most half of 'kernel_size', got {padding:?}"),
                ));
            }
            if max {
                Layer::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                    ceil_mode,
                }
            } else {
                Layer::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    ceil_mode,
                    count_include_pad: args.bool_or(4, "count_include_pad", true)?,
                }
            }
        }
        "adaptiveavgpool2d" | "adaptivemaxpool2d" => {
            args.allow(&["output_size"])?;
            Layer::AdaptivePool2d {
                output: positive(args.pair_or(0, "output_size", None)?, "output_size")?,
                max: l.name == "adaptivemaxpool2d",
            }
        }
        "flatten" => plain(Layer::Flatten)?,
        "batchnorm1d" | "batchnorm2d" => {
            args.allow(&["num_features", "eps", "momentum"])?;
            Layer::BatchNorm {
                num_features: args.usize(0, "num_features")?,
                eps: args.f32_or(1, "eps", 1e-5)?,
                momentum: args.f32_or(2, "momentum", 0.1)?,
                dims: if l.name == "batchnorm2d" { 2 } else { 1 },
            }
        }
        "layernorm" => {
            args.allow(&["normalized_shape", "eps"])?;
            Layer::LayerNorm {
                normalized_shape: args.usize(0, "normalized_shape")?,
                eps: args.f32_or(1, "eps", 1e-5)?,
            }
        }
        "groupnorm" => {
            args.allow(&["num_groups", "num_channels", "eps", "affine"])?;
            let (groups, channels) = (args.usize(0, "num_groups")?, args.usize(1, "num_channels")?);
            if channels % groups != 0 {
                return Err(spec_error(
                    spec,
                    l.position,
                    format!("num_channels ({channels}) must be divisible by num_groups ({groups})"),
                ));
            }
            Layer::GroupNorm {
                num_groups: groups,
                num_channels: channels,
                eps: args.f32_or(2, "eps", 1e-5)?,
                affine: args.bool_or(3, "affine", true)?,
                instance: false,
            }
        }
        "instancenorm2d" => {
            args.allow(&[
                "num_features",
                "eps",
                "momentum",
                "affine",
                "track_running_stats",
            ])?;
            // momentum only weighs running statistics, which kiln's instance norm does
            // not keep; PyTorch ignores it likewise unless they are tracked (None, its
            // cumulative average, included).
            if args.get(2, "momentum").is_none_or(|a| a.value != "None") {
                args.f32_or(2, "momentum", 0.1)?;
            }
            if args.bool_or(4, "track_running_stats", false)? {
                return Err(spec_error(
                    spec,
                    l.position,
                    "instancenorm2d track_running_stats=True is not supported",
                ));
            }
            let c = args.usize(0, "num_features")?;
            Layer::GroupNorm {
                num_groups: c,
                num_channels: c,
                eps: args.f32_or(1, "eps", 1e-5)?,
                affine: args.bool_or(3, "affine", false)?,
                instance: true,
            }
        }
        "dropout" | "dropout2d" => {
            args.allow(&["p"])?;
            let p = args.f32_or(0, "p", 0.5)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(spec_error(
                    spec,
                    l.position,
                    format!("dropout p must be in [0, 1], got {p}"),
                ));
            }
            Layer::Dropout {
                p,
                channels: l.name == "dropout2d",
            }
        }
        "relu" => plain(Layer::Activation(Activation::Relu))?,
        "sigmoid" => plain(Layer::Activation(Activation::Sigmoid))?,
        "tanh" => plain(Layer::Activation(Activation::Tanh))?,
        "gelu" => plain(Layer::Activation(Activation::Gelu))?,
        "silu" => plain(Layer::Activation(Activation::Silu))?,
        "selu" => plain(Layer::Activation(Activation::Selu))?,
        "relu6" => plain(Layer::Activation(Activation::Relu6))?,
        "prelu" => {
            args.allow(&["num_parameters", "init"])?;
            Layer::PRelu {
                num_parameters: match args.get(0, "num_parameters") {
                    Some(_) => args.usize(0, "num_parameters")?,
                    None => 1,
                },
                init: args.f32_or(1, "init", 0.25)?,
            }
        }
        "hardsigmoid" => plain(Layer::Activation(Activation::Hardsigmoid))?,
        "hardswish" => plain(Layer::Activation(Activation::Hardswish))?,
        "mish" => plain(Layer::Activation(Activation::Mish))?,
        "hardtanh" => {
            args.allow(&["min_val", "max_val"])?;
            let (lo, hi) = (
                args.f32_or(0, "min_val", -1.0)?,
                args.f32_or(1, "max_val", 1.0)?,
            );
            if hi <= lo {
                return Err(spec_error(
                    spec,
                    l.position,
                    format!("hardtanh max_val must be greater than min_val, got {lo} and {hi}"),
                ));
            }
            Layer::Activation(Activation::Hardtanh(lo, hi))
        }
        "softplus" => {
            args.allow(&["beta", "threshold"])?;
            let beta = args.f32_or(0, "beta", 1.0)?;
            if beta == 0.0 {
                return Err(spec_error(spec, l.position, "softplus beta must not be 0"));
            }
            let threshold = args.f32_or(1, "threshold", 20.0)?;
            Layer::Activation(Activation::Softplus(beta, threshold))
        }
        "elu" => {
            args.allow(&["alpha"])?;
            Layer::Activation(Activation::Elu(args.f32_or(0, "alpha", 1.0)?))
        }
        "leaky_relu" | "leakyrelu" => {
            args.allow(&["negative_slope"])?;
            Layer::Activation(Activation::LeakyRelu(args.f32_or(
                0,
                "negative_slope",
                0.01,
            )?))
        }
        "residual" => {
            if l.body.is_empty() {
                return Err(spec_error(
                    spec,
                    l.position,
                    "'residual' needs its layers: residual(layers..., shortcut=(layers...))",
                ));
            }
            let layers = |list: &[LayerSpec]| -> Result<Vec<Layer>> {
                list.iter().map(|l| layer_of(spec, l)).collect()
            };
            Layer::Residual {
                body: layers(&l.body)?,
                shortcut: layers(&l.shortcut)?,
            }
        }
        "softmax" | "logsoftmax" => {
            args.allow(&["dim"])?;
            let dim = args.get(0, "dim").map(|a| a.value.as_str()).unwrap_or("-1");
            if dim != "-1" && dim != "1" {
                return Err(spec_error(
                    spec,
                    l.position,
                    format!("{} is over the last dimension (dim=-1)", l.name),
                ));
            }
            Layer::Softmax {
                log: l.name == "logsoftmax",
                dim_one: dim == "1",
            }
        }
        name => {
            return Err(spec_error(
                spec,
                l.position,
                format!("unknown layer '{name}' (known: {KNOWN})"),
            ))
        }
    };
    Ok(layer)
}
