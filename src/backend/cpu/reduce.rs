//! Reductions and classification metrics (mirrored by `shaders/reduce.wgsl`).

use super::Real;

/// Σ x.
pub fn sum<T: Real>(x: &[T]) -> T {
    x.iter().fold(T::zero(), |s, &v| s + v)
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
