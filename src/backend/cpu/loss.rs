//! Losses and their gradients (mirrored by `shaders/loss.wgsl`). Labels are f32 holding
//! class indices, checked on the host before they reach a kernel.

use super::Real;

/// Row max and log-sum-exp of one row of logits.
fn log_sum_exp<T: Real>(row: &[T]) -> T {
    let m = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    let s = row.iter().fold(T::zero(), |s, &v| s + (v - m).exp());
    m + s.ln()
}

/// Mean over rows of −Σ_c q_c log softmax(x)_c with q = (1−ε)·onehot(label) + ε/C,
/// PyTorch's `cross_entropy(..., label_smoothing=ε)`.
pub fn cross_entropy<T: Real>(logits: &[T], labels: &[T], cols: usize, smoothing: f32) -> T {
    let eps = T::of(f64::from(smoothing));
    let c = T::of(cols as f64);
    let mut total = T::zero();
    for (row, &label) in logits.chunks(cols).zip(labels) {
        let lse = log_sum_exp(row);
        let y = label.to_usize().unwrap_or(0).min(cols - 1);
        let nll = lse - row[y];
        let mean_nll = row.iter().fold(T::zero(), |s, &v| s + (lse - v)) / c;
        total = total + (T::one() - eps) * nll + eps * mean_nll;
    }
    total / T::of(labels.len() as f64)
}

/// d(cross_entropy)/d(logits) · dloss = (softmax(x) − q) · dloss / rows.
pub fn cross_entropy_grad<T: Real>(
    logits: &[T],
    labels: &[T],
    dloss: T,
    out: &mut [T],
    cols: usize,
    smoothing: f32,
) {
    let eps = T::of(f64::from(smoothing));
    let off = eps / T::of(cols as f64);
    let scale = dloss / T::of(labels.len() as f64);
    for ((row, &label), o) in logits.chunks(cols).zip(labels).zip(out.chunks_mut(cols)) {
        let lse = log_sum_exp(row);
        let y = label.to_usize().unwrap_or(0).min(cols - 1);
        for (j, (oj, &v)) in o.iter_mut().zip(row).enumerate() {
            let target = if j == y { T::one() - eps + off } else { off };
            *oj = ((v - lse).exp() - target) * scale;
        }
    }
}

/// Mean of (pred − target)².
pub fn mse<T: Real>(pred: &[T], target: &[T]) -> T {
    let s = pred
        .iter()
        .zip(target)
        .fold(T::zero(), |s, (&p, &t)| s + (p - t) * (p - t));
    s / T::of(pred.len() as f64)
}

/// 2 (pred − target) · dloss / n.
pub fn mse_grad<T: Real>(pred: &[T], target: &[T], dloss: T, out: &mut [T]) {
    let scale = T::of(2.0) * dloss / T::of(pred.len() as f64);
    for ((o, &p), &t) in out.iter_mut().zip(pred).zip(target) {
        *o = (p - t) * scale;
    }
}

/// Mean over elements of `term(pred, target)`, summed in index order.
fn mean_loss<T: Real>(pred: &[T], target: &[T], term: impl Fn(T, T) -> T) -> T {
    let mut s = T::zero();
    for (&p, &t) in pred.iter().zip(target) {
        s = s + term(p, t);
    }
    s / T::of(pred.len() as f64)
}

/// `slope(pred, target) · dloss / n` per element: the gradient of a [`mean_loss`].
fn mean_loss_grad<T: Real>(
    pred: &[T],
    target: &[T],
    dloss: T,
    out: &mut [T],
    slope: impl Fn(T, T) -> T,
) {
    let scale = dloss / T::of(pred.len() as f64);
    for ((o, &p), &t) in out.iter_mut().zip(pred).zip(target) {
        *o = slope(p, t) * scale;
    }
}

/// sign(d) with sign(0) = 0 and, as `torch.sign`, 0 for NaN (both comparisons are false).
fn sign<T: Real>(d: T) -> T {
    if d > T::zero() {
        T::one()
    } else if d < T::zero() {
        -T::one()
    } else {
        T::zero()
    }
}

/// max(x, 0) − x·t + ln(1 + e^(−|x|)), with max(x, 0) − x·t evaluated as x·(1 − t) or
/// −x·t: for targets in [0, 1] both are products of non-negative factors, so a logit far
/// out with a target near 0 or 1 does not lose its digits to a cancellation. The exponent
/// is never positive, so nothing overflows, and 1 + e^(−|x|) lies in (1, 2].
fn bce_term<T: Real>(x: T, t: T) -> T {
    let linear = if x > T::zero() {
        x * (T::one() - t)
    } else {
        -x * t
    };
    linear + (T::one() + (-x.abs()).exp()).ln()
}

/// 1/(1 + e^(−x)) from e^(−|x|), so the exponential never overflows (the WGSL may assume
/// no infinities).
fn stable_sigmoid<T: Real>(x: T) -> T {
    let e = (-x.abs()).exp();
    if x >= T::zero() {
        T::one() / (T::one() + e)
    } else {
        e / (T::one() + e)
    }
}

