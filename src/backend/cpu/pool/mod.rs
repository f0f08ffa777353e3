//! Max and average pooling over NCHW tensors with PyTorch's implicit padding and
//! `ceil_mode` (`MaxPool2d(k, stride, padding, ceil_mode)`: a window's maximum is over its
//! input positions only; `AvgPool2d(k, stride, padding, ceil_mode, count_include_pad)`:
//! padded positions count as zeros in the divisor kh·kw, or not at all, and a window
//! overhanging the padded input in ceil mode divides by what it covers, as PyTorch's
//! `avg_pool2d`), mirrored by `shaders/pool.wgsl`.
//!
//! The strides may differ from the window, so windows can overlap or leave gaps. The
//! backward kernels are written in gather form — each input pixel visits the windows that
//! contain it, in a fixed order — so that the shader can run one invocation per pixel
//! without atomics and still add in the same order as this code.

use std::ops::Range;

use super::{for_each_sample, Real};
use crate::op::PoolGeom;

mod adaptive;

pub use adaptive::{
    adaptive_avg_pool, adaptive_avg_pool_grad, adaptive_max_pool, adaptive_max_pool_grad,
};

/// The windows along one axis that contain input position `i`: those `o` with
/// `o·s ≤ i ≤ o·s + k − 1`, i.e. `ceil((i + 1 − k) / s) ..= i / s`, clipped to `[0, outs)`.
/// The lower bound is written so that `i + 1 < k` does not underflow.
fn covering(i: usize, k: usize, s: usize, outs: usize) -> Range<usize> {
    let lo = if i + 1 > k {
        (i + 1 - k).div_ceil(s)
    } else {
        0
    };
    let hi = (i / s + 1).min(outs);
    lo..hi
}

/// Max pooling: `out` [N, C, OH, OW] is the maximum of each window of `x` [N, C, H, W]
/// (NaN if the window holds one).
pub fn max_pool<T: Real>(x: &[T], out: &mut [T], g: &PoolGeom) {
    if is_2x2_stride_2(g) {
        max_pool_2x2(x, out, g);
    } else {
        max_pool_any(x, out, g);
    }
}

/// `MaxPool2d(2)`, the usual layer: windows that neither overlap nor leave gaps (nor, in
/// ceil mode over an odd size, overhang the input).
fn is_2x2_stride_2(g: &PoolGeom) -> bool {
    (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (2, 2, 2, 2, 0, 0) && !g.overhangs()
}

/// The window positions along one axis of window `o` that fall inside the input: those
/// `k` with `0 ≤ o·s + k − p < len`.
fn inside(o: usize, s: usize, p: usize, k: usize, len: usize) -> Range<usize> {
    let start = o * s;
    let lo = p.saturating_sub(start).min(k);
    let hi = (len + p).saturating_sub(start).min(k);
    lo..hi.max(lo)
}

/// The index in `plane` (one H×W channel) of the maximum of window `(oy, ox)` of a padded
/// pooling, over its input positions only, by [`row_argmax`]'s rule: the first input
/// position starts as the best (as PyTorch starts from it), a strictly greater value or the
/// first NaN replaces it.
fn window_argmax<T: Real>(plane: &[T], g: &PoolGeom, oy: usize, ox: usize) -> usize {
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    let (ys, xs) = (
        inside(oy, sh, g.ph, g.kh, g.h),
        inside(ox, sw, g.pw, g.kw, g.w),
    );
    // Input coordinates of the window's first row and column.
    let (y0, x0) = (oy * sh + ys.start - g.ph, ox * sw + xs.start - g.pw);
    let mut best = y0 * g.w + x0;
    for y in y0..y0 + ys.len() {
        for at in y * g.w + x0..y * g.w + x0 + xs.len() {
            let (v, best_v) = (plane[at], plane[best]);
            if !best_v.is_nan() && (v.is_nan() || v > best_v) {
                best = at;
            }
        }
    }
    best
}

/// The first maximum of a 2x2 window's values in row order, by the rule of
/// [`row_argmax`] (strictly greater replaces; NaN is greater than every number and the
/// first NaN is kept): its value, and for each of the four positions whether it is the
/// one. Written as selects on values held in registers, with no branches and no index
/// arithmetic, so that a loop over a row of windows vectorises.
#[inline(always)]
fn first_max4<T: Real>(v: [T; 4]) -> (T, [bool; 4]) {
    // `&` and `|`, not `&&` and `||`: no short circuit, so no branch.
    let replaces = |x: T, best: T| !best.is_nan() & (x.is_nan() | (x > best));
    let take1 = replaces(v[1], v[0]);
    let best = if take1 { v[1] } else { v[0] };
    let take2 = replaces(v[2], best);
    let best = if take2 { v[2] } else { best };
    let take3 = replaces(v[3], best);
    let best = if take3 { v[3] } else { best };
    let later2 = take2 | take3;
    (
        best,
        [!(take1 | later2), take1 & !later2, take2 & !take3, take3],
    )
}

/// Output row `oy` of a 2x2, stride-2 pooling of `plane` (H×W): the input rows 2·oy and
/// 2·oy + 1, cut to the 2·ow values the windows cover.
fn window_rows<T>(plane: &[T], w: usize, oy: usize, ow: usize) -> (&[T], &[T]) {
    let top = &plane[2 * oy * w..][..2 * ow];
    let bottom = &plane[(2 * oy + 1) * w..][..2 * ow];
    (top, bottom)
}

/// [`max_pool`] for 2x2 windows of stride 2: the same first-max rule in the same order
/// (rows, then columns), a row of windows at a time.
fn max_pool_2x2<T: Real>(x: &[T], out: &mut [T], g: &PoolGeom) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    for_each_sample(out, oh * ow, |p, o| {
        let plane = &x[p * hw..(p + 1) * hw];
        for (oy, row) in o.chunks_exact_mut(ow.max(1)).enumerate() {
            let (top, bottom) = window_rows(plane, g.w, oy, ow);
            for ((v, a), b) in row
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *v = first_max4([a[0], a[1], b[0], b[1]]).0;
            }
        }
    });
}

