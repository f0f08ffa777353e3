//! Batch and layer normalisation (mirrored by `shaders/norm.wgsl`), with PyTorch's
//! semantics: biased variance to normalise, unbiased for the running estimate.
//!
//! Batch norm sees its input as `[N, C, S]` (`S = H·W` for NCHW images, `S = 1` for
//! `[N, C]`), so each channel has `M = N·S` values; per-channel statistics are `[2, C]`,
//! row 0 the means and row 1 the biased variances. Layer norm normalises each row of
//! `[rows, cols]` over its columns.
//!
//! Variances are two-pass (Σ(x − mean)² after the mean is known), not E[x²] − mean²,
//! which cancels catastrophically in f32 when |mean| ≫ std. Per-channel sums run in a
//! fixed order, n outer and s inner, accumulated in place so that the walk over `x` stays
//! contiguous whatever `S` is.

use super::Real;

/// `1 / sqrt(var + eps)`, the one place both directions take it from.
fn inv_std<T: Real>(var: T, eps: T) -> T {
    T::one() / (var + eps).sqrt()
}

/// Per-channel mean (`out[0][k]`) and biased variance (`out[1][k]`) of `x` ([N, C, S]).
pub fn batch_norm_stats<T: Real>(x: &[T], out: &mut [T], n: usize, c: usize, s: usize) {
    let count = T::of((n * s) as f64);
    let (mean, var) = out[..2 * c].split_at_mut(c);
    mean.fill(T::zero());
    for ni in 0..n {
        for (k, m) in mean.iter_mut().enumerate() {
            let base = (ni * c + k) * s;
            *m = x[base..base + s].iter().fold(*m, |acc, &v| acc + v);
        }
    }
    for m in mean.iter_mut() {
        *m = *m / count;
    }
    var.fill(T::zero());
    for ni in 0..n {
        for (k, v) in var.iter_mut().enumerate() {
            let base = (ni * c + k) * s;
            let mk = mean[k];
            *v = x[base..base + s].iter().fold(*v, |acc, &xv| {
                let d = xv - mk;
                acc + d * d
            });
        }
    }
    for v in var.iter_mut() {
        *v = *v / count;
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
    for ni in 0..n {
        for k in 0..c {
            let (mean, istd) = (stats[k], inv_std(stats[c + k], eps));
            let (g, b) = (gamma[k], beta[k]);
            let base = (ni * c + k) * s;
            for (o, &v) in out[base..base + s].iter_mut().zip(&x[base..base + s]) {
                *o = (v - mean) * istd * g + b;
            }
        }
    }
}

/// Adds Σ dy (into `sums[k]`) and Σ dy·x̂ (into `sums[c + k]`) per channel, n outer.
#[allow(clippy::too_many_arguments)]
fn grad_sums<T: Real>(
    x: &[T],
    stats: &[T],
    dy: &[T],
    sums: &mut [T],
    n: usize,
    c: usize,
    s: usize,
    eps: T,
) {
    let (sum_dy, sum_dy_xhat) = sums[..2 * c].split_at_mut(c);
    sum_dy.fill(T::zero());
    sum_dy_xhat.fill(T::zero());
    for ni in 0..n {
        for k in 0..c {
            let (mean, istd) = (stats[k], inv_std(stats[c + k], eps));
            let base = (ni * c + k) * s;
            let (mut a, mut b) = (sum_dy[k], sum_dy_xhat[k]);
            for (&v, &g) in x[base..base + s].iter().zip(&dy[base..base + s]) {
                a = a + g;
                b = b + g * ((v - mean) * istd);
            }
            sum_dy[k] = a;
            sum_dy_xhat[k] = b;
        }
    }
}

/// The input gradient of batch norm in training mode, through the batch statistics
/// (`stats = batch_norm_stats(x)`): with `x̂ = (x − mean)·invstd`,
/// `dx = gamma·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂))`, sums per channel over N and S.
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
    let eps = T::of(f64::from(eps));
    let count = T::of((n * s) as f64);
    let mut sums = vec![T::zero(); 2 * c];
    grad_sums(x, stats, dy, &mut sums, n, c, s, eps);
    for ni in 0..n {
        for k in 0..c {
            let (mean, istd) = (stats[k], inv_std(stats[c + k], eps));
            let scale = gamma[k] * istd / count;
            let (sum_dy, sum_dy_xhat) = (sums[k], sums[c + k]);
            let base = (ni * c + k) * s;
            let rows = out[base..base + s]
                .iter_mut()
                .zip(&x[base..base + s])
                .zip(&dy[base..base + s]);
            for ((o, &v), &g) in rows {
                let xhat = (v - mean) * istd;
                *o = scale * (count * g - sum_dy - xhat * sum_dy_xhat);
            }
        }
    }
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
    for (k, o) in out[..c].iter_mut().enumerate() {
        let (mean, istd) = (stats[k], inv_std(stats[c + k], eps));
        let mut acc = T::zero();
        for ni in 0..n {
            let base = (ni * c + k) * s;
            for (&v, &g) in x[base..base + s].iter().zip(&dy[base..base + s]) {
                acc = acc + g * ((v - mean) * istd);
            }
        }
        *o = acc;
    }
}

