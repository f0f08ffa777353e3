//! Data movement around the convolution matmul (mirrored by `shaders/conv.wgsl`).
//!
//! A 2-D convolution is built as `im2col` → matmul with the weight `[OC, C·KH·KW]` read
//! transposed → bias add on rows → `rows_to_nchw`; its backward goes through
//! `nchw_to_rows` → matmuls → `col2im`. These four kernels only move (and, in `col2im`,
//! sum) values; all the arithmetic is in the matmul. Training plans fuse `im2col` into
//! the forward product and the weight gradient (`graph::fuse_im2col`, `conv_product.rs`).

use super::{for_each_sample, Real};
use crate::op::ConvGeom;

/// The taps of one output position along one axis that land inside the input: taps
/// `lo..hi` read the input from position `start` on (0 when `lo == hi`: the whole window
/// lies in the padding, and an empty slice at 0 is always in bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    lo: usize,
    hi: usize,
    start: usize,
}

impl Span {
    fn taps(&self) -> usize {
        self.hi - self.lo
    }
}

/// The [`Span`] of each of `outputs` positions along an axis of `len` input positions,
/// with a kernel of `taps`, `stride` and `pad`. Positions are compared in padded
/// coordinates, so nothing subtracts below zero (the shader's u32 arithmetic does the same).
fn spans(outputs: usize, len: usize, taps: usize, stride: usize, pad: usize) -> Vec<Span> {
    (0..outputs)
        .map(|o| {
            let first = o * stride;
            let lo = pad.saturating_sub(first).min(taps);
            let hi = (pad + len).saturating_sub(first).min(taps).max(lo);
            let start = if hi > lo { first + lo - pad } else { 0 };
            Span { lo, hi, start }
        })
        .collect()
}

/// Unfolds `x` `[N, C, H, W]` into `out` `[N·OH·OW, C·KH·KW]`: row `(n·OH + oy)·OW + ox`,
/// column `(c·KH + ky)·KW + kx` holds `x[n, c, oy·sh + ky − ph, ox·sw + kx − pw]`, or zero
/// where that position lies in the padding.
///
/// Which taps of each window fall inside the image is worked out once per output row and
/// column ([`spans`]), so each kernel row of a channel inside the image is one copy, and
/// only windows across an edge test their taps.
pub fn im2col<T: Real>(x: &[T], out: &mut [T], g: &ConvGeom) {
    // Kernel widths of the usual layers get copies of a width known to the compiler, which
    // it turns into moves (a slice copy of a run-time three floats is a library call).
    match g.kw {
        1 => im2col_kw::<T, 1>(x, out, g),
        2 => im2col_kw::<T, 2>(x, out, g),
        3 => im2col_kw::<T, 3>(x, out, g),
        5 => im2col_kw::<T, 5>(x, out, g),
        _ => im2col_kw::<T, 0>(x, out, g),
    }
}