/// [`max_pool`] for any window and stride.
fn max_pool_any<T: Real>(x: &[T], out: &mut [T], g: &PoolGeom) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    for_each_sample(out, oh * ow, |p, o| {
        let plane = &x[p * hw..(p + 1) * hw];
        let mut best = vec![0usize; ow];
        for oy in 0..oh {
            window_argmaxes(plane, g, oy, &mut best);
            for (v, &at) in o[oy * ow..(oy + 1) * ow].iter_mut().zip(&best) {
                *v = plane[at];
            }
        }
    });
}

/// The argmax of every window of output row `oy`: [`row_argmax`] when every window lies
/// inside the input, a window at a time ([`window_argmax`]) with padding or an
/// overhanging last window.
fn window_argmaxes<T: Real>(plane: &[T], g: &PoolGeom, oy: usize, best: &mut [usize]) {
    if g.padded() || g.overhangs() {
        for (ox, b) in best.iter_mut().enumerate() {
            *b = window_argmax(plane, g, oy, ox);
        }
    } else {
        row_argmax(plane, g, oy, best);
    }
}

/// The index in `plane` (one H×W channel) of the maximum of every window of output row
/// `oy`: scanning each window's rows, then columns, the running best is replaced only by a
/// strictly greater value, so ties keep the first; NaN counts as greater than every number
/// (so it propagates, as in PyTorch) and the first NaN is kept. The loop runs across the
/// row of windows for each window position, which keeps small (2x2) windows cheap.
fn row_argmax<T: Real>(plane: &[T], g: &PoolGeom, oy: usize, best: &mut [usize]) {
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    let top = oy * sh * g.w;
    for (ox, b) in best.iter_mut().enumerate() {
        *b = top + ox * sw;
    }
    for ky in 0..g.kh {
        let row = top + ky * g.w;
        for kx in 0..g.kw {
            if ky == 0 && kx == 0 {
                continue;
            }
            for (ox, b) in best.iter_mut().enumerate() {
                let at = row + ox * sw + kx;
                let (v, best_v) = (plane[at], plane[*b]);
                if !best_v.is_nan() && (v.is_nan() || v > best_v) {
                    *b = at;
                }
            }
        }
    }
}

/// Gradient of [`max_pool`]: `out` = dx [N, C, H, W]. Each window routes its `dy` to its
/// argmax (recomputed from `x` by the same first-max rule); a pixel that is the argmax of
/// several overlapping windows receives the sum, added in window order (rows, then
/// columns); a pixel that is no window's argmax gets 0.
///
/// The shader gathers (one invocation per pixel); this loop scatters (one argmax per
/// window instead of one per covering window and pixel). Each pixel still receives its
/// windows' gradients in window order, starting from 0, so the sums are bit-identical.
pub fn max_pool_grad<T: Real>(x: &[T], dy: &[T], out: &mut [T], g: &PoolGeom) {
    if is_2x2_stride_2(g) {
        max_pool_grad_2x2(x, dy, out, g);
    } else {
        max_pool_grad_any(x, dy, out, g);
    }
}