/// beta's gradient: Σ dy per channel over N and S (`out` is `[C]`).
pub fn channel_sum<T: Real>(dy: &[T], out: &mut [T], n: usize, c: usize, s: usize) {
    let out = &mut out[..c];
    out.fill(T::zero());
    for ni in 0..n {
        for (k, o) in out.iter_mut().enumerate() {
            let base = (ni * c + k) * s;
            *o = dy[base..base + s].iter().fold(*o, |acc, &v| acc + v);
        }
    }
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

/// Mean and `1/sqrt(biased var + eps)` of one row, two-pass.
fn row_stats<T: Real>(row: &[T], eps: T) -> (T, T) {
    let count = T::of(row.len() as f64);
    let mean = row.iter().fold(T::zero(), |acc, &v| acc + v) / count;
    let var = row.iter().fold(T::zero(), |acc, &v| {
        let d = v - mean;
        acc + d * d
    }) / count;
    (mean, inv_std(var, eps))
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
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let row = &x[span.clone()];
        let (mean, istd) = row_stats(row, eps);
        let cells = out[span].iter_mut().zip(row).zip(gamma).zip(beta);
        for (((o, &v), &g), &b) in cells {
            *o = (v - mean) * istd * g + b;
        }
    }
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
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let (row, dyr) = (&x[span.clone()], &dy[span.clone()]);
        let (mean, istd) = row_stats(row, eps);
        let (mut sum_g, mut sum_g_xhat) = (T::zero(), T::zero());
        for ((&v, &d), &w) in row.iter().zip(dyr).zip(gamma) {
            let g = d * w;
            sum_g = sum_g + g;
            sum_g_xhat = sum_g_xhat + g * ((v - mean) * istd);
        }
        let (mean_g, mean_g_xhat) = (sum_g / count, sum_g_xhat / count);
        let cells = out[span].iter_mut().zip(row).zip(dyr).zip(gamma);
        for (((o, &v), &d), &w) in cells {
            let xhat = (v - mean) * istd;
            *o = istd * (d * w - mean_g - xhat * mean_g_xhat);
        }
    }
}

