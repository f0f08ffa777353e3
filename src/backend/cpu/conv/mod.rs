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
mod tests;
