//! Grouped convolution (`Conv2d(groups > 1)`, depthwise when groups = channels) computed
//! directly, mirrored by `shaders/grouped_conv.wgsl`. Each output channel reads C/G input
//! channels, so im2col and a GEMM would multiply mostly zeros (or run G small products);
//! a grouped layer's work is a few multiply-adds per output. Sums run in one fixed order
//! on both backends, given per function; taps that fall in the padding are skipped, not
//! added as zeros. The shader gathers each sum in one invocation; here each tap is
//! applied to a whole plane at a time (a line of outputs is a run of consecutive values,
//! which vectorises), in the order that gives every sum the shader's additions in the
//! shader's order, so the two agree bit for bit in f32 (tested against the per-output
//! form, `tests.rs`).

use super::super::{for_each_sample_with, Real};
use super::transpose;
use crate::op::GroupGeom;

/// The outputs `[lo, hi)` along one axis (of `outputs`) whose tap at offset `off` reads
/// inside the input: `o·stride + off − pad` in `[0, len)`.
fn valid_outputs(
    outputs: usize,
    stride: usize,
    off: usize,
    pad: usize,
    len: usize,
) -> (usize, usize) {
    let s = stride.max(1);
    let lo = pad.saturating_sub(off).div_ceil(s);
    let hi = match (len + pad).checked_sub(off + 1) {
        Some(last) => (last / s + 1).min(outputs),
        None => 0,
    };
    (lo.min(hi), hi)
}

/// Adds `v · scale` to `acc[ox]` for ox in `[lo, hi)`, reading `v` from `src` at
/// `ox·stride + start − lo·stride` (the tap's input column for each output).
fn axpy_line<T: Real>(
    acc: &mut [T],
    src: &[T],
    scale: T,
    (lo, hi): (usize, usize),
    stride: usize,
    first: usize,
) {
    if stride == 1 {
        for (a, &v) in acc[lo..hi].iter_mut().zip(&src[first..first + (hi - lo)]) {
            *a = *a + v * scale;
        }
    } else {
        for (k, a) in acc[lo..hi].iter_mut().enumerate() {
            *a = *a + src[first + k * stride] * scale;
        }
    }
}

/// `out [N·OH·OW, OC]`: output (r, o) = Σ over its group's channels c', kernel rows ky
/// and columns kx (in that order, ascending) of `x[n, g·C/G + c', iy, ix] · w[o, (c'·KH +
/// ky)·KW + kx]`, g = o / (OC/G), skipping taps in the padding. Each output channel's
/// plane is summed tap by tap, then the planes are turned into rows.
pub fn grouped_conv<T: Real>(x: &[T], w: &[T], out: &mut [T], gg: &GroupGeom, oc: usize) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let (plane, pixels) = (g.h * g.w, oh * ow);
    let scratch = || vec![T::zero(); oc * pixels];
    for_each_sample_with(out, pixels * oc, scratch, |planes, n, sample| {
        for (o, acc) in planes.chunks_exact_mut(pixels).enumerate() {
            acc.fill(T::zero());
            let group = o / ocg.max(1);
            for c in 0..cg {
                let image = &x[(n * g.c + group * cg + c) * plane..][..plane];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let wv = w[o * kg + (c * g.kh + ky) * g.kw + kx];
                        let span = valid_outputs(ow, g.sw, kx * g.dw, g.pw, g.w);
                        if span.0 == span.1 {
                            continue;
                        }
                        let first = span.0 * g.sw + kx * g.dw - g.pw;
                        for oy in 0..oh {
                            let Some(iy) = input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                                continue;
                            };
                            let line = &mut acc[oy * ow..][..ow];
                            axpy_line(line, &image[iy * g.w..][..g.w], wv, span, g.sw, first);
                        }
                    }
                }
            }
        }
        transpose(planes, sample, oc, pixels);
    });
}

/// The input position (along one axis) that output `o` reads through tap offset `off`
/// with padding `pad`, when it lies inside the input of length `len`.
fn input_at(o: usize, stride: usize, off: usize, pad: usize, len: usize) -> Option<usize> {
    let p = (o * stride + off).checked_sub(pad)?;
    (p < len).then_some(p)
}

