//! Running one case on a backend and judging it against the f64 reference.

use super::cases::OpCase;
use crate::backend::cpu::run_op;
use crate::backend::{step_rng, Backend, Tail};
use crate::error::{Error, Result};
use crate::graph::{Graph, ParamLayout, Plan};
use crate::nn::Init;
use crate::op::{Op, Tolerance};
use crate::optim::StepScalars;
use crate::precision::Precision;

/// The step scalars of parity runs: a seed with both words set and a step past 1, so
/// dropout masks exercise the whole counter and key.
const PARITY_SCALARS: StepScalars = StepScalars {
    lr: 0.0,
    weight_decay: 0.0,
    momentum: 0.0,
    dampening: 0.0,
    beta1: 0.0,
    beta2: 0.0,
    eps: 0.0,
    bias_correction1: 1.0,
    bias_correction2_sqrt: 1.0,
    max_norm: 0.0,
    nesterov: 0,
    step: 3,
    len: 0,
    seed_lo: 0x89ab_cdef,
    seed_hi: 0x0123_4567,
    one_minus_dampening: 1.0,
    alpha: 0.0,
    one_minus_alpha: 1.0,
    clip_value: 0.0,
    decoupled: 0,
    amsgrad: 0,
    centered: 0,
    one_minus_beta1: 1.0,
    one_minus_beta2: 1.0,
    tail_start: 0,
    tail_lr_scale: 1.0,
    tail_weight_decay: 0.0,
    skip_nonfinite: 0,
    bias_correction2: 1.0,
    rect: 0.0,
    nadam_grad_coef: 0.0,
    nadam_avg_coef: 0.0,
};

/// The starting value of the buffer an in-place op updates.
const RUNNING_INIT: Init = Init::RunningStats;

fn is_in_place(op: &Op) -> bool {
    matches!(op, Op::BatchNormRunning { .. })
}

/// One element that broke its bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Flat index.
    pub index: usize,
    /// What the backend produced.
    pub got: f32,
    /// The f64 reference.
    pub expected: f64,
    /// The allowed absolute error there.
    pub bound: f64,
}

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    /// Op name.
    pub op: String,
    /// Input shapes.
    pub shapes: String,
    /// Largest |got − ref|.
    pub max_abs: f64,
    /// Largest |got − ref| / |ref| over elements with |ref| > 0.
    pub max_rel: f64,
    /// Largest error as a fraction of its bound (≤ 1 passes).
    pub worst_ratio: f64,
    /// The first few mismatches (empty when it passed).
    pub mismatches: Vec<Mismatch>,
}

