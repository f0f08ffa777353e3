//! Batch and layer normalisation (mirrored by `shaders/norm.wgsl`), with PyTorch's
//! semantics: biased variance to normalise, unbiased for the running estimate.
//!
//! Batch norm sees its input as `[N, C, S]` (`S = H·W` for NCHW images, `S = 1` for
//! `[N, C]`), so each channel has `M = N·S` values; per-channel statistics are `[2, C]`,
//! row 0 the means and row 1 the biased variances. Layer norm normalises each row of
//! `[rows, cols]` over its columns.
//!
//! Variances are two-pass (Σ(x − mean)² after the mean is known), not E[x²] − mean²,
//! which cancels catastrophically in f32 when |mean| ≫ std. Per-channel sums run in one
//! fixed order on all cores ([`channel_sums`]: each contiguous row of `S` values in
//! interleaved partial sums, the rows added in order of `n`; with `S = 1` the columns of
//! `[N, C]` in blocks, [`column_sums`], the same additions); the element-wise passes run
//! samples in parallel.

mod channel_sums;

use super::{for_each_piece, for_each_sample, Real};
use channel_sums::{channel_sums, column_sums, lane_sum, lane_sum2, lane_sum_by};

/// `1 / sqrt(var + eps)`, the one place both directions take it from.
fn inv_std<T: Real>(var: T, eps: T) -> T {
    T::one() / (var + eps).sqrt()
}

/// [`inv_std`] of each channel of `stats` (`[2, C]`), computed once rather than per row.
fn inv_stds<T: Real>(stats: &[T], c: usize, eps: T) -> Vec<T> {
    stats[c..2 * c].iter().map(|&v| inv_std(v, eps)).collect()
}

/// Σ over rows of `term(v)` per column of `x` (`[N, C]`, the `S = 1` case), in order of
/// `n` ([`column_sums`]); `term` also gets the column's entry of `per_channel`.
fn column_sum_of<T: Real>(
    x: &[T],
    c: usize,
    per_channel: &[T],
    term: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    column_sums(c, x.len(), |k0, sums| {
        let own = &per_channel[k0..][..sums.len()];
        for row in x.chunks_exact(c) {
            for ((s, &v), &p) in sums.iter_mut().zip(&row[k0..]).zip(own) {
                *s = *s + term(v, p);
            }
        }
    })
}

/// Per-channel mean (`out[0][k]`) and biased variance (`out[1][k]`) of `x` ([N, C, S]).
pub fn batch_norm_stats<T: Real>(x: &[T], out: &mut [T], n: usize, c: usize, s: usize) {
    let count = T::of((n * s) as f64);
    let row = |ni: usize, k: usize| &x[(ni * c + k) * s..][..s];
    let sums = if s == 1 {
        column_sum_of(x, c, &vec![T::zero(); c], |v, _| v)
    } else {
        channel_sums(n, c, x.len(), |ni, k| lane_sum(row(ni, k), |v| v))
    };
    let mean: Vec<T> = sums.iter().map(|&v| v / count).collect();
    let squares = if s == 1 {
        column_sum_of(x, c, &mean, |v, m| (v - m) * (v - m))
    } else {
        channel_sums(n, c, x.len(), |ni, k| {
            let m = mean[k];
            lane_sum(row(ni, k), |v| (v - m) * (v - m))
        })
    };
    let (out_mean, out_var) = out[..2 * c].split_at_mut(c);
    out_mean.copy_from_slice(&mean);
    for (o, &q) in out_var.iter_mut().zip(&squares) {
        *o = q / count;
    }
}

/// `y = (x − mean) · (1/sqrt(var + eps)) · gamma + beta` per channel, with `stats` the
/// batch statistics (training) or the running ones (evaluation), both `[2, C]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_apply<T: Real>(
    x: &[T],
    stats: &[T],
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
    n: usize,
    c: usize,
    s: usize,
    eps: f32,
) {
    let eps = T::of(f64::from(eps));
    let _ = n;
    let istds = inv_stds(stats, c, eps);
    for_each_sample(out, c * s, |ni, sample| {
        for (k, o_row) in sample.chunks_exact_mut(s.max(1)).enumerate() {
            let (mean, istd) = (stats[k], istds[k]);
            let (g, b) = (gamma[k], beta[k]);
            let x_row = &x[(ni * c + k) * s..][..s];
            for (o, &v) in o_row.iter_mut().zip(x_row) {
                *o = (v - mean) * istd * g + b;
            }
        }
    });
}

