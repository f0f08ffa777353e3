//! Matrix product through the `gemm` crate (cache-blocked, SIMD, both cores); the
//! transpose flags become strides, so no operand is copied.

use super::Real;
use crate::op::Activation;

/// `out[m, n] = op(a) · op(b)` where op transposes when its flag is set.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) {
    // `run_op` checked the lengths; this guard keeps the unsafe call sound on its own.
    if a.len() < m * k || b.len() < k * n || out.len() < m * n || m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.iter_mut().for_each(|v| *v = T::zero());
        return;
    }
    // Row-major strides (column stride, row stride) of op(a) [m, k] and op(b) [k, n].
    let (a_cs, a_rs) = if trans_a {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if trans_b {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let parallelism = if m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths were checked against m, n, k at the top, so every index gemm forms
    // from these strides is in bounds; `out` is exclusively borrowed and does not overlap
    // the shared `a` and `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `out[m, n] = op(a) · op(b) + bias[n]`: the product exactly as [`matmul`] computes it,
/// then the bias added to each row in place, so each output takes the same two roundings
/// as `MatMul` then `BiasAdd` and the fused op is bit-identical to them. Large outputs
/// take the bias in blocks of rows on all cores (each element is one addition, so the
/// thread count cannot change a result), small ones on this thread, where a parallel
/// dispatch would cost more than the additions.
///
/// With `act` (`Op::MatMulBiasAct`), each row then takes the activation in the same pass,
/// while it is in cache: the arithmetic of `Op::Activation` on the same f32 value, so the
/// fused op is bit-identical to the three.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bias<T: Real>(
    a: &[T],
    b: &[T],
    bias: &[T],
    out: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    act: Option<Activation>,
) {
    use rayon::prelude::*;
    matmul(a, b, out, m, n, k, trans_a, trans_b);
    if n == 0 || bias.len() < n || out.len() < m * n {
        return;
    }
    let add = |rows: &mut [T]| {
        for row in rows.chunks_mut(n) {
            for (o, &bv) in row.iter_mut().zip(bias) {
                *o = *o + bv;
            }
            if let Some(f) = act {
                super::activation::forward_in_place(f, row);
            }
        }
    };
    let out = &mut out[..m * n];
    if out.len() >= 1 << 18 {
        out.par_chunks_mut(n * 64).for_each(add);
    } else {
        add(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn the_fused_bias_gives_the_bits_of_a_separate_bias_add() {
        // Below and above the size where the bias is added in parallel.
        for ((m, n, k), (ta, tb)) in [(300, 37, 19), (4000, 70, 3)].into_iter().flat_map(|s| {
            [(false, false), (true, false), (false, true), (true, true)].map(|t| (s, t))
        }) {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let bias: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let mut product = vec![0.0; m * n];
            matmul(&a, &b, &mut product, m, n, k, ta, tb);
            let mut separate = vec![0.0; m * n];
            super::super::elementwise::bias_add(&product, &bias, &mut separate);
            let mut fused = vec![0.0; m * n];
            matmul_bias(&a, &b, &bias, &mut fused, m, n, k, ta, tb, None);
            assert_eq!(fused, separate, "ta={ta} tb={tb}");
            for f in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
                let mut activated = vec![0.0; m * n];
                super::super::activation::forward(f, &separate, &mut activated);
                matmul_bias(&a, &b, &bias, &mut fused, m, n, k, ta, tb, Some(f));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fused), bits(&activated), "{f:?} ta={ta} tb={tb}");
            }
        }
    }

    #[test]
    fn all_transpose_variants_match_the_definition() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut c = vec![0.0; m * n];
            matmul(&a, &b, &mut c, m, n, k, ta, tb);
            let r = naive(&a, &b, m, n, k, ta, tb);
            for (x, y) in c.iter().zip(&r) {
                assert!((x - y).abs() < 1e-12, "ta={ta} tb={tb}: {x} vs {y}");
            }
        }
    }
}
