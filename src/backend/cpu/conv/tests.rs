//! Tests of the convolution data movement: hand-derived cases, the direct convolution,
//! adjointness, central differences, and the bits of the first per-element forms.

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
    ph: usize,
    pw: usize,
) -> ConvGeom {
    ConvGeom {
        n,
        c,
        h,
        w,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        dh: 1,
        dw: 1,
    }
}

/// `geom` with dilation (dh, dw).
fn dilated(g: ConvGeom, dh: usize, dw: usize) -> ConvGeom {
    ConvGeom { dh, dw, ..g }
}

/// Odd sizes, strides 1/2/3 (some larger than the kernel, so pixels go unread),
/// paddings 0/1/2 (one as large as the kernel, so whole output rows are padding),
/// kh ≠ kw, batch 1 and 3, channels 1/3/5; dilations 2 and 3, alone and with strides
/// that share a factor with them (taps of one pixel then skip output rows).
fn geometries() -> Vec<ConvGeom> {
    vec![
        dilated(geom(1, 3, 7, 9, 3, 3, 1, 1, 1, 1), 2, 2),
        dilated(geom(3, 2, 9, 8, 3, 2, 2, 1, 2, 0), 2, 3),
        dilated(geom(1, 2, 11, 10, 2, 3, 2, 3, 0, 1), 3, 2),
        dilated(geom(2, 1, 6, 7, 3, 3, 3, 2, 2, 2), 3, 1),
        dilated(geom(1, 1, 5, 5, 2, 2, 1, 1, 1, 1), 4, 4),
        geom(1, 1, 3, 3, 2, 2, 1, 1, 0, 0),
        geom(1, 3, 7, 9, 3, 3, 1, 1, 1, 1),
        geom(3, 5, 7, 9, 3, 2, 2, 2, 1, 2),
        geom(1, 3, 9, 7, 2, 3, 3, 2, 2, 0),
        geom(3, 1, 8, 5, 5, 1, 2, 3, 2, 0),
        geom(1, 5, 5, 5, 1, 1, 2, 2, 0, 0),
        geom(1, 3, 4, 6, 4, 4, 1, 3, 2, 1),
        geom(3, 3, 7, 7, 2, 2, 3, 3, 2, 1),
        geom(1, 1, 1, 1, 3, 3, 1, 1, 1, 1),
    ]
}

/// Deterministic values in [-1, 1) (splitmix64).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a [m, k] · bᵀ` for `b [n, k]`.
fn matmul_bt(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
        }
    }
    out
}

/// `a [m, k] · b [k, n]`.
fn matmul_nn(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
        }
    }
    out
}

/// `aᵀ · b` for `a [k, m]`, `b [k, n]`.
fn matmul_tn(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| a[t * m + i] * b[t * n + j]).sum();
        }
    }
    out
}