/// PyTorch's `binary_cross_entropy_with_logits(x, t)` with reduction 'mean'.
pub fn bce_with_logits<T: Real>(logits: &[T], targets: &[T]) -> T {
    mean_loss(logits, targets, bce_term)
}

/// (sigmoid(x) − t) · dloss / n.
pub fn bce_with_logits_grad<T: Real>(logits: &[T], targets: &[T], dloss: T, out: &mut [T]) {
    mean_loss_grad(logits, targets, dloss, out, |x, t| stable_sigmoid(x) - t);
}

/// Mean of |pred − target|.
pub fn l1<T: Real>(pred: &[T], target: &[T]) -> T {
    mean_loss(pred, target, |p, t| (p - t).abs())
}

/// sign(pred − target) · dloss / n.
pub fn l1_grad<T: Real>(pred: &[T], target: &[T], dloss: T, out: &mut [T]) {
    mean_loss_grad(pred, target, dloss, out, |p, t| sign(p - t));
}

/// One element of `smooth_l1_loss`, in PyTorch's operation order. β = 0 never takes the
/// quadratic branch, so it is the L1 loss without a division by zero.
fn smooth_l1_term<T: Real>(d: T, beta: T) -> T {
    let z = d.abs();
    if z < beta {
        T::of(0.5) * z * z / beta
    } else {
        z - T::of(0.5) * beta
    }
}

/// PyTorch's backward of `smooth_l1_loss` for one element: ±1 outside (−β, β), d/β inside.
/// d = 0 with β = 0 lies on neither side; it gets sign(0) = 0, as PyTorch's L1 fallback.
fn smooth_l1_slope<T: Real>(d: T, beta: T) -> T {
    if d < -beta {
        -T::one()
    } else if d > beta {
        T::one()
    } else if beta > T::zero() {
        d / beta
    } else {
        T::zero()
    }
}

/// Mean of PyTorch's `smooth_l1_loss` terms: 0.5·d²/β where |d| < β, |d| − 0.5·β elsewhere.
pub fn smooth_l1<T: Real>(pred: &[T], target: &[T], beta: f32) -> T {
    let beta = T::of(f64::from(beta));
    mean_loss(pred, target, |p, t| smooth_l1_term(p - t, beta))
}

/// d/β inside (−β, β) and sign(d) outside, times dloss / n.
pub fn smooth_l1_grad<T: Real>(pred: &[T], target: &[T], dloss: T, out: &mut [T], beta: f32) {
    let beta = T::of(f64::from(beta));
    mean_loss_grad(pred, target, dloss, out, |p, t| {
        smooth_l1_slope(p - t, beta)
    });
}

/// One element of `huber_loss`, in PyTorch's operation order.
fn huber_term<T: Real>(d: T, delta: T) -> T {
    let z = d.abs();
    if z < delta {
        T::of(0.5) * z * z
    } else {
        delta * (z - T::of(0.5) * delta)
    }
}

/// PyTorch's backward of `huber_loss` for one element: d clamped to [−δ, δ].
fn huber_slope<T: Real>(d: T, delta: T) -> T {
    if d < -delta {
        -delta
    } else if d > delta {
        delta
    } else {
        d
    }
}

/// Mean of PyTorch's `huber_loss` terms: 0.5·d² where |d| < δ, δ·(|d| − 0.5·δ) elsewhere.
pub fn huber<T: Real>(pred: &[T], target: &[T], delta: f32) -> T {
    let delta = T::of(f64::from(delta));
    mean_loss(pred, target, |p, t| huber_term(p - t, delta))
}

