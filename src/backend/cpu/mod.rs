//! The CPU reference backend: one kernel per op, written in plain loops that the WGSL
//! shaders mirror, generic over the float type so the same code is the f64 reference of
//! the parity and gradcheck tests.

/// Binds `$grad` to the gradient transform of an optimizer update (unscaled by the loss
/// scale for f16 models, clipped by value, times the norm-clipping coefficient) and
/// evaluates `$body` with it, one copy per kind of transform, so that the update loops
/// are monomorphised and vectorise instead of testing the settings per element.
macro_rules! with_grad_transform {
    ($s:expr, ($clip:expr, $inv:expr), |$grad:ident| $body:expr) => {{
        let (clip, cv) = ($clip, $s.clip_value);
        match ($inv, cv > 0.0) {
            (None, false) => {
                let $grad = |g: f32| g * clip;
                $body
            }
            (None, true) => {
                let $grad = |g: f32| crate::optim::clip_value(g, cv) * clip;
                $body
            }
            (Some(inv), false) => {
                let $grad = |g: f32| (g * inv) * clip;
                $body
            }
            (Some(inv), true) => {
                let $grad = |g: f32| crate::optim::clip_value(g * inv, cv) * clip;
                $body
            }
        }
    }};
}

mod activation;
mod cols_cache;
mod conv;
mod conv_product;
mod dropout;
mod elementwise;
mod executor;
mod loss;
mod matmul;
mod norm;
mod optim;
mod optim_adam;
mod optim_adam_variants;
mod optim_sgd;
mod pool;
mod reduce;
mod softmax;

pub use executor::CpuBackend;
pub use optim::{grad_norm_sq, grad_norm_sq_unscaled, optimizer_step, optimizer_step_unscaled};

use num_traits::{Float, FromPrimitive, ToPrimitive};

use crate::error::{Error, Result};
use crate::op::Op;
use crate::rng::StepRng;
use crate::shape::Shape;

/// The float types the reference kernels run in (f32 for training, f64 for references).
pub trait Real:
    Float + FromPrimitive + ToPrimitive + Send + Sync + std::fmt::Debug + Default + 'static
{
    /// Converts from f64 (rounding to nearest).
    fn of(v: f64) -> Self {
        Self::from_f64(v).unwrap_or_else(Self::nan)
    }
    /// Converts to f64 (exact).
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}
impl Real for f32 {}
impl Real for f64 {}

/// Runs `f(sample index, sample's slice of out)` for each `per_sample`-long chunk of `out`,
/// on all cores when the work is large enough to pay for it. Samples write disjoint
/// chunks and each is computed in the same order either way, so results do not depend on
/// the thread count.
pub(crate) fn for_each_sample<T: Real>(
    out: &mut [T],
    per_sample: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_each_sample_with(out, per_sample, || (), |(), i, c| f(i, c));
}

/// [`for_each_sample`] with a scratch value made by `init` once per thread's run of
/// samples (not once per sample) and handed to each of them in turn.
pub(crate) fn for_each_sample_with<T: Real, S: Send>(
    out: &mut [T],
    per_sample: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, &mut [T]) + Sync + Send,
) {
    use rayon::prelude::*;
    if per_sample == 0 {
        return;
    }
    if out.len() >= 1 << 15 {
        out.par_chunks_mut(per_sample)
            .enumerate()
            .for_each_init(&init, |s, (i, c)| f(s, i, c));
    } else {
        let mut scratch = init();
        out.chunks_mut(per_sample)
            .enumerate()
            .for_each(|(i, c)| f(&mut scratch, i, c));
    }
}

/// Elements per piece of an element-wise pass run by [`for_each_piece`]: 64 KiB of f32,
/// large enough that a piece costs far more than handing it to a thread.
pub(crate) const PIECE: usize = 1 << 14;

/// Runs `f(offset, piece of out)` over `out` in [`PIECE`]-long pieces (the last may be
/// shorter), on all cores from 4·PIECE elements on (below that, waking threads cost more
/// than it saved: a relu gradient over 32K values took 25 µs in two parallel pieces
/// against 5 µs on one core): the element-wise form of [`for_each_sample`]. Each element
/// is computed by one call whatever the split, so results do not depend on the thread
/// count.
pub(crate) fn for_each_piece<T: Real>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let parallel = out.len() >= 4 * PIECE;
    for_each_chunk(out, PIECE, parallel, f);
}

