//! A model as a layer list, built into graph nodes with PyTorch's parameter names.

use super::layer::{layer_of, Layer};
use super::spec::parse_spec;
use super::Init;
use crate::error::{Error, Result};
use crate::graph::{Graph, ValueId};
use crate::op::{Channels, ConvGeom, DropoutSpec, Nchw, Op, PoolGeom};
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
    /// Where each layer starts in `spec`.
    positions: Vec<usize>,
}

impl Model {
    /// Parses a layer list or a preset name (`mlp`, `cnn`).
    pub fn parse(spec: &str) -> Result<Model> {
        let spec = super::expand_preset(spec).to_string();
        let specs = parse_spec(&spec)?;
        let mut layers = Vec::new();
        for l in &specs {
            layers.push(layer_of(&spec, l)?);
        }
        Ok(Model {
            positions: specs.iter().map(|l| l.position).collect(),
            spec,
            layers,
        })
    }

    /// Whether the first layer takes images ([N, C, H, W]) rather than feature vectors.
    pub fn takes_images(&self) -> bool {
        matches!(
            self.layers.first(),
            Some(
                Layer::Conv2d { .. }
                    | Layer::MaxPool2d { .. }
                    | Layer::AvgPool2d { .. }
                    | Layer::AdaptivePool2d { .. }
                    | Layer::BatchNorm { dims: 2, .. }
            )
        )
    }

    /// The text of layer `i` as written in the spec.
    fn layer_text(&self, i: usize) -> &str {
        let start = self.positions[i];
        let end = self
            .positions
            .get(i + 1)
            .copied()
            .unwrap_or(self.spec.len());
        self.spec[start..end].trim().trim_end_matches(',').trim()
    }

