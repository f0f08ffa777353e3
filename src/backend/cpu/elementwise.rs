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

/// `out[c] = Σ_r dy[r, c]`, summed in row order. The rows are walked in memory order,
/// each added to all the column sums at once: every column still sums its rows first to
/// last (the GPU kernel's order), but `dy` is read once, contiguously, where a column at a
/// time read it `cols` times with a stride (a tenth of a `cnn` step on the CPU).
pub fn bias_grad<T: Real>(dy: &[T], out: &mut [T], rows: usize) {
    let cols = out.len();
    out.iter_mut().for_each(|o| *o = T::zero());
    if cols == 0 {
        return;
    }
    for row in dy.chunks_exact(cols).take(rows) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o = *o + v;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The column sums in the same row order, a column at a time: the same bits.
    #[test]
    fn bias_grad_sums_each_column_in_row_order() {
        let (rows, cols) = (1000, 37);
        let dy: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 1009) as f32 / 1009.0 - 0.5 + (i % 3) as f32 * 1e4)
            .collect();
        let mut out = vec![f32::NAN; cols];
        bias_grad(&dy, &mut out, rows);
        for (c, &got) in out.iter().enumerate() {
            let want = (0..rows).fold(0.0f32, |acc, r| acc + dy[r * cols + c]);
            assert_eq!(got.to_bits(), want.to_bits(), "column {c}");
        }
    }
}