/// Σ dy·x̂ per channel, x̂ = (x − mean)·invstd.
#[allow(clippy::too_many_arguments)]
fn sum_dy_xhat<T: Real>(
    x: &[T],
    stats: &[T],
    dy: &[T],
    n: usize,
    c: usize,
    s: usize,
    eps: T,
) -> Vec<T> {
    let istds = inv_stds(stats, c, eps);
    if s == 1 {
        let (means, istds) = (&stats[..c], &istds);
        return column_sums(c, x.len(), |k0, sums| {
            let len = sums.len();
            let (means, istds) = (&means[k0..][..len], &istds[k0..][..len]);
            for (xr, gr) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
                let terms = xr[k0..].iter().zip(&gr[k0..]).zip(means.iter().zip(istds));
                for (s, ((&v, &g), (&mean, &istd))) in sums.iter_mut().zip(terms) {
                    *s = *s + g * ((v - mean) * istd);
                }
            }
        });
    }
    channel_sums(n, c, x.len(), |ni, k| {
        let (mean, istd) = (stats[k], istds[k]);
        let at = (ni * c + k) * s;
        lane_sum2(&x[at..][..s], &dy[at..][..s], |v, g| {
            g * ((v - mean) * istd)
        })
    })
}

/// Σ dy per channel.
fn sum_dy<T: Real>(dy: &[T], n: usize, c: usize, s: usize) -> Vec<T> {
    if s == 1 {
        return column_sum_of(dy, c, &vec![T::zero(); c], |g, _| g);
    }
    channel_sums(n, c, dy.len(), |ni, k| {
        lane_sum(&dy[(ni * c + k) * s..][..s], |g| g)
    })
}

/// The input gradient of batch norm in training mode, through the batch statistics
/// (`stats = batch_norm_stats(x)`): with `x̂ = (x − mean)·invstd`,
/// `dx = gamma·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))`, sums per channel over N and S: the
/// plan's four ops ([`sum_dy_xhat`], [`sum_dy`], [`batch_norm_grad_coeffs`] and
/// [`batch_norm_grad_apply`]) in one call, for the tests.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_grad<T: Real>(
    x: &[T],
    stats: &[T],
    gamma: &[T],
    dy: &[T],
    out: &mut [T],
    n: usize,
    c: usize,
    s: usize,
    eps: f32,
) {
    let sum_dy_xhat = sum_dy_xhat(x, stats, dy, n, c, s, T::of(f64::from(eps)));
    let mut coeffs = vec![T::zero(); 5 * c];
    let sums = (&sum_dy_xhat[..], &sum_dy(dy, n, c, s)[..]);
    batch_norm_grad_coeffs(stats, gamma, sums, &mut coeffs, c, eps);
    batch_norm_grad_apply(x, &coeffs, dy, out, c, s);
}

/// Batch norm's input-gradient coefficients `[5, C]` from the statistics, gamma and the
/// channels' sums `(Σdy·x̂, Σdy)`: per channel the mean, invstd, gamma·invstd, Σdy and
/// Σdy·x̂ (the rows [`batch_norm_grad_apply`] reads; it divides gamma·invstd by the
/// count M = N·S, which only it knows from its `x`).
pub fn batch_norm_grad_coeffs<T: Real>(
    stats: &[T],
    gamma: &[T],
    (sum_dy_xhat, sum_dy): (&[T], &[T]),
    out: &mut [T],
    c: usize,
    eps: f32,
) {
    let eps = T::of(f64::from(eps));
    let (mean, rest) = out[..5 * c].split_at_mut(c);
    let (istd, rest) = rest.split_at_mut(c);
    let (scale, sums) = rest.split_at_mut(c);
    mean.copy_from_slice(&stats[..c]);
    for k in 0..c {
        istd[k] = inv_std(stats[c + k], eps);
        scale[k] = gamma[k] * istd[k];
    }
    sums[..c].copy_from_slice(&sum_dy[..c]);
    sums[c..].copy_from_slice(&sum_dy_xhat[..c]);
}