    /// Appends the layers to `g` reading `x`, a batch of samples of shape `sample`
    /// ([channels, height, width]) given as [N, C·H·W]. Parameters are named
    /// `{index}.weight` / `{index}.bias` as in `nn.Sequential`, initialised as PyTorch does.
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
        let mut h = if self.takes_images() {
            g.reshape(x, Shape::new(&image))?
        } else {
            x
        };
        let mut updates = Vec::new();
        let mut param_total = 0usize;
        for (i, layer) in self.layers.iter().enumerate() {
            let label = format!("layer {i} '{}'", self.layer_text(i));
            g.set_label(label.clone());
            let s = g.shape(h).clone();
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
            let mut count_params = |n: usize| {
                param_total = param_total
                    .checked_add(n)
                    .filter(|&t| t <= MAX_ELEMENTS)
                    .ok_or_else(|| too_big("the parameters and buffers up to here".to_string()))?;
                Ok::<(), Error>(())
            };
            h = match *layer {
                Layer::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    if s.rank() != 2 || s.last() != in_features {
                        return Err(misfit(format!("[batch, {in_features}]")));
                    }
                    count_params(size("its weight", &[out_features, in_features])?)?;
                    count_params(out_features)?;
                    size("its output", &[s.0[0], out_features])?;
                    let w = g.param(
                        &format!("{i}.weight"),
                        Shape::new(&[out_features, in_features]),
                        fan_in_uniform(in_features),
                    );
                    let y = g.op(
                        Op::MatMul {
                            trans_a: false,
                            trans_b: true,
                        },
                        &[h, w],
                    )?;
                    self.bias(g, i, y, out_features, in_features, bias)?
                }
                Layer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
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
                    };
                    let padded =
                        |x: usize, p: usize| p.checked_mul(2).and_then(|p| x.checked_add(p));
                    let (Some(ph), Some(pw)) =
                        (padded(s.0[2], padding.0), padded(s.0[3], padding.1))
                    else {
                        return Err(too_big(format!("the padded image ({padding:?} padding)")));
                    };
                    if ph < kernel.0 || pw < kernel.1 {
                        return Err(misfit(format!(
                            "an image of at least {}x{} (kernel minus padding)",
                            kernel.0.saturating_sub(padding.0.saturating_mul(2)),
                            kernel.1.saturating_sub(padding.1.saturating_mul(2))
                        )));
                    }
                    let fan_in = size("a patch", &[in_channels, kernel.0, kernel.1])?;
                    count_params(size("its weight", &[out_channels, fan_in])?)?;
                    count_params(out_channels)?;
                    let rows = size("its output", &[geom.n, geom.oh(), geom.ow()])?;
                    size("its im2col matrix", &[rows, fan_in])?;
                    size("its output", &[rows, out_channels])?;
                    let w = g.param(
                        &format!("{i}.weight"),
                        Shape::new(&[out_channels, in_channels, kernel.0, kernel.1]),
                        fan_in_uniform(fan_in),
                    );
                    let w2 = g.reshape(w, Shape::new(&[out_channels, fan_in]))?;
                    let cols = g.op(Op::Im2Col(geom), &[h])?;
                    let rows = g.op(
                        Op::MatMul {
                            trans_a: false,
                            trans_b: true,
                        },
                        &[cols, w2],
                    )?;
                    let rows = self.bias(g, i, rows, out_channels, fan_in, bias)?;
                    let d = Nchw {
                        n: geom.n,
                        c: out_channels,
                        h: geom.oh(),
                        w: geom.ow(),
                    };
                    g.op(Op::RowsToNchw(d), &[rows])?
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
                    g.op(op, &[h])?
                }
                Layer::AdaptivePool2d { output, max } => {
                    if s.rank() != 4 {
                        return Err(misfit("[batch, channels, height, width]".to_string()));
                    }
                    let (h_in, w_in) = (s.0[2], s.0[3]);
                    let (Some((kh, sh)), Some((kw, sw))) = (
                        uniform_windows(h_in, output.0),
                        uniform_windows(w_in, output.1),
                    ) else {
                        return Err(Error::Unsupported(format!(
                            "{label}: adaptive pooling to {output:?} from {h_in}x{w_in}: PyTorch's \
                             windows there differ in length or spacing, which kiln does not run"
                        )));
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
                    g.op(
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
                    g.reshape(h, Shape::new(&[s.0[0], rest]))?
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
                    count_params(size("its running statistics", &[2, c])?)?;
                    count_params(c)?;
                    count_params(c)?;
                    // Values per channel and sample; no division, so no zero can divide.
                    let spatial: usize = s.0[2..].iter().product();
                    let ch = Channels { c, s: spatial, eps };
                    let gamma = g.param(
                        &format!("{i}.weight"),
                        Shape::new(&[c]),
                        Init::Constant(1.0),
                    );
                    let beta = g.param(&format!("{i}.bias"), Shape::new(&[c]), Init::Constant(0.0));
                    let running = g.buffer(
                        &format!("{i}.running_stats"),
                        Shape::new(&[2, c]),
                        Init::RunningStats,
                    );
                    match mode {
                        Mode::Train => {
                            let stats = g.op(Op::BatchNormStats(ch), &[h])?;
                            let count = s.0[0] * spatial;
                            updates.push(g.op_in_place(
                                Op::BatchNormRunning { c, momentum, count },
                                &[stats],
                                running,
                            )?);
                            g.op(Op::BatchNormApply(ch), &[h, stats, gamma, beta])?
                        }
                        Mode::Eval => g.op(Op::BatchNormApply(ch), &[h, running, gamma, beta])?,
                    }
                }
                Layer::LayerNorm {
                    normalized_shape: n,
                    eps,
                } => {
                    if s.last() != n {
                        return Err(misfit(format!("a last dimension of {n}")));
                    }
                    count_params(n)?;
                    count_params(n)?;
                    let gamma = g.param(
                        &format!("{i}.weight"),
                        Shape::new(&[n]),
                        Init::Constant(1.0),
                    );
                    let beta = g.param(&format!("{i}.bias"), Shape::new(&[n]), Init::Constant(0.0));
                    g.op(Op::LayerNorm { eps }, &[h, gamma, beta])?
                }
                Layer::Dropout { p } => match mode {
                    Mode::Train if p > 0.0 => {
                        g.op(Op::Dropout(DropoutSpec { p, layer: i as u32 }), &[h])?
                    }
                    _ => h,
                },
                Layer::Activation(a) => g.op(Op::Activation(a), &[h])?,
                Layer::Softmax => g.op(Op::Softmax, &[h])?,
            };
        }
        g.set_label("");
        Ok(Built { output: h, updates })
    }

    /// Adds layer `i`'s bias (PyTorch's U(±1/sqrt(fan_in))) to `y` [rows, features].
    fn bias(
        &self,
        g: &mut Graph,
        i: usize,
        y: ValueId,
        features: usize,
        fan_in: usize,
        bias: bool,
    ) -> Result<ValueId> {
        if !bias {
            return Ok(y);
        }
        let b = g.param(
            &format!("{i}.bias"),
            Shape::new(&[features]),
            fan_in_uniform(fan_in),
        );
        g.op(Op::BiasAdd, &[y, b])
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
mod tests {
    use super::*;
    use crate::op::Activation;

    #[test]
    fn mlp_preset_has_pytorch_names_and_layouts() {
        let m = Model::parse("mlp").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[4, 784]));
        let y = m.build(&mut g, x, [1, 28, 28], Mode::Train).unwrap().output;
        assert_eq!(g.shape(y), &Shape::new(&[4, 10]));
        let names: Vec<(String, Shape)> = g
            .params()
            .iter()
            .map(|(_, n, s, _)| (n.to_string(), (*s).clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("0.weight".into(), Shape::new(&[256, 784])),
                ("0.bias".into(), Shape::new(&[256])),
                ("2.weight".into(), Shape::new(&[128, 256])),
                ("2.bias".into(), Shape::new(&[128])),
                ("4.weight".into(), Shape::new(&[10, 128])),
                ("4.bias".into(), Shape::new(&[10])),
            ]
        );
    }

    #[test]
    fn mismatched_layers_name_the_layer_and_shapes() {
        let m = Model::parse("linear(784,64),relu,linear(60,10)").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[8, 784]));
        let err = m
            .build(&mut g, x, [1, 28, 28], Mode::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 2 'linear(60,10)'"), "{err}");
        assert!(err.contains("[8, 64]"), "{err}");
    }

    #[test]
    fn bad_arguments_are_spec_errors() {
        assert!(matches!(
            Model::parse("linear(784)"),
            Err(Error::Spec { .. })
        ));
        assert!(matches!(
            Model::parse("linear(784,0)"),
            Err(Error::Spec { .. })
        ));
        assert!(matches!(
            Model::parse("linear(784,10,bias=maybe)"),
            Err(Error::Spec { .. })
        ));
        assert!(matches!(Model::parse("relu(3)"), Err(Error::Spec { .. })));
        assert!(matches!(Model::parse("swish"), Err(Error::Spec { .. })));
        assert!(Model::parse("cnn").is_ok());
        let m = Model::parse("linear(4,3,bias=False),leaky_relu(negative_slope=0.2)").unwrap();
        assert_eq!(
            m.layers,
            vec![
                Layer::Linear {
                    in_features: 4,
                    out_features: 3,
                    bias: false
                },
                Layer::Activation(Activation::LeakyRelu(0.2))
            ]
        );
    }
}

