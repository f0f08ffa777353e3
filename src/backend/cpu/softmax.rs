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
