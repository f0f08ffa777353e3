//! Data movement around the convolution matmul (mirrored by `shaders/conv.wgsl`).
//!
//! A 2-D convolution is built as `im2col` → matmul with the weight `[OC, C·KH·KW]` read
//! transposed → bias add on rows → `rows_to_nchw`; its backward goes through
//! `nchw_to_rows` → matmuls → `col2im`. These four kernels only move (and, in `col2im`,
//! sum) values; all the arithmetic is in the matmul. Training plans fuse `im2col` into
//! the forward product and the weight gradient (`graph::fuse_im2col`, `conv_product.rs`).

use super::{for_each_sample, for_each_sample_with, Real};
use crate::op::ConvGeom;

mod grouped;

pub use grouped::{grouped_conv, grouped_conv_input_grad, grouped_conv_weight_grad};

/// One sample's image inside a zero border wide enough for every window: `[C, PH, PW]`
/// with the image at `(ph, pw)`, so that every entry of an im2col row, padding included,
/// is one read at a fixed offset from its window's corner.
struct Padded {
    /// Rows of a padded channel: up to the last window's last row, and at least to the
    /// image's last (bottom padding that no window reaches is left out).
    ph_len: usize,
    /// Columns of a padded channel, likewise.
    pw_len: usize,
    /// For each im2col column `(c·KH + ky)·KW + kx`, its offset from the window's corner:
    /// `c·PH·PW + ky·dh·PW + kx·dw`.
    offsets: Vec<usize>,
}

impl Padded {
    fn new(g: &ConvGeom) -> Self {
        // oh() and ow() are at least 1. A stride of 0 is not a valid geometry (the graph
        // refuses it); max(1) only keeps the arithmetic meaningful, as in ConvGeom::oh.
        let ph_len = (g.ph + g.h).max((g.oh() - 1) * g.sh.max(1) + g.reach_h());
        let pw_len = (g.pw + g.w).max((g.ow() - 1) * g.sw.max(1) + g.reach_w());
        let mut offsets = Vec::with_capacity(g.patch());
        for c in 0..g.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    offsets.push((c * ph_len + ky * g.dh) * pw_len + kx * g.dw);
                }
            }
        }
        Padded {
            ph_len,
            pw_len,
            offsets,
        }
    }

    fn len(&self, g: &ConvGeom) -> usize {
        g.c * self.ph_len * self.pw_len
    }

    /// The corner of im2col row `r` (output position `(r / OW, r % OW)`) in the padded
    /// sample.
    fn corner(&self, g: &ConvGeom, r: usize) -> usize {
        let ow = g.ow();
        (r / ow) * g.sh.max(1) * self.pw_len + (r % ow) * g.sw.max(1)
    }

    /// Where each line of a sample's image starts, in the padded sample and in the image:
    /// `(padded, image)` for channel-major, then top-to-bottom lines of `g.w` values.
    fn lines(&self, g: &ConvGeom) -> impl Iterator<Item = (usize, usize)> {
        let (ph_len, pw_len) = (self.ph_len, self.pw_len);
        let (ph, pw, h, w) = (g.ph, g.pw, g.h, g.w);
        (0..g.c * h).map(move |line| {
            let (c, y) = (line / h, line % h);
            ((c * ph_len + y + ph) * pw_len + pw, line * w)
        })
    }
}

/// Unfolds `x` `[N, C, H, W]` into `out` `[N·OH·OW, C·KH·KW]`: row `(n·OH + oy)·OW + ox`,
/// column `(c·KH + ky)·KW + kx` holds `x[n, c, oy·sh + ky·dh − ph, ox·sw + kx·dw − pw]`,
/// or zero where that position lies in the padding.
///
/// Each sample is first copied into a zero border ([`Padded`]), so that every entry is
/// one read at its column's offset from the window's corner, with no tests for the edges.
pub fn im2col<T: Real>(x: &[T], out: &mut [T], g: &ConvGeom) {
    let (patch, plane) = (g.patch(), g.h * g.w);
    if patch == 0 || plane == 0 {
        // No columns, or an empty image whose windows lie wholly in the padding.
        out.fill(T::zero());
        return;
    }
    let pad = Padded::new(g);
    // One padded sample per thread: only the image's lines are written, so the border
    // stays zero from one sample to the next.
    let zeroed = || vec![T::zero(); pad.len(g)];
    for_each_sample_with(out, g.oh() * g.ow() * patch, zeroed, |padded, n, sample| {
        let image = &x[n * g.c * plane..][..g.c * plane];
        for (at, from) in pad.lines(g) {
            padded[at..][..g.w].copy_from_slice(&image[from..][..g.w]);
        }
        for (r, row) in sample.chunks_exact_mut(patch).enumerate() {
            let window = &padded[pad.corner(g, r)..];
            for (v, &at) in row.iter_mut().zip(&pad.offsets) {
                *v = window[at];
            }
        }
    });
}

