//! Reductions and classification metrics (mirrored by `shaders/reduce.wgsl`).

use super::Real;

/// Σ x.
pub fn sum<T: Real>(x: &[T]) -> T {
    x.iter().fold(T::zero(), |s, &v| s + v)
}

/// Σ x², the L2 penalty.
pub fn sum_squares<T: Real>(x: &[T]) -> T {
    x.iter().fold(T::zero(), |s, &v| s + v * v)
}

/// Σ |x|, the L1 penalty.
pub fn sum_abs<T: Real>(x: &[T]) -> T {
    x.iter().fold(T::zero(), |s, &v| s + v.abs())
}

/// d(Σ x²)/dx · dy = 2·x·dy.
pub fn sum_squares_grad<T: Real>(x: &[T], dy: T, out: &mut [T]) {
    let two_dy = T::of(2.0) * dy;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * two_dy;
    }
}

/// d(Σ |x|)/dx · dy = sign(x)·dy, with sign(0) = 0 as `torch.sign`.
pub fn sum_abs_grad<T: Real>(x: &[T], dy: T, out: &mut [T]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = if v > T::zero() {
            dy
        } else if v < T::zero() {
            -dy
        } else {
            T::zero()
        };
    }
}

/// Index of each row's maximum (the first on ties, as `torch.argmax`), as a float.
pub fn argmax_rows<T: Real>(x: &[T], out: &mut [T], cols: usize) {
    for (row, o) in x.chunks(cols).zip(out.iter_mut()) {
        *o = T::of(argmax(row) as f64);
    }
}

fn argmax<T: Real>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// How many rows have their argmax equal to the label.
pub fn correct<T: Real>(logits: &[T], labels: &[T], cols: usize) -> T {
    let n = logits
        .chunks(cols)
        .zip(labels)
        .filter(|(row, &l)| T::of(argmax(row) as f64) == l)
        .count();
    T::of(n as f64)
}
