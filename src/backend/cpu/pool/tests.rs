//! Pooling kernels against naive definitions, central differences and the general path.

use super::*;

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
) -> PoolGeom {
    PoolGeom {
        n,
        c,
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        ph: 0,
        pw: 0,
        ceil_mode: false,
        count_include_pad: true,
    }
}

/// `g` with padding `(ph, pw)`.
fn padded(g: PoolGeom, ph: usize, pw: usize) -> PoolGeom {
    PoolGeom { ph, pw, ..g }
}

fn out_len(g: &PoolGeom) -> usize {
    g.n * g.c * g.oh() * g.ow()
}

fn in_len(g: &PoolGeom) -> usize {
    g.n * g.c * g.h * g.w
}

/// splitmix64, for reproducible test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f64> {
        (0..len).map(|_| self.uniform()).collect()
    }
    /// Distinct values 0.01 apart in random order: no ties, and no two within the
    /// finite-difference step of each other, so the argmax of every window is stable.
    fn distinct(&mut self, len: usize) -> Vec<f64> {
        let mut v: Vec<f64> = (0..len).map(|i| i as f64 * 0.01 - 1.0).collect();
        for i in (1..len).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }
}

/// The windows of `g` as (plane, oy, ox, flat indices of the window's input positions in
/// row-then-column order; padded positions are left out).
fn windows(g: &PoolGeom) -> Vec<(usize, usize, usize, Vec<usize>)> {
    let mut all = Vec::new();
    for p in 0..g.n * g.c {
        for oy in 0..g.oh() {
            for ox in 0..g.ow() {
                let idx = (0..g.kh)
                    .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx)))
                    .filter_map(|(ky, kx)| {
                        let y = (oy * g.sh + ky).checked_sub(g.ph).filter(|&y| y < g.h)?;
                        let x = (ox * g.sw + kx).checked_sub(g.pw).filter(|&x| x < g.w)?;
                        Some(p * g.h * g.w + y * g.w + x)
                    })
                    .collect();
                all.push((p, oy, ox, idx));
            }
        }
    }
    all
}

/// Naive scatter max pooling: returns (out, dx) for `dy`, the argmax of each window
/// found as the first index whose value equals the window's maximum.
fn naive_max(x: &[f64], dy: &[f64], g: &PoolGeom) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; out_len(g)];
    let mut dx = vec![0.0; in_len(g)];
    for (o, (_, _, _, idx)) in windows(g).iter().enumerate() {
        let m = idx.iter().map(|&i| x[i]).fold(f64::NEG_INFINITY, f64::max);
        let Some(&arg) = idx.iter().find(|&&i| x[i] == m) else {
            panic!("window {o} has no maximum");
        };
        out[o] = m;
        dx[arg] += dy[o];
    }
    (out, dx)
}

/// Naive scatter average pooling: returns (out, dx) for `dy`. The divisor is PyTorch's
/// (`avg_pool2d`): the window clipped to the padded input, (min(start + k, len + pad) −
/// start) per axis with start = o·s − pad, when padding counts; else the number of input
/// positions in the window.
fn naive_avg(x: &[f64], dy: &[f64], g: &PoolGeom) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; out_len(g)];
    let mut dx = vec![0.0; in_len(g)];
    let span = |o: usize, s: usize, k: usize, len: usize, pad: usize| {
        let start = (o * s) as i64 - pad as i64;
        ((start + k as i64).min((len + pad) as i64) - start) as f64
    };
    for (o, (_, oy, ox, idx)) in windows(g).iter().enumerate() {
        let area = if g.count_include_pad {
            span(*oy, g.sh, g.kh, g.h, g.ph) * span(*ox, g.sw, g.kw, g.w, g.pw)
        } else {
            idx.len() as f64
        };
        out[o] = idx.iter().map(|&i| x[i]).sum::<f64>() / area;
        for &i in idx {
            dx[i] += dy[o] / area;
        }
    }
    (out, dx)
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

fn run_max<T: Real>(x: &[f64], dy: &[f64], g: &PoolGeom) -> (Vec<f64>, Vec<f64>) {
    let xt: Vec<T> = x.iter().map(|&v| T::of(v)).collect();
    let dyt: Vec<T> = dy.iter().map(|&v| T::of(v)).collect();
    let mut out = vec![T::zero(); out_len(g)];
    let mut dx = vec![T::zero(); in_len(g)];
    max_pool(&xt, &mut out, g);
    max_pool_grad(&xt, &dyt, &mut dx, g);
    (
        out.iter().map(|v| v.f64()).collect(),
        dx.iter().map(|v| v.f64()).collect(),
    )
}