/// [`max_pool_grad`] for 2x2 windows of stride 2, which do not overlap: each window's
/// `dy` is added to the zeroed gradient at its argmax, as the general form adds it. A row
/// of windows first gets its argmaxes as codes (0–3 in row order) in a loop of selects,
/// which vectorises like the forward pass; then each code routes its `dy`.
fn max_pool_grad_2x2<T: Real>(x: &[T], dy: &[T], out: &mut [T], g: &PoolGeom) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    for_each_sample(out, hw, |p, dx| {
        let plane = &x[p * hw..(p + 1) * hw];
        let d = &dy[p * oh * ow..(p + 1) * oh * ow];
        dx.fill(T::zero());
        // Up to 64 windows of a row at a time, so the codes live on the stack.
        let mut codes = [0u32; 64];
        for (oy, grads) in d.chunks_exact(ow.max(1)).enumerate() {
            let (top, bottom) = window_rows(plane, g.w, oy, ow);
            for (part, grads) in grads.chunks(codes.len()).enumerate() {
                let from = 2 * part * codes.len();
                let windows = top[from..]
                    .chunks_exact(2)
                    .zip(bottom[from..].chunks_exact(2));
                for (code, (a, b)) in codes.iter_mut().zip(windows) {
                    let (_, m) = first_max4([a[0], a[1], b[0], b[1]]);
                    *code = u32::from(m[1] | m[3]) | u32::from(m[2] | m[3]) << 1;
                }
                let corner = 2 * oy * g.w + from;
                for (i, (&grad, &code)) in grads.iter().zip(&codes).enumerate() {
                    let at = corner + 2 * i + (code & 1) as usize + g.w * (code >> 1) as usize;
                    dx[at] = dx[at] + grad;
                }
            }
        }
    });
}

/// [`max_pool_grad`] for any window and stride.
fn max_pool_grad_any<T: Real>(x: &[T], dy: &[T], out: &mut [T], g: &PoolGeom) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    let _ = (sh, sw);
    for_each_sample(out, hw, |p, dx| {
        let plane = &x[p * hw..(p + 1) * hw];
        let d = &dy[p * oh * ow..(p + 1) * oh * ow];
        dx.iter_mut().for_each(|v| *v = T::zero());
        let mut best = vec![0usize; ow];
        for oy in 0..oh {
            window_argmaxes(plane, g, oy, &mut best);
            for (&at, &grad) in best.iter().zip(&d[oy * ow..(oy + 1) * ow]) {
                dx[at] = dx[at] + grad;
            }
        }
    });
}

/// Average pooling: `out` [N, C, OH, OW] is the sum of each window's input positions
/// (rows, then columns; padding adds nothing) divided by kh·kw, or by the window's own
/// [`PoolGeom::divisor`] when they differ.
pub fn avg_pool<T: Real>(x: &[T], out: &mut [T], g: &PoolGeom) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    let uniform = g.uniform_divisor();
    let area = T::of((g.kh * g.kw) as f64);
    for_each_sample(out, oh * ow, |p, o| {
        let plane = &x[p * hw..(p + 1) * hw];
        for oy in 0..oh {
            let ys = inside(oy, sh, g.ph, g.kh, g.h);
            let y0 = oy * sh + ys.start - g.ph;
            for ox in 0..ow {
                let xs = inside(ox, sw, g.pw, g.kw, g.w);
                let x0 = ox * sw + xs.start - g.pw;
                let mut acc = T::zero();
                for y in y0..y0 + ys.len() {
                    for &v in &plane[y * g.w + x0..][..xs.len()] {
                        acc = acc + v;
                    }
                }
                o[oy * ow + ox] = if uniform {
                    acc / area
                } else {
                    acc / T::of(g.divisor(oy, ox) as f64)
                };
            }
        }
    });
}

/// Gradient of [`avg_pool`]: `out` = dx [N, C, H, W], each pixel the sum of `dy` over the
/// windows that contain it (in window order: rows, then columns) divided by kh·kw once at
/// the end (the same value as summing dy/(kh·kw), with one rounding fewer per term); with
/// divisors of their own, the sum of each window's dy / divisor.
pub fn avg_pool_grad<T: Real>(dy: &[T], out: &mut [T], g: &PoolGeom) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    let uniform = g.uniform_divisor();
    let area = T::of((g.kh * g.kw) as f64);
    for_each_sample(out, hw, |p, dx| {
        let d = &dy[p * oh * ow..(p + 1) * oh * ow];
        // Positions in padded coordinates, where the windows start at o·s.
        for y in 0..g.h {
            let oys = covering(y + g.ph, g.kh, sh, oh);
            for xx in 0..g.w {
                let mut acc = T::zero();
                for oy in oys.clone() {
                    for ox in covering(xx + g.pw, g.kw, sw, ow) {
                        acc = if uniform {
                            acc + d[oy * ow + ox]
                        } else {
                            acc + d[oy * ow + ox] / T::of(g.divisor(oy, ox) as f64)
                        };
                    }
                }
                dx[y * g.w + xx] = if uniform { acc / area } else { acc };
            }
        }
    });
}

#[cfg(test)]
mod tests;