/// `dx = gamma·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))` element by element, from `coeffs`
/// ([`batch_norm_grad_coeffs`]) and the `[N, C, S]` tensors `x` and `dy`.
pub fn batch_norm_grad_apply<T: Real>(
    x: &[T],
    coeffs: &[T],
    dy: &[T],
    out: &mut [T],
    c: usize,
    s: usize,
) {
    let row = |r: usize| &coeffs[r * c..][..c];
    let (mean, istd, gamma_istd, sdy, sdx) = (row(0), row(1), row(2), row(3), row(4));
    let count = T::of((x.len() / c.max(1)) as f64);
    for_each_sample(out, c * s, |ni, sample| {
        for (k, o_row) in sample.chunks_exact_mut(s.max(1)).enumerate() {
            // gamma·invstd/M rounded as the formula rounds it, once per channel.
            let sc = gamma_istd[k] / count;
            let (m, is, sd, sx) = (mean[k], istd[k], sdy[k], sdx[k]);
            let base = (ni * c + k) * s;
            let rows = o_row
                .iter_mut()
                .zip(&x[base..base + s])
                .zip(&dy[base..base + s]);
            for ((o, &v), &g) in rows {
                let xhat = (v - m) * is;
                *o = sc * (count * g - sd - xhat * sx);
            }
        }
    });
}

/// gamma's gradient: Σ dy·x̂ per channel (`out` is `[C]`).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_gamma_grad<T: Real>(
    x: &[T],
    stats: &[T],
    dy: &[T],
    out: &mut [T],
    n: usize,
    c: usize,
    s: usize,
    eps: f32,
) {
    let eps = T::of(f64::from(eps));
    out[..c].copy_from_slice(&sum_dy_xhat(x, stats, dy, n, c, s, eps));
}

/// beta's gradient: Σ dy per channel over N and S (`out` is `[C]`).
pub fn channel_sum<T: Real>(dy: &[T], out: &mut [T], n: usize, c: usize, s: usize) {
    out[..c].copy_from_slice(&sum_dy(dy, n, c, s));
}

/// Updates the running statistics `out` (`[2, C]`: running mean, running variance) in
/// place from the batch statistics `stats` of `count = M` values per channel:
/// `mean ← (1 − m)·mean + m·batch_mean`, `var ← (1 − m)·var + m·batch_var·M/(M − 1)`.
pub fn batch_norm_running<T: Real>(
    stats: &[T],
    out: &mut [T],
    c: usize,
    momentum: f32,
    count: usize,
) {
    let m = T::of(f64::from(momentum));
    let keep = T::one() - m;
    // Bessel's correction. With one value per channel it would divide by zero: PyTorch's
    // Python front end refuses such a batch in training ("Expected more than 1 value per
    // channel when training"), and its kernel alone would store 0/0 = NaN. We keep the
    // biased variance (0) instead, so the running estimate stays finite.
    let bessel = if count > 1 {
        T::of(count as f64) / T::of((count - 1) as f64)
    } else {
        T::one()
    };
    let (run_mean, run_var) = out[..2 * c].split_at_mut(c);
    for (k, (rm, rv)) in run_mean.iter_mut().zip(run_var.iter_mut()).enumerate() {
        *rm = keep * *rm + m * stats[k];
        *rv = keep * *rv + m * (stats[c + k] * bessel);
    }
}

/// Mean and `1/sqrt(biased var + eps)` of one row, two-pass, each sum in interleaved
/// lanes ([`lane_sum`]): a running sum over a long row (group norm's rows
/// hold C/G·H·W values) would carry its error into every normalised value.
fn row_stats<T: Real>(row: &[T], eps: T) -> (T, T) {
    let count = T::of(row.len() as f64);
    let mean = lane_sum(row, |v| v) / count;
    let var = lane_sum(row, |v| {
        let d = v - mean;
        d * d
    }) / count;
    (mean, inv_std(var, eps))
}

/// `out = x·gamma + beta` per channel of `x` `[N, C, S]` (gamma and beta `[C]`).
pub fn channel_affine<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
    c: usize,
    s: usize,
) {
    for_each_sample(out, c * s, |ni, sample| {
        for (k, o_row) in sample.chunks_exact_mut(s.max(1)).enumerate() {
            let (g, b) = (gamma[k], beta[k]);
            let x_row = &x[(ni * c + k) * s..][..s];
            for (o, &v) in o_row.iter_mut().zip(x_row) {
                *o = v * g + b;
            }
        }
    });
}

/// PReLU: `x` where x > 0, else `weight[c]·x`, per channel of `x` `[N, C, S]`.
pub fn prelu<T: Real>(x: &[T], weight: &[T], out: &mut [T], c: usize, s: usize) {
    for_each_sample(out, c * s, |ni, sample| {
        for (k, o_row) in sample.chunks_exact_mut(s.max(1)).enumerate() {
            let w = weight[k];
            for (o, &v) in o_row.iter_mut().zip(&x[(ni * c + k) * s..]) {
                *o = if v > T::zero() { v } else { w * v };
            }
        }
    });
}

