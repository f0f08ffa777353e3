//! torch.optim.SGD over a run of the parameter arena, in loops the compiler vectorises
//! (as `optim_adam.rs` does for Adam): momentum, Nesterov, the first step's seeding of
//! the buffer and the gradient transform are decided once per run; the arithmetic per
//! element is the per-element update's, so the bits are unchanged.

use super::optim::flush_subnormal;
use crate::optim::StepScalars;

/// SGD over `params` with gradients `grads` (transformed by `(clip, inv_scale)` as for
/// [`adam_run`](super::optim_adam::adam_run)) and the momentum buffer `buf` (empty when
/// momentum is 0); `(lr, wd)` are the run's group's.
pub fn sgd_run(
    params: &mut [f32],
    grads: &[f32],
    buf: &mut [f32],
    s: &StepScalars,
    (clip, inv_scale): (f32, Option<f32>),
    (lr, wd): (f32, f32),
) {
    let momentum = s.momentum != 0.0 && buf.len() == params.len();
    let m = Momentum {
        momentum: s.momentum,
        one_minus_dampening: s.one_minus_dampening,
    };
    with_grad_transform!(
        s,
        (clip, inv_scale),
        |grad| match (momentum, s.step <= 1, s.nesterov != 0) {
            (false, _, _) => plain(params, grads, (lr, wd), grad),
            (true, true, false) =>
                with_momentum::<true, false>(params, grads, buf, m, (lr, wd), grad),
            (true, true, true) =>
                with_momentum::<true, true>(params, grads, buf, m, (lr, wd), grad),
            (true, false, false) =>
                with_momentum::<false, false>(params, grads, buf, m, (lr, wd), grad),
            (true, false, true) =>
                with_momentum::<false, true>(params, grads, buf, m, (lr, wd), grad),
        }
    )
}

/// The momentum factor and 1 − dampening (the host's), gathered once per run.
#[derive(Clone, Copy)]
struct Momentum {
    momentum: f32,
    one_minus_dampening: f32,
}

fn plain(params: &mut [f32], grads: &[f32], (lr, wd): (f32, f32), grad: impl Fn(f32) -> f32) {
    for (p, &g) in params.iter_mut().zip(grads) {
        let d = grad(g) + wd * *p;
        *p -= lr * d;
    }
}

/// With a momentum buffer; on the first step (`FIRST`) the buffer is seeded with the
/// update itself, as PyTorch does (no dampening).
fn with_momentum<const FIRST: bool, const NESTEROV: bool>(
    params: &mut [f32],
    grads: &[f32],
    buf: &mut [f32],
    m: Momentum,
    (lr, wd): (f32, f32),
    grad: impl Fn(f32) -> f32,
) {
    for ((p, &g), b) in params.iter_mut().zip(grads).zip(buf) {
        let d = grad(g) + wd * *p;
        let nb = flush_subnormal(if FIRST {
            d
        } else {
            m.momentum * *b + m.one_minus_dampening * d
        });
        *b = nb;
        let d = if NESTEROV { d + m.momentum * nb } else { nb };
        *p -= lr * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::clip_value;

    /// torch.optim.SGD for one element, as the update was written before it was
    /// vectorised (and as the WGSL kernel is): the reference whose bits `sgd_run` must give.
    fn sgd(p: f32, g: f32, buf: Option<&mut f32>, s: &StepScalars, (lr, wd): (f32, f32)) -> f32 {
        let mut d = g + wd * p;
        if let (true, Some(buf)) = (s.momentum != 0.0, buf) {
            // The first step seeds the buffer with d itself, as PyTorch does (no dampening).
            let b = flush_subnormal(if s.step <= 1 {
                d
            } else {
                s.momentum * *buf + s.one_minus_dampening * d
            });
            *buf = b;
            d = if s.nesterov != 0 {
                d + s.momentum * b
            } else {
                b
            };
        }
        p - lr * d
    }

    #[test]
    fn a_momentum_buffer_decaying_below_the_smallest_normal_is_stored_as_zero() {
        let s = StepScalars {
            momentum: 0.9,
            step: 2,
            ..StepScalars::default()
        }
        .with_complements();
        let tiny = f32::MIN_POSITIVE;
        let mut p = vec![1.0, 1.0];
        let mut buf = vec![1.05 * tiny, 20.0 * tiny];
        sgd_run(&mut p, &[0.0, 0.0], &mut buf, &s, (1.0, None), (0.1, 0.0));
        assert_eq!(buf[0].to_bits(), 0, "0.9 · 1.05 · 2^-126 is subnormal");
        assert_eq!(buf[1], 0.9 * (20.0 * tiny));
        assert_eq!(p[0], 1.0);
    }

    #[test]
    fn the_vectorised_update_gives_the_per_element_bits() {
        let n = 517;
        let wave = |k: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * k) % 101) as f32 / 101.0 - 0.5) * scale)
                .collect()
        };
        for (momentum, nesterov, step, dampening, clip_value_, inv_scale) in [
            (0.0, false, 1, 0.0, 0.0, None),
            (0.9, false, 1, 0.0, 0.0, None),
            (0.9, false, 5, 0.1, 0.0, None),
            (0.9, true, 1, 0.0, 0.3, None),
            (0.8, true, 7, 0.0, 0.0, Some(1.0 / 512.0)),
            (0.0, false, 3, 0.0, 0.05, Some(1.0 / 8.0)),
        ] {
            let s = StepScalars {
                momentum,
                dampening,
                nesterov: u32::from(nesterov),
                step,
                clip_value: clip_value_,
                ..StepScalars::default()
            }
            .with_complements();
            let (lr, wd, clip) = (0.05, 0.01, 0.7);
            let grads = wave(37, 3.0);
            let (mut p, mut buf) = (wave(11, 1.0), wave(23, 0.2));
            let (mut p2, mut buf2) = (p.clone(), buf.clone());
            let mut empty: Vec<f32> = Vec::new();
            let b: &mut [f32] = if momentum != 0.0 {
                &mut buf
            } else {
                &mut empty
            };
            sgd_run(&mut p, &grads, b, &s, (clip, inv_scale), (lr, wd));
            for i in 0..n {
                let g = inv_scale.map_or(grads[i], |inv| grads[i] * inv);
                let g = clip_value(g, clip_value_) * clip;
                let b = (momentum != 0.0).then_some(&mut buf2[i]);
                p2[i] = sgd(p2[i], g, b, &s, (lr, wd));
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let what = format!("momentum {momentum}, nesterov {nesterov}, step {step}");
            assert_eq!(bits(&p), bits(&p2), "parameters, {what}");
            assert_eq!(bits(&buf), bits(&buf2), "buffer, {what}");
        }
    }
}