/// Runs `f(offset, chunk)` over `out` in `len`-long chunks (`len` > 0; the last may be
/// shorter), on all cores when `parallel`.
pub(crate) fn for_each_chunk<T: Send>(
    out: &mut [T],
    len: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    use rayon::prelude::*;
    if parallel {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i * len, c));
    } else {
        out.chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i * len, c));
    }
}

/// Runs one op's reference kernel: `inputs` in the op's order with their shapes, the output
/// written in full to `out` (of `out_shape`); `rng` is the step's randomness (dropout).
/// Lengths are checked against the shapes first, so the kernels below can index freely.
/// [`Op::BatchNormRunning`] updates `out` in place: it must hold the running statistics.
pub fn run_op<T: Real>(
    op: &Op,
    inputs: &[&[T]],
    shapes: &[Shape],
    out: &mut [T],
    out_shape: &Shape,
    rng: &StepRng,
) -> Result<()> {
    check_lengths(op, inputs, shapes, out, out_shape)?;
    run_checked(op, inputs, shapes, out, out_shape, rng)
}

/// Whether the buffers match the shapes and the shapes the op (what [`run_op`] checks
/// before running a kernel).
pub(crate) fn check_lengths<T: Real>(
    op: &Op,
    inputs: &[&[T]],
    shapes: &[Shape],
    out: &[T],
    out_shape: &Shape,
) -> Result<()> {
    let lengths_ok = inputs.len() == op.arity()
        && shapes.len() == op.arity()
        && inputs.iter().zip(shapes).all(|(x, s)| x.len() == s.numel())
        && out.len() == out_shape.numel()
        && op
            .output_shape(&shapes.iter().collect::<Vec<_>>(), Some(out_shape))
            .is_ok_and(|s| s == *out_shape);
    if !lengths_ok {
        return Err(Error::shape(
            op.name(),
            format!(
                "buffers do not match shapes: inputs {:?} for {shapes:?}, output {} for {out_shape}",
                inputs.iter().map(|x| x.len()).collect::<Vec<_>>(),
                out.len()
            ),
        ));
    }
    Ok(())
}

