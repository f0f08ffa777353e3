//! A model as a layer list, built into graph nodes with PyTorch's parameter names.

use super::layer::{layer_of, Layer};
use super::spec::{parse_spec, LayerSpec};
use super::Init;
use crate::error::{Error, Result};
use crate::graph::{Graph, ValueId};
use crate::op::{AdaptiveGeom, Channels, ConvGeom, DropoutSpec, GroupGeom, Nchw, Op, PoolGeom};
use crate::shape::Shape;

/// The most elements one tensor (a parameter, or an activation of the whole batch) and
/// all parameters together may have: 2^40 (4 TiB of f32) on 64-bit targets, far beyond any
/// device kiln runs on. Sizes computed from a spec are checked against it with checked
/// arithmetic, so an absurd spec is refused by name instead of overflowing.
pub const MAX_ELEMENTS: usize = if usize::BITS >= 64 {
    1 << 40
} else {
    isize::MAX as usize / 4
};

/// The element count of a tensor of dimensions `dims`, or `None` when it exceeds
/// [`MAX_ELEMENTS`] (an overflow included).
fn elements(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

/// Training or evaluation: batch norm and dropout behave differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Batch statistics (and running-statistics updates), dropout active.
    Train,
    /// Running statistics, dropout is the identity.
    Eval,
}

/// What building a model into a graph produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    /// The model's output (logits).
    pub output: ValueId,
    /// In-place state updates (running statistics) that a training plan must run.
    pub updates: Vec<ValueId>,
}

/// A parsed model: its layers and the spec they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The spec as given (presets expanded).
    pub spec: String,
    /// The layers in order; their index is their `nn.Sequential` index.
    pub layers: Vec<Layer>,
    /// Each layer as parsed (its text in `spec`, and a container's inner layers).
    specs: Vec<LayerSpec>,
}

impl Model {
    /// Parses a layer list or a preset name ([`PRESETS`](super::PRESETS)).
    pub fn parse(spec: &str) -> Result<Model> {
        let spec = super::expand_preset(spec).to_string();
        let specs = parse_spec(&spec)?;
        let layers = specs
            .iter()
            .map(|l| layer_of(&spec, l))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            specs,
            spec,
            layers,
        })
    }

    /// Whether the first layer takes images ([N, C, H, W]) rather than feature vectors.
    pub fn takes_images(&self) -> bool {
        first_takes_images(&self.layers)
    }

    /// The layer that parameter or buffer `name` (`3.weight`, `3.body.1.bias`) belongs
    /// to, if any.
    pub fn layer_of_param(&self, name: &str) -> Option<&Layer> {
        let mut parts = name.split('.');
        let mut layer = self.layers.get(parts.next()?.parse::<usize>().ok()?)?;
        loop {
            let Layer::Residual { body, shortcut } = layer else {
                return Some(layer);
            };
            let list = match parts.next()? {
                "body" => body,
                "shortcut" => shortcut,
                _ => return None,
            };
            layer = list.get(parts.next()?.parse::<usize>().ok()?)?;
        }
    }

    /// Appends the layers to `g` reading `x`, a batch of samples of shape `sample`
    /// ([channels, height, width]) given as [N, C·H·W]. Parameters are named
    /// `{index}.weight` / `{index}.bias` as in `nn.Sequential` (`{index}.body.{j}.weight`
    /// inside a residual block), initialised as PyTorch does.
    pub fn build(
        &self,
        g: &mut Graph,
        x: ValueId,
        sample: [usize; 3],
        mode: Mode,
    ) -> Result<Built> {
        let input = g.shape(x).clone();
        let batch = input.0.first().copied().unwrap_or(0);
        let image = [batch, sample[0], sample[1], sample[2]];
        if elements(&input.0).is_none() || (self.takes_images() && elements(&image).is_none()) {
            return Err(Error::shape(
                "model input",
                format!(
                    "a batch {input} of samples {sample:?} has more than {MAX_ELEMENTS} elements"
                ),
            ));
        }
        let h = if self.takes_images() {
            g.reshape(x, Shape::new(&image))?
        } else {
            x
        };
        let mut builder = Builder {
            spec: &self.spec,
            g,
            mode,
            updates: Vec::new(),
            param_total: 0,
            visited: 0,
        };
        let output = builder.list(&self.layers, &self.specs, "", h)?;
        let updates = builder.updates;
        g.set_label("");
        Ok(Built { output, updates })
    }
}

