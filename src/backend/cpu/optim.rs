//! Fused optimizer updates over the flat parameter arena (mirrored by
//! `shaders/optim.wgsl`): the gradient is scaled by the clipping coefficient on the fly.

use crate::optim::{clip_coefficient, StepScalars};

/// Σ g² over the gradient arena, accumulated in f64 (the GPU's fixed-order tree sum agrees
/// within the reduction tolerance).
pub fn grad_norm_sq(grads: &[f32]) -> f32 {
    grads
        .iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>() as f32
}

/// torch.optim.SGD over the arena. `buf` is the momentum buffer (empty when momentum is 0).
pub fn sgd_step(params: &mut [f32], grads: &[f32], buf: &mut [f32], s: &StepScalars, norm_sq: f32) {
    let clip = clip_coefficient(norm_sq, s.max_norm);
    for i in 0..params.len() {
        let p = params[i];
        let mut d = grads[i] * clip + s.weight_decay * p;
        if s.momentum != 0.0 {
            let b = if s.step <= 1 {
                d
            } else {
                s.momentum * buf[i] + (1.0 - s.dampening) * d
            };
            buf[i] = b;
            d = if s.nesterov != 0 {
                d + s.momentum * b
            } else {
                b
            };
        }
        params[i] = p - s.lr * d;
    }
}

/// torch.optim.AdamW over the arena, in PyTorch's order of operations.
pub fn adamw_step(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    s: &StepScalars,
    norm_sq: f32,
) {
    let clip = clip_coefficient(norm_sq, s.max_norm);
    let step_size = s.lr / s.bias_correction1;
    for i in 0..params.len() {
        let g = grads[i] * clip;
        let p = params[i] * (1.0 - s.lr * s.weight_decay);
        let mi = m[i] + (1.0 - s.beta1) * (g - m[i]);
        let vi = s.beta2 * v[i] + (1.0 - s.beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        let denom = vi.sqrt() / s.bias_correction2_sqrt + s.eps;
        params[i] = p - step_size * mi / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Optimizer;

    /// w = 1, loss = w²/2 so grad = w; lr 0.01, momentum 0.9: 0.99, then 0.9711.
    #[test]
    fn sgd_momentum_hand_derived() {
        let opt = Optimizer::sgd(0.9);
        let (mut w, mut buf) = (vec![1.0f32], vec![0.0f32]);
        let mut expect = [0.99f32, 0.9711].into_iter();
        for step in 1..=2 {
            let g = vec![w[0]];
            sgd_step(&mut w, &g, &mut buf, &opt.scalars(0.01, step, None, 1), 0.0);
            let e = expect.next().unwrap_or(0.0);
            assert!((w[0] - e).abs() < 1e-6, "step {step}: {} vs {e}", w[0]);
        }
    }

    /// Nesterov: d = g + μ·buf. Step 1: buf = 1, d = 1.9, w = 0.981.
    /// Step 2: g = 0.981, buf = 0.9 + 0.981 = 1.881, d = 0.981 + 1.6929 = 2.6739, w = 0.954261.
    #[test]
    fn sgd_nesterov_hand_derived() {
        let opt = Optimizer::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.0,
        };
        let (mut w, mut buf) = (vec![1.0f32], vec![0.0f32]);
        for (step, e) in [(1, 0.981f32), (2, 0.954_261)] {
            let g = vec![w[0]];
            sgd_step(&mut w, &g, &mut buf, &opt.scalars(0.01, step, None, 1), 0.0);
            assert!((w[0] - e).abs() < 1e-6, "step {step}: {} vs {e}", w[0]);
        }
    }

    /// AdamW's first step moves every weight by lr·sign(g) (m̂/sqrt(v̂) = ±1) after decay:
    /// w = 1·(1 − 0.01·0.1) − 0.01 = 0.989. Second step, g = 0.989:
    /// m = 0.1·1·0.9 + 0.1·0.989 = 0.1889, v = 0.001·0.999 + 0.001·0.978121 = 0.001977121,
    /// m̂ = 0.1889/0.19, v̂ = 0.001977121/0.001999, w = 0.989·0.999 − 0.01·m̂/(sqrt(v̂)+1e-8).
    #[test]
    fn adamw_hand_derived() {
        let opt = Optimizer::AdamW {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let (mut w, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
        let g = vec![w[0]];
        adamw_step(
            &mut w,
            &g,
            &mut m,
            &mut v,
            &opt.scalars(0.01, 1, None, 1),
            0.0,
        );
        assert!((w[0] - 0.989).abs() < 1e-6, "step 1: {}", w[0]);
        let g = vec![w[0]];
        adamw_step(
            &mut w,
            &g,
            &mut m,
            &mut v,
            &opt.scalars(0.01, 2, None, 1),
            0.0,
        );
        let mhat = 0.1889f64 / 0.19;
        let vhat = 0.001_977_121f64 / 0.001_999;
        let e = 0.989 * 0.999 - 0.01 * mhat / (vhat.sqrt() + 1e-8);
        assert!(
            (f64::from(w[0]) - e).abs() < 2e-6,
            "step 2: {} vs {e}",
            w[0]
        );
    }

    /// Clipping scales the gradient to norm max_norm: with g = (3, 4), norm 5, max 1, plain
    /// SGD lr 1 moves w by g/5·(5/(5+1e-6)).
    #[test]
    fn clipping_scales_to_max_norm() {
        let opt = Optimizer::sgd(0.0);
        let mut w = vec![0.0f32, 0.0];
        let g = vec![3.0f32, 4.0];
        let n = grad_norm_sq(&g);
        sgd_step(&mut w, &g, &mut [], &opt.scalars(1.0, 1, Some(1.0), 2), n);
        let norm = (w[0] * w[0] + w[1] * w[1]).sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "clipped norm {norm}");
        let mut w2 = vec![0.0f32, 0.0];
        sgd_step(&mut w2, &g, &mut [], &opt.scalars(1.0, 1, Some(10.0), 2), n);
        assert_eq!(w2, vec![-3.0, -4.0]);
    }
}
