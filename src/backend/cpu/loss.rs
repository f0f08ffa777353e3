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
