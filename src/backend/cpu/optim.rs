//! Fused optimizer updates over the flat parameter arena (mirrored by
//! `shaders/optim.wgsl`): each gradient is clipped by value and scaled by the global-norm
//! clipping coefficient on the fly, then one loop applies torch.optim's update.

use super::optim_adam_variants::{adam_variant_run, AdamVariant};
use crate::error::{Error, Result};
use crate::optim::{clip_coefficient, clip_value, Optimizer, StepScalars};

/// An optimizer state that has decayed below the smallest normal f32 (Adam's moments,
/// SGD's momentum buffer, RMSprop's and Adadelta's averages of a weight whose gradients
/// stopped, such as a first-layer weight of a rarely inked border pixel) is stored as
/// zero. x86 cores take a microcode assist of the order of a hundred cycles for every
/// operation on a subnormal number, and such states keep decaying by β (or the momentum) at every step: unflushed, they slowed the
/// `mlp` preset's epochs from 66,000 to 47,000 images/s by the third (BENCHMARKS.md). The
/// values lost are below 1.2·10⁻³⁸, far below what `eps` or the tolerance policy can see.
/// The WGSL kernels store the same (`flush_subnormal` in `shaders/optim.wgsl`).
#[inline(always)]
pub(super) fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// Σ g² over the gradient arena (after clipping by value), accumulated in f64; the GPU's
/// fixed-order tree sum agrees within the reduction tolerance.
pub fn grad_norm_sq(grads: &[f32], s: &StepScalars) -> f32 {
    grads
        .iter()
        .map(|&g| {
            let g = f64::from(clip_value(g, s.clip_value));
            g * g
        })
        .sum::<f64>() as f32
}

/// The norm pass of an f16 model: Σ (clip_value(g · inv_scale))² over the gradient arena,
/// each gradient unscaled in f32 first (as `scaler.unscale_` does before clipping), with
/// +infinity in place of any unscaled gradient that is not finite, so that the result is
/// non-finite exactly when GradScaler's `found_inf` is set (clipping by value would
/// otherwise hide an infinity) or the sum itself overflows f32. Mirrors
/// `grad_norm_partial_half` in `shaders/optim_half.wgsl`.
pub fn grad_norm_sq_unscaled(grads: &[f32], s: &StepScalars, inv_scale: f32) -> f32 {
    grads
        .iter()
        .map(|&g| {
            let u = g * inv_scale;
            if u.is_finite() {
                let c = f64::from(clip_value(u, s.clip_value));
                c * c
            } else {
                f64::INFINITY
            }
        })
        .sum::<f64>() as f32
}

/// Elements per parallel block of the update.
const BLOCK: usize = 1 << 14;

/// One block of the arena: its first index and the matching pieces of every buffer
/// (an unused state buffer gives empty pieces).
struct Block<'a> {
    start: usize,
    params: &'a mut [f32],
    grads: &'a [f32],
    states: [&'a mut [f32]; 3],
}