/// Direct convolution, NCHW in and out, weight `[OC, C, KH, KW]`, signed coordinates.
fn direct_conv(x: &[f64], wt: &[f64], b: &[f64], oc: usize, g: &ConvGeom) -> Vec<f64> {
    let (oh, ow) = (g.oh(), g.ow());
    let mut out = vec![0.0; g.n * oc * oh * ow];
    for n in 0..g.n {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[o];
                    for c in 0..g.c {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                                let ix = (ox * g.sw + kx * g.dw) as isize - g.pw as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let (iy, ix) = (iy as usize, ix as usize);
                                acc += wt[((o * g.c + c) * g.kh + ky) * g.kw + kx]
                                    * x[((n * g.c + c) * g.h + iy) * g.w + ix];
                            }
                        }
                    }
                    out[((n * oc + o) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    out
}

/// The lead's forward pipeline: im2col → cols · wᵀ → + bias per row → NCHW.
fn conv_via_im2col(x: &[f64], wt: &[f64], b: &[f64], oc: usize, g: &ConvGeom) -> Vec<f64> {
    let (rows, patch, hw) = (g.n * g.oh() * g.ow(), g.patch(), g.oh() * g.ow());
    let mut cols = vec![f64::NAN; rows * patch];
    im2col(x, &mut cols, g);
    let mut y = matmul_bt(&cols, wt, rows, oc, patch);
    for (i, v) in y.iter_mut().enumerate() {
        *v += b[i % oc];
    }
    let mut out = vec![f64::NAN; y.len()];
    rows_to_nchw(&y, &mut out, g.n, oc, hw);
    out
}

/// Scatter form of col2im, straight from the definition: every cols entry added to the
/// pixel it was read from (a different summation order from the kernel's gather).
fn col2im_scatter(cols: &[f64], g: &ConvGeom) -> Vec<f64> {
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    let mut out = vec![0.0; g.n * g.c * g.h * g.w];
    for r in 0..g.n * oh * ow {
        let (n, oy, ox) = (r / (oh * ow), (r / ow) % oh, r % ow);
        for q in 0..patch {
            let (c, ky, kx) = (q / (g.kh * g.kw), (q / g.kw) % g.kh, q % g.kw);
            let iy = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
            let ix = (ox * g.sw + kx * g.dw) as isize - g.pw as isize;
            if iy >= 0 && ix >= 0 && iy < g.h as isize && ix < g.w as isize {
                out[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize] += cols[r * patch + q];
            }
        }
    }
    out
}

// The first implementations, one value at a time (im2col) and one pixel's gather at a
// time (col2im, the shader's order): the fast ones must give their bits.
/// Unfolds `x` `[N, C, H, W]` into `out` `[N·OH·OW, C·KH·KW]`: row `(n·OH + oy)·OW + ox`,
/// column `(c·KH + ky)·KW + kx` holds `x[n, c, oy·sh + ky·dh − ph, ox·sw + kx·dw − pw]`,
/// or zero where that position lies in the padding.
fn im2col_by_element<T: Real>(x: &[T], out: &mut [T], g: &ConvGeom) {
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    if patch == 0 {
        return;
    }
    let plane = g.h * g.w;
    let per_sample = oh * ow * patch;
    for_each_sample(out, per_sample, |n, sample| {
        let mut rows = sample.chunks_exact_mut(patch);
        for oy in 0..oh {
            for ox in 0..ow {
                let Some(row) = rows.next() else {
                    return;
                };
                // One kernel row of one channel at a time: kw consecutive outputs.
                let mut segments = row.chunks_exact_mut(g.kw);
                for c in 0..g.c {
                    let src = &x[(n * g.c + c) * plane..][..plane];
                    for ky in 0..g.kh {
                        let Some(seg) = segments.next() else {
                            return;
                        };
                        // Positions in padded coordinates, so the padding test never
                        // subtracts below zero (the shader's u32 arithmetic does the same).
                        let yy = oy * g.sh + ky * g.dh;
                        if yy < g.ph || yy - g.ph >= g.h {
                            seg.iter_mut().for_each(|v| *v = T::zero());
                            continue;
                        }
                        let line = &src[(yy - g.ph) * g.w..][..g.w];
                        for (kx, v) in seg.iter_mut().enumerate() {
                            let xx = ox * g.sw + kx * g.dw;
                            *v = if xx >= g.pw && xx - g.pw < g.w {
                                line[xx - g.pw]
                            } else {
                                T::zero()
                            };
                        }
                    }
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: `out[n, c, y, x]` (`[N, C, H, W]`) is the sum of every entry
/// of `cols` (`[N·OH·OW, C·KH·KW]`) that `im2col` reads from `(n, c, y, x)`.
///
/// Gather form, one output pixel at a time, so the shader needs no atomics: the `(ky, oy)`
/// with `oy·sh + ky == y + ph` are walked with ky ascending (outer loop), likewise `(kx, ox)`
/// (inner loop), skipping the `oy ≥ OH` / `ox ≥ OW` that fall past the output. The sum runs
/// in that fixed order on both backends.
fn col2im_gather<T: Real>(cols: &[T], out: &mut [T], g: &ConvGeom) {
    if g.dh > 1 || g.dw > 1 {
        return col2im_gather_dilated(cols, out, g);
    }
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    // A stride of 0 is not a valid geometry; max(1) only keeps this from dividing by zero.
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    for_each_sample(out, g.c * g.h * g.w, |n, sample| {
        let mut i = 0;
        for c in 0..g.c {
            for y in 0..g.h {
                // The first (ky, oy) with oy·sh + ky == y + ph and oy < OH, ky smallest.
                let yy = y + g.ph;
                let (mut ky0, mut oy0) = (yy % sh, yy / sh);
                if oy0 >= oh {
                    ky0 += (oy0 - (oh - 1)) * sh;
                    oy0 = oh - 1;
                }
                for x in 0..g.w {
                    let xx = x + g.pw;
                    let (mut kx0, mut ox0) = (xx % sw, xx / sw);
                    if ox0 >= ow {
                        kx0 += (ox0 - (ow - 1)) * sw;
                        ox0 = ow - 1;
                    }
                    let mut acc = T::zero();
                    let (mut ky, mut oy) = (ky0, oy0);
                    while ky < g.kh {
                        let row0 = (n * oh + oy) * ow;
                        let col0 = (c * g.kh + ky) * g.kw;
                        let (mut kx, mut ox) = (kx0, ox0);
                        while kx < g.kw {
                            acc = acc + cols[(row0 + ox) * patch + col0 + kx];
                            if ox == 0 {
                                break;
                            }
                            ox -= 1;
                            kx += sw;
                        }
                        if oy == 0 {
                            break;
                        }
                        oy -= 1;
                        ky += sh;
                    }
                    sample[i] = acc;
                    i += 1;
                }
            }
        }
    });
}

/// [`col2im_gather`] for a dilated kernel, as the shader runs it: every tap tried, ky
/// ascending (outer) and kx ascending (inner), each kept when its output position
/// (y + ph − ky·dh) / sh is whole and inside the output; the same order of additions.
fn col2im_gather_dilated<T: Real>(cols: &[T], out: &mut [T], g: &ConvGeom) {
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    // The output position a tap at offset `off` reads padded coordinate `pos` from.
    let source = |pos: usize, off: usize, s: usize, len: usize| {
        (off <= pos && (pos - off).is_multiple_of(s) && (pos - off) / s < len)
            .then(|| (pos - off) / s)
    };
    for_each_sample(out, g.c * g.h * g.w, |n, sample| {
        let mut i = 0;
        for c in 0..g.c {
            for y in 0..g.h {
                for x in 0..g.w {
                    let mut acc = T::zero();
                    for ky in 0..g.kh {
                        let Some(oy) = source(y + g.ph, ky * g.dh, sh, oh) else {
                            continue;
                        };
                        for kx in 0..g.kw {
                            let Some(ox) = source(x + g.pw, kx * g.dw, sw, ow) else {
                                continue;
                            };
                            let q = (c * g.kh + ky) * g.kw + kx;
                            acc = acc + cols[((n * oh + oy) * ow + ox) * patch + q];
                        }
                    }
                    sample[i] = acc;
                    i += 1;
                }
            }
        }
    });
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

#[test]
fn im2col_and_col2im_give_the_bits_of_the_per_element_forms() {
    let mut all = geometries();
    // Padding wider than the kernel (whole windows in the padding), stride past the
    // kernel, and the cnn preset's second layer.
    all.extend([
        geom(2, 2, 3, 4, 2, 2, 1, 1, 3, 2),
        // Padding wider than the kernel on both axes: windows wholly in the padding
        // on the right and at the bottom.
        geom(1, 2, 3, 3, 1, 1, 1, 1, 2, 2),
        geom(2, 1, 1, 1, 1, 1, 1, 1, 3, 3),
        // An empty image whose windows reach only padding.
        geom(1, 1, 0, 2, 2, 1, 1, 1, 1, 0),
        geom(1, 2, 9, 9, 2, 3, 4, 5, 1, 1),
        geom(2, 32, 14, 14, 3, 3, 1, 1, 1, 1),
        // Kernels larger than the padded image (the graph refuses these for Conv2d, not
        // for a bare Col2Im): windows reach past the bottom and right borders.
        geom(1, 1, 1, 1, 3, 3, 1, 1, 0, 0),
        geom(1, 2, 2, 3, 4, 2, 1, 1, 0, 0),
        // Padding that no window reaches on the bottom and right (stride past the image).
        geom(2, 2, 3, 3, 1, 1, 5, 5, 2, 2),
        // 32,768 outputs: samples on all cores, 72 taps in blocks of 16.
        geom(4, 8, 32, 32, 3, 3, 1, 1, 1, 1),
    ]);
    for (t, g) in all.iter().enumerate() {
        let x: Vec<f32> = values(g.n * g.c * g.h * g.w, 700 + t as u64)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let len = g.n * g.oh() * g.ow() * g.patch();
        let (mut fast, mut slow) = (vec![f32::NAN; len], vec![f32::NAN; len]);
        im2col(&x, &mut fast, g);
        im2col_by_element(&x, &mut slow, g);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fast), bits(&slow), "im2col {g:?}");
        // Entries of mixed signs and magnitudes, so that another order of the same
        // additions would round differently.
        let y: Vec<f32> = values(len, 800 + t as u64)
            .iter()
            .enumerate()
            .map(|(i, &v)| (v * f64::from(1u32 << (i % 17))) as f32)
            .collect();
        let (mut fast, mut slow) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
        col2im(&y, &mut fast, g);
        col2im_gather(&y, &mut slow, g);
        assert_eq!(bits(&fast), bits(&slow), "col2im {g:?}");
    }
}

#[test]
fn empty_batches_and_channels_write_nothing_and_do_not_panic() {
    for g in [
        geom(0, 2, 3, 3, 2, 2, 1, 1, 1, 1),
        geom(2, 0, 3, 3, 2, 2, 1, 1, 1, 1),
    ] {
        let len = g.n * g.oh() * g.ow() * g.patch();
        let mut cols = vec![0.0f32; len];
        im2col(&[], &mut cols, &g);
        let mut image = vec![0.0f32; g.n * g.c * g.h * g.w];
        col2im(&cols, &mut image, &g);
        assert!(cols.is_empty() && image.is_empty(), "{g:?}");
    }
}

#[test]
fn im2col_hand_derived_3x3_input_2x2_kernel() {
    let g = geom(1, 1, 3, 3, 2, 2, 1, 1, 0, 0);
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut cols = vec![f64::NAN; 4 * 4];
    im2col(&x, &mut cols, &g);
    #[rustfmt::skip]
    let want = [
        1.0, 2.0, 4.0, 5.0,
        2.0, 3.0, 5.0, 6.0,
        4.0, 5.0, 7.0, 8.0,
        5.0, 6.0, 8.0, 9.0,
    ];
    assert_eq!(cols, want);
}

#[test]
fn im2col_hand_derived_dilation() {
    // 1x1x4x5 input (values 1..=20), 2x2 kernel with dilation (2, 3) and padding (0, 1):
    // the window spans 3 rows and 4 columns, so OH = 4 − 3 + 1 = 2 and
    // OW = (5 + 2 − 4) + 1 = 4; tap (ky, kx) reads row oy + 2·ky, column ox + 3·kx − 1.
    let g = dilated(geom(1, 1, 4, 5, 2, 2, 1, 1, 0, 1), 2, 3);
    assert_eq!((g.oh(), g.ow()), (2, 4));
    let x: Vec<f64> = (1..=20).map(f64::from).collect();
    let mut cols = vec![f64::NAN; 8 * 4];
    im2col(&x, &mut cols, &g);
    #[rustfmt::skip]
    let want = [
        0.0, 3.0, 0.0, 13.0,
        1.0, 4.0, 11.0, 14.0,
        2.0, 5.0, 12.0, 15.0,
        3.0, 0.0, 13.0, 0.0,
        0.0, 8.0, 0.0, 18.0,
        6.0, 9.0, 16.0, 19.0,
        7.0, 10.0, 17.0, 20.0,
        8.0, 0.0, 18.0, 0.0,
    ];
    assert_eq!(cols, want);
    // col2im counts how often each pixel is read. Each row once (row y by ky = 0 from
    // oy = y, or by ky = 1 from oy = y − 2); column x (padded x + 1) by kx = 0 from
    // ox = x + 1 when that is below 4, and by kx = 1 from ox = x − 2 when x ≥ 2: twice
    // only for x = 2.
    let mut image = vec![f64::NAN; 20];
    col2im(&[1.0; 32], &mut image, &g);
    #[rustfmt::skip]
    let reads = [
        1.0, 1.0, 2.0, 1.0, 1.0,
        1.0, 1.0, 2.0, 1.0, 1.0,
        1.0, 1.0, 2.0, 1.0, 1.0,
        1.0, 1.0, 2.0, 1.0, 1.0,
    ];
    assert_eq!(image, reads);
}

#[test]
fn im2col_hand_derived_padding_and_stride() {
    // 1x2x2x2 input, 2x2 kernel, stride 2, padding 1: OH = OW = (2 + 2 − 2)/2 + 1 = 2;
    // every patch holds exactly one real pixel of each channel.
    let g = geom(1, 2, 2, 2, 2, 2, 2, 2, 1, 1);
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let mut cols = vec![f64::NAN; 4 * 8];
    im2col(&x, &mut cols, &g);
    #[rustfmt::skip]
    let want = [
        0.0, 0.0, 0.0, 1.0,   0.0, 0.0, 0.0, 5.0,
        0.0, 0.0, 2.0, 0.0,   0.0, 0.0, 6.0, 0.0,
        0.0, 3.0, 0.0, 0.0,   0.0, 7.0, 0.0, 0.0,
        4.0, 0.0, 0.0, 0.0,   8.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(cols, want);
}

#[test]
fn col2im_hand_derived_coverage_counts() {
    // col2im of all ones counts how many patches read each pixel.
    let g = geom(1, 1, 3, 3, 2, 2, 1, 1, 0, 0);
    let mut out = vec![f64::NAN; 9];
    col2im(&[1.0; 16], &mut out, &g);
    assert_eq!(out, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);

    // Stride 3 over a 2-wide kernel on a 1x5 row: pixel 2 is never read.
    let g = geom(1, 1, 1, 5, 1, 2, 1, 3, 0, 0);
    let mut out = vec![f64::NAN; 5];
    col2im(&[1.0, 10.0, 100.0, 1000.0], &mut out, &g);
    assert_eq!(out, [1.0, 10.0, 0.0, 100.0, 1000.0]);

    // Padding 1 with a 3-wide kernel on a 1x2 row (OW = 2): the sums in kx order.
    let g = geom(1, 1, 1, 2, 1, 3, 1, 1, 0, 1);
    let mut out = vec![f64::NAN; 2];
    col2im(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &mut out, &g);
    // pixel 0: row 0 kx 1 (2) + row 1 kx 0 (4); pixel 1: row 0 kx 2 (3) + row 1 kx 1 (5).
    assert_eq!(out, [6.0, 8.0]);
}

#[test]
fn im2col_matmul_equals_direct_convolution() {
    for (t, g) in geometries().iter().enumerate() {
        for oc in [1, 4] {
            let seed = 10 * t as u64 + oc as u64;
            let x = values(g.n * g.c * g.h * g.w, seed);
            let wt = values(oc * g.patch(), seed + 100);
            let b = values(oc, seed + 200);
            let got = conv_via_im2col(&x, &wt, &b, oc, g);
            let want = direct_conv(&x, &wt, &b, oc, g);
            assert_close(&got, &want, 1e-12, &format!("{g:?} oc {oc}"));
        }
    }
}

#[test]
fn im2col_f32_matches_f64() {
    let g = geom(3, 5, 7, 9, 3, 2, 2, 2, 1, 2);
    let x = values(g.n * g.c * g.h * g.w, 7);
    let len = g.n * g.oh() * g.ow() * g.patch();
    let mut c64 = vec![0.0; len];
    im2col(&x, &mut c64, &g);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let mut c32 = vec![f32::NAN; len];
    im2col(&x32, &mut c32, &g);
    for (a, b) in c32.iter().zip(&c64) {
        assert_eq!(*a, *b as f32);
    }
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    for (t, g) in geometries().iter().enumerate() {
        let x = values(g.n * g.c * g.h * g.w, 300 + t as u64);
        let y = values(g.n * g.oh() * g.ow() * g.patch(), 400 + t as u64);
        let mut cols = vec![f64::NAN; y.len()];
        im2col(&x, &mut cols, g);
        let mut back = vec![f64::NAN; x.len()];
        col2im(&y, &mut back, g);
        let (lhs, rhs) = (dot(&cols, &y), dot(&x, &back));
        let scale = x.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
        assert!(
            (lhs - rhs).abs() <= 1e-12 * scale,
            "{g:?}: <im2col x, y> = {lhs}, <x, col2im y> = {rhs}"
        );
    }
}

#[test]
fn col2im_matches_the_scatter_definition() {
    for (t, g) in geometries().iter().enumerate() {
        let y = values(g.n * g.oh() * g.ow() * g.patch(), 500 + t as u64);
        let mut got = vec![f64::NAN; g.n * g.c * g.h * g.w];
        col2im(&y, &mut got, g);
        assert_close(&got, &col2im_scatter(&y, g), 1e-13, &format!("{g:?}"));
    }
}

#[test]
fn layout_transposes_are_inverse_and_match_the_formula() {
    // Shapes below, at and across the 16x16 tiles (partial tiles on either side).
    let shapes = [(1, 1, 1), (1, 3, 7), (3, 5, 63), (2, 4, 1), (3, 1, 9)];
    for (n, c, hw) in shapes
        .into_iter()
        .chain([(2, 16, 32), (2, 37, 70), (1, 64, 49)])
    {
        let rows = values(n * hw * c, (n * 100 + c * 10 + hw) as u64);
        let mut nchw = vec![f64::NAN; rows.len()];
        rows_to_nchw(&rows, &mut nchw, n, c, hw);
        for b in 0..n {
            for p in 0..hw {
                for ch in 0..c {
                    assert_eq!(nchw[(b * c + ch) * hw + p], rows[(b * hw + p) * c + ch]);
                }
            }
        }
        let mut back = vec![f64::NAN; rows.len()];
        nchw_to_rows(&nchw, &mut back, n, c, hw);
        assert_eq!(
            back, rows,
            "nchw_to_rows ∘ rows_to_nchw, n {n} c {c} hw {hw}"
        );
        let mut again = vec![f64::NAN; rows.len()];
        rows_to_nchw(&back, &mut again, n, c, hw);
        assert_eq!(
            again, nchw,
            "rows_to_nchw ∘ nchw_to_rows, n {n} c {c} hw {hw}"
        );
    }
}

/// The lead's backward pipeline, checked by central differences against the forward:
/// for L = ⟨dy, conv(x, w, b)⟩, with dY = nchw_to_rows(dy) `[N·OH·OW, OC]`,
/// dx = col2im(dY · w), dw = dYᵀ · im2col(x), db = column sums of dY.
#[test]
fn backward_pipeline_matches_central_differences() {
    let oc = 3;
    for g in [
        geom(1, 3, 7, 5, 3, 2, 2, 3, 1, 2),
        geom(1, 5, 5, 7, 2, 3, 3, 1, 2, 0),
    ] {
        let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
        let rows = g.n * oh * ow;
        let x = values(g.n * g.c * g.h * g.w, 900);
        let wt = values(oc * patch, 901);
        let b = values(oc, 902);
        let dy = values(g.n * oc * oh * ow, 903);
        let loss = |x: &[f64], wt: &[f64], b: &[f64]| dot(&dy, &conv_via_im2col(x, wt, b, oc, &g));

        let mut d_rows = vec![f64::NAN; rows * oc];
        nchw_to_rows(&dy, &mut d_rows, g.n, oc, oh * ow);
        let d_cols = matmul_nn(&d_rows, &wt, rows, patch, oc);
        let mut dx = vec![f64::NAN; x.len()];
        col2im(&d_cols, &mut dx, &g);
        let mut cols = vec![f64::NAN; rows * patch];
        im2col(&x, &mut cols, &g);
        let dw = matmul_tn(&d_rows, &cols, oc, patch, rows);
        let db: Vec<f64> = (0..oc)
            .map(|o| (0..rows).map(|r| d_rows[r * oc + o]).sum())
            .collect();

        let h = 1e-6;
        let numeric = |v: &[f64], f: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
            (0..v.len())
                .map(|i| {
                    let (mut p, mut m) = (v.to_vec(), v.to_vec());
                    p[i] += h;
                    m[i] -= h;
                    (f(&p) - f(&m)) / (2.0 * h)
                })
                .collect()
        };
        let nx = numeric(&x, &|v| loss(v, &wt, &b));
        let nw = numeric(&wt, &|v| loss(&x, v, &b));
        let nb = numeric(&b, &|v| loss(&x, &wt, v));
        assert_close(&dx, &nx, 1e-6, &format!("dx {g:?}"));
        assert_close(&dw, &nw, 1e-6, &format!("dw {g:?}"));
        assert_close(&db, &nb, 1e-6, &format!("db {g:?}"));
    }
}
