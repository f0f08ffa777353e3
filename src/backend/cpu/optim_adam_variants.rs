//! Adamax, NAdam and RAdam, in PyTorch's order of operations and operation for operation
//! as `shaders/optim.wgsl`'s `*_update` functions (the parity tests compare the two). The
//! schedules' scalars (bias corrections, NAdam's momentum coefficients, RAdam's
//! rectification) come from the host in `StepScalars`.

use super::optim::flush_subnormal;
use super::optim_adam::{adam_decay, first_moment, second_moment};
use crate::optim::StepScalars;

/// One of the three optimizers of this file.
#[derive(Clone, Copy, Debug)]
pub(super) enum AdamVariant {
    /// torch.optim.Adamax.
    Adamax,
    /// torch.optim.NAdam.
    NAdam,
    /// torch.optim.RAdam.
    RAdam,
}

/// `variant` over a run of the arena with gradients `grads` (unscaled by `inv_scale` for
/// f16 models, clipped by value, times the norm-clipping coefficient `clip`) and states
/// `m`, `v` (Adamax: the infinity norm). `(lr, wd)` are the run's group's.
///
/// The gradient's transform is chosen once by monomorphised loops over zipped slices, as
/// in `optim_adam.rs`, so the loops vectorise; the per-element code below is unchanged by
/// that, so the bits are the same.
pub(super) fn adam_variant_run(
    variant: AdamVariant,
    params: &mut [f32],
    grads: &[f32],
    [m, v]: [&mut [f32]; 2],
    s: &StepScalars,
    (clip, inv_scale): (f32, Option<f32>),
    hyper: (f32, f32),
) {
    with_grad_transform!(s, (clip, inv_scale), |grad| match variant {
        AdamVariant::Adamax => run(params, grads, m, v, |p, g, m, v| {
            adamax(p, grad(g), m, v, s, hyper)
        }),
        AdamVariant::NAdam => run(params, grads, m, v, |p, g, m, v| {
            nadam(p, grad(g), m, v, s, hyper)
        }),
        AdamVariant::RAdam => run(params, grads, m, v, |p, g, m, v| {
            radam(p, grad(g), m, v, s, hyper)
        }),
    })
}

#[inline(always)]
fn run(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    update: impl Fn(f32, f32, &mut f32, &mut f32) -> f32,
) {
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        *p = update(*p, g, m, v);
    }
}

/// Decay and both moments as `optim_adam.rs` computes them: (parameter, gradient, m, v).
#[inline(always)]
fn decay_and_moments(
    p: f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    s: &StepScalars,
    hyper: (f32, f32),
) -> (f32, f32, f32, f32) {
    let (p, g) = adam_decay(s.decoupled != 0, p, g, hyper);
    let m = first_moment(m, g, s.one_minus_beta1);
    let v = second_moment(v, g, s.beta2, s.one_minus_beta2);
    (p, g, m, v)
}

/// torch.optim.Adamax (coupled L2 decay): u ← max(β2·u, |g| + ε),
/// p ← p − (lr / (1 − β1^t))·m / u.
#[inline(always)]
fn adamax(p: f32, g: f32, m: &mut f32, u: &mut f32, s: &StepScalars, (lr, wd): (f32, f32)) -> f32 {
    let g = g + wd * p;
    let m = first_moment(m, g, s.one_minus_beta1);
    *u = flush_subnormal(max_propagating_nan(s.beta2 * *u, g.abs() + s.eps));
    p - (lr / s.bias_correction1) * m / *u
}

/// `torch.maximum`: NaN if either is (`f32::max` would drop it, and a NaN gradient would
/// leave no trace in the infinity norm).
#[inline(always)]
fn max_propagating_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else {
        a.max(b)
    }
}

/// torch.optim.NAdam: p − lr·c_g·g / d − lr·c_m·m / d with d = √(v / (1 − β2^t)) + ε,
/// applied as PyTorch's two `addcdiv_` calls, one after the other.
#[inline(always)]
fn nadam(p: f32, g: f32, m: &mut f32, v: &mut f32, s: &StepScalars, (lr, wd): (f32, f32)) -> f32 {
    let (p, g, m, v) = decay_and_moments(p, g, m, v, s, (lr, wd));
    let denom = (v / s.bias_correction2).sqrt() + s.eps;
    let p = p - (lr * s.nadam_grad_coef) * g / denom;
    p - (lr * s.nadam_avg_coef) * m / denom
}

/// torch.optim.RAdam: (m / (1 − β1^t))·lr, times the adaptive rate
/// (1 / (√v + ε))·√(1 − β2^t) and the rectification r_t once r_t is defined (non-zero).
#[inline(always)]
fn radam(p: f32, g: f32, m: &mut f32, v: &mut f32, s: &StepScalars, hyper: (f32, f32)) -> f32 {
    let (p, _, m, v) = decay_and_moments(p, g, m, v, s, hyper);
    let mut step = m / s.bias_correction1 * hyper.0;
    if s.rect > 0.0 {
        let adaptive = (1.0 / (v.sqrt() + s.eps)) * s.bias_correction2_sqrt;
        step = step * adaptive * s.rect;
    }
    p - step
}
