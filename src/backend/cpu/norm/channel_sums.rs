//! Per-channel sums over `[N, C, S]` in one fixed order, on all cores.
//!
//! A channel's `N·S` values lie in `N` rows of `S` contiguous values. Each row is summed in
//! [`LANES`] interleaved partial sums (value `i` into lane `i mod LANES`, then the lanes
//! pairwise), which breaks the one long dependency chain of a running sum so that the loop
//! vectorises, and rows are summed in parallel; the rows' sums are then added in order of
//! `n`. The order depends on the shape alone, never on the thread count, and the error
//! grows with `log(LANES) + N + S / LANES` additions instead of `N·S`.

use crate::backend::cpu::{for_each_chunk, Real};

/// Interleaved partial sums per row (one AVX register of f32).
const LANES: usize = 8;

/// Values (N·C·S) below which one thread does the work: a parallel split costs more than
/// summing a few thousand values.
const PARALLEL_VALUES: usize = 1 << 15;

/// `Σ f(a[i])` over a row, in [`LANES`] interleaved partial sums added pairwise.
pub(super) fn lane_sum<T: Real>(a: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            acc[j] = acc[j] + f(chunk[j]);
        }
    }
    for (j, &v) in tail.iter().enumerate() {
        acc[j] = acc[j] + f(v);
    }
    pairwise(&acc)
}

/// `Σ f(a[i], b[i])` over two rows of one length, as [`lane_sum`].
pub(super) fn lane_sum2<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..LANES {
            acc[j] = acc[j] + f(x[j], y[j]);
        }
    }
    for (j, (&x, &y)) in ta.iter().zip(tb).enumerate() {
        acc[j] = acc[j] + f(x, y);
    }
    pairwise(&acc)
}

/// `Σ f(i)` over `0..len`, as [`lane_sum`]: for sums over several rows at once.
pub(super) fn lane_sum_by<T: Real>(len: usize, f: impl Fn(usize) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    for i0 in (0..len).step_by(LANES) {
        for (j, a) in acc.iter_mut().enumerate().take(len - i0) {
            *a = *a + f(i0 + j);
        }
    }
    pairwise(&acc)
}

/// The lanes added in pairs: ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)).
fn pairwise<T: Real>(acc: &[T; LANES]) -> T {
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// For each channel `k`, `Σ_n row(n, k)` in order of `n`, where `row` sums the channel's
/// `n`-th row (a [`lane_sum`] of the `[N, C, S]` slice at `(n·C + k)·S`); the rows are
/// computed on all cores when there are many values. `values` is `N·C·S`, for that
/// decision only.
pub(super) fn channel_sums<T: Real>(
    n: usize,
    c: usize,
    values: usize,
    row: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    let mut rows = vec![T::zero(); n * c];
    let fill = |(ni, sums): (usize, &mut [T])| {
        for (k, s) in sums.iter_mut().enumerate() {
            *s = row(ni, k);
        }
    };
    if c > 0 {
        if values >= PARALLEL_VALUES {
            rows.par_chunks_mut(c).enumerate().for_each(fill);
        } else {
            rows.chunks_mut(c).enumerate().for_each(fill);
        }
    }
    let mut sums = vec![T::zero(); c];
    for per_n in rows.chunks(c.max(1)) {
        for (s, &r) in sums.iter_mut().zip(per_n) {
            *s = *s + r;
        }
    }
    sums
}

/// Channels per block of [`column_sums`]: 1 KiB of f32 sums, which stay in L1 while every
/// row adds into them.
const COLUMN_BLOCK: usize = 256;

/// For `S = 1` (`[N, C]`, batchnorm1d), where a channel's rows are single values and
/// [`channel_sums`] would spend a whole [`lane_sum`] on each: `add(k0, sums)` adds every
/// row's terms for channels `k0..k0 + sums.len()` into `sums`, rows in order of `n`, so
/// each channel takes `((0 + t₀) + t₁) + …`, the same additions in the same order as
/// [`channel_sums`] (a one-value lane sum is the value itself). Blocks of channels run on
/// all cores when there are many values; the order within a channel never changes.
pub(super) fn column_sums<T: Real>(
    c: usize,
    values: usize,
    add: impl Fn(usize, &mut [T]) + Sync,
) -> Vec<T> {
    let mut sums = vec![T::zero(); c];
    let parallel = values >= PARALLEL_VALUES && c > COLUMN_BLOCK;
    for_each_chunk(&mut sums, COLUMN_BLOCK, parallel, add);
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_add_each_value_once_in_the_stated_order() {
        // 19 values: lanes 0..2 take three, lanes 3..7 two; powers of two keep every
        // partial sum exact, so the total says which values were added.
        let a: Vec<f64> = (0..19).map(|i| f64::from(1u32 << i)).collect();
        let ones = vec![1.0; 19];
        assert_eq!(lane_sum(&a, |x| x), f64::from((1u32 << 19) - 1));
        assert_eq!(
            lane_sum2(&a, &ones, |x, y| x * y),
            f64::from((1u32 << 19) - 1)
        );
        // The order, in f32 where 2^24 + 1 rounds to 2^24: a running sum gives
        // 1 + 1 + 2^24 = 2^24 + 2; the lanes give lane 0 = 1 + 2^24 → 2^24 and lane 1 = 1,
        // then 2^24 + 1 → 2^24.
        let mut v = vec![0.0f32; 9];
        (v[0], v[1], v[8]) = (1.0, 1.0, 16_777_216.0);
        assert_eq!(lane_sum(&v, |x| x), 16_777_216.0);
        assert_eq!(v.iter().sum::<f32>(), 16_777_218.0);
        assert_eq!(lane_sum::<f32>(&[], |x| x), 0.0);
    }

    #[test]
    fn channel_sums_add_rows_in_order_of_n_on_any_thread_count() {
        let (n, c, s) = (300, 3, 37);
        let x: Vec<f32> = (0..n * c * s).map(|i| (i as f32 * 0.61).sin()).collect();
        let row = |ni: usize, k: usize| {
            let r = &x[(ni * c + k) * s..][..s];
            lane_sum(r, |v| v)
        };
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| channel_sums(n, c, x.len(), row))
        };
        let one = on(1);
        assert_eq!(one, on(3));
        for (k, &got) in one.iter().enumerate() {
            let mut want = 0.0f32;
            for ni in 0..n {
                want += row(ni, k);
            }
            assert_eq!(got, want, "channel {k}");
            let exact: f64 = (0..n)
                .flat_map(|ni| x[(ni * c + k) * s..][..s].iter().map(|&v| f64::from(v)))
                .sum();
            assert!((f64::from(got) - exact).abs() < 1e-3, "{got} vs {exact}");
        }
    }
}
