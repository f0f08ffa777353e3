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
    // `run_op` checked the lengths; `gemm_strided` checks them again for its unsafe call.
    let holds =
        |len: usize, rows: usize, cols: usize| rows.checked_mul(cols).is_some_and(|c| len >= c);
    if !(holds(a.len(), m, k) && holds(b.len(), k, n) && holds(out.len(), m, n)) || m == 0 || n == 0
    {
        return;
    }
    if k == 0 {
        out.iter_mut().for_each(|v| *v = T::zero());
        return;
    }
    if let Some(parts) = k_parts(m, n, k) {
        split_k(a, b, out, m, n, k, trans_a, trans_b, parts);
        return;
    }
    product(a, b, out, m, n, k, trans_a, trans_b);
}

/// Outputs at most this large are split along K when their sums are long enough.
const SPLIT_MAX_OUTPUTS: usize = 1 << 16;
/// Each part's share of a long K, about (the last part may be a few shorter).
const SPLIT_MIN_K: usize = 4096;
/// The parts of a split product: a constant, not the thread count, so that a result does
/// not depend on the machine it is computed on.
const SPLIT_PARTS: usize = 4;
/// Sums from this long up to `2·SPLIT_MIN_K` split in two, when the output holds at least
/// [`SPLIT_MIN_HALVES_OUTPUTS`] values (less work than that costs more to share).
const SPLIT_HALVES_MIN_K: usize = 512;
/// The smallest output split in two along a medium K (e.g. the `mlp`'s first layer,
/// [128, 256] over K = 784).
const SPLIT_MIN_HALVES_OUTPUTS: usize = 1 << 13;

/// The number of parts a product is split into along K, or `None`.
///
/// gemm shares a product between threads by blocks of the output, so a small output with
/// a long sum, such as a convolution's weight gradient ([64, 288] summing over every pixel
/// of the batch), runs on one core; its parts run on all of them. An output of a few
/// blocks with a medium sum shares badly too: the `mlp`'s first layer forward ([128, 256],
/// K = 784) took 183 µs on gemm's threads and 230 µs on one, and its training step ran
/// ~10% faster in two halves of K (BENCHMARKS.md).
fn k_parts(m: usize, n: usize, k: usize) -> Option<usize> {
    let outputs = m.checked_mul(n)?;
    if outputs > SPLIT_MAX_OUTPUTS {
        return None;
    }
    let parts = if k >= 2 * SPLIT_MIN_K {
        SPLIT_PARTS.min(k / SPLIT_MIN_K)
    } else if k >= SPLIT_HALVES_MIN_K && outputs >= SPLIT_MIN_HALVES_OUTPUTS {
        2
    } else {
        1
    };
    (parts >= 2).then_some(parts)
}

/// `out = op(a) · op(b)` as `parts` products over consecutive ranges of K, computed in
/// parallel and added in order (part 0 + part 1 + ..), so the result is the same whatever
/// the thread count.
#[allow(clippy::too_many_arguments)]
fn split_k<T: Real>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    parts: usize,
) {
    use rayon::prelude::*;
    let len = k.div_ceil(parts);
    let sums: Vec<Vec<T>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let (k0, k1) = (p * len, ((p + 1) * len).min(k));
            // op(a)[:, k0..k1] and op(b)[k0..k1, :], sliced in memory: whole rows of a
            // stored [K, M] or of b stored [K, N]; otherwise the same rows with an offset,
            // which the strides below skip over.
            let mut part = vec![T::zero(); m * n];
            let kk = k1 - k0;
            let (pa, a_strides) = if trans_a {
                (&a[k0 * m..k1 * m], (m, 1))
            } else {
                (&a[k0..], (1, k))
            };
            let (pb, b_strides) = if trans_b {
                (&b[k0..], (k, 1))
            } else {
                (&b[k0 * n..k1 * n], (1, n))
            };
            // A large part also runs on gemm's threads (which share it by output blocks,
            // so its bits do not change), so machines with more cores than parts use them.
            let parallel = m * n * kk >= 1 << 18;
            gemm_strided(pa, a_strides, pb, b_strides, &mut part, m, n, kk, parallel);
            part
        })
        .collect();
    out[..m * n].copy_from_slice(&sums[0]);
    for part in &sums[1..] {
        for (o, &v) in out.iter_mut().zip(part) {
            *o = *o + v;
        }
    }
}