#[cfg(test)]
mod cnn_tests {
    use super::*;

    /// `adaptiveavgpool2d`/`adaptivemaxpool2d` against PyTorch's window rule computed by
    /// hand: window i of an output of O over an input of L spans [⌊iL/O⌋, ⌈(i+1)L/O⌉).
    #[test]
    fn adaptive_pooling_takes_pytorchs_windows() {
        let (c, h, w) = (2, 4, 6);
        for (spec, out, max) in [
            ("adaptiveavgpool2d(1)", (1, 1), false),
            ("adaptivemaxpool2d(output_size=1)", (1, 1), true),
            ("adaptiveavgpool2d((2,3))", (2, 3), false),
            ("adaptivemaxpool2d((4,2))", (4, 2), true),
            // Overlapping windows of one length: 4 → 3 is [0,2), [1,3), [2,4), and
            // 6 → 4 is [0,2), [1,3), [3,5), [4,6) (refused: two spacings) — so (3, 6).
            ("adaptiveavgpool2d((3,6))", (3, 6), false),
            ("adaptivemaxpool2d((3,5))", (3, 5), true),
        ] {
            let m = Model::parse(spec).unwrap();
            assert!(m.takes_images());
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[1, c * h * w]));
            let y = m.build(&mut g, x, [c, h, w], Mode::Eval).unwrap().output;
            assert_eq!(g.shape(y), &Shape::new(&[1, c, out.0, out.1]), "{spec}");
            let data: Vec<f64> = (0..c * h * w)
                .map(|i| ((i * 7) as f64 * 0.37).sin())
                .collect();
            let feed = |id: ValueId| (id == x).then(|| data.clone());
            let got =
                &crate::graph::interpret(&g, &feed, &crate::rng::StepRng::default()).unwrap()[y];
            let window =
                |i: usize, len: usize, o: usize| (i * len / o)..((i + 1) * len).div_ceil(o);
            for ch in 0..c {
                for i in 0..out.0 {
                    for j in 0..out.1 {
                        let values: Vec<f64> = window(i, h, out.0)
                            .flat_map(|r| window(j, w, out.1).map(move |q| (r, q)))
                            .map(|(r, q)| data[(ch * h + r) * w + q])
                            .collect();
                        let want = if max {
                            values.iter().copied().fold(f64::MIN, f64::max)
                        } else {
                            values.iter().sum::<f64>() / values.len() as f64
                        };
                        let at = (ch * out.0 + i) * out.1 + j;
                        assert!((got[at] - want).abs() < 1e-12, "{spec} [{ch},{i},{j}]");
                    }
                }
            }
        }
        // 28 → 3 is [0,10), [9,19), [18,28); 7 → 3 is [0,3), [2,5), [4,7).
        assert_eq!(uniform_windows(28, 3), Some((10, 9)));
        assert_eq!(uniform_windows(7, 3), Some((3, 2)));
        assert_eq!(uniform_windows(5, 3), None);
        // Windows of two lengths (5 → 3 is [0,2), [1,4), [3,5)) are refused when built.
        let m = Model::parse("adaptiveavgpool2d(3)").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 25]));
        let err = m.build(&mut g, x, [1, 5, 5], Mode::Eval).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        assert!(matches!(
            Model::parse("adaptiveavgpool2d(0)"),
            Err(Error::Spec { .. })
        ));
    }

    #[test]
    fn cnn_preset_has_pytorch_names_and_shapes() {
        let m = Model::parse("cnn").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 784]));
        let built = m.build(&mut g, x, [1, 28, 28], Mode::Train).unwrap();
        assert_eq!(g.shape(built.output), &Shape::new(&[2, 10]));
        assert_eq!(built.updates.len(), 2);
        let names: Vec<(String, Vec<usize>)> = g
            .params()
            .iter()
            .map(|(_, n, s, _)| (n.to_string(), s.0.clone()))
            .collect();
        let expect: Vec<(&str, Vec<usize>)> = vec![
            ("0.weight", vec![32, 1, 3, 3]),
            ("0.bias", vec![32]),
            ("1.weight", vec![32]),
            ("1.bias", vec![32]),
            ("4.weight", vec![64, 32, 3, 3]),
            ("4.bias", vec![64]),
            ("5.weight", vec![64]),
            ("5.bias", vec![64]),
            ("10.weight", vec![128, 3136]),
            ("10.bias", vec![128]),
            ("12.weight", vec![10, 128]),
            ("12.bias", vec![10]),
        ];
        let expect: Vec<(String, Vec<usize>)> = expect
            .into_iter()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        assert_eq!(names, expect);
        let buffers: Vec<&str> = g.buffers().iter().map(|b| b.1).collect();
        assert_eq!(buffers, vec!["1.running_stats", "5.running_stats"]);
    }

    #[test]
    fn flatten_mismatch_names_layer_and_shapes() {
        let spec = "conv2d(1,32,3,padding=1),batchnorm2d(32),relu,maxpool2d(2),\
conv2d(32,64,3,padding=1),batchnorm2d(64),relu,maxpool2d(2),flatten,dropout(0.25),\
linear(3000,128),relu,linear(128,10)";
        let m = Model::parse(spec).unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[128, 784]));
        let err = m
            .build(&mut g, x, [1, 28, 28], Mode::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer 10 'linear(3000,128)'"), "{err}");
        assert!(err.contains("[128, 3136]"), "{err}");
    }

    /// `ceil_mode` and `count_include_pad` by PyTorch's names and positions, and the output
    /// sizes of `pooling_output_shape`: 7 with window 2 and stride 2 gives 4 (the last
    /// window holds one row); 6 + 2 with window 3 and stride 2 gives 4, whose last window
    /// starts at 6 < 6 + 1; 5 with window 2 and stride 3 gives 2, because a third window
    /// would start at 6 ≥ 5.
    #[test]
    fn pooling_takes_ceil_mode_and_count_include_pad() {
        let m = Model::parse(
            "maxpool2d(2,ceil_mode=True),avgpool2d(3,2,1,True,False),avgpool2d((1,2),(1,3),0,ceil_mode=1)",
        )
        .unwrap();
        assert_eq!(
            m.layers[1],
            Layer::AvgPool2d {
                kernel: (3, 3),
                stride: (2, 2),
                padding: (1, 1),
                ceil_mode: true,
                count_include_pad: false,
            }
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 7 * 11]));
        let y = m.build(&mut g, x, [1, 7, 11], Mode::Eval).unwrap().output;
        // 7x11 → 4x6 → (4 + 2 − 3)/2 ↑ + 1 = 3 by (6 + 2 − 3)/2 ↑ + 1 = 4 → 3 by ⌈(4 − 2)/3⌉ + 1 = 2.
        assert_eq!(g.shape(y), &Shape::new(&[1, 1, 3, 2]));
        let g = PoolGeom {
            n: 1,
            c: 1,
            h: 5,
            w: 6,
            kh: 2,
            kw: 3,
            sh: 3,
            sw: 2,
            ph: 0,
            pw: 1,
            ceil_mode: true,
            count_include_pad: true,
        };
        assert_eq!((g.oh(), g.ow()), (2, 4));
        // The maxpool2d positions after padding are dilation and return_indices.
        let err = Model::parse("maxpool2d(2,2,0,1)").unwrap_err().to_string();
        assert!(err.contains("ceil_mode by name"), "{err}");
    }

    #[test]
    fn pooling_takes_pytorchs_padding() {
        let m = Model::parse("maxpool2d(3,stride=2,padding=1),avgpool2d((2,3),1,(1,1))").unwrap();
        assert_eq!(
            m.layers,
            [
                Layer::MaxPool2d {
                    kernel: (3, 3),
                    stride: (2, 2),
                    padding: (1, 1),
                    ceil_mode: false,
                },
                Layer::AvgPool2d {
                    kernel: (2, 3),
                    stride: (1, 1),
                    padding: (1, 1),
                    ceil_mode: false,
                    count_include_pad: true,
                }
            ]
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[2, 4 * 7 * 7]));
        let y = m.build(&mut g, x, [4, 7, 7], Mode::Eval).unwrap().output;
        // (7 + 2 − 3)/2 + 1 = 4; then (4 + 2 − 2)/1 + 1 = 5 by (4 + 2 − 3)/1 + 1 = 4.
        assert_eq!(g.shape(y), &Shape::new(&[2, 4, 5, 4]));
        // PyTorch's limit: padding at most half the window.
        let err = Model::parse("maxpool2d(3,padding=2)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most half"), "{err}");
        let err = Model::parse("avgpool2d(2,1,(1,2))")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most half"), "{err}");
        // Sizes whose padded extent or window area overflow are errors, not panics.
        for spec in [
            "maxpool2d(18446744073709551615,padding=9223372036854775807)",
            "avgpool2d(4294967296,padding=2147483648)",
        ] {
            let m = Model::parse(spec).unwrap();
            let mut g = Graph::new();
            let x = g.input("x", Shape::new(&[2, 4 * 7 * 7]));
            assert!(m.build(&mut g, x, [4, 7, 7], Mode::Eval).is_err(), "{spec}");
        }
    }

    #[test]
    fn conv_arguments_follow_pytorch() {
        let m = Model::parse(
            "conv2d(3,8,(3,5),stride=2,padding=(1,2),bias=false),maxpool2d(2,stride=1)",
        )
        .unwrap();
        assert_eq!(
            m.layers[0],
            Layer::Conv2d {
                in_channels: 3,
                out_channels: 8,
                kernel: (3, 5),
                stride: (2, 2),
                padding: (1, 2),
                bias: false
            }
        );
        assert_eq!(
            m.layers[1],
            Layer::MaxPool2d {
                kernel: (2, 2),
                stride: (1, 1),
                padding: (0, 0),
                ceil_mode: false,
            }
        );
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[1, 3 * 9 * 11]));
        let y = m.build(&mut g, x, [3, 9, 11], Mode::Eval).unwrap().output;
        // conv: (9+2-3)/2+1 = 5, (11+4-5)/2+1 = 6; pool 2 stride 1: 4 x 5.
        assert_eq!(g.shape(y), &Shape::new(&[1, 8, 4, 5]));
    }
}
