//! The op table shared by `kiln parity`, the parity tests and the gradient checks.

use crate::op::{
    Activation, AdaptiveGeom, Channels, ConvGeom, DropoutSpec, GroupGeom, Nchw, Op, PoolGeom,
};
use crate::rng::Philox;
use crate::shape::Shape;

/// What values an input of a case holds.
#[derive(Clone, Debug, PartialEq)]
pub enum InputKind {
    /// Uniform in (−range, range).
    Real(f32),
    /// Class indices in [0, classes).
    Labels(usize),
    /// Uniform in [0, 1): probabilities, such as binary cross-entropy targets.
    Unit,
    /// Batch-norm statistics [2, C]: means in (−1, 1), variances in (0.1, 2).
    Stats,
    /// Rows of log-probabilities: the log-softmax of logits uniform in (−4, 4) per last
    /// dimension, what a log-softmax gradient reads.
    LogProbs,
}

/// One op on one set of input shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct OpCase {
    /// The op.
    pub op: Op,
    /// Input shapes and kinds, in the op's order.
    pub inputs: Vec<(Shape, InputKind)>,
    /// The output shape for ops that need one given (`Broadcast`).
    pub target: Option<Shape>,
}

impl OpCase {
    fn new(op: Op, inputs: Vec<(Shape, InputKind)>) -> Self {
        OpCase {
            op,
            inputs,
            target: None,
        }
    }

    /// "[a, b] x [c, d]" for reports.
    pub fn shapes(&self) -> String {
        let s: Vec<String> = self.inputs.iter().map(|(s, _)| s.to_string()).collect();
        s.join(" x ")
    }

    /// Deterministic inputs for this case from `seed`.
    pub fn make_inputs(&self, seed: u64) -> Vec<Vec<f32>> {
        self.inputs
            .iter()
            .enumerate()
            .map(|(i, (shape, kind))| {
                let mut rng = Philox::new(seed, i as u32);
                let values: Vec<f32> = (0..shape.numel())
                    .map(|j| match kind {
                        InputKind::Real(r) => rng.uniform(-r, *r),
                        InputKind::Labels(c) => rng.below(*c as u32) as f32,
                        InputKind::Unit => rng.uniform(0.0, 1.0),
                        InputKind::Stats if j < shape.numel() / 2 => rng.uniform(-1.0, 1.0),
                        InputKind::Stats => rng.uniform(0.1, 2.0),
                        InputKind::LogProbs => rng.uniform(-4.0, 4.0),
                    })
                    .collect();
                if *kind == InputKind::LogProbs {
                    log_softmax_rows(&values, shape.last())
                } else {
                    values
                }
            })
            .collect()
    }
}

/// Each `cols`-long row of `logits` turned into log-probabilities, in f64.
fn log_softmax_rows(logits: &[f32], cols: usize) -> Vec<f32> {
    logits
        .chunks(cols.max(1))
        .flat_map(|row| {
            let m = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let lse = m + row
                .iter()
                .map(|&v| (f64::from(v) - m).exp())
                .sum::<f64>()
                .ln();
            row.iter().map(move |&v| (f64::from(v) - lse) as f32)
        })
        .collect()
}

fn real(d: &[usize]) -> (Shape, InputKind) {
    (Shape::new(d), InputKind::Real(1.0))
}

fn wide(d: &[usize]) -> (Shape, InputKind) {
    (Shape::new(d), InputKind::Real(4.0))
}

fn unit(d: &[usize]) -> (Shape, InputKind) {
    (Shape::new(d), InputKind::Unit)
}

fn labels(n: usize, classes: usize) -> (Shape, InputKind) {
    (Shape::new(&[n]), InputKind::Labels(classes))
}

/// One activation of each kind, with parameters whose kinks and thresholds lie inside the
/// parity inputs' range: the activation cases, and the GPU edge test's kinds.
pub const ACTIVATIONS: [Activation; 14] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Gelu,
    Activation::Silu,
    Activation::Elu(0.7),
    Activation::Selu,
    // Inputs lie in [−4, 4]: bounds inside that range, so both sides of each are tested.
    Activation::Relu6,
    Activation::Hardtanh(-0.5, 2.0),
    Activation::Hardsigmoid,
    Activation::Hardswish,
    Activation::Softplus(2.0, 3.0),
    Activation::Mish,
];