/// Whether the first layer of `layers` takes images (a container: its first layers).
fn first_takes_images(layers: &[Layer]) -> bool {
    match layers.first() {
        Some(Layer::Residual { body, shortcut }) => {
            first_takes_images(body) || first_takes_images(shortcut)
        }
        layer => matches!(
            layer,
            Some(
                Layer::Conv2d { .. }
                    | Layer::MaxPool2d { .. }
                    | Layer::AvgPool2d { .. }
                    | Layer::AdaptivePool2d { .. }
                    | Layer::BatchNorm { dims: 2, .. }
                    | Layer::GroupNorm { instance: true, .. }
                    | Layer::Dropout { channels: true, .. }
            )
        ),
    }
}

/// Appends layers to a graph, naming their parameters by their path in the model.
struct Builder<'a> {
    /// The model's spec, for layer labels.
    spec: &'a str,
    g: &'a mut Graph,
    mode: Mode,
    /// In-place state updates (running statistics) built so far.
    updates: Vec<ValueId>,
    /// Parameters and buffers counted so far (checked against [`MAX_ELEMENTS`]).
    param_total: usize,
    /// Layers visited so far in spec order (containers and their layers included): a
    /// dropout layer's random stream is its number, which for a flat list is its index.
    visited: u32,
}

impl Builder<'_> {
    /// Appends `layers` (parsed as `specs`) reading `h`; `prefix` ends in `.` inside a
    /// container (`3.body.`) and is empty at the top.
    fn list(
        &mut self,
        layers: &[Layer],
        specs: &[LayerSpec],
        prefix: &str,
        mut h: ValueId,
    ) -> Result<ValueId> {
        for (i, (layer, spec)) in layers.iter().zip(specs).enumerate() {
            h = self.layer(layer, spec, &format!("{prefix}{i}"), h)?;
        }
        Ok(h)
    }

    /// Adds `n` parameters or buffer values to the count, failing past [`MAX_ELEMENTS`].
    fn count(&mut self, too_big: &dyn Fn(String) -> Error, n: usize) -> Result<()> {
        self.param_total = self
            .param_total
            .checked_add(n)
            .filter(|&t| t <= MAX_ELEMENTS)
            .ok_or_else(|| too_big("the parameters and buffers up to here".to_string()))?;
        Ok(())
    }

    /// Appends one layer reading `h`; its parameters are named `{path}.weight`, ...
    fn layer(
        &mut self,
        layer: &Layer,
        spec: &LayerSpec,
        path: &str,
        h: ValueId,
    ) -> Result<ValueId> {
        let index = self.visited;
        self.visited += 1;
        let label = format!("layer {path} '{}'", spec.text(self.spec));
        self.g.set_label(label.clone());
        let s = self.g.shape(h).clone();
        let misfit = |want: String| {
            Error::shape(
                label.clone(),
                format!("expects {want} but the layer before gives {s}"),
            )
        };
        // Every size a layer creates is checked before any op computes with it.
        let too_big = |what: String| {
            Error::shape(
                label.clone(),
                format!(
                    "{what} would have more than {MAX_ELEMENTS} elements, the most kiln allows"
                ),
            )
        };
        let size = |what: &str, dims: &[usize]| {
            elements(dims).ok_or_else(|| too_big(format!("{what} {dims:?}")))
        };
        let y = match *layer {
            Layer::Linear {
                in_features,
                out_features,
                bias,
            } => {
                if s.rank() != 2 || s.last() != in_features {
                    return Err(misfit(format!("[batch, {in_features}]")));
                }
                self.count(&too_big, size("its weight", &[out_features, in_features])?)?;
                self.count(&too_big, out_features)?;
                size("its output", &[s.0[0], out_features])?;
                let w = self.g.param(
                    &format!("{path}.weight"),
                    Shape::new(&[out_features, in_features]),
                    fan_in_uniform(in_features),
                );
                let y = self.g.op(
                    Op::MatMul {
                        trans_a: false,
                        trans_b: true,
                    },
                    &[h, w],
                )?;
                self.bias(path, y, out_features, in_features, bias)?
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bias,
            } => {
                if s.rank() != 4 || s.0[1] != in_channels {
                    return Err(misfit(format!("[batch, {in_channels}, height, width]")));
                }
                let geom = ConvGeom {
                    n: s.0[0],
                    c: in_channels,
                    h: s.0[2],
                    w: s.0[3],
                    kh: kernel.0,
                    kw: kernel.1,
                    sh: stride.0,
                    sw: stride.1,
                    ph: padding.0,
                    pw: padding.1,
                    dh: dilation.0,
                    dw: dilation.1,
                };
                let padded = |x: usize, p: usize| p.checked_mul(2).and_then(|p| x.checked_add(p));
                let (Some(ph), Some(pw)) = (padded(s.0[2], padding.0), padded(s.0[3], padding.1))
                else {
                    return Err(too_big(format!("the padded image ({padding:?} padding)")));
                };
                let (Some(rh), Some(rw)) = (
                    ConvGeom::span(kernel.0, dilation.0),
                    ConvGeom::span(kernel.1, dilation.1),
                ) else {
                    return Err(too_big(format!(
                        "the kernel's span ({dilation:?} dilation)"
                    )));
                };
                if ph < rh || pw < rw {
                    let what = if dilation == (1, 1) {
                        "kernel minus padding"
                    } else {
                        "dilated kernel minus padding"
                    };
                    return Err(misfit(format!(
                        "an image of at least {}x{} ({what})",
                        rh.saturating_sub(padding.0.saturating_mul(2)),
                        rw.saturating_sub(padding.1.saturating_mul(2))
                    )));
                }
                // Each output channel reads in_channels / groups of them (all when dense).
                let group_channels = in_channels / groups.max(1);
                let fan_in = size("a patch", &[group_channels, kernel.0, kernel.1])?;
                self.count(&too_big, size("its weight", &[out_channels, fan_in])?)?;
                self.count(&too_big, out_channels)?;
                let rows = size("its output", &[geom.n, geom.oh(), geom.ow()])?;
                size("its output", &[rows, out_channels])?;
                let w = self.g.param(
                    &format!("{path}.weight"),
                    Shape::new(&[out_channels, group_channels, kernel.0, kernel.1]),
                    fan_in_uniform(fan_in),
                );
                let w2 = self.g.reshape(w, Shape::new(&[out_channels, fan_in]))?;
                let rows = if groups > 1 {
                    let grouped = GroupGeom { conv: geom, groups };
                    self.g.op(Op::GroupedConv(grouped), &[h, w2])?
                } else {
                    size("its im2col matrix", &[rows, fan_in])?;
                    let cols = self.g.op(Op::Im2Col(geom), &[h])?;
                    let product = Op::MatMul {
                        trans_a: false,
                        trans_b: true,
                    };
                    self.g.op(product, &[cols, w2])?
                };
                let rows = self.bias(path, rows, out_channels, fan_in, bias)?;
                let d = Nchw {
                    n: geom.n,
                    c: out_channels,
                    h: geom.oh(),
                    w: geom.ow(),
                };
                self.g.op(Op::RowsToNchw(d), &[rows])?
            }
            Layer::MaxPool2d {
                kernel,
                stride,
                padding,
                ceil_mode,
            }
            | Layer::AvgPool2d {
                kernel,
                stride,
                padding,
                ceil_mode,
                ..
            } => {
                let (min_h, min_w) = (
                    kernel.0.saturating_sub(2 * padding.0),
                    kernel.1.saturating_sub(2 * padding.1),
                );
                if s.rank() != 4 || s.0[2] < min_h || s.0[3] < min_w {
                    return Err(misfit(format!("[batch, channels, >= {min_h}, >= {min_w}]")));
                }
                let geom = PoolGeom {
                    n: s.0[0],
                    c: s.0[1],
                    h: s.0[2],
                    w: s.0[3],
                    kh: kernel.0,
                    kw: kernel.1,
                    sh: stride.0,
                    sw: stride.1,
                    ph: padding.0,
                    pw: padding.1,
                    ceil_mode,
                    count_include_pad: !matches!(
                        layer,
                        Layer::AvgPool2d {
                            count_include_pad: false,
                            ..
                        }
                    ),
                };
                let op = if matches!(layer, Layer::MaxPool2d { .. }) {
                    Op::MaxPool(geom)
                } else {
                    Op::AvgPool(geom)
                };
                self.g.op(op, &[h])?
            }
            Layer::AdaptivePool2d { output, max } => {
                if s.rank() != 4 {
                    return Err(misfit("[batch, channels, height, width]".to_string()));
                }
                let (h_in, w_in) = (s.0[2], s.0[3]);
                size("its output", &[s.0[0], s.0[1], output.0, output.1])?;
                // Windows of one length and spacing run as plain pooling (its fast paths);
                // others as the adaptive ops, which follow PyTorch's rule window by window.
                let (Some((kh, sh)), Some((kw, sw))) = (
                    uniform_windows(h_in, output.0),
                    uniform_windows(w_in, output.1),
                ) else {
                    let geom = AdaptiveGeom {
                        n: s.0[0],
                        c: s.0[1],
                        h: h_in,
                        w: w_in,
                        oh: output.0,
                        ow: output.1,
                    };
                    let op = if max {
                        Op::AdaptiveMaxPool(geom)
                    } else {
                        Op::AdaptiveAvgPool(geom)
                    };
                    return self.g.op(op, &[h]);
                };
                let geom = PoolGeom {
                    n: s.0[0],
                    c: s.0[1],
                    h: h_in,
                    w: w_in,
                    kh,
                    kw,
                    sh,
                    sw,
                    ph: 0,
                    pw: 0,
                    ceil_mode: false,
                    count_include_pad: true,
                };
                self.g.op(
                    if max {
                        Op::MaxPool(geom)
                    } else {
                        Op::AvgPool(geom)
                    },
                    &[h],
                )?
            }
            Layer::Flatten => {
                let rest = s.numel() / s.0[0].max(1);
                self.g.reshape(h, Shape::new(&[s.0[0], rest]))?
            }
            Layer::BatchNorm {
                num_features: c,
                eps,
                momentum,
                dims,
            } => {
                let ok = s.rank() >= 2
                    && s.0[1] == c
                    && (if dims == 2 {
                        s.rank() == 4
                    } else {
                        s.rank() <= 3
                    });
                if !ok {
                    let want = if dims == 2 {
                        format!("[batch, {c}, height, width]")
                    } else {
                        format!("[batch, {c}] or [batch, {c}, length]")
                    };
                    return Err(misfit(want));
                }
                self.count(&too_big, size("its running statistics", &[2, c])?)?;
                self.count(&too_big, c)?;
                self.count(&too_big, c)?;
                // Values per channel and sample; no division, so no zero can divide.
                let spatial: usize = s.0[2..].iter().product();
                let ch = Channels { c, s: spatial, eps };
                let (gamma, beta) = self.affine(path, c);
                let running = self.g.buffer(
                    &format!("{path}.running_stats"),
                    Shape::new(&[2, c]),
                    Init::RunningStats,
                );
                match self.mode {
                    Mode::Train => {
                        let stats = self.g.op(Op::BatchNormStats(ch), &[h])?;
                        let count = s.0[0] * spatial;
                        self.updates.push(self.g.op_in_place(
                            Op::BatchNormRunning { c, momentum, count },
                            &[stats],
                            running,
                        )?);
                        self.g
                            .op(Op::BatchNormApply(ch), &[h, stats, gamma, beta])?
                    }
                    Mode::Eval => self
                        .g
                        .op(Op::BatchNormApply(ch), &[h, running, gamma, beta])?,
                }
            }
            Layer::LayerNorm {
                normalized_shape: n,
                eps,
            } => {
                if s.last() != n {
                    return Err(misfit(format!("a last dimension of {n}")));
                }
                self.count(&too_big, n)?;
                self.count(&too_big, n)?;
                let (gamma, beta) = self.affine(path, n);
                self.g.op(Op::LayerNorm { eps }, &[h, gamma, beta])?
            }
            Layer::GroupNorm {
                num_groups: groups,
                num_channels: c,
                eps,
                affine,
                instance,
            } => {
                let ok = s.rank() >= 2 && s.0[1] == c && (!instance || s.rank() == 4);
                if !ok {
                    return Err(misfit(if instance {
                        format!("[batch, {c}, height, width]")
                    } else {
                        format!("[batch, {c}, ...]")
                    }));
                }
                if affine {
                    self.count(&too_big, c)?;
                    self.count(&too_big, c)?;
                }
                // Each group of a sample is a row of (C/G)·S contiguous values: layer
                // norm's rows, with a unit scale and no shift, then the channels' affine.
                let spatial: usize = s.0[2..].iter().product();
                // PyTorch's check: one value per channel normalises to 0 whatever it was.
                if instance && spatial == 1 && self.mode == Mode::Train {
                    return Err(Error::shape(
                        label.clone(),
                        format!("expects more than 1 spatial element when training, got {s}"),
                    ));
                }
                let per_group = c / groups * spatial;
                let rows = self
                    .g
                    .reshape(h, Shape::new(&[s.0[0] * groups, per_group]))?;
                let ones = self.g.constant(1.0, Shape::new(&[per_group]));
                let zeros = self.g.constant(0.0, Shape::new(&[per_group]));
                let normed = self.g.op(Op::LayerNorm { eps }, &[rows, ones, zeros])?;
                let normed = self.g.reshape(normed, s.clone())?;
                if affine {
                    let (gamma, beta) = self.affine(path, c);
                    let ch = Channels { c, s: spatial, eps };
                    self.g.op(Op::ChannelAffine(ch), &[normed, gamma, beta])?
                } else {
                    normed
                }
            }
            Layer::Dropout { p, channels } => {
                if channels && !(3..=4).contains(&s.rank()) {
                    return Err(misfit(
                        "[batch, channels, height, width] or [batch, channels, length]".into(),
                    ));
                }
                // One draw per element, or per sample's channel (H·W elements, or L of
                // [N, C, L] as PyTorch's 3-D case) for Dropout2d; the draws are numbered as
                // dropout's elements, so the shader's u32 bound on the element count covers
                // them.
                let per: usize = if channels {
                    s.0[2..].iter().product()
                } else {
                    1
                };
                let per = u32::try_from(per).map_err(|_| too_big("a channel".into()))?;
                match self.mode {
                    Mode::Train if p > 0.0 => {
                        let spec = DropoutSpec {
                            p,
                            layer: index,
                            per: per.max(1),
                        };
                        self.g.op(Op::Dropout(spec), &[h])?
                    }
                    _ => h,
                }
            }
            Layer::PRelu {
                num_parameters: n,
                init,
            } => {
                // One slope per channel (dimension 1), or one for the whole sample, seen as
                // a single channel of all its values.
                let (c, rest) = (n, s.numel() / s.0[0].max(1));
                if n > 1 && (s.rank() < 2 || s.0[1] != n) {
                    return Err(misfit(format!("[batch, {n}, ...]")));
                }
                self.count(&too_big, n)?;
                let weight = self.g.param(
                    &format!("{path}.weight"),
                    Shape::new(&[n]),
                    Init::Constant(init),
                );
                let ch = Channels {
                    c,
                    s: rest / c,
                    eps: 0.0,
                };
                let x = self.g.reshape(h, Shape::new(&[s.0[0], c, rest / c]))?;
                let y = self.g.op(Op::PRelu(ch), &[x, weight])?;
                self.g.reshape(y, s.clone())?
            }
            Layer::Activation(a) => self.g.op(Op::Activation(a), &[h])?,
            Layer::Softmax { log, dim_one } => {
                // The kernels normalise the last dimension, which dim=1 names only in 2-D.
                if dim_one && s.rank() != 2 {
                    return Err(misfit(
                        "[batch, classes] for dim=1 (dim=-1 for the last)".into(),
                    ));
                }
                let op = if log { Op::LogSoftmax } else { Op::Softmax };
                self.g.op(op, &[h])?
            }
            Layer::Residual {
                ref body,
                ref shortcut,
            } => {
                let main = self.list(body, &spec.body, &format!("{path}.body."), h)?;
                let skip = self.list(shortcut, &spec.shortcut, &format!("{path}.shortcut."), h)?;
                self.g.set_label(label.clone());
                let (a, b) = (self.g.shape(main).clone(), self.g.shape(skip).clone());
                if a != b {
                    let what = if shortcut.is_empty() {
                        "its input (the identity shortcut; a shortcut=(...) projection can change it)"
                    } else {
                        "its shortcut"
                    };
                    return Err(Error::shape(
                        label.clone(),
                        format!("its body gives {a} but {what} gives {b}"),
                    ));
                }
                self.g.op(Op::Add, &[main, skip])?
            }
        };
        Ok(y)
    }

    /// A normalisation's scale `{path}.weight` (ones) and shift `{path}.bias` (zeros), `[n]`.
    fn affine(&mut self, path: &str, n: usize) -> (ValueId, ValueId) {
        let gamma = self.g.param(
            &format!("{path}.weight"),
            Shape::new(&[n]),
            Init::Constant(1.0),
        );
        let beta = self.g.param(
            &format!("{path}.bias"),
            Shape::new(&[n]),
            Init::Constant(0.0),
        );
        (gamma, beta)
    }

    /// Adds the bias `{path}.bias` (PyTorch's U(±1/sqrt(fan_in))) to `y` [rows, features].
    fn bias(
        &mut self,
        path: &str,
        y: ValueId,
        features: usize,
        fan_in: usize,
        bias: bool,
    ) -> Result<ValueId> {
        if !bias {
            return Ok(y);
        }
        let b = self.g.param(
            &format!("{path}.bias"),
            Shape::new(&[features]),
            fan_in_uniform(fan_in),
        );
        self.g.op(Op::BiasAdd, &[y, b])
    }
}

/// PyTorch's default for `nn.Linear` and `nn.Conv2d`: kaiming_uniform(a = sqrt(5)) for the
/// weight and U(±1/sqrt(fan_in)) for the bias both come to this bound.
fn fan_in_uniform(fan_in: usize) -> Init {
    Init::Uniform {
        bound: 1.0 / (fan_in.max(1) as f32).sqrt(),
    }
}

/// PyTorch's adaptive pooling windows along an axis of `len` positions pooled to `out`,
/// [⌊i·len/out⌋, ⌈(i+1)·len/out⌉), as the (window, stride) of uniform pooling when they
/// all have one length and one spacing (always when `out` divides `len`, and in many
/// other cases such as 4 → 3: window 2, stride 1); `None` otherwise.
fn uniform_windows(len: usize, out: usize) -> Option<(usize, usize)> {
    let window = |i: usize| (i * len / out, ((i + 1) * len).div_ceil(out));
    let (start0, end0) = window(0);
    let k = end0 - start0;
    let stride = if out > 1 { window(1).0 - start0 } else { k };
    (stride > 0 && (0..out).all(|i| window(i) == (i * stride, i * stride + k)))
        .then_some((k, stride))
}

#[cfg(test)]
mod tests;
