//! Adam / AdamW over a run of the parameter arena, written so the compiler vectorises it.
//!
//! The update is memory-bound (four arrays read, three written per parameter), but as a
//! per-element function taking options and indexing four slices it compiled to scalar
//! code at about half the machine's copy bandwidth, a fifth of an `mlp` training step.
//! Here everything that is the same for every element (decoupled or coupled decay,
//! AMSGrad, unscaling, clipping by value) is decided once, by monomorphised loops over
//! zipped slices; the arithmetic per element is unchanged, operation for operation
//! (IEEE add, multiply, divide and square root give the same bits in SIMD lanes), so the
//! result is bit-identical to `shaders/optim.wgsl`'s `adam_update` as before.

use super::optim::flush_subnormal;
use crate::optim::StepScalars;

/// The hyper-parameters of one run, gathered once (the complements come from the host's
/// `StepScalars`; the step size is computed as the per-element code computes it).
#[derive(Clone, Copy)]
struct Coefficients {
    lr: f32,
    wd: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    bias_correction2_sqrt: f32,
    eps: f32,
    step_size: f32,
}

/// torch.optim.Adam / AdamW over `params` with gradients `grads` (each transformed by
/// `(clip, inv_scale)`: unscaled by `inv_scale` for f16 models, clipped by value, times
/// the norm-clipping coefficient `clip`), moments `m`, `v` and, with AMSGrad, the largest
/// second moment `vmax`. `(lr, wd)` are the run's group's.
pub fn adam_run(
    params: &mut [f32],
    grads: &[f32],
    [m, v, vmax]: [&mut [f32]; 3],
    s: &StepScalars,
    (clip, inv_scale): (f32, Option<f32>),
    (lr, wd): (f32, f32),
) {
    let c = Coefficients {
        lr,
        wd,
        one_minus_beta1: s.one_minus_beta1,
        beta2: s.beta2,
        one_minus_beta2: s.one_minus_beta2,
        bias_correction2_sqrt: s.bias_correction2_sqrt,
        eps: s.eps,
        step_size: lr / s.bias_correction1,
    };
    let (decoupled, amsgrad) = (
        s.decoupled != 0,
        s.amsgrad != 0 && vmax.len() == params.len(),
    );
    with_grad_transform!(s, (clip, inv_scale), |grad| match (decoupled, amsgrad) {
        (true, false) => run::<true>(params, grads, m, v, &c, grad),
        (false, false) => run::<false>(params, grads, m, v, &c, grad),
        (true, true) => run_amsgrad::<true>(params, grads, m, v, vmax, &c, grad),
        (false, true) => run_amsgrad::<false>(params, grads, m, v, vmax, &c, grad),
    })
}

/// Weight decay of the Adam family (Adam, AdamW, NAdam, RAdam): decoupled scales the
/// parameter by 1 − lr·wd, coupled adds wd·p to the gradient. Returns (parameter, gradient).
#[inline(always)]
pub(super) fn adam_decay(decoupled: bool, p: f32, g: f32, (lr, wd): (f32, f32)) -> (f32, f32) {
    if decoupled {
        (p * (1.0 - lr * wd), g)
    } else {
        (p, g + wd * p)
    }
}

/// The Adam family's first moment, m + (1−β1)(g − m) (torch's lerp form of
/// β1·m + (1−β1)·g), stored flushed ([`flush_subnormal`]).
#[inline(always)]
pub(super) fn first_moment(m: &mut f32, g: f32, one_minus_beta1: f32) -> f32 {
    *m = flush_subnormal(*m + one_minus_beta1 * (g - *m));
    *m
}

/// The Adam family's second moment, β2·v + (1−β2)·g², stored flushed.
#[inline(always)]
pub(super) fn second_moment(v: &mut f32, g: f32, beta2: f32, one_minus_beta2: f32) -> f32 {
    *v = flush_subnormal(beta2 * *v + one_minus_beta2 * g * g);
    *v
}

/// Decoupled decay scales the parameter; coupled decay adds to the gradient.
#[inline(always)]
fn decay<const DECOUPLED: bool>(p: f32, g: f32, c: &Coefficients) -> (f32, f32) {
    adam_decay(DECOUPLED, p, g, (c.lr, c.wd))
}