/// Every op of [`Op`] with shapes that exercise edges: size 1, odd sizes, sizes that are
/// not multiples of the workgroup (256) or tile (64) sizes.
pub fn cases() -> Vec<OpCase> {
    let mut c = Vec::new();
    for (m, n, k) in [
        (1, 1, 1),
        (7, 13, 5),
        (65, 33, 130),
        (128, 10, 128),
        (3, 300, 70),
    ] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = if ta { [k, m] } else { [m, k] };
            let b = if tb { [n, k] } else { [k, n] };
            c.push(OpCase::new(
                Op::MatMul {
                    trans_a: ta,
                    trans_b: tb,
                },
                vec![real(&a), real(&b)],
            ));
        }
    }
    for (r, k) in [(1, 1), (5, 7), (300, 129)] {
        c.push(OpCase::new(Op::BiasAdd, vec![real(&[r, k]), real(&[k])]));
        c.push(OpCase::new(Op::BiasGrad, vec![real(&[r, k])]));
    }
    for n in [1, 1000, 70_001] {
        c.push(OpCase::new(Op::Add, vec![real(&[n]), real(&[n])]));
        c.push(OpCase::new(Op::Scale(-0.75), vec![real(&[n])]));
        c.push(OpCase::new(Op::Sum, vec![real(&[n])]));
        c.push(OpCase::new(Op::Mean, vec![real(&[n])]));
        c.push(OpCase::new(Op::SumSquares, vec![real(&[n])]));
        c.push(OpCase::new(Op::SumAbs, vec![real(&[n])]));
        c.push(OpCase::new(
            Op::SumSquaresGrad,
            vec![real(&[n]), real(&[1])],
        ));
        c.push(OpCase::new(Op::SumAbsGrad, vec![real(&[n]), real(&[1])]));
        let mut b = OpCase::new(Op::Broadcast(0.5), vec![real(&[1])]);
        b.target = Some(Shape::new(&[n]));
        c.push(b);
    }
    for a in ACTIVATIONS {
        for d in [&[1][..], &[777], &[3, 1029]] {
            c.push(OpCase::new(Op::Activation(a), vec![wide(d)]));
            c.push(OpCase::new(Op::ActivationGrad(a), vec![wide(d), real(d)]));
        }
    }
    for (r, k) in [(1, 1), (5, 10), (33, 300)] {
        c.push(OpCase::new(Op::Softmax, vec![wide(&[r, k])]));
        c.push(OpCase::new(Op::LogSoftmax, vec![wide(&[r, k])]));
        // y a log-softmax output, as the gradient is only ever fed one.
        c.push(OpCase::new(
            Op::LogSoftmaxGrad,
            vec![(Shape::new(&[r, k]), InputKind::LogProbs), real(&[r, k])],
        ));
        c.push(OpCase::new(
            Op::SoftmaxGrad,
            vec![real(&[r, k]), real(&[r, k])],
        ));
        c.push(OpCase::new(Op::Argmax, vec![real(&[r, k])]));
        c.push(OpCase::new(Op::Correct, vec![real(&[r, k]), labels(r, k)]));
    }
    for smoothing in [0.0, 0.1] {
        for (r, k) in [(1, 2), (4, 10), (129, 37)] {
            c.push(OpCase::new(
                Op::SoftmaxCrossEntropy {
                    label_smoothing: smoothing,
                },
                vec![wide(&[r, k]), labels(r, k)],
            ));
            c.push(OpCase::new(
                Op::SoftmaxCrossEntropyGrad {
                    label_smoothing: smoothing,
                },
                vec![wide(&[r, k]), labels(r, k), real(&[1])],
            ));
        }
    }
    for n in [1, 2000] {
        c.push(OpCase::new(Op::Mse, vec![real(&[n]), real(&[n])]));
        c.push(OpCase::new(
            Op::MseGrad,
            vec![real(&[n]), real(&[n]), real(&[1])],
        ));
    }
    regression_loss_cases(&mut c);
    conv_cases(&mut c);
    pool_cases(&mut c);
    norm_cases(&mut c);
    // Plain dropout, and Dropout2d's runs of H·W elements per draw: 5 channels of 49 (the
    // runs straddle the shader's blocks of four) and 3 of 7·49 ending mid-block.
    for (p, d, per) in [
        (0.25, &[1][..], 1),
        (0.5, &[1001], 1),
        (0.1, &[3, 1029], 1),
        (0.5, &[2, 5, 7, 7], 49),
        (0.3, &[1, 3, 7, 49], 343),
    ] {
        let spec = DropoutSpec { p, layer: 3, per };
        c.push(OpCase::new(Op::Dropout(spec), vec![real(d)]));
        c.push(OpCase::new(Op::DropoutGrad(spec), vec![real(d)]));
    }
    // The fused bias epilogue: every transpose, sizes off the tiles (65 rows, 33 or 300
    // columns) and off the vec4 reads (odd K, M, N), and a K long enough to exercise the
    // pipelined K tiles. Last, so that the cases above keep their seeds (the tests seed
    // each case by its index).
    for (m, n, k) in [(1, 1, 1), (7, 13, 5), (65, 33, 130), (3, 300, 70)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = if ta { [k, m] } else { [m, k] };
            let b = if tb { [n, k] } else { [k, n] };
            c.push(OpCase::new(
                Op::MatMulBias {
                    trans_a: ta,
                    trans_b: tb,
                },
                vec![real(&a), real(&b), real(&[n])],
            ));
        }
    }
    // Gradients of relu, sigmoid and tanh from their outputs: y drawn from each output's
    // range (relu's includes negatives, which it never outputs, to test the mask).
    for (a, y) in [
        (Activation::Relu, wide as fn(&[usize]) -> (Shape, InputKind)),
        (Activation::Sigmoid, unit),
        (Activation::Tanh, real),
    ] {
        for d in [&[1][..], &[777], &[3, 1029]] {
            c.push(OpCase::new(
                Op::ActivationGradFromOutput(a),
                vec![y(d), real(d)],
            ));
        }
    }
    // The fused activation epilogue: each activation it fuses, every transpose, the same
    // shapes as the bias epilogue's, with operands wide enough (±2) that the sums reach
    // each activation's saturated and linear parts.
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        for (m, n, k) in [(1, 1, 1), (7, 13, 5), (65, 33, 130), (3, 300, 70)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let a = if ta { [k, m] } else { [m, k] };
                let b = if tb { [n, k] } else { [k, n] };
                let wide2 = |d: &[usize]| (Shape::new(d), InputKind::Real(2.0));
                c.push(OpCase::new(
                    Op::MatMulBiasAct {
                        trans_a: ta,
                        trans_b: tb,
                        act,
                    },
                    vec![wide2(&a), real(&b), wide2(&[n])],
                ));
            }
        }
    }
    // The fused products with vec4 reads of A as well (M, K or both multiples of 4, by
    // transpose), which the odd sizes above never take; with and without an activation.
    for (m, n, k) in [(8, 13, 12), (8, 12, 12)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = if ta { [k, m] } else { [m, k] };
            let b = if tb { [n, k] } else { [k, n] };
            for op in [
                Op::MatMulBias {
                    trans_a: ta,
                    trans_b: tb,
                },
                Op::MatMulBiasAct {
                    trans_a: ta,
                    trans_b: tb,
                    act: Activation::Tanh,
                },
            ] {
                c.push(OpCase::new(op, vec![real(&a), real(&b), real(&[n])]));
            }
        }
    }
    c
}