/// [`run_op`] after [`check_lengths`].
fn run_checked<T: Real>(
    op: &Op,
    inputs: &[&[T]],
    shapes: &[Shape],
    out: &mut [T],
    out_shape: &Shape,
    rng: &StepRng,
) -> Result<()> {
    match *op {
        Op::MatMul { trans_a, trans_b }
        | Op::MatMulBias { trans_a, trans_b }
        | Op::MatMulBiasAct {
            trans_a, trans_b, ..
        } => {
            let a = &shapes[0];
            let (m, k) = if trans_a {
                (a.0[1], a.0[0])
            } else {
                (a.0[0], a.0[1])
            };
            let n = out_shape.0[1];
            let act = match *op {
                Op::MatMulBiasAct { act, .. } => Some(act),
                _ => None,
            };
            match inputs.get(2) {
                Some(bias) => matmul::matmul_bias(
                    inputs[0], inputs[1], bias, out, m, n, k, trans_a, trans_b, act,
                ),
                None => matmul::matmul(inputs[0], inputs[1], out, m, n, k, trans_a, trans_b),
            }
        }
        // The executor keeps the im2col matrix per plan (`cols_cache.rs`); single ops
        // (the f64 reference) build it per call.
        Op::ConvMatMul { geom, act, .. } => {
            let mut cols = Vec::new();
            conv_product::build_cols(inputs[0], &mut cols, &geom);
            let (bias, oc) = (inputs.get(2).copied(), shapes[1].0[0]);
            conv_product::conv_matmul(&cols, inputs[1], bias, out, &geom, oc, act)
        }
        Op::ConvWeightGrad(g) => {
            let mut cols = Vec::new();
            conv_product::build_cols(inputs[1], &mut cols, &g);
            conv_product::conv_weight_grad(inputs[0], &cols, out, &g, out_shape.0[0])
        }
        Op::GroupedConv(g) => conv::grouped_conv(inputs[0], inputs[1], out, &g, shapes[1].0[0]),
        Op::GroupedConvInputGrad(g) => {
            conv::grouped_conv_input_grad(inputs[0], inputs[1], out, &g, shapes[1].0[0])
        }
        Op::GroupedConvWeightGrad(g) => {
            conv::grouped_conv_weight_grad(inputs[0], inputs[1], out, &g, out_shape.0[0])
        }
        Op::BiasAdd => elementwise::bias_add(inputs[0], inputs[1], out),
        Op::BiasGrad => elementwise::bias_grad(inputs[0], out, shapes[0].rows()),
        Op::Add => elementwise::add(inputs[0], inputs[1], out),
        Op::Scale(f) => elementwise::scale(inputs[0], out, T::of(f64::from(f))),
        Op::Activation(a) => activation::forward(a, inputs[0], out),
        Op::ActivationGrad(a) => activation::backward(a, inputs[0], inputs[1], out),
        Op::ActivationGradFromOutput(a) => {
            if !activation::backward_from_output(a, inputs[0], inputs[1], out) {
                return Err(Error::Unsupported(format!(
                    "{}: the gradient of {} needs its input",
                    op.name(),
                    a.name()
                )));
            }
        }
        Op::Softmax => softmax::softmax(inputs[0], out, shapes[0].last()),
        Op::SoftmaxGrad => softmax::softmax_grad(inputs[0], inputs[1], out, shapes[0].last()),
        Op::LogSoftmax => softmax::log_softmax(inputs[0], out, shapes[0].last()),
        Op::LogSoftmaxGrad => {
            softmax::log_softmax_grad(inputs[0], inputs[1], out, shapes[0].last())
        }
        Op::SoftmaxCrossEntropy { label_smoothing } => {
            out[0] = loss::cross_entropy(inputs[0], inputs[1], shapes[0].last(), label_smoothing)
        }
        Op::SoftmaxCrossEntropyGrad { label_smoothing } => loss::cross_entropy_grad(
            inputs[0],
            inputs[1],
            inputs[2][0],
            out,
            shapes[0].last(),
            label_smoothing,
        ),
        Op::Mse => out[0] = loss::mse(inputs[0], inputs[1]),
        Op::MseGrad => loss::mse_grad(inputs[0], inputs[1], inputs[2][0], out),
        Op::BceWithLogits => out[0] = loss::bce_with_logits(inputs[0], inputs[1]),
        Op::BceWithLogitsGrad => {
            loss::bce_with_logits_grad(inputs[0], inputs[1], inputs[2][0], out)
        }
        Op::L1 => out[0] = loss::l1(inputs[0], inputs[1]),
        Op::L1Grad => loss::l1_grad(inputs[0], inputs[1], inputs[2][0], out),
        Op::SmoothL1 { beta } => out[0] = loss::smooth_l1(inputs[0], inputs[1], beta),
        Op::SmoothL1Grad { beta } => {
            loss::smooth_l1_grad(inputs[0], inputs[1], inputs[2][0], out, beta)
        }
        Op::Huber { delta } => out[0] = loss::huber(inputs[0], inputs[1], delta),
        Op::HuberGrad { delta } => loss::huber_grad(inputs[0], inputs[1], inputs[2][0], out, delta),
        Op::Sum => out[0] = reduce::sum(inputs[0]),
        Op::SumSquares => out[0] = reduce::sum_squares(inputs[0]),
        Op::SumAbs => out[0] = reduce::sum_abs(inputs[0]),
        Op::SumSquaresGrad => reduce::sum_squares_grad(inputs[0], inputs[1][0], out),
        Op::SumAbsGrad => reduce::sum_abs_grad(inputs[0], inputs[1][0], out),
        Op::Mean => out[0] = reduce::sum(inputs[0]) / T::of(inputs[0].len() as f64),
        Op::Broadcast(f) => elementwise::fill(out, inputs[0][0] * T::of(f64::from(f))),
        Op::Argmax => reduce::argmax_rows(inputs[0], out, shapes[0].last()),
        Op::Correct => out[0] = reduce::correct(inputs[0], inputs[1], shapes[0].last()),
        Op::Reshape => out.copy_from_slice(inputs[0]),
        Op::Im2Col(g) => conv::im2col(inputs[0], out, &g),
        Op::Col2Im(g) => conv::col2im(inputs[0], out, &g),
        Op::RowsToNchw(d) => conv::rows_to_nchw(inputs[0], out, d.n, d.c, d.h * d.w),
        Op::NchwToRows(d) => conv::nchw_to_rows(inputs[0], out, d.n, d.c, d.h * d.w),
        Op::MaxPool(g) => pool::max_pool(inputs[0], out, &g),
        Op::MaxPoolGrad(g) => pool::max_pool_grad(inputs[0], inputs[1], out, &g),
        Op::AvgPool(g) => pool::avg_pool(inputs[0], out, &g),
        Op::AvgPoolGrad(g) => pool::avg_pool_grad(inputs[0], out, &g),
        Op::AdaptiveAvgPool(g) => pool::adaptive_avg_pool(inputs[0], out, &g),
        Op::AdaptiveAvgPoolGrad(g) => pool::adaptive_avg_pool_grad(inputs[0], out, &g),
        Op::AdaptiveMaxPool(g) => pool::adaptive_max_pool(inputs[0], out, &g),
        Op::AdaptiveMaxPoolGrad(g) => pool::adaptive_max_pool_grad(inputs[0], inputs[1], out, &g),
        Op::BatchNormStats(ch) => {
            let n = shapes[0].numel() / (ch.c * ch.s);
            norm::batch_norm_stats(inputs[0], out, n, ch.c, ch.s)
        }
        Op::BatchNormApply(ch) => {
            let n = shapes[0].numel() / (ch.c * ch.s);
            norm::batch_norm_apply(
                inputs[0], inputs[1], inputs[2], inputs[3], out, n, ch.c, ch.s, ch.eps,
            )
        }
        Op::BatchNormGradCoeffs(ch) => {
            let sums = (inputs[2], inputs[3]);
            norm::batch_norm_grad_coeffs(inputs[0], inputs[1], sums, out, ch.c, ch.eps)
        }
        Op::BatchNormGrad(ch) => {
            norm::batch_norm_grad_apply(inputs[0], inputs[1], inputs[2], out, ch.c, ch.s)
        }
        Op::BatchNormGammaGrad(ch) => {
            let n = shapes[0].numel() / (ch.c * ch.s);
            norm::batch_norm_gamma_grad(inputs[0], inputs[1], inputs[2], out, n, ch.c, ch.s, ch.eps)
        }
        Op::ChannelSum(ch) => {
            let n = shapes[0].numel() / (ch.c * ch.s);
            norm::channel_sum(inputs[0], out, n, ch.c, ch.s)
        }
        Op::PRelu(ch) => norm::prelu(inputs[0], inputs[1], out, ch.c, ch.s),
        Op::PReluGrad(ch) => norm::prelu_grad(inputs[0], inputs[1], inputs[2], out, ch.c, ch.s),
        Op::PReluWeightTerms(_) => norm::prelu_weight_terms(inputs[0], inputs[1], out),
        Op::ChannelAffine(ch) => {
            norm::channel_affine(inputs[0], inputs[1], inputs[2], out, ch.c, ch.s)
        }
        Op::BatchNormRunning { c, momentum, count } => {
            norm::batch_norm_running(inputs[0], out, c, momentum, count)
        }
        Op::LayerNorm { eps } => {
            let (rows, cols) = (shapes[0].rows(), shapes[0].last());
            norm::layer_norm(inputs[0], inputs[1], inputs[2], out, rows, cols, eps)
        }
        Op::LayerNormGrad { eps } => {
            let (rows, cols) = (shapes[0].rows(), shapes[0].last());
            norm::layer_norm_grad(inputs[0], inputs[1], inputs[2], out, rows, cols, eps)
        }
        Op::LayerNormGammaGrad { eps } => {
            let (rows, cols) = (shapes[0].rows(), shapes[0].last());
            norm::layer_norm_gamma_grad(inputs[0], inputs[1], out, rows, cols, eps)
        }
        Op::Dropout(spec) | Op::DropoutGrad(spec) => dropout::dropout(inputs[0], out, &spec, rng),
    }
    Ok(())
}
