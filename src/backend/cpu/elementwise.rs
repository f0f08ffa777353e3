//! Element-wise and broadcast kernels (mirrored by `shaders/elementwise.wgsl`).

use super::Real;

/// `out[r, c] = x[r, c] + b[c]`.
pub fn bias_add<T: Real>(x: &[T], b: &[T], out: &mut [T]) {
    let cols = b.len();
    for (orow, xrow) in out.chunks_mut(cols).zip(x.chunks(cols)) {
        for ((o, &v), &bv) in orow.iter_mut().zip(xrow).zip(b) {
            *o = v + bv;
        }
    }
}

/// `out[c] = Σ_r dy[r, c]`, summed in row order.
pub fn bias_grad<T: Real>(dy: &[T], out: &mut [T], rows: usize) {
    let cols = out.len();
    for (c, o) in out.iter_mut().enumerate() {
        let mut acc = T::zero();
        for r in 0..rows {
            acc = acc + dy[r * cols + c];
        }
        *o = acc;
    }
}

/// `out = a + b`.
pub fn add<T: Real>(a: &[T], b: &[T], out: &mut [T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// `out = factor · x`.
pub fn scale<T: Real>(x: &[T], out: &mut [T], factor: T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * factor;
    }
}

/// Every element of `out` set to `value`.
pub fn fill<T: Real>(out: &mut [T], value: T) {
    out.iter_mut().for_each(|o| *o = value);
}