/// The losses of `(pred, target)` pairs other than MSE. Predictions and targets in (−1, 1)
/// give differences in (−2, 2), so at 7 and 2000 elements some fall on each side of every
/// threshold; β = 0 is smooth L1's L1 limit.
fn regression_loss_cases(c: &mut Vec<OpCase>) {
    for n in [1, 7, 2000] {
        let d = [n];
        // Logits in (−4, 4) reach both the linear tails and the curved middle of softplus.
        push_loss(
            c,
            Op::BceWithLogits,
            Op::BceWithLogitsGrad,
            wide(&d),
            unit(&d),
        );
        push_loss(c, Op::L1, Op::L1Grad, real(&d), real(&d));
        for beta in [1.0, 0.5, 0.0] {
            let (op, grad) = (Op::SmoothL1 { beta }, Op::SmoothL1Grad { beta });
            push_loss(c, op, grad, real(&d), real(&d));
        }
        for delta in [1.0, 0.3] {
            let (op, grad) = (Op::Huber { delta }, Op::HuberGrad { delta });
            push_loss(c, op, grad, real(&d), real(&d));
        }
    }
}

/// A loss on `(x, t)` and its gradient op on `(x, t, dloss [1])`.
fn push_loss(c: &mut Vec<OpCase>, op: Op, grad: Op, x: (Shape, InputKind), t: (Shape, InputKind)) {
    c.push(OpCase::new(op, vec![x.clone(), t.clone()]));
    c.push(OpCase::new(grad, vec![x, t, real(&[1])]));
}