fn run_avg<T: Real>(x: &[f64], dy: &[f64], g: &PoolGeom) -> (Vec<f64>, Vec<f64>) {
    let xt: Vec<T> = x.iter().map(|&v| T::of(v)).collect();
    let dyt: Vec<T> = dy.iter().map(|&v| T::of(v)).collect();
    let mut out = vec![T::zero(); out_len(g)];
    let mut dx = vec![T::zero(); in_len(g)];
    avg_pool(&xt, &mut out, g);
    avg_pool_grad(&dyt, &mut dx, g);
    (
        out.iter().map(|v| v.f64()).collect(),
        dx.iter().map(|v| v.f64()).collect(),
    )
}

// 1x1x4x4, k = 2, s = 2. Windows: top-left {1, 3 / 4, 2} (max 4), top-right
// {2, 0 / 5, 5} (a tie: the first 5, at (1, 2)), bottom-left {0, 7 / 6, 6} (max 7),
// bottom-right all 1 (the first, at (2, 2)).
const X4: [f64; 16] = [
    1.0, 3.0, 2.0, 0.0, //
    4.0, 2.0, 5.0, 5.0, //
    0.0, 7.0, 1.0, 1.0, //
    6.0, 6.0, 1.0, 1.0,
];
const DY4: [f64; 4] = [10.0, 20.0, 30.0, 40.0];

fn check_hand_max<T: Real>() {
    let g = geom(1, 1, 4, 4, 2, 2, 2, 2);
    let (out, dx) = run_max::<T>(&X4, &DY4, &g);
    assert_eq!(out, [4.0, 5.0, 7.0, 1.0]);
    #[rustfmt::skip]
    let want = [
        0.0, 0.0, 0.0, 0.0,
        10.0, 0.0, 20.0, 0.0,
        0.0, 30.0, 40.0, 0.0,
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(dx, want);
}

#[test]
fn max_pool_hand_case_routes_ties_to_the_first_max() {
    check_hand_max::<f64>();
    check_hand_max::<f32>();
}

fn check_hand_avg<T: Real>() {
    let g = geom(1, 1, 4, 4, 2, 2, 2, 2);
    let (out, dx) = run_avg::<T>(&X4, &DY4, &g);
    assert_eq!(out, [2.5, 3.0, 4.75, 1.0]);
    #[rustfmt::skip]
    let want = [
        2.5, 2.5, 5.0, 5.0,
        2.5, 2.5, 5.0, 5.0,
        7.5, 7.5, 10.0, 10.0,
        7.5, 7.5, 10.0, 10.0,
    ];
    assert_eq!(dx, want);
}

#[test]
fn avg_pool_hand_case() {
    check_hand_avg::<f64>();
    check_hand_avg::<f32>();
}

// 1x1x3x3, k = 2, s = 1: the centre 9 is the max of all four overlapping windows, so it
// receives the sum of their gradients; a pixel that no window picks gets 0.
#[test]
fn max_pool_overlapping_windows_sum_at_a_shared_argmax() {
    let g = geom(1, 1, 3, 3, 2, 2, 1, 1);
    let x = [1.0, 2.0, 3.0, 4.0, 9.0, 5.0, 6.0, 7.0, 8.0];
    let (out, dx) = run_max::<f64>(&x, &[1.0, 2.0, 4.0, 8.0], &g);
    assert_eq!(out, [9.0; 4]);
    assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 15.0, 0.0, 0.0, 0.0, 0.0]);
}