/// PReLU's input gradient: `dy` where x > 0, else `weight[c]·dy`.
pub fn prelu_grad<T: Real>(x: &[T], weight: &[T], dy: &[T], out: &mut [T], c: usize, s: usize) {
    for_each_sample(out, c * s, |ni, sample| {
        for (k, o_row) in sample.chunks_exact_mut(s.max(1)).enumerate() {
            let (w, at) = (weight[k], (ni * c + k) * s);
            for ((o, &v), &d) in o_row.iter_mut().zip(&x[at..]).zip(&dy[at..]) {
                *o = if v > T::zero() { d } else { w * d };
            }
        }
    });
}

/// The terms of PReLU's weight gradient: 0 where x > 0, else `x·dy`.
pub fn prelu_weight_terms<T: Real>(x: &[T], dy: &[T], out: &mut [T]) {
    for_each_piece(out, |at, out| {
        for (o, (&v, &d)) in out.iter_mut().zip(x[at..].iter().zip(&dy[at..])) {
            *o = if v > T::zero() { T::zero() } else { v * d };
        }
    });
}

/// Layer norm of each row of `x` ([rows, cols]) over its columns:
/// `y = (x − mean)·invstd·gamma + beta`, gamma and beta `[cols]`.
pub fn layer_norm<T: Real>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    out: &mut [T],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    let eps = T::of(f64::from(eps));
    let _ = rows;
    for_each_sample(out, cols, |r, o| {
        let row = &x[r * cols..][..cols];
        let (mean, istd) = row_stats(row, eps);
        for (((o, &v), &g), &b) in o.iter_mut().zip(row).zip(gamma).zip(beta) {
            *o = (v - mean) * istd * g + b;
        }
    });
}

/// The input gradient of layer norm, the row statistics recomputed from `x`: with
/// `g = dy·gamma`, `dx = invstd · (g − mean(g) − x̂·mean(g·x̂))` per row.
pub fn layer_norm_grad<T: Real>(
    x: &[T],
    gamma: &[T],
    dy: &[T],
    out: &mut [T],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    let eps = T::of(f64::from(eps));
    let count = T::of(cols as f64);
    let _ = rows;
    for_each_sample(out, cols, |r, o| {
        let (row, dyr) = (&x[r * cols..][..cols], &dy[r * cols..][..cols]);
        let (mean, istd) = row_stats(row, eps);
        let sum_g = lane_sum2(dyr, gamma, |d, w| d * w);
        let sum_g_xhat = lane_sum_by(cols, |j| dyr[j] * gamma[j] * ((row[j] - mean) * istd));
        let (mean_g, mean_g_xhat) = (sum_g / count, sum_g_xhat / count);
        for (((o, &v), &d), &w) in o.iter_mut().zip(row).zip(dyr).zip(gamma) {
            let xhat = (v - mean) * istd;
            *o = istd * (d * w - mean_g - xhat * mean_g_xhat);
        }
    });
}

/// gamma's gradient of layer norm: Σ over rows of dy·x̂ (`out` is `[cols]`), rows in order:
/// each row's statistics once (rows on all cores), then the columns in blocks
/// ([`column_sums`]).
pub fn layer_norm_gamma_grad<T: Real>(
    x: &[T],
    dy: &[T],
    out: &mut [T],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    use rayon::prelude::*;
    let eps = T::of(f64::from(eps));
    if cols == 0 {
        return;
    }
    let stats_of = |r: usize| row_stats(&x[r * cols..][..cols], eps);
    let stats: Vec<(T, T)> = if x.len() >= 1 << 15 {
        (0..rows).into_par_iter().map(stats_of).collect()
    } else {
        (0..rows).map(stats_of).collect()
    };
    let sums = column_sums(cols, x.len(), |k0, sums| {
        let rows = x.chunks_exact(cols).zip(dy.chunks_exact(cols)).zip(&stats);
        for ((row, dyr), &(mean, istd)) in rows {
            for ((o, &v), &d) in sums.iter_mut().zip(&row[k0..]).zip(&dyr[k0..]) {
                *o = *o + d * ((v - mean) * istd);
            }
        }
    });
    out[..cols].copy_from_slice(&sums);
}

#[cfg(test)]
mod tests;