/// A convolution geometry from `[n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw]`.
fn conv_geom([n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw]: [usize; 12]) -> ConvGeom {
    ConvGeom {
        n,
        c,
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        dh,
        dw,
    }
}

fn conv_cases(c: &mut Vec<OpCase>) {
    let geoms = [
        // n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw
        [1, 1, 5, 5, 3, 3, 1, 1, 0, 0, 1, 1],
        [2, 3, 7, 9, 3, 2, 2, 1, 1, 0, 1, 1],
        [3, 5, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1],
        [1, 2, 8, 5, 5, 3, 3, 2, 2, 1, 1, 1],
        // Several tiles of rows and of K, a patch of 36 (read as vec4 by the weight).
        [4, 4, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1],
        // Output images of 2x2, smaller than a K tile: the weight gradient's rows cross
        // several images per tile.
        [5, 2, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1],
        // Dilated: "same" padding for a 3x3 kernel of dilation 2, and uneven dilations
        // with strides sharing a factor with them (a pixel's taps skip output rows).
        [2, 3, 9, 9, 3, 3, 1, 1, 2, 2, 2, 2],
        [1, 2, 11, 10, 3, 2, 2, 3, 1, 2, 2, 3],
    ];
    let acts = [Activation::Relu, Activation::Sigmoid, Activation::Tanh];
    for (i, dims) in geoms.into_iter().enumerate() {
        let g = conv_geom(dims);
        let [n, ch, h, w, ..] = dims;
        c.push(OpCase::new(Op::Im2Col(g), vec![real(&[n, ch, h, w])]));
        c.push(OpCase::new(
            Op::Col2Im(g),
            vec![real(&[n * g.oh() * g.ow(), g.patch()])],
        ));
        // The implicit-GEMM products, with every epilogue.
        let oc = 3 + 9 * i;
        let (x, wt, bias) = (real(&[n, ch, h, w]), real(&[oc, g.patch()]), real(&[oc]));
        for (b, act) in [(false, None), (true, None), (true, Some(acts[i % 3]))] {
            let mut inputs = vec![x.clone(), wt.clone()];
            inputs.extend(b.then(|| bias.clone()));
            let op = Op::ConvMatMul {
                geom: g,
                bias: b,
                act,
            };
            c.push(OpCase::new(op, inputs));
        }
        let dy = real(&[n * g.oh() * g.ow(), oc]);
        c.push(OpCase::new(Op::ConvWeightGrad(g), vec![dy, x]));
    }
    grouped_conv_cases(c);
    for [n, ch, h, w] in [[1, 1, 1, 1], [2, 5, 3, 7]] {
        let d = Nchw { n, c: ch, h, w };
        c.push(OpCase::new(Op::RowsToNchw(d), vec![real(&[n * h * w, ch])]));
        c.push(OpCase::new(Op::NchwToRows(d), vec![real(&[n, ch, h, w])]));
    }
}

