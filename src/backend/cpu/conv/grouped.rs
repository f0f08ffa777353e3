//! Grouped convolution (`Conv2d(groups > 1)`, depthwise when groups = channels) computed
//! directly, mirrored loop for loop by `shaders/grouped_conv.wgsl`. Each output channel
//! reads C/G input channels, so im2col and a GEMM would multiply mostly zeros (or run G
//! small products); a grouped layer's work is a few multiply-adds per output, which the
//! direct loops do at memory speed. Sums run in one fixed order on both backends, given
//! per function; taps that fall in the padding are skipped, not added as zeros.

use super::super::{for_each_sample, Real};
use crate::op::{ConvGeom, GroupGeom};

/// The output position (along one axis) that tap offset `off` reads padded coordinate
/// `pos` from, when there is one: `(pos − off) / stride`, whole and below `len`.
fn source(pos: usize, off: usize, stride: usize, len: usize) -> Option<usize> {
    let t = pos.checked_sub(off)?;
    (t.is_multiple_of(stride) && t / stride < len).then_some(t / stride)
}

/// The input position (along one axis) that output `o` reads through tap offset `off`
/// with padding `pad`, when it lies inside the input of length `len`.
fn input_at(o: usize, stride: usize, off: usize, pad: usize, len: usize) -> Option<usize> {
    let p = (o * stride + off).checked_sub(pad)?;
    (p < len).then_some(p)
}

/// `out [N·OH·OW, OC]`: output (r, o) = Σ over its group's channels c', kernel rows ky
/// and columns kx (in that order, ascending) of `x[n, g·C/G + c', iy, ix] · w[o, (c'·KH +
/// ky)·KW + kx]`, g = o / (OC/G), skipping taps in the padding.
pub fn grouped_conv<T: Real>(x: &[T], w: &[T], out: &mut [T], gg: &GroupGeom, oc: usize) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let plane = g.h * g.w;
    for_each_sample(out, oh * ow * oc, |n, sample| {
        for (p, row) in sample.chunks_exact_mut(oc).enumerate() {
            let (oy, ox) = (p / ow, p % ow);
            for (o, v) in row.iter_mut().enumerate() {
                let first = (n * g.c + (o / ocg.max(1)) * cg) * plane;
                let wrow = &w[o * kg..][..kg];
                *v = window_dot(&x[first..][..cg * plane], wrow, g, cg, oy, ox);
            }
        }
    });
}

/// The sum of one output of [`grouped_conv`]: `group` holds its group's `cg` channel planes.
fn window_dot<T: Real>(
    group: &[T],
    wrow: &[T],
    g: &ConvGeom,
    cg: usize,
    oy: usize,
    ox: usize,
) -> T {
    let mut acc = T::zero();
    for c in 0..cg {
        for ky in 0..g.kh {
            let Some(iy) = input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                continue;
            };
            for kx in 0..g.kw {
                let Some(ix) = input_at(ox, g.sw, kx * g.dw, g.pw, g.w) else {
                    continue;
                };
                let wv = wrow[(c * g.kh + ky) * g.kw + kx];
                acc = acc + group[(c * g.h + iy) * g.w + ix] * wv;
            }
        }
    }
    acc
}

/// `dx [N, C, H, W]`: pixel (n, c, y, x) gathers, over its group's output channels j
/// (ascending), then kernel rows ky and columns kx (ascending) whose output position
/// exists, `dy[(n·OH + oy)·OW + ox, g·OC/G + j] · w[g·OC/G + j, (c'·KH + ky)·KW + kx]`.
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
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    for_each_sample(out, g.c * g.h * g.w, |n, sample| {
        for (i, v) in sample.iter_mut().enumerate() {
            let (c, y, x) = (i / (g.h * g.w), (i / g.w) % g.h, i % g.w);
            let (group, cc) = (c / cg.max(1), c % cg.max(1));
            let mut acc = T::zero();
            for o in group * ocg..(group + 1) * ocg {
                for ky in 0..g.kh {
                    let Some(oy) = source(y + g.ph, ky * g.dh, sh, oh) else {
                        continue;
                    };
                    for kx in 0..g.kw {
                        let Some(ox) = source(x + g.pw, kx * g.dw, sw, ow) else {
                            continue;
                        };
                        let d = dy[((n * oh + oy) * ow + ox) * oc + o];
                        acc = acc + d * w[o * kg + (cc * g.kh + ky) * g.kw + kx];
                    }
                }
            }
            *v = acc;
        }
    });
}

/// `dw [OC, C/G·KH·KW]`: weight (o, q) sums, over the output rows r = (n, oy, ox) in
/// order, `dy[r, o] · x[n, g·C/G + c', iy, ix]` for the rows whose tap is inside the
/// input. One weight row per task (its sums do not depend on the thread count).
pub fn grouped_conv_weight_grad<T: Real>(
    dy: &[T],
    x: &[T],
    out: &mut [T],
    gg: &GroupGeom,
    oc: usize,
) {
    let g = &gg.conv;
    let (oh, ow, cg, kg) = (g.oh(), g.ow(), gg.group_channels(), gg.group_patch());
    let ocg = oc / gg.groups.max(1);
    let plane = g.h * g.w;
    let weight_row = |o: usize, row: &mut [T]| {
        let first = (o / ocg.max(1)) * cg;
        for (q, v) in row.iter_mut().enumerate() {
            let (c, ky, kx) = (q / (g.kh * g.kw), (q / g.kw) % g.kh, q % g.kw);
            let mut acc = T::zero();
            for n in 0..g.n {
                let image = &x[(n * g.c + first + c) * plane..][..plane];
                for oy in 0..oh {
                    let Some(iy) = input_at(oy, g.sh, ky * g.dh, g.ph, g.h) else {
                        continue;
                    };
                    for ox in 0..ow {
                        let Some(ix) = input_at(ox, g.sw, kx * g.dw, g.pw, g.w) else {
                            continue;
                        };
                        let d = dy[((n * oh + oy) * ow + ox) * oc + o];
                        acc = acc + d * image[iy * g.w + ix];
                    }
                }
            }
            *v = acc;
        }
    };
    if kg == 0 {
        return;
    }
    use rayon::prelude::*;
    let out = &mut out[..oc * kg];
    if oc * kg * g.n * oh * ow >= 1 << 16 {
        out.par_chunks_mut(kg)
            .enumerate()
            .for_each(|(o, row)| weight_row(o, row));
    } else {
        for (o, row) in out.chunks_mut(kg).enumerate() {
            weight_row(o, row);
        }
    }
}