/// `out [m, n] = op(a) [m, k] · op(b) [k, n]` in one gemm call, on all cores when large.
#[allow(clippy::too_many_arguments)]
fn product<T: Real>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) {
    // Row-major strides (column stride, row stride) of op(a) [m, k] and op(b) [k, n].
    let a_strides = if trans_a { (m, 1) } else { (1, k) };
    let b_strides = if trans_b { (k, 1) } else { (1, n) };
    let parallel = m * n * k >= 1 << 18;
    gemm_strided(a, a_strides, b, b_strides, out, m, n, k, parallel);
}

/// `out [m, n] = A · B` with `A[i, p] = a[i·a_rs + p·a_cs]` and `B[p, j] = b[p·b_rs +
/// j·b_cs]` (strides given as (column, row)), in one gemm call; nothing when an index the
/// strides form would fall outside a slice.
#[allow(clippy::too_many_arguments)]
fn gemm_strided<T: Real>(
    a: &[T],
    (a_cs, a_rs): (usize, usize),
    b: &[T],
    (b_cs, b_rs): (usize, usize),
    out: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    parallel: bool,
) {
    // The largest index the strides form, when no step of it overflows.
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| {
        let r = (rows - 1).checked_mul(rs)?;
        r.checked_add((cols - 1).checked_mul(cs)?)
    };
    let fits = |len: usize, last: Option<usize>| last.is_some_and(|l| l < len);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    if !(fits(a.len(), last(m, a_rs, k, a_cs))
        && fits(b.len(), last(k, b_rs, n, b_cs))
        && m.checked_mul(n).is_some_and(|mn| out.len() >= mn))
    {
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the largest index gemm forms from each operand's strides was checked against
    // its length above, in arithmetic that cannot wrap (strides are non-negative, so that
    // index is the largest), and `out` holds m·n values; `out` is exclusively borrowed and
    // does not overlap the shared `a` and `b`.
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
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
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

    #[test]
    fn long_sums_into_small_outputs_are_split_whatever_the_thread_count() {
        // Long and medium sums, K odd in the second: parts of unequal length.
        for (m, n, k) in [(6, 5, 16_999), (96, 90, 701)] {
            split_products_are_exact_and_independent_of_threads(m, n, k);
        }
        let (m, n) = (6, 5);
        assert_eq!(k_parts(m, n, 16_999), Some(4));
        assert_eq!(k_parts(m, n, 9_000), Some(2));
        assert_eq!(k_parts(300, 300, 16_999), None);
        assert_eq!(k_parts(m, n, 8191), None);
        // Medium sums: halves for outputs of a few gemm blocks, not for tiny ones.
        assert_eq!(k_parts(128, 256, 784), Some(2));
        assert_eq!(k_parts(128, 64, 512), Some(2));
        assert_eq!(k_parts(128, 256, 511), None);
        assert_eq!(k_parts(128, 10, 784), None);
        assert_eq!(k_parts(256, 512, 784), None);
    }

    /// A product split along K (checked by the caller) gives the exact integer product and,
    /// in reals, the same bits on one thread as on three.
    fn split_products_are_exact_and_independent_of_threads(m: usize, n: usize, k: usize) {
        assert!(k_parts(m, n, k).is_some(), "{m}x{n}x{k} is not split");
        // Integers: every partial sum is exact, so a part left out, added twice or given
        // another's range shows as a wrong number.
        let int = |i: usize| ((i / 3 + i / 5) % 7) as f32 - 3.0;
        let real = |i: usize| (i as f32 * 0.37).sin();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a: Vec<f32> = (0..m * k).map(int).collect();
            let b: Vec<f32> = (0..k * n).map(|i| int(i + 11)).collect();
            let mut got = vec![0.0; m * n];
            matmul(&a, &b, &mut got, m, n, k, ta, tb);
            let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
            let want = naive(&wide(&a), &wide(&b), m, n, k, ta, tb);
            assert_eq!(wide(&got), want, "ta={ta} tb={tb}");
            // Reals: the same bits on one thread as on three (the parts are added in
            // order, not as they finish), and close to the exact product.
            let a: Vec<f32> = (0..m * k).map(real).collect();
            let b: Vec<f32> = (0..k * n).map(|i| real(i + 11)).collect();
            let on = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut c = vec![0.0f32; m * n];
                pool.install(|| matmul(&a, &b, &mut c, m, n, k, ta, tb));
                c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            let one = on(1);
            assert_eq!(one, on(3), "ta={ta} tb={tb}");
            let exact = naive(&wide(&a), &wide(&b), m, n, k, ta, tb);
            for (x, y) in one.iter().zip(&exact) {
                let x = f64::from(f32::from_bits(*x));
                assert!((x - y).abs() < 1e-3, "ta={ta} tb={tb}: {x} vs {y}");
            }
        }
    }
}