/// Grouped convolutions: depthwise (with a channel multiplier of 2), two and three groups,
/// strided, padded and dilated.
fn grouped_conv_cases(c: &mut Vec<OpCase>) {
    let geoms = [
        // n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oc
        [2, 4, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 4, 8],
        [1, 6, 8, 9, 3, 2, 2, 1, 1, 0, 1, 1, 2, 4],
        [3, 3, 7, 7, 2, 3, 1, 2, 2, 1, 2, 1, 3, 3],
        [1, 6, 9, 9, 3, 3, 2, 2, 2, 2, 2, 2, 3, 6],
        // Eight small images: over one 4 KiB binding in all (tests/limits.rs splits it by
        // images, the weight gradient summing piece after piece).
        [8, 4, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 4, 8],
    ];
    for [n, ch, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oc] in geoms {
        let conv = conv_geom([n, ch, h, w, kh, kw, sh, sw, ph, pw, dh, dw]);
        let g = GroupGeom { conv, groups };
        let (x, wt) = (real(&[n, ch, h, w]), real(&[oc, g.group_patch()]));
        let dy = real(&[n * conv.oh() * conv.ow(), oc]);
        c.push(OpCase::new(Op::GroupedConv(g), vec![x.clone(), wt.clone()]));
        c.push(OpCase::new(
            Op::GroupedConvInputGrad(g),
            vec![dy.clone(), wt],
        ));
        c.push(OpCase::new(Op::GroupedConvWeightGrad(g), vec![dy, x]));
    }
}

fn pool_cases(c: &mut Vec<OpCase>) {
    let geoms = [
        // n, c, h, w, kh, kw, sh, sw, ph, pw
        [1, 1, 4, 4, 2, 2, 2, 2, 0, 0],
        [2, 3, 7, 5, 3, 3, 2, 2, 0, 0],
        [1, 5, 6, 6, 2, 2, 3, 3, 0, 0],
        [1, 2, 5, 6, 3, 2, 1, 1, 0, 0],
        // Padded: ResNet's stem pool (3, stride 2, padding 1), and uneven padding.
        [2, 3, 7, 8, 3, 3, 2, 2, 1, 1],
        [1, 2, 5, 4, 5, 2, 1, 2, 2, 1],
        [1, 1, 1, 1, 3, 3, 1, 1, 1, 1],
    ];
    // Ceil mode (overhanging last windows; 2x2 over an odd size) and averages that leave
    // the padding out of the divisor: (geometry, ceil_mode, count_include_pad).
    let modes = [
        ([1, 2, 7, 5, 2, 2, 2, 2, 0, 0], true, true),
        ([1, 2, 6, 5, 3, 2, 2, 2, 1, 1], true, true),
        ([1, 2, 6, 5, 3, 2, 2, 2, 1, 1], true, false),
        ([2, 3, 7, 8, 3, 3, 2, 2, 1, 1], false, false),
    ];
    let plain = geoms.map(|g| (g, false, true));
    for ([n, ch, h, w, kh, kw, sh, sw, ph, pw], ceil_mode, count_include_pad) in
        plain.into_iter().chain(modes)
    {
        let g = PoolGeom {
            n,
            c: ch,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            ceil_mode,
            count_include_pad,
        };
        let x = real(&[n, ch, h, w]);
        let dy = real(&[n, ch, g.oh(), g.ow()]);
        c.push(OpCase::new(Op::MaxPool(g), vec![x.clone()]));
        c.push(OpCase::new(Op::MaxPoolGrad(g), vec![x.clone(), dy.clone()]));
        c.push(OpCase::new(Op::AvgPool(g), vec![x]));
        c.push(OpCase::new(Op::AvgPoolGrad(g), vec![dy]));
    }
    // Adaptive pooling with windows of two lengths (5 → 3, 7 → 4), more outputs than
    // inputs along an axis (3 → 5: windows repeat pixels), windows uniform along one axis
    // only (10 → 3 by 9 → 7; 6 → 4 by 8 → 4), the last over one 4 KiB binding with
    // samples of whole 256-byte lines (tests/limits.rs splits it by samples).
    for [n, ch, h, w, oh, ow] in [
        [2, 3, 5, 5, 3, 3],
        [1, 2, 7, 6, 4, 4],
        [1, 2, 3, 5, 5, 3],
        [2, 1, 10, 9, 3, 7],
        [8, 4, 6, 8, 4, 4],
    ] {
        let g = AdaptiveGeom {
            n,
            c: ch,
            h,
            w,
            oh,
            ow,
        };
        let x = real(&[n, ch, h, w]);
        let dy = real(&[n, ch, oh, ow]);
        c.push(OpCase::new(Op::AdaptiveAvgPool(g), vec![x.clone()]));
        c.push(OpCase::new(Op::AdaptiveAvgPoolGrad(g), vec![dy.clone()]));
        c.push(OpCase::new(Op::AdaptiveMaxPool(g), vec![x.clone()]));
        c.push(OpCase::new(Op::AdaptiveMaxPoolGrad(g), vec![x, dy]));
    }
}