/// The moments' update.
#[inline(always)]
fn moments(m: &mut f32, v: &mut f32, g: f32, c: &Coefficients) {
    first_moment(m, g, c.one_minus_beta1);
    second_moment(v, g, c.beta2, c.one_minus_beta2);
}

#[inline(always)]
fn step(p: f32, m: f32, second: f32, c: &Coefficients) -> f32 {
    let denom = second.sqrt() / c.bias_correction2_sqrt + c.eps;
    p - c.step_size * m / denom
}

fn run<const DECOUPLED: bool>(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: &Coefficients,
    grad: impl Fn(f32) -> f32,
) {
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        let (q, g) = decay::<DECOUPLED>(*p, grad(g), c);
        moments(m, v, g, c);
        *p = step(q, *m, *v, c);
    }
}

fn run_amsgrad<const DECOUPLED: bool>(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    c: &Coefficients,
    grad: impl Fn(f32) -> f32,
) {
    let zipped = params.iter_mut().zip(grads).zip(m).zip(v).zip(vmax);
    for ((((p, &g), m), v), vmax) in zipped {
        let (q, g) = decay::<DECOUPLED>(*p, grad(g), c);
        moments(m, v, g, c);
        *vmax = vmax.max(*v);
        *p = step(q, *m, *vmax, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::clip_value;

    /// torch.optim.Adam / AdamW for one element, in PyTorch's order of operations: the
    /// per-element form the update had before it was vectorised (and the WGSL kernel's),
    /// the reference whose bits `adam_run` must give.
    fn adam(
        p: f32,
        g: f32,
        m: &mut f32,
        v: &mut f32,
        vmax: Option<&mut f32>,
        s: &StepScalars,
        (lr, wd): (f32, f32),
    ) -> f32 {
        let (p, g) = if s.decoupled != 0 {
            (p * (1.0 - lr * wd), g)
        } else {
            (p, g + wd * p)
        };
        // m + (1−β1)(g − m) is torch's lerp form of β1·m + (1−β1)·g.
        *m = flush_subnormal(*m + s.one_minus_beta1 * (g - *m));
        *v = flush_subnormal(s.beta2 * *v + s.one_minus_beta2 * g * g);
        let second = match (s.amsgrad != 0, vmax) {
            (true, Some(vmax)) => {
                *vmax = vmax.max(*v);
                *vmax
            }
            _ => *v,
        };
        let denom = second.sqrt() / s.bias_correction2_sqrt + s.eps;
        p - (lr / s.bias_correction1) * *m / denom
    }

    /// Deterministic values in [-scale, scale) (splitmix64).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn the_vectorised_update_gives_the_per_element_bits() {
        let n = 1003;
        for (decoupled, amsgrad, clip_value, inv_scale, clip) in [
            (true, false, 0.0, None, 1.0),
            (false, false, 0.0, None, 0.37),
            (true, true, 0.0, None, 1.0),
            (false, true, 0.05, None, 0.5),
            (true, false, 1e-3, Some(1.0 / 1024.0), 1.0),
            (false, true, 0.0, Some(1.0 / 65536.0), 0.9),
        ] {
            let s = StepScalars {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                bias_correction1: 0.271,
                bias_correction2_sqrt: 0.0546,
                decoupled: u32::from(decoupled),
                amsgrad: u32::from(amsgrad),
                clip_value,
                ..StepScalars::default()
            }
            .with_complements();
            let (lr, wd) = (1e-3, 0.01);
            let grads = values(n, 1, 4.0);
            let p0 = values(n, 2, 1.0);
            let (mut p, mut m) = (p0.clone(), values(n, 3, 0.1));
            // Second moments are non-negative; the largest one differs from v.
            let mut v: Vec<f32> = values(n, 4, 0.01).iter().map(|x| x.abs()).collect();
            let mut vmax: Vec<f32> = values(n, 5, 0.015).iter().map(|x| x.abs()).collect();
            let (mut p2, mut m2, mut v2, mut vmax2) =
                (p.clone(), m.clone(), v.clone(), vmax.clone());
            adam_run(
                &mut p,
                &grads,
                [&mut m, &mut v, &mut vmax],
                &s,
                (clip, inv_scale),
                (lr, wd),
            );
            for i in 0..n {
                let g = clip_value_of(grads[i], inv_scale, s.clip_value) * clip;
                let vm = amsgrad.then_some(&mut vmax2[i]);
                p2[i] = adam(p2[i], g, &mut m2[i], &mut v2[i], vm, &s, (lr, wd));
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let what = format!(
                "decoupled {decoupled}, amsgrad {amsgrad}, clip value {clip_value}, {inv_scale:?}"
            );
            assert_eq!(bits(&p), bits(&p2), "parameters, {what}");
            assert_eq!(bits(&m), bits(&m2), "m, {what}");
            assert_eq!(bits(&v), bits(&v2), "v, {what}");
            assert_eq!(bits(&vmax), bits(&vmax2), "vmax, {what}");
            assert!(p.iter().zip(&p0).all(|(a, b)| a != b), "{what}: no update");
        }
    }

    #[test]
    fn moments_decaying_below_the_smallest_normal_are_stored_as_zero() {
        let s = StepScalars {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            bias_correction1: 1.0,
            bias_correction2_sqrt: 1.0,
            decoupled: 1,
            ..StepScalars::default()
        }
        .with_complements();
        let tiny = f32::MIN_POSITIVE;
        // With g = 0: m ← 0.9·m, v ← 0.999·v. 1.05·tiny and 1.0004·tiny fall below tiny
        // (stored as +0); 10·tiny and 2·tiny stay normal and are kept as computed.
        let mut p = vec![0.5; 4];
        let mut m = vec![1.05 * tiny, -1.05 * tiny, 10.0 * tiny, 0.0];
        let mut v = vec![1.0004 * tiny, 2.0 * tiny, 0.0, 1.0004 * tiny];
        let zeros = vec![0.0; 4];
        adam_run(
            &mut p,
            &zeros,
            [&mut m, &mut v, &mut []],
            &s,
            (1.0, None),
            (1e-3, 0.0),
        );
        assert_eq!(m[0].to_bits(), 0);
        assert_eq!(m[1].to_bits(), 0, "a negative subnormal is stored as +0");
        assert_eq!(m[2], 10.0 * tiny + 0.1 * (0.0 - 10.0 * tiny));
        assert_eq!(v[0].to_bits(), 0);
        assert_eq!(v[1], 0.999 * (2.0 * tiny));
        assert_eq!(v[3].to_bits(), 0);
    }

    #[test]
    fn first_step_moves_each_parameter_by_lr_whatever_beta2() {
        // After one step from zero moments, m̂ = g and v̂ = g², so each parameter moves by
        // lr·g/(|g| + eps): exactly so when 1 − β is the decimal's (PyTorch's), but 6.8e-4
        // short at β2 = 0.99999 when 1 − β2 is computed in f32.
        let grads = [1.0f32, -0.25, 3.0, 1e-3];
        for beta2 in [0.999f32, 0.9999, 0.99999] {
            let opt = crate::optim::Optimizer::Adam {
                betas: (0.9, beta2),
                eps: 1e-8,
                weight_decay: 0.0,
                amsgrad: false,
                decoupled: true,
            };
            let lr = 0.1;
            let s = opt.scalars(lr, 1, crate::optim::Clip::default(), grads.len());
            let mut p = [0.0f32; 4];
            let (mut m, mut v) = ([0.0f32; 4], [0.0f32; 4]);
            adam_run(
                &mut p,
                &grads,
                [&mut m, &mut v, &mut []],
                &s,
                (1.0, None),
                (lr, 0.0),
            );
            for (&got, &g) in p.iter().zip(&grads) {
                let want = -f64::from(lr) * f64::from(g) / (f64::from(g.abs()) + 1e-8);
                assert!(
                    (f64::from(got) - want).abs() <= 1e-6 * want.abs(),
                    "β2 {beta2}, g {g}: moved {got}, want {want}"
                );
            }
        }
    }

    fn clip_value_of(g: f32, inv_scale: Option<f32>, cv: f32) -> f32 {
        clip_value(inv_scale.map_or(g, |inv| g * inv), cv)
    }
}