/// Splits the arena and its state buffers at the same block boundaries.
fn blocks<'a>(
    params: &'a mut [f32],
    grads: &'a [f32],
    states: &'a mut [Vec<f32>; 3],
) -> Vec<Block<'a>> {
    let n = params.len().div_ceil(BLOCK);
    let mut state_chunks: Vec<Vec<&'a mut [f32]>> = states
        .iter_mut()
        .map(|v| {
            let mut c: Vec<&'a mut [f32]> = v.chunks_mut(BLOCK).collect();
            c.resize_with(n, || &mut []);
            c
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    let [c0, c1, c2] = [
        std::mem::take(&mut state_chunks[0]),
        std::mem::take(&mut state_chunks[1]),
        std::mem::take(&mut state_chunks[2]),
    ];
    for (k, ((((p, g), a), b), c)) in params
        .chunks_mut(BLOCK)
        .zip(grads.chunks(BLOCK))
        .zip(c0)
        .zip(c1)
        .zip(c2)
        .enumerate()
    {
        out.push(Block {
            start: k * BLOCK,
            params: p,
            grads: g,
            states: [a, b, c],
        });
    }
    out
}

/// One step of `optimizer` over the arena. `states` are its state buffers by index (see
/// [`Optimizer::uses_state`]); unused ones may be empty, used ones are as long as the
/// parameters (else an error). Blocks run on all cores; each element's arithmetic is the
/// kernel's, in the kernel's order.
pub fn optimizer_step(
    optimizer: &Optimizer,
    params: &mut [f32],
    grads: &[f32],
    states: &mut [Vec<f32>; 3],
    s: &StepScalars,
    norm_sq: f32,
) -> Result<()> {
    check_arenas(optimizer, params, grads, states)?;
    if s.skip_nonfinite != 0 && s.max_norm > 0.0 && !norm_sq.is_finite() {
        return Ok(());
    }
    step_blocks(optimizer, params, grads, states, s, norm_sq, None);
    Ok(())
}

/// The gradients and every state buffer the optimizer uses are as long as the parameters
/// (the update loops run over zipped slices, which would stop at the shortest).
fn check_arenas(
    optimizer: &Optimizer,
    params: &[f32],
    grads: &[f32],
    states: &[Vec<f32>; 3],
) -> Result<()> {
    let n = params.len();
    let used_ok = (0..3).all(|k| !optimizer.uses_state(k) || states[k].len() == n);
    if grads.len() != n || !used_ok {
        return Err(Error::Graph(format!(
            "optimizer arenas differ: {n} parameters, {} gradients, state buffers of {:?}",
            grads.len(),
            states.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// One step of `optimizer` for an f16 model whose gradients are multiplied by the loss
/// scale: each gradient is multiplied by `inv_scale` before clipping, and a non-finite
/// `norm_sq` (from [`grad_norm_sq_unscaled`]: GradScaler's `found_inf`) skips the update
/// whatever the clipping settings. Returns whether the update was applied; arenas of
/// different lengths are an error.
pub fn optimizer_step_unscaled(
    optimizer: &Optimizer,
    params: &mut [f32],
    grads: &[f32],
    states: &mut [Vec<f32>; 3],
    s: &StepScalars,
    norm_sq: f32,
    inv_scale: f32,
) -> Result<bool> {
    check_arenas(optimizer, params, grads, states)?;
    if !norm_sq.is_finite() {
        return Ok(false);
    }
    step_blocks(
        optimizer,
        params,
        grads,
        states,
        s,
        norm_sq,
        Some(inv_scale),
    );
    Ok(true)
}

/// The update over all blocks, gradients unscaled by `inv_scale` when given.
fn step_blocks(
    optimizer: &Optimizer,
    params: &mut [f32],
    grads: &[f32],
    states: &mut [Vec<f32>; 3],
    s: &StepScalars,
    norm_sq: f32,
    inv_scale: Option<f32>,
) {
    use rayon::prelude::*;
    let clip = clip_coefficient(norm_sq, s.max_norm);
    blocks(params, grads, states).into_par_iter().for_each(|b| {
        // The group boundary splits a block into at most two runs of constant (lr, wd).
        let split = (s.tail_start as usize).clamp(b.start, b.start + b.params.len()) - b.start;
        let Block {
            params,
            grads,
            states: [s0, s1, s2],
            ..
        } = b;
        let (p_head, p_tail) = params.split_at_mut(split);
        let (g_head, g_tail) = grads.split_at(split);
        let (a_head, a_tail) = s0.split_at_mut(split.min(s0.len()));
        let (b_head, b_tail) = s1.split_at_mut(split.min(s1.len()));
        let (c_head, c_tail) = s2.split_at_mut(split.min(s2.len()));
        let head = s.hyper(0);
        let tail = s.hyper(s.tail_start as usize);
        update(
            optimizer,
            p_head,
            g_head,
            [a_head, b_head, c_head],
            s,
            (clip, inv_scale),
            head,
        );
        update(
            optimizer,
            p_tail,
            g_tail,
            [a_tail, b_tail, c_tail],
            s,
            (clip, inv_scale),
            tail,
        );
    });
}

/// The update of one run of elements sharing `(lr, wd)`; `clip` is the norm-clipping
/// coefficient and the factor that unscales the gradients of an f16 model, if any.
fn update(
    optimizer: &Optimizer,
    params: &mut [f32],
    grads: &[f32],
    states: [&mut [f32]; 3],
    s: &StepScalars,
    (clip, inv_scale): (f32, Option<f32>),
    (lr, wd): (f32, f32),
) {
    let [s0, s1, s2] = states;
    // f32 models take the gradient as it is (no multiplication, so their results do not
    // change by a bit); f16 models unscale it first, as `scaler.unscale_` does.
    let grad = |i: usize| {
        let g = match inv_scale {
            Some(inv) => grads[i] * inv,
            None => grads[i],
        };
        clip_value(g, s.clip_value) * clip
    };
    match optimizer {
        Optimizer::Sgd { .. } => {
            super::optim_sgd::sgd_run(params, grads, s0, s, (clip, inv_scale), (lr, wd))
        }
        Optimizer::Adam { .. } => {
            super::optim_adam::adam_run(params, grads, [s0, s1, s2], s, (clip, inv_scale), (lr, wd))
        }
        Optimizer::Adagrad { .. } => {
            for (i, p) in params.iter_mut().enumerate() {
                let g = grad(i) + wd * *p;
                s0[i] += g * g;
                *p -= lr * g / (s0[i].sqrt() + s.eps);
            }
        }
        Optimizer::RmsProp { .. } => {
            for (i, p) in params.iter_mut().enumerate() {
                *p = rmsprop(
                    *p,
                    grad(i),
                    &mut s0[i],
                    s1.get_mut(i),
                    s2.get_mut(i),
                    s,
                    (lr, wd),
                );
            }
        }
        Optimizer::Adadelta { .. } => {
            for (i, p) in params.iter_mut().enumerate() {
                let g = grad(i) + wd * *p;
                let sq = flush_subnormal(s.alpha * s0[i] + s.one_minus_alpha * g * g);
                s0[i] = sq;
                let delta = (s1[i] + s.eps).sqrt() / (sq + s.eps).sqrt() * g;
                s1[i] = flush_subnormal(s.alpha * s1[i] + s.one_minus_alpha * delta * delta);
                *p -= lr * delta;
            }
        }
        Optimizer::Adamax { .. } | Optimizer::NAdam { .. } | Optimizer::RAdam { .. } => {
            let variant = match optimizer {
                Optimizer::Adamax { .. } => AdamVariant::Adamax,
                Optimizer::NAdam { .. } => AdamVariant::NAdam,
                _ => AdamVariant::RAdam,
            };
            adam_variant_run(
                variant,
                params,
                grads,
                [s0, s1],
                s,
                (clip, inv_scale),
                (lr, wd),
            )
        }
    }
}

/// torch.optim.RMSprop for one element.
fn rmsprop(
    p: f32,
    g: f32,
    square_avg: &mut f32,
    grad_avg: Option<&mut f32>,
    buf: Option<&mut f32>,
    s: &StepScalars,
    (lr, wd): (f32, f32),
) -> f32 {
    let g = g + wd * p;
    *square_avg = flush_subnormal(s.alpha * *square_avg + s.one_minus_alpha * g * g);
    let avg = match (s.centered != 0, grad_avg) {
        (true, Some(ga)) => {
            *ga = flush_subnormal(*ga + s.one_minus_alpha * (g - *ga));
            (*square_avg - *ga * *ga).sqrt() + s.eps
        }
        _ => square_avg.sqrt() + s.eps,
    };
    match (s.momentum > 0.0, buf) {
        (true, Some(b)) => {
            *b = flush_subnormal(s.momentum * *b + g / avg);
            p - lr * *b
        }
        _ => p - lr * g / avg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Clip;

    /// Runs `opt` on a scalar w from 1 with the gradients `grads(w, step)` and returns the
    /// trajectory.
    fn trajectory(
        opt: Optimizer,
        lr: f32,
        steps: u32,
        grads: impl Fn(f32, u32) -> f32,
    ) -> Vec<f32> {
        let mut w = vec![1.0f32];
        let mut states = [vec![opt.initial_state(0)], vec![0.0], vec![0.0]];
        let mut out = Vec::new();
        for step in 1..=steps {
            let g = vec![grads(w[0], step)];
            let s = opt.scalars(lr, step, Clip::default(), 1);
            optimizer_step(&opt, &mut w, &g, &mut states, &s, 0.0).unwrap();
            out.push(w[0]);
        }
        out
    }

    fn assert_close(got: &[f32], want: &[f64], tol: f64) {
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() < tol,
                "step {}: {g} vs {w}",
                k + 1
            );
        }
    }

    /// loss = w²/2, so grad = w.
    fn quadratic(w: f32, _: u32) -> f32 {
        w
    }

    #[test]
    fn rmsprop_states_decaying_below_the_smallest_normal_are_stored_as_zero() {
        let s = StepScalars {
            alpha: 0.99,
            momentum: 0.9,
            centered: 1,
            eps: 1e-8,
            ..StepScalars::default()
        }
        .with_complements();
        let tiny = f32::MIN_POSITIVE;
        // g = 0: square_avg ← 0.99·square_avg, grad_avg ← grad_avg + 0.01·(0 − grad_avg),
        // buf ← 0.9·buf; each falls below 2^-126 from just above it.
        let (mut sq, mut ga, mut buf) = (1.005 * tiny, 1.005 * tiny, 1.05 * tiny);
        let p = rmsprop(
            0.5,
            0.0,
            &mut sq,
            Some(&mut ga),
            Some(&mut buf),
            &s,
            (0.1, 0.0),
        );
        assert_eq!((sq.to_bits(), ga.to_bits(), buf.to_bits()), (0, 0, 0));
        assert_eq!(p, 0.5);
        // Normal values are kept as computed.
        let mut sq = 3.0 * tiny;
        rmsprop(0.5, 0.0, &mut sq, None, None, &s, (0.1, 0.0));
        assert_eq!(sq, 0.99 * (3.0 * tiny));
    }

    #[test]
    fn sgd_momentum_hand_derived() {
        // lr 0.01, momentum 0.9: 0.99, then 0.99 − 0.01·(0.9·1 + 0.99) = 0.9711.
        let t = trajectory(Optimizer::sgd(0.9), 0.01, 2, quadratic);
        assert_close(&t, &[0.99, 0.9711], 1e-6);
    }

    #[test]
    fn sgd_nesterov_hand_derived() {
        // Step 1: buf = 1, d = 1 + 0.9 = 1.9, w = 0.981. Step 2: g = 0.981,
        // buf = 0.9 + 0.981 = 1.881, d = 0.981 + 1.6929 = 2.6739, w = 0.954261.
        let opt = Optimizer::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        };
        assert_close(
            &trajectory(opt, 0.01, 2, quadratic),
            &[0.981, 0.954_261],
            1e-6,
        );
    }

    #[test]
    fn adamw_hand_derived() {
        // Step 1 moves by lr·sign(g) after the decay: 1·(1 − 0.01·0.1) − 0.01 = 0.989.
        // Step 2, g = 0.989: m = 0.1 + 0.1·(0.989 − 0.1) = 0.1889,
        // v = 0.999·0.001 + 0.001·0.989² = 0.001977121, bias corrections 0.19, 0.001999.
        let opt = Optimizer::Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.1,
            amsgrad: false,
            decoupled: true,
        };
        let mhat = 0.1889f64 / 0.19;
        let vhat = 0.001_977_121f64 / 0.001_999;
        let w2 = 0.989 * 0.999 - 0.01 * mhat / (vhat.sqrt() + 1e-8);
        assert_close(&trajectory(opt, 0.01, 2, quadratic), &[0.989, w2], 2e-6);
    }

    #[test]
    fn adam_with_coupled_decay_hand_derived() {
        // Coupled L2: g = w + 0.1·w = 1.1 at step 1, so m̂/sqrt(v̂) = 1 again: w = 0.99.
        // Step 2: g = 1.1·0.99 = 1.089, m = 0.11 + 0.1·(1.089 − 0.11) = 0.2079,
        // v = 0.999·0.00121 + 0.001·1.089² = 0.00239469...
        let opt = Optimizer::Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.1,
            amsgrad: false,
            decoupled: false,
        };
        let v2 = 0.999 * 0.00121 + 0.001 * 1.089f64 * 1.089;
        let w2 = 0.99 - 0.01 * (0.2079 / 0.19) / ((v2 / 0.001_999).sqrt() + 1e-8);
        assert_close(&trajectory(opt, 0.01, 2, quadratic), &[0.99, w2], 2e-6);
    }

    #[test]
    fn amsgrad_keeps_the_largest_second_moment() {
        // Gradients 1 then 0: v falls from 0.001 to 0.000999, AMSGrad keeps 0.001.
        // m2 = 0.1 + 0.1·(0 − 0.1) = 0.09; w2 = 0.99 − 0.01·(0.09/0.19)/(sqrt(0.001/0.001999)).
        let opt = Optimizer::Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: true,
            decoupled: false,
        };
        let grads = |_: f32, step: u32| if step == 1 { 1.0 } else { 0.0 };
        let w2 = 0.99 - 0.01 * (0.09 / 0.19) / ((0.001f64 / 0.001_999).sqrt() + 1e-8);
        assert_close(&trajectory(opt, 0.01, 2, grads), &[0.99, w2], 2e-6);
        let plain = trajectory(Optimizer::adam(), 0.01, 2, grads);
        assert!(
            (plain[1] - w2 as f32).abs() > 1e-6,
            "AMSGrad made no difference"
        );
    }

    #[test]
    fn adagrad_hand_derived() {
        // lr 0.1: sum = 1, w = 0.9; g = 0.9, sum = 1.81, w = 0.9 − 0.09/sqrt(1.81).
        let w2 = 0.9 - 0.09 / 1.81f64.sqrt();
        assert_close(
            &trajectory(Optimizer::adagrad(), 0.1, 2, quadratic),
            &[0.9, w2],
            1e-6,
        );
    }

    #[test]
    fn rmsprop_variants_hand_derived() {
        // Plain: sq = 0.01, w = 1 − 0.01/0.1 = 0.9; g = 0.9: sq = 0.0099 + 0.0081 = 0.018,
        // w = 0.9 − 0.009/sqrt(0.018).
        let w2 = 0.9 - 0.009 / 0.018f64.sqrt();
        assert_close(
            &trajectory(Optimizer::rmsprop(), 0.01, 2, quadratic),
            &[0.9, w2],
            1e-6,
        );
        // Centred: grad_avg = 0.01, avg = sqrt(0.01 − 0.0001), w = 1 − 0.01/sqrt(0.0099).
        let centered = Optimizer::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: true,
        };
        let w1 = 1.0 - 0.01 / 0.0099f64.sqrt();
        assert_close(&trajectory(centered, 0.01, 1, quadratic), &[w1], 1e-6);
        // Momentum 0.9: buf = 10, w = 0.9; buf = 9 + 0.9/sqrt(0.018), w = 0.9 − 0.01·buf.
        let momentum = Optimizer::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.9,
            centered: false,
        };
        let w2 = 0.9 - 0.01 * (9.0 + 0.9 / 0.018f64.sqrt());
        assert_close(&trajectory(momentum, 0.01, 2, quadratic), &[0.9, w2], 1e-6);
    }

    #[test]
    fn adadelta_hand_derived() {
        // lr 1, rho 0.9, eps 1e-6: sq = 0.1, delta = sqrt(1e-6)/sqrt(0.1 + 1e-6),
        // w = 1 − delta; acc = 0.1·delta². Step 2 with g = w1.
        let d1 = (1e-6f64).sqrt() / (0.1f64 + 1e-6).sqrt();
        let w1 = 1.0 - d1;
        let acc = 0.1 * d1 * d1;
        let sq = 0.9 * 0.1 + 0.1 * w1 * w1;
        let d2 = (acc + 1e-6).sqrt() / (sq + 1e-6).sqrt() * w1;
        assert_close(
            &trajectory(Optimizer::adadelta(), 1.0, 2, quadratic),
            &[w1, w1 - d2],
            1e-6,
        );
    }

    #[test]
    fn adamax_hand_derived() {
        // lr 0.01. Step 1: m = 0.1, u = |1| + 1e-8, lr/(1 − 0.9) = 0.1: w = 1 − 0.01/u.
        // Step 2, g = w1: m = 0.1 + 0.1·(w1 − 0.1), u = max(0.999·u1, w1 + 1e-8) = 0.999·u1
        // (the decayed norm still exceeds |g|), bias correction 0.19.
        let u1 = 1.0 + 1e-8;
        let w1 = 1.0 - 0.01 / u1;
        let m2 = 0.1 + 0.1 * (w1 - 0.1);
        let w2 = w1 - (0.01 / 0.19) * m2 / (0.999 * u1);
        let opt = Optimizer::adamax();
        assert_close(&trajectory(opt, 0.01, 2, quadratic), &[w1, w2], 1e-6);
        // A larger gradient takes over the norm: g = 1 then 2, u2 = 2 + 1e-8.
        let grads = |_: f32, step: u32| step as f32;
        let w2 = w1 - (0.01 / 0.19) * (0.1 + 0.1 * (2.0 - 0.1)) / (2.0 + 1e-8);
        assert_close(&trajectory(opt, 0.01, 2, grads), &[w1, w2], 1e-6);
    }

    /// `torch.maximum` keeps a NaN: a NaN gradient leaves NaN in Adamax's infinity norm
    /// (and the parameter), where `f32::max` would have dropped it from the norm.
    #[test]
    fn adamax_infinity_norm_keeps_a_nan_gradient() {
        let opt = Optimizer::adamax();
        let mut w = vec![1.0f32, 1.0];
        let mut states = [vec![0.0; 2], vec![0.0; 2], vec![]];
        let s = opt.scalars(0.01, 1, Clip::default(), 2);
        optimizer_step(&opt, &mut w, &[f32::NAN, 1.0], &mut states, &s, 0.0).unwrap();
        assert!(states[1][0].is_nan() && w[0].is_nan());
        assert_eq!(states[1][1], 1.0 + 1e-8);
    }

    /// μ_t of NAdam with β1 = 0.9 and ψ = 0.004, written out for the tests.
    fn mu(t: f64) -> f64 {
        0.9 * (1.0 - 0.5 * 0.96f64.powf(t * 0.004))
    }

    #[test]
    fn nadam_hand_derived() {
        // lr 0.01, g = w. Step 1: m = 0.1, v = 0.001, v/(1 − 0.999) = 1, d = 1 + 1e-8,
        // w = 1 − 0.01·(1 − μ1)/(1 − μ1)·1/d − 0.01·μ2/(1 − μ1μ2)·0.1/d.
        let d1 = 1.0 + 1e-8;
        let w1 = 1.0 - 0.01 / d1 - 0.01 * mu(2.0) / (1.0 - mu(1.0) * mu(2.0)) * 0.1 / d1;
        // Step 2: products μ1μ2 and μ1μ2μ3, bias correction 1 − 0.999² = 0.001999.
        let m2 = 0.1 + 0.1 * (w1 - 0.1);
        let v2 = 0.999 * 0.001 + 0.001 * w1 * w1;
        let d2 = (v2 / 0.001_999).sqrt() + 1e-8;
        let p2 = mu(1.0) * mu(2.0);
        let w2 = w1
            - 0.01 * (1.0 - mu(2.0)) / (1.0 - p2) * w1 / d2
            - 0.01 * mu(3.0) / (1.0 - p2 * mu(3.0)) * m2 / d2;
        assert_close(
            &trajectory(Optimizer::nadam(), 0.01, 2, quadratic),
            &[w1, w2],
            1e-6,
        );
        // Decoupled decay 0.1 scales w by 1 − 0.001 first and leaves the gradient alone.
        let decoupled = Optimizer::NAdam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.1,
            momentum_decay: 4e-3,
            decoupled: true,
        };
        let w1 = 0.999 - 0.01 / d1 - 0.01 * mu(2.0) / (1.0 - mu(1.0) * mu(2.0)) * 0.1 / d1;
        assert_close(&trajectory(decoupled, 0.01, 1, quadratic), &[w1], 1e-6);
    }

    #[test]
    fn radam_hand_derived() {
        // While ρ_t ≤ 5 (steps 1–5 at β2 = 0.999) RAdam is momentum SGD on the
        // bias-corrected mean: w1 = 1 − 0.01·(0.1/0.1) = 0.99, w2 = 0.99 − 0.01·m2/0.19.
        let got = trajectory(Optimizer::radam(), 0.01, 8, quadratic);
        let m2 = 0.1 + 0.1 * (0.99 - 0.1);
        assert_close(&got[..2], &[0.99, 0.99 - 0.01 * m2 / 0.19], 1e-6);
        // The whole trajectory against RAdam's formulas in f64: from step 6 the step is
        // rectified, r_t = √((ρ−4)(ρ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ)).
        let (b1, b2) = (0.9f64, 0.999f64);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let (mut w, mut m, mut v) = (1.0f64, 0.0, 0.0);
        let mut want = Vec::new();
        for t in 1..=8 {
            let t = f64::from(t);
            let g = w;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
            let rho = rho_inf - 2.0 * t * b2.powf(t) / bc2;
            let mut step = 0.01 * m / bc1;
            if rho > 5.0 {
                let r = ((rho - 4.0) * (rho - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
                    .sqrt();
                step *= r * bc2.sqrt() / (v.sqrt() + 1e-8);
            }
            w -= step;
            want.push(w);
        }
        assert_close(&got, &want, 1e-6);
        // The rectified steps are much shorter than the momentum steps before them.
        assert!((got[4] - got[5]).abs() < 0.2 * (got[3] - got[4]).abs());
    }

    /// Clipping scales the gradient to norm max_norm: with g = (3, 4), norm 5, max 1, plain
    /// SGD lr 1 moves w by g/5·(5/(5+1e-6)); below the threshold nothing changes.
    #[test]
    fn clipping_by_norm_and_by_value() {
        let opt = Optimizer::sgd(0.0);
        let g = vec![3.0f32, 4.0];
        let run = |clip: Clip| {
            let mut w = vec![0.0f32, 0.0];
            let s = opt.scalars(1.0, 1, clip, 2);
            let n = grad_norm_sq(&g, &s);
            optimizer_step(&opt, &mut w, &g, &mut [vec![], vec![], vec![]], &s, n).unwrap();
            w
        };
        let w = run(Clip {
            max_norm: Some(1.0),
            max_value: None,
            ..Clip::default()
        });
        let norm = (w[0] * w[0] + w[1] * w[1]).sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "clipped norm {norm}");
        let w = run(Clip {
            max_norm: Some(10.0),
            max_value: None,
            ..Clip::default()
        });
        assert_eq!(w, vec![-3.0, -4.0]);
        let w = run(Clip {
            max_norm: None,
            max_value: Some(3.5),
            ..Clip::default()
        });
        assert_eq!(w, vec![-3.0, -3.5]);
    }

    #[test]
    fn arenas_of_different_lengths_are_refused() {
        let opt = Optimizer::adamw();
        let s = opt.scalars(1e-3, 1, Clip::default(), 3);
        let mut w = vec![1.0f32; 3];
        let mut states = [vec![0.0; 3], vec![0.0; 2], vec![]];
        let err = optimizer_step(&opt, &mut w, &[0.5; 3], &mut states, &s, 0.0).unwrap_err();
        assert!(err.to_string().contains("[3, 2, 0]"), "{err}");
        assert!(optimizer_step(&opt, &mut w, &[0.5; 2], &mut states, &s, 0.0).is_err());
        assert_eq!(w, vec![1.0; 3], "nothing was updated");
        states[1] = vec![0.0; 3];
        optimizer_step(&opt, &mut w, &[0.5; 3], &mut states, &s, 0.0).unwrap();
        assert!(w.iter().all(|&x| x < 1.0));
    }
}