fn norm_cases(c: &mut Vec<OpCase>) {
    for (x, ch) in [
        (&[1, 3, 5][..], 3),
        (&[4, 5, 7], 5),
        (&[16, 2], 2),
        (&[8, 32, 14, 14], 32),
        // Long channels the wgpu backend sums in parts (channel_parts.rs): 6 parts of
        // 1,067 values crossing image boundaries, and 4 parts of 1,250 rows.
        (&[4, 3, 40, 40], 3),
        (&[5000, 2], 2),
    ] {
        let n = x[0];
        let s: usize = x[2..].iter().product();
        let spec = Channels {
            c: ch,
            s,
            eps: 1e-5,
        };
        let stats = (Shape::new(&[2, ch]), InputKind::Stats);
        c.push(OpCase::new(Op::BatchNormStats(spec), vec![wide(x)]));
        c.push(OpCase::new(
            Op::BatchNormApply(spec),
            vec![wide(x), stats.clone(), real(&[ch]), real(&[ch])],
        ));
        c.push(OpCase::new(
            Op::BatchNormGradCoeffs(spec),
            vec![stats.clone(), real(&[ch]), real(&[ch]), real(&[ch])],
        ));
        c.push(OpCase::new(
            Op::BatchNormGrad(spec),
            vec![wide(x), real(&[5, ch]), real(x)],
        ));
        c.push(OpCase::new(
            Op::BatchNormGammaGrad(spec),
            vec![wide(x), stats.clone(), real(x)],
        ));
        c.push(OpCase::new(Op::ChannelSum(spec), vec![real(x)]));
        c.push(OpCase::new(
            Op::ChannelAffine(spec),
            vec![wide(x), real(&[ch]), real(&[ch])],
        ));
        c.push(OpCase::new(Op::PRelu(spec), vec![wide(x), real(&[ch])]));
        c.push(OpCase::new(
            Op::PReluGrad(spec),
            vec![wide(x), real(&[ch]), real(x)],
        ));
        c.push(OpCase::new(
            Op::PReluWeightTerms(spec),
            vec![wide(x), real(x)],
        ));
        c.push(OpCase::new(
            Op::BatchNormRunning {
                c: ch,
                momentum: 0.1,
                count: n * s,
            },
            vec![stats],
        ));
    }
    // A single PReLU slope: one channel of each sample's values.
    let one = Channels {
        c: 1,
        s: 30,
        eps: 0.0,
    };
    c.push(OpCase::new(
        Op::PRelu(one),
        vec![wide(&[4, 1, 30]), real(&[1])],
    ));
    c.push(OpCase::new(
        Op::PReluGrad(one),
        vec![wide(&[4, 1, 30]), real(&[1]), real(&[4, 1, 30])],
    ));
    for d in [&[1, 1][..], &[5, 7], &[33, 300], &[2, 3, 4, 5]] {
        let cols = d[d.len() - 1];
        let eps = 1e-5;
        c.push(OpCase::new(
            Op::LayerNorm { eps },
            vec![wide(d), real(&[cols]), real(&[cols])],
        ));
        c.push(OpCase::new(
            Op::LayerNormGrad { eps },
            vec![wide(d), real(&[cols]), real(d)],
        ));
        c.push(OpCase::new(
            Op::LayerNormGammaGrad { eps },
            vec![wide(d), real(d)],
        ));
    }
}