impl CaseResult {
    /// Whether every element is within its bound.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Number of terms a reduction op sums per output (the K of the error bound).
fn terms(case: &OpCase) -> usize {
    let s = &case.inputs[0].0;
    match case.op {
        Op::MatMul { trans_a, .. }
        | Op::MatMulBias { trans_a, .. }
        | Op::MatMulBiasAct { trans_a, .. } => {
            if trans_a {
                s.0[0]
            } else {
                s.0[1]
            }
        }
        Op::ConvMatMul { geom, .. } => geom.patch(),
        Op::ConvWeightGrad(geom) => geom.n * geom.oh() * geom.ow(),
        Op::GroupedConv(g) => g.group_patch(),
        // Its group's output channels times the taps.
        Op::GroupedConvInputGrad(g) => s.last() / g.groups.max(1) * g.conv.kh * g.conv.kw,
        Op::GroupedConvWeightGrad(g) => g.conv.n * g.conv.oh() * g.conv.ow(),
        Op::BiasGrad => s.rows(),
        Op::SoftmaxGrad | Op::LogSoftmaxGrad => s.last(),
        Op::SoftmaxCrossEntropy { .. } => s.numel() + s.rows(),
        Op::Col2Im(g) => g.kh * g.kw,
        Op::MaxPoolGrad(g) | Op::AvgPool(g) | Op::AvgPoolGrad(g) => g.kh * g.kw,
        // The largest window, or the most windows over one pixel.
        Op::AdaptiveAvgPool(g) => (g.h.div_ceil(g.oh) + 1) * (g.w.div_ceil(g.ow) + 1),
        Op::AdaptiveAvgPoolGrad(g) | Op::AdaptiveMaxPoolGrad(g) => {
            (g.oh.div_ceil(g.h) + 1) * (g.ow.div_ceil(g.w) + 1)
        }
        Op::BatchNormStats(ch) | Op::BatchNormGammaGrad(ch) | Op::ChannelSum(ch) => {
            2 * s.numel() / ch.c.max(1)
        }
        // Each x̂ carries the rounding of its row's mean and variance (cols terms).
        Op::LayerNormGammaGrad { .. } => 2 * s.rows() + s.last(),
        _ => s.numel(),
    }
}

/// The magnitude of each output's terms for the reductions the op on absolute inputs (the
/// other reductions' magnitude) misjudges (`None` for other ops): for the normalisations'
/// gamma gradients Σ |dy|·(|x| + |mean|)·invstd, the size of each term dy·x̂ and of the
/// rounding of x − mean in it (x̂ of |x| is still centred, so Σ |dy|·x̂(|x|) cancels where
/// Σ |dy·x̂| does not); for the log-softmax gradient, see its arm.
fn reduction_magnitudes(case: &OpCase, inputs: &[Vec<f64>]) -> Option<Vec<f64>> {
    let x = inputs.first()?;
    match case.op {
        Op::LayerNormGammaGrad { eps } => {
            let dy = inputs.get(1)?;
            let cols = case.inputs[0].0.last();
            let mut out = vec![0.0; cols];
            for (row, dyr) in x.chunks(cols.max(1)).zip(dy.chunks(cols.max(1))) {
                let mean = row.iter().sum::<f64>() / cols as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
                let istd = 1.0 / (var + f64::from(eps)).sqrt();
                for ((o, v), d) in out.iter_mut().zip(row).zip(dyr) {
                    *o += d.abs() * (v.abs() + mean.abs()) * istd;
                }
            }
            Some(out)
        }
        Op::BatchNormGammaGrad(ch) => {
            let (stats, dy) = (inputs.get(1)?, inputs.get(2)?);
            let mut out = vec![0.0; ch.c];
            for (i, (v, d)) in x.iter().zip(dy).enumerate() {
                let k = (i / ch.s.max(1)) % ch.c.max(1);
                let istd = 1.0 / (stats[ch.c + k] + f64::from(ch.eps)).sqrt();
                out[k] += d.abs() * (v.abs() + stats[k].abs()) * istd;
            }
            Some(out)
        }
        // dy − exp(y)·Σdy: each output's terms are dy and exp(y)·dy' for every dy' of its
        // row. The op on |inputs| would take exp(|y|), the probabilities' reciprocals.
        Op::LogSoftmaxGrad => {
            let dy = inputs.get(1)?;
            let cols = case.inputs[0].0.last().max(1);
            let mut out = Vec::with_capacity(x.len());
            for (yr, gr) in x.chunks(cols).zip(dy.chunks(cols)) {
                let total: f64 = gr.iter().map(|g| g.abs()).sum();
                out.extend(yr.iter().zip(gr).map(|(y, g)| g.abs() + y.exp() * total));
            }
            Some(out)
        }
        _ => None,
    }
}

/// The element-wise bound of an activation fused into a product's epilogue.
fn act_rtol_of(act: crate::op::Activation) -> f64 {
    match Op::Activation(act).tolerance() {
        Tolerance::Relative(r) => r,
        _ => 0.0,
    }
}

/// Compares `got` with the f64 reference of `case` on `inputs`; keeps the first 5 mismatches.
pub fn check(case: &OpCase, inputs: &[Vec<f32>], got: &[f32]) -> Result<CaseResult> {
    let in64: Vec<Vec<f64>> = inputs
        .iter()
        .map(|v| v.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let abs64: Vec<Vec<f64>> = in64
        .iter()
        .map(|v| v.iter().map(|x| x.abs()).collect())
        .collect();
    let shapes: Vec<_> = case.inputs.iter().map(|(s, _)| s.clone()).collect();
    let out_shape = case
        .op
        .output_shape(&shapes.iter().collect::<Vec<_>>(), case.target.as_ref())?;
    let reference = eval64(case.op, &in64, &shapes, &out_shape)?;
    // In-place ops start from the buffer's initial value (see `run_case`).
    if got.len() != reference.len() {
        return Err(Error::shape(
            case.op.name(),
            format!("got {} values, expected {}", got.len(), reference.len()),
        ));
    }
    let tolerance = case.op.tolerance();
    // A fused activation after a product: the product's bound judged at the activation's
    // input magnitude (relu, sigmoid and tanh have slopes of at most 1, so the input's
    // error bounds the output's), plus the activation's own element-wise bound.
    let (magnitude_op, act_rtol) = match case.op {
        Op::MatMulBiasAct {
            trans_a,
            trans_b,
            act,
        } => (Op::MatMulBias { trans_a, trans_b }, act_rtol_of(act)),
        Op::ConvMatMul {
            geom,
            bias,
            act: Some(act),
        } => (
            Op::ConvMatMul {
                geom,
                bias,
                act: None,
            },
            act_rtol_of(act),
        ),
        op => (op, 0.0),
    };
    let magnitude = match (tolerance, reduction_magnitudes(case, &in64)) {
        (Tolerance::Reduction, Some(m)) => m,
        (Tolerance::Reduction, None) => eval64(magnitude_op, &abs64, &shapes, &out_shape)?,
        _ => Vec::new(),
    };
    let k = terms(case) as f64;
    let eps32 = f64::from(f32::EPSILON);
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut r = CaseResult {
        op: case.op.name(),
        shapes: case.shapes(),
        max_abs: 0.0,
        max_rel: 0.0,
        worst_ratio: 0.0,
        mismatches: Vec::new(),
    };
    for (i, (&g, &e)) in got.iter().zip(&reference).enumerate() {
        let err = (f64::from(g) - e).abs();
        let bound = match tolerance {
            Tolerance::Exact => 0.0,
            Tolerance::Relative(rtol) => rtol * e.abs().max(0.01 * max_ref),
            // Plus the rounding of the f32 result itself.
            Tolerance::Reduction => {
                2.0 * k * eps32 * magnitude[i].abs()
                    + eps32 * e.abs()
                    + act_rtol * e.abs().max(0.01 * max_ref)
            }
        };
        // NaN errors compare false, so they count as out of bounds.
        let within = err <= bound;
        let bad = !within || g.is_finite() != e.is_finite();
        r.max_abs = r.max_abs.max(err);
        if e != 0.0 {
            r.max_rel = r.max_rel.max(err / e.abs());
        }
        if bound > 0.0 {
            r.worst_ratio = r.worst_ratio.max(err / bound);
        } else if err > 0.0 {
            r.worst_ratio = f64::INFINITY;
        }
        if bad && r.mismatches.len() < 5 {
            r.mismatches.push(Mismatch {
                index: i,
                got: g,
                expected: e,
                bound,
            });
        }
    }
    Ok(r)
}

fn eval64(
    op: Op,
    inputs: &[Vec<f64>],
    shapes: &[crate::shape::Shape],
    out_shape: &crate::shape::Shape,
) -> Result<Vec<f64>> {
    let ins: Vec<&[f64]> = inputs.iter().map(|v| v.as_slice()).collect();
    let mut out = vec![0.0f64; out_shape.numel()];
    if is_in_place(&op) {
        let mut init = vec![0.0f32; out.len()];
        RUNNING_INIT.fill(&mut init, 0, 0);
        out = init.iter().map(|&v| f64::from(v)).collect();
    }
    run_op(
        &op,
        &ins,
        shapes,
        &mut out,
        out_shape,
        &step_rng(&PARITY_SCALARS),
    )?;
    Ok(out)
}

/// Runs one case on `backend` through the planner and executor (one-op plan) and judges it.
pub fn run_case(backend: &mut dyn Backend, case: &OpCase, seed: u64) -> Result<CaseResult> {
    let inputs = case.make_inputs(seed);
    let got = case_output(backend, case, &inputs, Precision::F32)?;
    check(case, &inputs, &got)
}

/// The output of one case's one-op plan on `backend`. With [`Precision::F16`] every input
/// first passes through an f16 copy (`Scale(1)`, which autocast stores in f16), so the op
/// reads f16 bindings, and its output is f16 where autocast says so: the same plan on the
/// CPU backend is the emulated reference for the GPU's f16 kernels.
pub fn case_output(
    backend: &mut dyn Backend,
    case: &OpCase,
    inputs: &[Vec<f32>],
    precision: Precision,
) -> Result<Vec<f32>> {
    let mut g = Graph::new();
    let mut ids = Vec::new();
    for (i, (s, _)) in case.inputs.iter().enumerate() {
        let id = g.input(&format!("in{i}"), s.clone());
        ids.push(if precision.is_half() {
            g.op(Op::Scale(1.0), &[id])?
        } else {
            id
        });
    }
    let out = if is_in_place(&case.op) {
        let shape = case.op.output_shape(&[&case.inputs[0].0], None)?;
        let target = g.buffer("running", shape, RUNNING_INIT);
        g.op_in_place(case.op, &ids, target)?
    } else {
        g.op_with_shape(case.op, &ids, case.target.as_ref())?
    };
    let layout = ParamLayout::grouped_in(&g, &|_| false, precision);
    let plan = Plan::build(&g, &layout, &[out], &[])?;
    let mut buffers = vec![0.0; layout.buffers_size];
    if let Some(e) = layout.buffers.first() {
        RUNNING_INIT.fill(&mut buffers[e.offset..e.offset + e.shape.numel()], 0, 0);
    }
    backend.init_model(&layout, &vec![0.0; layout.size], &buffers, None)?;
    let id = backend.compile(&plan, Tail::default())?;
    // The plan lists inputs in node order, which is the order they were created in.
    let feeds: Vec<&[f32]> = inputs.iter().map(|v| v.as_slice()).collect();
    backend.run(id, &feeds, &PARITY_SCALARS)?;
    let slot = plan
        .output_slot(out)
        .ok_or_else(|| Error::Graph("planned output missing".into()))?;
    backend.read_slot(id, slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Channels;
    use crate::parity::InputKind;
    use crate::shape::Shape;

    fn layer_norm_gamma(rows: usize, cols: usize) -> OpCase {
        let x = (Shape::new(&[rows, cols]), InputKind::Real(4.0));
        OpCase {
            op: Op::LayerNormGammaGrad { eps: 0.0 },
            inputs: vec![x.clone(), x],
            target: None,
        }
    }

    #[test]
    fn gamma_gradient_magnitudes_are_the_terms_sizes() {
        // One row [1, 3]: mean 2, variance 1, so invstd 1; dy = [1, −1]: the terms'
        // sizes are |1|·(1 + 2) and |−1|·(3 + 2).
        let inputs = vec![vec![1.0, 3.0], vec![1.0, -1.0]];
        let m = reduction_magnitudes(&layer_norm_gamma(1, 2), &inputs).unwrap();
        assert_eq!(m, vec![3.0, 5.0]);
        // Batch norm with stats (mean 2, variance 3) of one channel: invstd 1/2.
        let case = OpCase {
            op: Op::BatchNormGammaGrad(Channels {
                c: 1,
                s: 2,
                eps: 1.0,
            }),
            inputs: vec![],
            target: None,
        };
        let inputs = vec![vec![1.0, -3.0], vec![2.0, 3.0], vec![2.0, -1.0]];
        let m = reduction_magnitudes(&case, &inputs).unwrap();
        assert_eq!(m, vec![(2.0 * 3.0 + 5.0) / 2.0]);
        assert!(reduction_magnitudes(
            &OpCase {
                op: Op::Add,
                ..case
            },
            &inputs
        )
        .is_none());
    }

    #[test]
    fn a_gamma_gradient_missing_one_row_fails_and_the_rounded_one_passes() {
        let case = layer_norm_gamma(33, 300);
        let inputs = case.make_inputs(5);
        let exact: Vec<f64> = {
            let in64: Vec<Vec<f64>> = inputs
                .iter()
                .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                .collect();
            let shapes: Vec<Shape> = case.inputs.iter().map(|(s, _)| s.clone()).collect();
            eval64(case.op, &in64, &shapes, &Shape::new(&[300])).unwrap()
        };
        let rounded: Vec<f32> = exact.iter().map(|&v| v as f32).collect();
        assert!(check(&case, &inputs, &rounded).unwrap().passed());
        // The last row's terms left out of column 0 only.
        let mut short = case.clone();
        short.inputs[0].0 = Shape::new(&[32, 300]);
        short.inputs[1].0 = Shape::new(&[32, 300]);
        let head: Vec<Vec<f32>> = inputs.iter().map(|v| v[..32 * 300].to_vec()).collect();
        let partial = {
            let in64: Vec<Vec<f64>> = head
                .iter()
                .map(|v| v.iter().map(|&x| f64::from(x)).collect())
                .collect();
            let shapes: Vec<Shape> = short.inputs.iter().map(|(s, _)| s.clone()).collect();
            eval64(short.op, &in64, &shapes, &Shape::new(&[300])).unwrap()
        };
        let mut wrong = rounded.clone();
        wrong[0] = partial[0] as f32;
        let verdict = check(&case, &inputs, &wrong).unwrap();
        assert_eq!(verdict.mismatches.len(), 1, "{verdict:?}");
        assert_eq!(verdict.mismatches[0].index, 0);
    }
}