/// d inside [−δ, δ] and δ·sign(d) outside, times dloss / n.
pub fn huber_grad<T: Real>(pred: &[T], target: &[T], dloss: T, out: &mut [T], delta: f32) {
    let delta = T::of(f64::from(delta));
    mean_loss_grad(pred, target, dloss, out, |p, t| huber_slope(p - t, delta));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn full_label_smoothing_is_the_cross_entropy_against_uniform_targets() {
        // ε = 1 (PyTorch accepts it): q = 1/C for every class, whatever the label, so the
        // loss is the mean over classes of −log softmax, and the gradient softmax − 1/C.
        let logits = [1.0f64, -2.0, 0.5, 3.0, 0.0, -1.0];
        let probs = |row: &[f64]| {
            let z: f64 = row.iter().map(|v| v.exp()).sum();
            row.iter().map(|v| v.exp() / z).collect::<Vec<_>>()
        };
        let mut want = 0.0;
        for row in logits.chunks(3) {
            want += probs(row).iter().map(|p| -p.ln()).sum::<f64>() / 3.0;
        }
        want /= 2.0;
        for labels in [[0.0, 1.0], [2.0, 2.0]] {
            let got = cross_entropy(&logits, &labels, 3, 1.0);
            assert!(close(got, want), "{got} vs {want}");
            let mut grad = [0.0; 6];
            cross_entropy_grad(&logits, &labels, 1.0, &mut grad, 3, 1.0);
            for (r, row) in logits.chunks(3).enumerate() {
                for (j, p) in probs(row).iter().enumerate() {
                    let want = (p - 1.0 / 3.0) / 2.0;
                    assert!(close(grad[r * 3 + j], want), "{r},{j}");
                }
            }
        }
    }

    #[test]
    fn bce_at_zero_logit_is_ln_2_and_its_gradient_half_over_n() {
        // σ(0) = 1/2: the loss is −ln(1/2) whatever the target, the slope σ(0) − t.
        let x = [0.0f64, 0.0];
        let t = [1.0, 0.0];
        assert!(close(bce_with_logits(&x, &t), std::f64::consts::LN_2));
        let mut g = [0.0; 2];
        bce_with_logits_grad(&x, &t, 1.0, &mut g);
        assert!(close(g[0], -0.25) && close(g[1], 0.25), "{g:?}");
    }

    #[test]
    fn bce_matches_the_naive_form_and_stays_finite_for_large_logits() {
        // −[t·ln σ(x) + (1 − t)·ln(1 − σ(x))] where that form is still accurate.
        let (x, t) = (1.5f64, 0.3);
        let s = 1.0 / (1.0 + (-x).exp());
        let naive = -(t * s.ln() + (1.0 - t) * (1.0 - s).ln());
        assert!(close(bce_with_logits(&[x], &[t]), naive));
        let mut g = [0.0];
        bce_with_logits_grad(&[x], &[t], 2.0, &mut g);
        assert!(close(g[0], 2.0 * (s - t)));
        // ±100 overflow e^(∓x) in f32; the stable form gives |x|·(1 − t) or |x|·t exactly.
        let big = bce_with_logits(&[100.0f32, -100.0], &[0.25, 0.25]);
        assert!((big - (75.0 + 25.0) / 2.0).abs() < 1e-4, "{big}");
        let mut g = [0.0f32; 2];
        bce_with_logits_grad(&[100.0f32, -100.0], &[0.25, 0.25], 1.0, &mut g);
        assert_eq!(g, [0.375, -0.125]);
    }

    #[test]
    fn l1_and_its_sign_gradient_with_sign_of_zero_zero() {
        let p = [1.0f64, -2.0, 0.5];
        let t = [0.0, 1.0, 0.5];
        assert!(close(l1(&p, &t), (1.0 + 3.0) / 3.0));
        let mut g = [9.0; 3];
        l1_grad(&p, &t, 3.0, &mut g);
        assert_eq!(g, [1.0, -1.0, 0.0]);
    }

    #[test]
    fn smooth_l1_on_each_side_of_beta() {
        // β = 1: d = 0.5 is inside (0.5·0.25/1), d = −3 outside (3 − 0.5).
        let p = [0.5f64, -3.0];
        let t = [0.0, 0.0];
        assert!(close(smooth_l1(&p, &t, 1.0), (0.125 + 2.5) / 2.0));
        let mut g = [0.0; 2];
        smooth_l1_grad(&p, &t, 1.0, &mut g, 1.0);
        assert_eq!(g, [0.25, -0.5]);
        // β = 0.5 puts d = 0.5 on the linear side, where both branches meet: 0.5 − 0.25.
        assert!(close(smooth_l1(&[0.5f64], &[0.0], 0.5), 0.25));
        smooth_l1_grad(&p, &t, 1.0, &mut g, 0.5);
        assert_eq!(g, [0.5, -0.5]);
    }

    #[test]
    fn smooth_l1_with_beta_zero_is_l1() {
        let p = [0.25f64, -1.5, 2.0, 1.0];
        let t = [0.0, 0.5, 2.0, -1.0];
        assert!(close(smooth_l1(&p, &t, 0.0), l1(&p, &t)));
        let (mut a, mut b) = ([0.0; 4], [0.0; 4]);
        smooth_l1_grad(&p, &t, 0.7, &mut a, 0.0);
        l1_grad(&p, &t, 0.7, &mut b);
        assert_eq!(a, b);
        assert_eq!(a[2], 0.0);
    }

    #[test]
    fn huber_on_each_side_of_delta() {
        // δ = 0.3: d = 0.2 is inside (0.5·0.04), d = −2 outside (0.3·(2 − 0.15)).
        // The op carries δ as f32, so the expectation uses the same value.
        let delta = f64::from(0.3f32);
        let p = [0.2f64, -2.0];
        let t = [0.0, 0.0];
        let expected = (0.5 * 0.2 * 0.2 + delta * (2.0 - 0.5 * delta)) / 2.0;
        assert!(close(huber(&p, &t, 0.3), expected));
        let mut g = [0.0; 2];
        huber_grad(&p, &t, 2.0, &mut g, 0.3);
        assert!(close(g[0], 0.2) && close(g[1], -delta), "{g:?}");
        // Huber is β·smooth_l1 with β = δ.
        let q = [0.1f64, 0.7, -0.2, 3.0];
        let r = [0.0, -0.1, 0.4, 1.0];
        let scaled = 0.5 * smooth_l1(&q, &r, 0.5);
        assert!(close(huber(&q, &r, 0.5), scaled));
    }
}