// k = 2, s = 3 on 1x1x4x5: output 1x2, and rows 2.. and column 2 belong to no window.
#[test]
fn gaps_get_zero_gradient() {
    let g = geom(1, 1, 4, 5, 2, 2, 3, 3);
    assert_eq!((g.oh(), g.ow()), (1, 2));
    let x: Vec<f64> = (0..20).map(|i| i as f64).collect();
    let (out, dx) = run_max::<f64>(&x, &[1.0, 2.0], &g);
    assert_eq!(out, [6.0, 9.0]);
    let mut want = [0.0; 20];
    want[6] = 1.0;
    want[9] = 2.0;
    assert_eq!(dx, want);
    let (out, dx) = run_avg::<f64>(&x, &[4.0, 8.0], &g);
    assert_eq!(out, [3.0, 6.0]);
    #[rustfmt::skip]
    let want = [
        1.0, 1.0, 0.0, 2.0, 2.0,
        1.0, 1.0, 0.0, 2.0, 2.0,
        0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(dx, want);
}

#[test]
fn max_pool_propagates_nan_and_routes_to_the_first_nan() {
    let nan = f64::NAN;
    // k = 2, s = 2 on 1x1x2x4: a NaN after a larger value, then two NaNs.
    let g = geom(1, 1, 2, 4, 2, 2, 2, 2);
    let x = [5.0, nan, 1.0, nan, 7.0, 1.0, nan, 2.0];
    for (out, dx) in [
        run_max::<f64>(&x, &[3.0, 4.0], &g),
        run_max::<f32>(&x, &[3.0, 4.0], &g),
    ] {
        assert!(out[0].is_nan() && out[1].is_nan(), "{out:?}");
        assert_eq!(dx, [0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
    }
    // A window without NaN is unaffected by its neighbour's.
    let x = [1.0, 2.0, nan, 0.0, 3.0, 4.0, 0.0, 0.0];
    let (out, _) = run_max::<f64>(&x, &[1.0, 1.0], &g);
    assert_eq!(out[0], 4.0);
    assert!(out[1].is_nan());
}

#[test]
fn max_pool_handles_infinities() {
    let g = geom(1, 1, 2, 2, 2, 2, 2, 2);
    let ninf = f64::NEG_INFINITY;
    let (out, dx) = run_max::<f64>(&[ninf; 4], &[1.0], &g);
    assert_eq!((out, dx), (vec![ninf], vec![1.0, 0.0, 0.0, 0.0]));
    let (out, dx) = run_max::<f64>(&[1.0, f64::INFINITY, 2.0, 3.0], &[1.0], &g);
    assert_eq!((out, dx), (vec![f64::INFINITY], vec![0.0, 1.0, 0.0, 0.0]));
}

/// Overlapping windows, gaps, non-square windows, strides that do not divide the size,
/// and a window as large as the input.
fn geometries() -> Vec<PoolGeom> {
    let mut gs = Vec::new();
    for (n, c) in [(1, 3), (2, 3)] {
        for (h, w) in [(7, 5), (5, 7), (4, 4)] {
            for (kh, kw, sh, sw) in [
                (2, 2, 2, 2),
                (3, 3, 1, 1),
                (3, 3, 2, 2),
                (2, 2, 3, 3),
                (3, 2, 1, 3),
                (1, 1, 2, 1),
                (4, 4, 1, 1),
            ] {
                gs.push(geom(n, c, h, w, kh, kw, sh, sw));
            }
        }
        // Padded (at most half the window): ResNet's stem pool, uneven and one-sided
        // paddings, a 2x2 window with padding (not the fast path), windows wider than
        // the input.
        for (h, w, kh, kw, sh, sw, ph, pw) in [
            (7, 8, 3, 3, 2, 2, 1, 1),
            (5, 4, 5, 2, 1, 2, 2, 1),
            (4, 4, 2, 2, 2, 2, 1, 1),
            (3, 5, 3, 3, 1, 1, 1, 0),
            (1, 1, 3, 3, 1, 1, 1, 1),
            (2, 3, 4, 5, 3, 2, 2, 2),
        ] {
            gs.push(padded(geom(n, c, h, w, kh, kw, sh, sw), ph, pw));
        }
        // Ceil mode (last windows overhanging the input or its padding, 2x2 over odd
        // sizes among them) and averages without the padding in the divisor.
        for (h, w, kh, kw, sh, sw, ph, pw) in [
            (7, 5, 2, 2, 2, 2, 0, 0),
            (6, 6, 3, 3, 2, 2, 0, 0),
            (6, 5, 3, 2, 2, 2, 1, 1),
            (7, 8, 3, 3, 2, 2, 1, 1),
            (5, 4, 3, 3, 3, 3, 1, 0),
        ] {
            let g = padded(geom(n, c, h, w, kh, kw, sh, sw), ph, pw);
            for (ceil_mode, count_include_pad) in [(true, true), (true, false), (false, false)] {
                gs.push(PoolGeom {
                    ceil_mode,
                    count_include_pad,
                    ..g
                });
            }
        }
    }
    gs
}

#[test]
fn padded_windows_hold_only_input_positions() {
    // 3x3, stride 2, padding 1 over 4x4: corner windows see a 2x2 block, edges 2x3.
    let g = padded(geom(1, 1, 4, 4, 3, 3, 2, 2), 1, 1);
    assert_eq!((g.oh(), g.ow()), (2, 2));
    let x: Vec<f64> = (0..16).map(f64::from).collect();
    let (mut out, mut avg) = (vec![0.0; 4], vec![0.0; 4]);
    max_pool(&x, &mut out, &g);
    avg_pool(&x, &mut avg, &g);
    // Windows cover rows/cols {0,1}, {1,2,3} of the input.
    assert_eq!(out, [5.0, 7.0, 13.0, 15.0]);
    // count_include_pad: the divisor is 9 however many positions are inside.
    let sum = |rows: &[usize], cols: &[usize]| {
        rows.iter()
            .flat_map(|&r| cols.iter().map(move |&c| (r * 4 + c) as f64))
            .sum::<f64>()
    };
    let want = [
        sum(&[0, 1], &[0, 1]) / 9.0,
        sum(&[0, 1], &[1, 2, 3]) / 9.0,
        sum(&[1, 2, 3], &[0, 1]) / 9.0,
        sum(&[1, 2, 3], &[1, 2, 3]) / 9.0,
    ];
    assert_eq!(avg, want);
    // All -inf: the padding never wins, the first input position does.
    let (mut out, mut dx) = (vec![0.0; 4], vec![f64::NAN; 16]);
    let minus = vec![f64::NEG_INFINITY; 16];
    max_pool(&minus, &mut out, &g);
    max_pool_grad(&minus, &[1.0, 2.0, 3.0, 4.0], &mut dx, &g);
    assert_eq!(out, [f64::NEG_INFINITY; 4]);
    let mut want = vec![0.0; 16];
    (want[0], want[1], want[4], want[5]) = (1.0, 2.0, 3.0, 4.0);
    assert_eq!(dx, want);
}

#[test]
fn max_pool_matches_naive_scatter() {
    let mut rng = Rng(1);
    for g in geometries() {
        // Values on a coarse grid, so that windows often hold ties.
        let x: Vec<f64> = rng
            .vec(in_len(&g))
            .iter()
            .map(|v| (v * 3.0).round())
            .collect();
        let dy = rng.vec(out_len(&g));
        let (out, dx) = run_max::<f64>(&x, &dy, &g);
        let (want_out, want_dx) = naive_max(&x, &dy, &g);
        assert_eq!(out, want_out, "{g:?}");
        assert_close(&dx, &want_dx, 1e-14, &format!("max dx {g:?}"));
    }
}

#[test]
fn avg_pool_matches_naive_scatter() {
    let mut rng = Rng(2);
    for g in geometries() {
        let x = rng.vec(in_len(&g));
        let dy = rng.vec(out_len(&g));
        let (out, dx) = run_avg::<f64>(&x, &dy, &g);
        let (want_out, want_dx) = naive_avg(&x, &dy, &g);
        assert_close(&out, &want_out, 1e-14, &format!("avg out {g:?}"));
        assert_close(&dx, &want_dx, 1e-14, &format!("avg dx {g:?}"));
    }
}

#[test]
fn f32_matches_f64() {
    let mut rng = Rng(3);
    for g in geometries() {
        let x = rng.vec(in_len(&g));
        let dy = rng.vec(out_len(&g));
        let (o32, d32) = run_max::<f32>(&x, &dy, &g);
        let (o64, d64) = run_max::<f64>(&x, &dy, &g);
        assert_close(&o32, &o64, 1e-6, "max out f32");
        assert_close(&d32, &d64, 1e-6, "max dx f32");
        let (o32, d32) = run_avg::<f32>(&x, &dy, &g);
        let (o64, d64) = run_avg::<f64>(&x, &dy, &g);
        assert_close(&o32, &o64, 1e-6, "avg out f32");
        assert_close(&d32, &d64, 1e-6, "avg dx f32");
    }
}

/// Central differences of L(x) = Σ dy · f(x) against the analytic gradient.
fn gradcheck(x: &[f64], dy: &[f64], analytic: &[f64], f: impl Fn(&[f64], &mut [f64]), what: &str) {
    const H: f64 = 1e-6;
    let loss = |x: &[f64]| {
        let mut out = vec![0.0; dy.len()];
        f(x, &mut out);
        out.iter().zip(dy).map(|(o, d)| o * d).sum::<f64>()
    };
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + H;
        let up = loss(&xp);
        xp[i] = x[i] - H;
        let down = loss(&xp);
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * H);
        assert!(
            (numeric - analytic[i]).abs() <= 1e-6 * (1.0 + analytic[i].abs()),
            "{what}: dx[{i}] numeric {numeric}, analytic {}",
            analytic[i]
        );
    }
}

#[test]
fn max_pool_grad_matches_central_differences() {
    let mut rng = Rng(4);
    for g in geometries() {
        let x = rng.distinct(in_len(&g));
        let dy = rng.vec(out_len(&g));
        let mut dx = vec![0.0; in_len(&g)];
        max_pool_grad(&x, &dy, &mut dx, &g);
        gradcheck(
            &x,
            &dy,
            &dx,
            |x, out| max_pool(x, out, &g),
            &format!("max {g:?}"),
        );
    }
}

#[test]
fn avg_pool_grad_matches_central_differences() {
    let mut rng = Rng(5);
    for g in geometries() {
        let x = rng.vec(in_len(&g));
        let dy = rng.vec(out_len(&g));
        let mut dx = vec![0.0; in_len(&g)];
        avg_pool_grad(&dy, &mut dx, &g);
        gradcheck(
            &x,
            &dy,
            &dx,
            |x, out| avg_pool(x, out, &g),
            &format!("avg {g:?}"),
        );
    }
}

#[test]
fn covering_ranges() {
    // k = 3, s = 2, 3 outputs (input 7): windows start at 0, 2, 4.
    let got: Vec<Range<usize>> = (0..7).map(|i| covering(i, 3, 2, 3)).collect();
    assert_eq!(got, [0..1, 0..1, 0..2, 1..2, 1..3, 2..3, 2..3]);
    // k = 2, s = 3, 2 outputs (input 7): windows {0, 1} and {3, 4}; 2, 5, 6 are gaps.
    let got: Vec<usize> = (0..7).map(|i| covering(i, 2, 3, 2).len()).collect();
    assert_eq!(got, [1, 1, 0, 1, 1, 0, 0]);
}

#[test]
fn the_2x2_stride_2_path_gives_the_bits_of_the_general_one() {
    // Odd sizes (a row and a column of the input left over) and even ones, rows of
    // more than 64 windows (taken in parts), ties, NaNs with different payloads,
    // infinities and signed zeros; gradients start as NaN, so a pixel left unwritten
    // shows.
    for (h, w) in [(7, 9), (6, 8), (4, 141)] {
        check_2x2_against_general(geom(3, 2, h, w, 2, 2, 2, 2));
    }
}

#[test]
fn every_2x2_window_of_special_values_routes_like_the_general_path() {
    // All 5^4 windows over NaN, -inf, -0, 0 and 1: every argmax code, every NaN
    // position, ties between signed zeros. One window per plane.
    let vals = [f32::NAN, f32::NEG_INFINITY, -0.0, 0.0, 1.0];
    let windows = vals.len().pow(4);
    let g = geom(windows, 1, 2, 2, 2, 2, 2, 2);
    let x: Vec<f32> = (0..windows * 4)
        .map(|i| vals[(i / 4) / vals.len().pow((i % 4) as u32) % vals.len()])
        .collect();
    let dy: Vec<f32> = (0..windows)
        .map(|i| if i % 3 == 0 { -0.0 } else { 1.5 })
        .collect();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let (mut fast, mut general) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
    max_pool_grad_2x2(&x, &dy, &mut fast, &g);
    max_pool_grad_any(&x, &dy, &mut general, &g);
    assert_eq!(bits(&fast), bits(&general));
}

fn check_2x2_against_general(g: PoolGeom) {
    let special = [
        f32::NAN,
        f32::from_bits(0x7fc0_0123),
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1.0,
        1.0,
    ];
    let x: Vec<f32> = (0..g.n * g.c * g.h * g.w)
        .map(|i| match i % 11 {
            0..=7 => special[(i * 7) % 8],
            _ => ((i as f32) * 0.37).sin().round(),
        })
        .collect();
    let dy: Vec<f32> = (0..g.n * g.c * g.oh() * g.ow())
        .map(|i| match i % 5 {
            0 => -0.0,
            _ => ((i as f32) * 0.61).cos(),
        })
        .collect();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let (mut fast, mut general) = (vec![0.0; dy.len()], vec![0.0; dy.len()]);
    max_pool_2x2(&x, &mut fast, &g);
    max_pool_any(&x, &mut general, &g);
    assert_eq!(bits(&fast), bits(&general));
    let (mut fast, mut general) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
    max_pool_grad_2x2(&x, &dy, &mut fast, &g);
    max_pool_grad_any(&x, &dy, &mut general, &g);
    assert_eq!(bits(&fast), bits(&general));
}