/// Columns of `cols` that [`col2im`] turns at a time: in f32, one 64-byte line of each row.
const TAPS: usize = 16;

/// The adjoint of [`im2col`]: `out[n, c, y, x]` (`[N, C, H, W]`) is the sum of every entry
/// of `cols` (`[N·OH·OW, C·KH·KW]`) that `im2col` reads from `(n, c, y, x)`.
///
/// Each pixel's sum runs in one fixed order on both backends: its `(ky, oy)` with
/// `oy·sh + ky·dh == y + ph` with ky ascending (outer), likewise `(kx, ox)` (inner), starting
/// from zero. The shader gathers in that order, one pixel per invocation (no atomics).
/// Here each column of `cols` (one tap `(c, ky, kx)`) is added onto a zeroed padded
/// sample ([`Padded`]) as a whole, a line of output positions at a time, columns in
/// ascending order: a pixel takes at most one entry per tap, and its taps come in
/// ascending (ky, kx), so every pixel takes the same additions in the same order as the
/// gather. Why columns: a line of one tap lands on consecutive pixels (stride 1), which
/// vectorises, where scattering a row lands each entry elsewhere. The columns are first
/// turned, [`TAPS`] at a time, into a small buffer where they are contiguous, so `cols`
/// is still read in one pass. The image is then cut out of the border.
pub fn col2im<T: Real>(cols: &[T], out: &mut [T], g: &ConvGeom) {
    let (oh, ow, patch) = (g.oh(), g.ow(), g.patch());
    let pixels = oh * ow;
    let (sh, sw) = (g.sh.max(1), g.sw.max(1));
    let pad = Padded::new(g);
    // Per thread: the padded sample and the turned columns.
    let scratch = || (vec![T::zero(); pad.len(g)], vec![T::zero(); TAPS * pixels]);
    for_each_sample_with(out, g.c * g.h * g.w, scratch, |scratch, n, sample| {
        if patch == 0 {
            sample.fill(T::zero());
            return;
        }
        let (padded, turned) = scratch;
        padded.fill(T::zero());
        let rows = &cols[n * pixels * patch..][..pixels * patch];
        for q0 in (0..patch).step_by(TAPS) {
            let taps = TAPS.min(patch - q0);
            for (r, row) in rows.chunks_exact(patch).enumerate() {
                for (t, &v) in row[q0..][..taps].iter().enumerate() {
                    turned[t * pixels + r] = v;
                }
            }
            for (column, &at) in turned.chunks_exact(pixels).zip(&pad.offsets[q0..][..taps]) {
                for (oy, line) in column.chunks_exact(ow).enumerate() {
                    let start = at + oy * sh * pad.pw_len;
                    if sw == 1 {
                        let dst = &mut padded[start..][..ow];
                        for (d, &v) in dst.iter_mut().zip(line) {
                            *d = *d + v;
                        }
                    } else {
                        for (ox, &v) in line.iter().enumerate() {
                            let d = &mut padded[start + ox * sw];
                            *d = *d + v;
                        }
                    }
                }
            }
        }
        for (from, at) in pad.lines(g) {
            sample[at..][..g.w].copy_from_slice(&padded[from..][..g.w]);
        }
    });
}

/// `rows` `[N·HW, C]` (one row per output pixel, as the matmul writes it) to `out`
/// `[N, C, HW]`: `out[(n·C + ch)·HW + p] = rows[(n·HW + p)·C + ch]`.
pub fn rows_to_nchw<T: Real>(rows: &[T], out: &mut [T], n: usize, c: usize, hw: usize) {
    let _ = n;
    for_each_sample(out, c * hw, |b, sample| {
        transpose(&rows[b * hw * c..][..hw * c], sample, hw, c);
    });
}

/// The inverse of [`rows_to_nchw`]: `x` `[N, C, HW]` to `out` `[N·HW, C]`,
/// `out[(n·HW + p)·C + ch] = x[(n·C + ch)·HW + p]`.
pub fn nchw_to_rows<T: Real>(x: &[T], out: &mut [T], n: usize, c: usize, hw: usize) {
    let _ = n;
    for_each_sample(out, c * hw, |b, sample| {
        transpose(&x[b * c * hw..][..c * hw], sample, c, hw);
    });
}

/// Side of the square tiles [`transpose`] moves: a tile of f32 is 16 cache lines read and
/// 16 written (32 each in f64), which stay in L1 while the tile is turned.
const TILE: usize = 16;

/// `dst` `[cols, rows]` = `src` `[rows, cols]` transposed, a tile at a time, so that
/// both sides are walked a cache line at a time instead of one of them a value at a
/// time with a stride of a whole line.
fn transpose<T: Copy>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for c in c0..(c0 + TILE).min(cols) {
                let line = &mut dst[c * rows..][r0..(r0 + TILE).min(rows)];
                for (r, v) in line.iter_mut().enumerate() {
                    *v = src[(r0 + r) * cols + c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