/// `dx [N, C, H, W]`: pixel (n, c, y, x) sums, over its group's output channels j
/// (ascending), then kernel rows ky and columns kx (ascending) whose output position
/// exists, `dy[(n·OH + oy)·OW + ox, g·OC/G + j] · w[g·OC/G + j, (c'·KH + ky)·KW + kx]`.
/// Each (j, ky, kx) adds one plane of `dy` onto the pixels it reaches, which gives every
/// pixel its terms in that order (a pixel takes at most one term per tap).
pub fn grouped_conv_input_grad<T: Real>(
    dy: &[T],
    w: &[T],
    out: &mut [T],
    gg: &GroupGeom,
    oc: usize,
) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let (plane, pixels) = (g.h * g.w, oh * ow);
    let scratch = || vec![T::zero(); oc * pixels];
    for_each_sample_with(out, g.c * plane, scratch, |dy_planes, n, sample| {
        transpose(&dy[n * pixels * oc..][..pixels * oc], dy_planes, pixels, oc);
        for (c, acc) in sample.chunks_exact_mut(plane).enumerate() {
            acc.fill(T::zero());
            let (group, cc) = (c / cg.max(1), c % cg.max(1));
            for o in group * ocg..(group + 1) * ocg {
                let d = &dy_planes[o * pixels..][..pixels];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let wv = w[o * kg + (cc * g.kh + ky) * g.kw + kx];
                        let (lo, hi) = valid_outputs(ow, g.sw, kx * g.dw, g.pw, g.w);
                        if lo == hi {
                            continue;
                        }
                        for oy in 0..oh {
                            let Some(iy) = input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                                continue;
                            };
                            let start = iy * g.w + lo * g.sw + kx * g.dw - g.pw;
                            let src = &d[oy * ow + lo..oy * ow + hi];
                            if g.sw == 1 {
                                for (a, &v) in acc[start..start + (hi - lo)].iter_mut().zip(src) {
                                    *a = *a + v * wv;
                                }
                            } else {
                                for (k, &v) in src.iter().enumerate() {
                                    let a = &mut acc[start + k * g.sw];
                                    *a = *a + v * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
    });
}

/// `dw [OC, C/G·KH·KW]`: weight (o, q) sums, over the output rows r = (n, oy, ox) in
/// order, `dy[r, o] · x[n, g·C/G + c', iy, ix]` for the rows whose tap is inside the
/// input. `dy` is first turned into planes, so each sum reads lines of both operands.
/// One weight row per task (its sums do not depend on the thread count).
pub fn grouped_conv_weight_grad<T: Real>(
    dy: &[T],
    x: &[T],
    out: &mut [T],
    gg: &GroupGeom,
    oc: usize,
) {
    use rayon::prelude::*;
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    if kg == 0 || oc == 0 {
        return;
    }
    let ocg = oc / gg.groups.max(1);
    let (plane, pixels) = (g.h * g.w, oh * ow);
    let mut dy_planes = vec![T::zero(); g.n * oc * pixels];
    for (n, planes) in dy_planes.chunks_exact_mut(oc * pixels).enumerate() {
        transpose(&dy[n * pixels * oc..][..pixels * oc], planes, pixels, oc);
    }
    let weight_row = |o: usize, row: &mut [T]| {
        let first = (o / ocg.max(1)) * cg;
        for (q, v) in row.iter_mut().enumerate() {
            let (c, ky, kx) = (q / (g.kh * g.kw), (q / g.kw) % g.kh, q % g.kw);
            let (lo, hi) = valid_outputs(ow, g.sw, kx * g.dw, g.pw, g.w);
            let mut acc = T::zero();
            for n in 0..g.n {
                if lo == hi {
                    break;
                }
                let image = &x[(n * g.c + first + c) * plane..][..plane];
                let d = &dy_planes[(n * oc + o) * pixels..][..pixels];
                for oy in 0..oh {
                    let Some(iy) = input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                        continue;
                    };
                    let start = iy * g.w + lo * g.sw + kx * g.dw - g.pw;
                    for (k, &dv) in d[oy * ow + lo..oy * ow + hi].iter().enumerate() {
                        acc = acc + dv * image[start + k * g.sw];
                    }
                }
            }
            *v = acc;
        }
    };
    let out = &mut out[..oc * kg];
    if oc * kg * g.n * pixels >= 1 << 16 {
        out.par_chunks_mut(kg)
            .enumerate()
            .for_each(|(o, row)| weight_row(o, row));
    } else {
        for (o, row) in out.chunks_mut(kg).enumerate() {
            weight_row(o, row);
        }
    }
}

#[cfg(test)]
mod tests;