/// gamma's gradient of layer norm: Σ over rows of dy·x̂ (`out` is `[cols]`), rows in order.
pub fn layer_norm_gamma_grad<T: Real>(
    x: &[T],
    dy: &[T],
    out: &mut [T],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    let eps = T::of(f64::from(eps));
    let out = &mut out[..cols];
    out.fill(T::zero());
    for r in 0..rows {
        let span = r * cols..(r + 1) * cols;
        let (row, dyr) = (&x[span.clone()], &dy[span]);
        let (mean, istd) = row_stats(row, eps);
        for ((o, &v), &d) in out.iter_mut().zip(row).zip(dyr) {
            *o = *o + d * ((v - mean) * istd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f32 = 1e-5;
    const H: f64 = 1e-6;

    /// Deterministic values in [-1, 1) (a 64-bit LCG, high bits).
    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            })
            .collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(close(g, w, tol), "{what}[{i}]: got {g}, want {w}");
        }
    }

    /// Direct per-channel statistics by flat index, E[x²] − mean² in f64 (fine for the
    /// well-scaled test data), written independently of the kernel's loop structure.
    fn naive_stats(x: &[f64], c: usize, s: usize) -> Vec<f64> {
        let mut sum = vec![0.0; c];
        let mut sq = vec![0.0; c];
        let mut cnt = vec![0.0; c];
        for (i, &v) in x.iter().enumerate() {
            let k = (i / s) % c;
            sum[k] += v;
            sq[k] += v * v;
            cnt[k] += 1.0;
        }
        let mean: Vec<f64> = (0..c).map(|k| sum[k] / cnt[k]).collect();
        let var = (0..c).map(|k| sq[k] / cnt[k] - mean[k] * mean[k]);
        mean.iter().copied().chain(var).collect()
    }

    const BN_SIZES: &[(usize, usize, usize)] =
        &[(1, 3, 5), (3, 5, 7), (4, 3, 1), (2, 1, 3), (1, 2, 1)];

    /// Batch-norm input with per-channel offsets and scales, so the channels differ.
    fn bn_input(n: usize, c: usize, s: usize, seed: u64) -> Vec<f64> {
        values(n * c * s, seed)
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let k = ((i / s) % c) as f64;
                v * (0.5 + 0.7 * k) + 0.3 * k - 0.4
            })
            .collect()
    }

    #[test]
    fn hand_derived_stats_and_running_update() {
        // [N=2, C=2, S=2]: channel 0 holds 1, 2 | 3, 4; channel 1 is constant 10.
        let x = [1.0, 2.0, 10.0, 10.0, 3.0, 4.0, 10.0, 10.0];
        let mut stats = [0.0; 4];
        batch_norm_stats(&x, &mut stats, 2, 2, 2);
        assert_eq!(stats, [2.5, 10.0, 1.25, 0.0]);

        let mut running = [0.0, 1.0, 1.0, 1.0];
        batch_norm_running(&stats, &mut running, 2, 0.1, 4);
        // The momentum arrives as f32, and 0.1f32 is not 0.1.
        let m = f64::from(0.1f32);
        let want = [
            m * 2.5,
            (1.0 - m) + m * 10.0,
            (1.0 - m) + m * 1.25 * 4.0 / 3.0,
            1.0 - m,
        ];
        assert_close(&running, &want, 1e-15, "running");
        assert!(close(running[2], 0.9 + 0.1 * 5.0 / 3.0, 1e-8));

        let (gamma, beta) = ([2.0, 3.0], [0.5, -1.0]);
        let mut y = [0.0; 8];
        batch_norm_apply(&x, &stats, &gamma, &beta, &mut y, 2, 2, 2, EPS);
        // Channel 1 has no spread: x − mean = 0 leaves beta (eps keeps invstd finite).
        let z = 1.0 / (1.25 + f64::from(EPS)).sqrt();
        let want = [
            -1.5 * z * 2.0 + 0.5,
            -0.5 * z * 2.0 + 0.5,
            -1.0,
            -1.0,
            0.5 * z * 2.0 + 0.5,
            1.5 * z * 2.0 + 0.5,
            -1.0,
            -1.0,
        ];
        assert_close(&y, &want, 1e-15, "apply");

        let mut sums = [0.0; 2];
        channel_sum(&x, &mut sums, 2, 2, 2);
        assert_eq!(sums, [10.0, 40.0]);
    }

    #[test]
    fn running_update_with_one_value_per_channel_keeps_the_biased_variance() {
        let x = [3.0, -2.0, 7.0];
        let mut stats = [0.0; 6];
        batch_norm_stats(&x, &mut stats, 1, 3, 1);
        assert_eq!(stats, [3.0, -2.0, 7.0, 0.0, 0.0, 0.0]);
        let mut running = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        batch_norm_running(&stats, &mut running, 3, 0.1, 1);
        let m = f64::from(0.1f32);
        let want = [3.0 * m, -2.0 * m, 7.0 * m, 1.0 - m, 1.0 - m, 1.0 - m];
        assert_close(&running, &want, 1e-15, "running");
        assert!(running.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn running_update_matches_the_unbiased_variance() {
        let (n, c, s) = (3, 5, 7);
        let x = bn_input(n, c, s, 11);
        let mut stats = vec![0.0; 2 * c];
        batch_norm_stats(&x, &mut stats, n, c, s);
        let init = values(2 * c, 12)
            .iter()
            .map(|v| v.abs())
            .collect::<Vec<_>>();
        let mut running = init.clone();
        batch_norm_running(&stats, &mut running, c, 0.25, n * s);
        for k in 0..c {
            let vals: Vec<f64> = (0..n)
                .flat_map(|ni| x[(ni * c + k) * s..(ni * c + k + 1) * s].to_vec())
                .collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let unbiased =
                vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (vals.len() - 1) as f64;
            assert!(close(running[k], 0.75 * init[k] + 0.25 * mean, 1e-13));
            assert!(close(
                running[c + k],
                0.75 * init[c + k] + 0.25 * unbiased,
                1e-13
            ));
        }
    }

    #[test]
    fn stats_match_the_direct_formula() {
        for &(n, c, s) in BN_SIZES {
            let x = bn_input(n, c, s, 1);
            let mut stats = vec![0.0; 2 * c];
            batch_norm_stats(&x, &mut stats, n, c, s);
            assert_close(&stats, &naive_stats(&x, c, s), 1e-13, "stats");
        }
    }

    #[test]
    fn two_pass_variance_survives_a_large_offset_in_f32() {
        // E[x²] − mean² loses every digit here in f32; the two-pass form does not.
        let x: Vec<f32> = (0..64).map(|i| 1.0e4 + (i % 4) as f32).collect();
        let mut stats = [0.0f32; 2];
        batch_norm_stats(&x, &mut stats, 16, 1, 4);
        assert_eq!(stats[0], 1.0e4 + 1.5);
        assert!((stats[1] - 1.25).abs() < 1e-6, "var {}", stats[1]);
    }

    #[test]
    fn apply_with_batch_stats_gives_beta_mean_and_gamma_squared_variance() {
        for &(n, c, s) in BN_SIZES {
            let x = bn_input(n, c, s, 2);
            let gamma: Vec<f64> = values(c, 3).iter().map(|v| v + 1.5).collect();
            let beta = values(c, 4);
            let mut stats = vec![0.0; 2 * c];
            batch_norm_stats(&x, &mut stats, n, c, s);
            let mut y = vec![0.0; x.len()];
            batch_norm_apply(&x, &stats, &gamma, &beta, &mut y, n, c, s, EPS);
            let ys = naive_stats(&y, c, s);
            for k in 0..c {
                let var = stats[c + k];
                let want_var = gamma[k] * gamma[k] * var / (var + f64::from(EPS));
                assert!(
                    close(ys[k], beta[k], 1e-12),
                    "mean {} vs {}",
                    ys[k],
                    beta[k]
                );
                assert!(
                    close(ys[c + k], want_var, 1e-12),
                    "var {} vs {want_var}",
                    ys[c + k]
                );
            }
        }
    }

    #[test]
    fn apply_matches_the_direct_formula_with_running_stats() {
        let (n, c, s) = (3, 5, 7);
        let x = bn_input(n, c, s, 5);
        let gamma = values(c, 6);
        let beta = values(c, 7);
        let stats: Vec<f64> = values(2 * c, 8)
            .iter()
            .enumerate()
            .map(|(i, v)| if i < c { *v } else { v.abs() + 0.1 })
            .collect();
        let mut y = vec![0.0; x.len()];
        batch_norm_apply(&x, &stats, &gamma, &beta, &mut y, n, c, s, EPS);
        for (i, (&yv, &xv)) in y.iter().zip(&x).enumerate() {
            let k = (i / s) % c;
            let want =
                gamma[k] * (xv - stats[k]) / (stats[c + k] + f64::from(EPS)).sqrt() + beta[k];
            assert!(close(yv, want, 1e-14), "y[{i}] {yv} vs {want}");
        }
    }

    /// Σ w ⊙ batch_norm_apply(x, batch_norm_stats(x), gamma, beta).
    #[allow(clippy::too_many_arguments)]
    fn bn_objective(
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        w: &[f64],
        n: usize,
        c: usize,
        s: usize,
    ) -> f64 {
        let mut stats = vec![0.0; 2 * c];
        batch_norm_stats(x, &mut stats, n, c, s);
        let mut y = vec![0.0; x.len()];
        batch_norm_apply(x, &stats, gamma, beta, &mut y, n, c, s, EPS);
        y.iter().zip(w).map(|(a, b)| a * b).sum()
    }

    fn central_difference(v: &mut [f64], i: usize, f: &dyn Fn(&[f64]) -> f64) -> f64 {
        let orig = v[i];
        v[i] = orig + H;
        let up = f(v);
        v[i] = orig - H;
        let down = f(v);
        v[i] = orig;
        (up - down) / (2.0 * H)
    }

    #[test]
    fn batch_norm_gradients_match_central_differences() {
        for &(n, c, s) in BN_SIZES {
            let mut x = bn_input(n, c, s, 21);
            let mut gamma: Vec<f64> = values(c, 22).iter().map(|v| v + 1.2).collect();
            let mut beta = values(c, 23);
            let w = values(x.len(), 24);

            let mut stats = vec![0.0; 2 * c];
            batch_norm_stats(&x, &mut stats, n, c, s);
            let mut dx = vec![0.0; x.len()];
            batch_norm_grad(&x, &stats, &gamma, &w, &mut dx, n, c, s, EPS);
            let mut dgamma = vec![0.0; c];
            batch_norm_gamma_grad(&x, &stats, &w, &mut dgamma, n, c, s, EPS);
            let mut dbeta = vec![0.0; c];
            channel_sum(&w, &mut dbeta, n, c, s);

            let what = format!("n={n} c={c} s={s}");
            for (i, &ana) in dx.iter().enumerate() {
                let (g, b) = (gamma.clone(), beta.clone());
                let num = central_difference(&mut x, i, &|x| bn_objective(x, &g, &b, &w, n, c, s));
                assert!(close(ana, num, 1e-6), "{what}: dx[{i}] {ana} vs {num}");
            }
            for k in 0..c {
                let (xs, b) = (x.clone(), beta.clone());
                let num =
                    central_difference(&mut gamma, k, &|g| bn_objective(&xs, g, &b, &w, n, c, s));
                assert!(
                    close(dgamma[k], num, 1e-6),
                    "{what}: dgamma[{k}] {} vs {num}",
                    dgamma[k]
                );
                let (xs, g) = (x.clone(), gamma.clone());
                let num =
                    central_difference(&mut beta, k, &|b| bn_objective(&xs, &g, b, &w, n, c, s));
                assert!(
                    close(dbeta[k], num, 1e-6),
                    "{what}: dbeta[{k}] {} vs {num}",
                    dbeta[k]
                );
            }
        }
    }

    #[test]
    fn batch_norm_grad_sums_to_zero_per_channel() {
        // The mean is subtracted, so shifting a channel leaves the output unchanged.
        let (n, c, s) = (3, 5, 7);
        let x = bn_input(n, c, s, 31);
        let gamma = values(c, 32);
        let dy = values(x.len(), 33);
        let mut stats = vec![0.0; 2 * c];
        batch_norm_stats(&x, &mut stats, n, c, s);
        let mut dx = vec![0.0; x.len()];
        batch_norm_grad(&x, &stats, &gamma, &dy, &mut dx, n, c, s, EPS);
        let mut per_channel = vec![0.0; c];
        channel_sum(&dx, &mut per_channel, n, c, s);
        for v in per_channel {
            assert!(v.abs() < 1e-12, "{v}");
        }
    }

    fn naive_layer_norm(x: &[f64], gamma: &[f64], beta: &[f64], cols: usize) -> Vec<f64> {
        let mut y = vec![0.0; x.len()];
        for (i, o) in y.iter_mut().enumerate() {
            let r = i / cols;
            let row = &x[r * cols..(r + 1) * cols];
            let mean = row.iter().sum::<f64>() / cols as f64;
            let var = row.iter().map(|v| v * v).sum::<f64>() / cols as f64 - mean * mean;
            let j = i % cols;
            *o = gamma[j] * (x[i] - mean) / (var + f64::from(EPS)).sqrt() + beta[j];
        }
        y
    }

    const LN_SIZES: &[(usize, usize)] = &[(1, 7), (5, 3), (3, 1), (4, 6), (1, 1)];

    #[test]
    fn layer_norm_hand_derived_row() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = [0.0; 4];
        layer_norm(&x, &[1.0; 4], &[0.0; 4], &mut y, 1, 4, 0.0);
        let z = 1.0 / 1.25f64.sqrt();
        assert_close(&y, &[-1.5 * z, -0.5 * z, 0.5 * z, 1.5 * z], 1e-15, "y");
        // One column: x̂ = 0, so the output is beta and every gradient but beta's is 0.
        let mut y1 = [0.0; 3];
        layer_norm(&[5.0, -1.0, 2.0], &[2.0], &[0.25], &mut y1, 3, 1, EPS);
        assert_eq!(y1, [0.25; 3]);
        let mut dx = [1.0; 3];
        layer_norm_grad(
            &[5.0, -1.0, 2.0],
            &[2.0],
            &[1.0, 2.0, 3.0],
            &mut dx,
            3,
            1,
            EPS,
        );
        assert_eq!(dx, [0.0; 3]);
        let mut dg = [1.0];
        layer_norm_gamma_grad(&[5.0, -1.0, 2.0], &[1.0, 2.0, 3.0], &mut dg, 3, 1, EPS);
        assert_eq!(dg, [0.0]);
    }

    #[test]
    fn layer_norm_matches_the_direct_formula() {
        for &(rows, cols) in LN_SIZES {
            let x: Vec<f64> = values(rows * cols, 41)
                .iter()
                .map(|v| 3.0 * v + 0.5)
                .collect();
            let gamma = values(cols, 42);
            let beta = values(cols, 43);
            let mut y = vec![0.0; x.len()];
            layer_norm(&x, &gamma, &beta, &mut y, rows, cols, EPS);
            assert_close(&y, &naive_layer_norm(&x, &gamma, &beta, cols), 1e-12, "y");
        }
    }

    /// Σ w ⊙ layer_norm(x, gamma, beta).
    fn ln_objective(x: &[f64], gamma: &[f64], beta: &[f64], w: &[f64], rows: usize) -> f64 {
        let cols = gamma.len();
        let mut y = vec![0.0; x.len()];
        layer_norm(x, gamma, beta, &mut y, rows, cols, EPS);
        y.iter().zip(w).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn layer_norm_gradients_match_central_differences() {
        for &(rows, cols) in LN_SIZES {
            let mut x: Vec<f64> = values(rows * cols, 51)
                .iter()
                .map(|v| 2.0 * v - 0.3)
                .collect();
            let mut gamma: Vec<f64> = values(cols, 52).iter().map(|v| v + 1.1).collect();
            let mut beta = values(cols, 53);
            let w = values(x.len(), 54);

            let mut dx = vec![0.0; x.len()];
            layer_norm_grad(&x, &gamma, &w, &mut dx, rows, cols, EPS);
            let mut dgamma = vec![0.0; cols];
            layer_norm_gamma_grad(&x, &w, &mut dgamma, rows, cols, EPS);
            // beta's gradient is the column sum (the existing bias_grad).
            let dbeta: Vec<f64> = (0..cols)
                .map(|j| (0..rows).map(|r| w[r * cols + j]).sum())
                .collect();

            let what = format!("rows={rows} cols={cols}");
            for (i, &ana) in dx.iter().enumerate() {
                let (g, b) = (gamma.clone(), beta.clone());
                let num = central_difference(&mut x, i, &|x| ln_objective(x, &g, &b, &w, rows));
                assert!(close(ana, num, 1e-6), "{what}: dx[{i}] {ana} vs {num}");
            }
            for j in 0..cols {
                let (xs, b) = (x.clone(), beta.clone());
                let num =
                    central_difference(&mut gamma, j, &|g| ln_objective(&xs, g, &b, &w, rows));
                assert!(
                    close(dgamma[j], num, 1e-6),
                    "{what}: dgamma[{j}] {} vs {num}",
                    dgamma[j]
                );
                let (xs, g) = (x.clone(), gamma.clone());
                let num = central_difference(&mut beta, j, &|b| ln_objective(&xs, &g, b, &w, rows));
                assert!(
                    close(dbeta[j], num, 1e-6),
                    "{what}: dbeta[{j}] {} vs {num}",
                    dbeta[j]
                );
            }
        }
    }

    #[test]
    fn f32_kernels_agree_with_f64() {
        let (n, c, s) = (3, 5, 7);
        let x = bn_input(n, c, s, 61);
        let gamma: Vec<f64> = values(c, 62).iter().map(|v| v + 1.2).collect();
        let beta = values(c, 63);
        let dy = values(x.len(), 64);
        let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let to64 = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
        let (x32, g32, b32, dy32) = (to32(&x), to32(&gamma), to32(&beta), to32(&dy));

        let mut st = vec![0.0; 2 * c];
        batch_norm_stats(&x, &mut st, n, c, s);
        let mut st32 = vec![0.0f32; 2 * c];
        batch_norm_stats(&x32, &mut st32, n, c, s);
        assert_close(&to64(&st32), &st, 1e-5, "stats");

        let mut y = vec![0.0; x.len()];
        batch_norm_apply(&x, &st, &gamma, &beta, &mut y, n, c, s, EPS);
        let mut y32 = vec![0.0f32; x.len()];
        batch_norm_apply(&x32, &st32, &g32, &b32, &mut y32, n, c, s, EPS);
        assert_close(&to64(&y32), &y, 1e-5, "apply");

        let mut dx = vec![0.0; x.len()];
        batch_norm_grad(&x, &st, &gamma, &dy, &mut dx, n, c, s, EPS);
        let mut dx32 = vec![0.0f32; x.len()];
        batch_norm_grad(&x32, &st32, &g32, &dy32, &mut dx32, n, c, s, EPS);
        assert_close(&to64(&dx32), &dx, 1e-4, "grad");

        let (rows, cols) = (n * c, s);
        let g = &gamma[..1].repeat(cols);
        let b = &beta[..1].repeat(cols);
        let mut ly = vec![0.0; x.len()];
        layer_norm(&x, g, b, &mut ly, rows, cols, EPS);
        let mut ly32 = vec![0.0f32; x.len()];
        layer_norm(&x32, &to32(g), &to32(b), &mut ly32, rows, cols, EPS);
        assert_close(&to64(&ly32), &ly, 1e-5, "layer_norm");
    }
}
