//! The orthogonal initialiser (`nn.init.orthogonal_`): a thin QR of a Gaussian matrix by
//! Householder reflections, in f64.

use crate::rng::Philox;

/// PyTorch's `orthogonal_`: a standard normal [rows, cols] matrix (cols = len / rows),
/// factored in its tall orientation so that Q has orthonormal columns, Q's columns signed
/// by R's diagonal, transposed back when rows < cols, times `gain`.
pub(super) fn orthogonal(out: &mut [f32], rows: usize, gain: f32, rng: &mut Philox) {
    if out.is_empty() {
        return;
    }
    let cols = out.len() / rows;
    let flat: Vec<f64> = (0..rows * cols).map(|_| f64::from(rng.normal())).collect();
    let wide = rows < cols;
    let (m, n) = if wide { (cols, rows) } else { (rows, cols) };
    let mut a = if wide {
        transpose(&flat, rows, cols)
    } else {
        flat
    };
    let q = thin_q(&mut a, m, n);
    let q = if wide { transpose(&q, m, n) } else { q };
    let gain = f64::from(gain);
    out.iter_mut()
        .zip(&q)
        .for_each(|(o, &x)| *o = (gain * x) as f32);
}

/// The transpose of the row-major `rows × cols` matrix `a`.
fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// Q (m × n, row-major) of the thin Householder QR of the row-major m × n matrix `a`
/// (m ≥ n), with column j multiplied by sign(R[j][j]) as PyTorch's `orthogonal_` does, so
/// that the factorisation is the unique one whose R has a positive diagonal. `a` is left
/// holding R in its upper triangle.
fn thin_q(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    // Householder rather than Gram-Schmidt: Q stays orthogonal to rounding even when the
    // random matrix is badly conditioned, which a large square weight often is.
    let mut reflectors: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n);
    for k in 0..n {
        let norm = (k..m)
            .map(|i| a[i * n + k] * a[i * n + k])
            .sum::<f64>()
            .sqrt();
        // Reflecting onto −sign(x₀)·‖x‖·e₁ keeps x₀ − α free of cancellation.
        let alpha = if a[k * n + k] >= 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| a[i * n + k]).collect();
        v[0] -= alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        apply_reflector(a, n, k, &v, vv, k..n);
        reflectors.push((v, vv));
    }
    let mut q = vec![0.0; m * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    // Q = H₀·H₁·…·Hₙ₋₁ applied to the first n columns of the identity, innermost first.
    for (k, (v, vv)) in reflectors.iter().enumerate().rev() {
        apply_reflector(&mut q, n, k, v, *vv, 0..n);
    }
    for j in 0..n {
        // PyTorch multiplies by sign(0) = 0 for an exactly singular column (probability
        // zero); keeping +1 there leaves Q orthonormal instead.
        if a[j * n + j] < 0.0 {
            (0..m).for_each(|i| q[i * n + j] = -q[i * n + j]);
        }
    }
    q
}

/// Applies the reflector I − 2·v·vᵀ/(vᵀv), acting on rows k.., to `columns` of the
/// row-major matrix `a` with `n` columns. A zero v (a column already zero) is the identity.
fn apply_reflector(
    a: &mut [f64],
    n: usize,
    k: usize,
    v: &[f64],
    vv: f64,
    columns: std::ops::Range<usize>,
) {
    if vv == 0.0 {
        return;
    }
    for j in columns {
        let dot: f64 = v
            .iter()
            .enumerate()
            .map(|(r, x)| x * a[(k + r) * n + j])
            .sum();
        let s = 2.0 * dot / vv;
        v.iter()
            .enumerate()
            .for_each(|(r, x)| a[(k + r) * n + j] -= s * x);
    }
}