/// [`im2col`] for kernels `KW` wide (0: any width, `g.kw`).
fn im2col_kw<T: Real, const KW: usize>(x: &[T], out: &mut [T], g: &ConvGeom) {
    let kw = if KW == 0 { g.kw } else { KW };
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    let plane = g.h * g.w;
    if patch == 0 || plane == 0 {
        // No columns, or an empty image whose windows lie wholly in the padding.
        out.fill(T::zero());
        return;
    }
    let taps = g.kh * kw;
    let ys = spans(oh, g.h, g.kh, g.sh, g.ph);
    let xs = spans(ow, g.w, kw, g.sw, g.pw);
    for_each_sample(out, oh * ow * patch, |n, sample| {
        let image = &x[n * g.c * plane..][..g.c * plane];
        for (row, (sy, sx)) in sample
            .chunks_exact_mut(patch)
            .zip(ys.iter().flat_map(|sy| xs.iter().map(move |sx| (sy, sx))))
        {
            let whole = sx.lo == 0 && sx.hi == kw;
            for (block, src) in row.chunks_exact_mut(taps).zip(image.chunks_exact(plane)) {
                for (ky, seg) in block.chunks_exact_mut(kw).enumerate() {
                    if ky < sy.lo || ky >= sy.hi {
                        for v in seg.iter_mut() {
                            *v = T::zero();
                        }
                        continue;
                    }
                    let line = (sy.start + ky - sy.lo) * g.w + sx.start;
                    if whole {
                        seg.copy_from_slice(&src[line..][..kw]);
                    } else {
                        for (kx, v) in seg.iter_mut().enumerate() {
                            *v = if kx >= sx.lo && kx < sx.hi {
                                src[line + kx - sx.lo]
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
/// Each pixel's sum runs in one fixed order on both backends: its `(ky, oy)` with
/// `oy·sh + ky == y + ph` with ky ascending (outer), likewise `(kx, ox)` (inner), starting
/// from zero. The shader gathers in that order, one pixel per invocation (no atomics). Here
/// the rows of `cols` are scattered onto a zeroed image instead, last row first: a pixel
/// takes at most one entry per row, and the rows that hold its entries come in descending
/// (oy, ox), that is ascending (ky, kx), so every pixel takes the same additions in the
/// same order as the gather, while `cols` is read in one pass (the gather strides across
/// rows) and each window is a slice addition.
pub fn col2im<T: Real>(cols: &[T], out: &mut [T], g: &ConvGeom) {
    match g.kw {
        1 => col2im_kw::<T, 1>(cols, out, g),
        2 => col2im_kw::<T, 2>(cols, out, g),
        3 => col2im_kw::<T, 3>(cols, out, g),
        5 => col2im_kw::<T, 5>(cols, out, g),
        _ => col2im_kw::<T, 0>(cols, out, g),
    }
}

/// [`col2im`] for kernels `KW` wide (0: any width, `g.kw`), as [`im2col_kw`].
fn col2im_kw<T: Real, const KW: usize>(cols: &[T], out: &mut [T], g: &ConvGeom) {
    let kw = if KW == 0 { g.kw } else { KW };
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    let plane = g.h * g.w;
    let taps = g.kh * kw;
    // A stride of 0 is not a valid geometry; max(1) only keeps `spans` meaningful.
    let ys = spans(oh, g.h, g.kh, g.sh.max(1), g.ph);
    let xs = spans(ow, g.w, kw, g.sw.max(1), g.pw);
    for_each_sample(out, g.c * plane, |n, sample| {
        sample.fill(T::zero());
        if patch == 0 {
            return;
        }
        for (oy, sy) in ys.iter().enumerate().rev() {
            for (ox, sx) in xs.iter().enumerate().rev() {
                let row = &cols[((n * oh + oy) * ow + ox) * patch..][..patch];
                let whole = sx.lo == 0 && sx.hi == kw;
                for (block, dst) in row.chunks_exact(taps).zip(sample.chunks_exact_mut(plane)) {
                    for ky in sy.lo..sy.hi {
                        let seg = &block[ky * kw..][..kw];
                        let line = (sy.start + ky - sy.lo) * g.w + sx.start;
                        if whole {
                            let dst = &mut dst[line..][..kw];
                            for kx in 0..kw {
                                dst[kx] = dst[kx] + seg[kx];
                            }
                        } else {
                            let dst = &mut dst[line..][..sx.taps()];
                            for (d, &v) in dst.iter_mut().zip(&seg[sx.lo..sx.hi]) {
                                *d = *d + v;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// `rows` `[N·HW, C]` (one row per output pixel, as the matmul writes it) to `out`
/// `[N, C, HW]`: `out[(n·C + ch)·HW + p] = rows[(n·HW + p)·C + ch]`.
pub fn rows_to_nchw<T: Real>(rows: &[T], out: &mut [T], n: usize, c: usize, hw: usize) {
    let _ = n;
    for_each_sample(out, c * hw, |b, sample| {
        let src = &rows[b * hw * c..][..hw * c];
        let mut i = 0;
        for ch in 0..c {
            for p in 0..hw {
                sample[i] = src[p * c + ch];
                i += 1;
            }
        }
    });
}

/// The inverse of [`rows_to_nchw`]: `x` `[N, C, HW]` to `out` `[N·HW, C]`,
/// `out[(n·HW + p)·C + ch] = x[(n·C + ch)·HW + p]`.
pub fn nchw_to_rows<T: Real>(x: &[T], out: &mut [T], n: usize, c: usize, hw: usize) {
    let _ = n;
    for_each_sample(out, c * hw, |b, sample| {
        let src = &x[b * c * hw..][..c * hw];
        let mut i = 0;
        for p in 0..hw {
            for ch in 0..c {
                sample[i] = src[ch * hw + p];
                i += 1;
            }
        }
    });
}

#[cfg(test)]
mod tests {
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
        }
    }

    /// Odd sizes, strides 1/2/3 (some larger than the kernel, so pixels go unread),
    /// paddings 0/1/2 (one as large as the kernel, so whole output rows are padding),
    /// kh ≠ kw, batch 1 and 3, channels 1/3/5.
    fn geometries() -> Vec<ConvGeom> {
        vec![
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
                                    let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                                    let ix = (ox * g.sw + kx) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
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
                let iy = (oy * g.sh + ky) as isize - g.ph as isize;
                let ix = (ox * g.sw + kx) as isize - g.pw as isize;
                if iy >= 0 && ix >= 0 && iy < g.h as isize && ix < g.w as isize {
                    out[((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize] +=
                        cols[r * patch + q];
                }
            }
        }
        out
    }

    // The first implementations, one value at a time (im2col) and one pixel's gather at a
    // time (col2im, the shader's order): the fast ones must give their bits.
    /// Unfolds `x` `[N, C, H, W]` into `out` `[N·OH·OW, C·KH·KW]`: row `(n·OH + oy)·OW + ox`,
    /// column `(c·KH + ky)·KW + kx` holds `x[n, c, oy·sh + ky − ph, ox·sw + kx − pw]`, or zero
    /// where that position lies in the padding.
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
                            let yy = oy * g.sh + ky;
                            if yy < g.ph || yy - g.ph >= g.h {
                                seg.iter_mut().for_each(|v| *v = T::zero());
                                continue;
                            }
                            let line = &src[(yy - g.ph) * g.w..][..g.w];
                            for (kx, v) in seg.iter_mut().enumerate() {
                                let xx = ox * g.sw + kx;
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
        for (n, c, hw) in [(1, 1, 1), (1, 3, 7), (3, 5, 63), (2, 4, 1), (3, 1, 9)] {
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
            let loss =
                |x: &[f64], wt: &[f64], b: &[f64]| dot(&dy, &conv_via_im2col(x, wt, b, oc, &g));

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
}
