//! Row softmax and its gradient (mirrored by `shaders/softmax.wgsl`), rows on all cores
//! when there are many values (each row is computed by one call, so the bits do not depend
//! on the thread count).

use super::{for_each_sample, Real};

/// Softmax of each row of `x` ([rows, cols]), max-subtracted for stability.
pub fn softmax<T: Real>(x: &[T], out: &mut [T], cols: usize) {
    for_each_sample(out, cols, |r, o| {
        let row = &x[r * cols..][..cols];
        let m = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let mut total = T::zero();
        for (oi, &v) in o.iter_mut().zip(row) {
            *oi = (v - m).exp();
            total = total + *oi;
        }
        for oi in o.iter_mut() {
            *oi = *oi / total;
        }
    });
}

/// Log-softmax of each row of `x` ([rows, cols]): `(x − max) − log Σ exp(x − max)`, as
/// PyTorch's log_softmax (the shifted value first, then the log-sum subtracted).
pub fn log_softmax<T: Real>(x: &[T], out: &mut [T], cols: usize) {
    for_each_sample(out, cols, |r, o| {
        let row = &x[r * cols..][..cols];
        let m = row.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let total = row.iter().fold(T::zero(), |t, &v| t + (v - m).exp());
        let log_total = total.ln();
        for (oi, &v) in o.iter_mut().zip(row) {
            *oi = (v - m) - log_total;
        }
    });
}

/// `dx = dy − exp(y)·Σ_c dy` per row, from the log-softmax output `y` (PyTorch's
/// log_softmax_backward).
pub fn log_softmax_grad<T: Real>(y: &[T], dy: &[T], out: &mut [T], cols: usize) {
    for_each_sample(out, cols, |r, o| {
        let (yr, gr) = (&y[r * cols..][..cols], &dy[r * cols..][..cols]);
        let sum = gr.iter().fold(T::zero(), |s, &g| s + g);
        for ((oi, &yv), &gv) in o.iter_mut().zip(yr).zip(gr) {
            *oi = gv - yv.exp() * sum;
        }
    });
}

/// `dx = y · (dy − Σ_c dy·y)` per row, from the softmax output `y`.
pub fn softmax_grad<T: Real>(y: &[T], dy: &[T], out: &mut [T], cols: usize) {
    for_each_sample(out, cols, |r, o| {
        let (yr, gr) = (&y[r * cols..][..cols], &dy[r * cols..][..cols]);
        let dot = yr.iter().zip(gr).fold(T::zero(), |s, (&a, &b)| s + a * b);
        for ((oi, &yv), &gv) in o.iter_mut().zip(yr).zip(gr) {
            *oi = yv * (gv - dot);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_is_the_log_of_softmax_and_stable_for_large_logits() {
        // log(e^1 / (e^1 + e^2 + e^3)) = 1 − 3 − log(e^−2 + e^−1 + 1), and so on.
        let x = [1.0f64, 2.0, 3.0, 1000.0, 0.0, -1000.0];
        let mut y = [0.0; 6];
        log_softmax(&x, &mut y, 3);
        let lse = (-2.0f64).exp() + (-1.0f64).exp() + 1.0;
        for (j, want) in [-2.0 - lse.ln(), -1.0 - lse.ln(), -lse.ln()]
            .iter()
            .enumerate()
        {
            assert!((y[j] - want).abs() < 1e-15, "{j}: {} vs {want}", y[j]);
        }
        // exp(1000) overflows; the shifted form does not: [0, −1000, −2000].
        assert_eq!(&y[3..], &[0.0, -1000.0, -2000.0]);
        let mut p = [0.0; 6];
        softmax(&x, &mut p, 3);
        for (a, b) in y.iter().zip(&p) {
            assert!((a.exp() - b).abs() < 1e-15);
        }
        // Its gradient from the output: dy − softmax·Σdy, which sums to 0 over a row.
        let dy = [0.3, -1.0, 0.5, 1.0, 2.0, -0.5];
        let mut dx = [0.0; 6];
        log_softmax_grad(&y, &dy, &mut dx, 3);
        let sum = -0.2;
        for j in 0..3 {
            assert!((dx[j] - (dy[j] - p[j] * sum)).abs() < 1e-15);
        }
        assert!(dx[..3].iter().sum::<f64>().abs() < 1e-15);
        assert_eq!(dx[3], 1.0 - 2.5);
    }
}
