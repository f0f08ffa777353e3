//! The geometry convolution and pooling ops carry.

/// Geometry of a 2-D convolution over NCHW input (PyTorch's `Conv2d` arguments and the
/// input size), shared by `Im2Col` and `Col2Im`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero padding on top and bottom.
    pub ph: usize,
    /// Zero padding left and right.
    pub pw: usize,
    /// Vertical dilation: kernel row `ky` reads input row `oy·sh + ky·dh − ph` (1: dense).
    pub dh: usize,
    /// Horizontal dilation: kernel column `kx` reads `ox·sw + kx·dw − pw`.
    pub dw: usize,
}

impl ConvGeom {
    /// Output height: (h + 2·ph − dh·(kh − 1) − 1) / sh + 1, PyTorch's rule.
    pub fn oh(&self) -> usize {
        let padded = self.h.saturating_add(self.ph.saturating_mul(2));
        padded.saturating_sub(self.reach_h()) / self.sh.max(1) + 1
    }

    /// Output width: (w + 2·pw − dw·(kw − 1) − 1) / sw + 1.
    pub fn ow(&self) -> usize {
        let padded = self.w.saturating_add(self.pw.saturating_mul(2));
        padded.saturating_sub(self.reach_w()) / self.sw.max(1) + 1
    }

    /// Rows a window spans: dh·(kh − 1) + 1 (kh when dense).
    pub fn reach_h(&self) -> usize {
        Self::span(self.kh, self.dh).unwrap_or(usize::MAX)
    }

    /// Columns a window spans: dw·(kw − 1) + 1.
    pub fn reach_w(&self) -> usize {
        Self::span(self.kw, self.dw).unwrap_or(usize::MAX)
    }

    /// The positions `k` taps `d` apart span, d·(k − 1) + 1 (0 for no taps), or `None`
    /// when that overflows (shape inference and the model builder refuse such a kernel;
    /// `reach_h`/`reach_w` saturate).
    pub fn span(k: usize, d: usize) -> Option<usize> {
        match k {
            0 => Some(0),
            _ => (k - 1).checked_mul(d.max(1))?.checked_add(1),
        }
    }

    /// Columns of the im2col matrix: c·kh·kw.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }
}

/// A grouped convolution (`Conv2d(groups=G)`): `conv` over all C input channels, split
/// into `groups` groups of C/G channels, output channel o (of OC) reading only group
/// o / (OC/G). Its weight is PyTorch's `[OC, C/G, KH, KW]`, seen as `[OC, C/G·KH·KW]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupGeom {
    /// The convolution's geometry, `c` counting every input channel.
    pub conv: ConvGeom,
    /// Number of groups (divides C and OC; depthwise when it equals C).
    pub groups: usize,
}

impl GroupGeom {
    /// Input channels per group: C / G.
    pub fn group_channels(&self) -> usize {
        self.conv.c / self.groups.max(1)
    }

    /// A weight row's length: C/G·KH·KW.
    pub fn group_patch(&self) -> usize {
        self.group_channels() * self.conv.kh * self.conv.kw
    }
}

/// Geometry of a 2-D pooling window over NCHW input with PyTorch's implicit padding
/// (`MaxPool2d(k, stride, padding, ceil_mode)`: padded positions never win a window;
/// `AvgPool2d(k, stride, padding, ceil_mode, count_include_pad)`: they count as zeros
/// in the divisor, or not at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolGeom {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding above and below (at most kh / 2, as PyTorch requires).
    pub ph: usize,
    /// Padding left and right (at most kw / 2).
    pub pw: usize,
    /// `ceil_mode`: a last window that starts inside the input (or the left padding)
    /// but overhangs the padded input is kept, and pools what it covers.
    pub ceil_mode: bool,
    /// Average pooling: padded positions count in the divisor (PyTorch's default). The
    /// divisor of a window that overhangs the padded input (ceil mode) covers only the
    /// padded input either way.
    pub count_include_pad: bool,
}

/// Windows along one axis: PyTorch's `pooling_output_shape` (dilation 1).
fn windows(len: usize, pad: usize, k: usize, s: usize, ceil_mode: bool) -> usize {
    let s = s.max(1);
    let span = len.saturating_add(pad.saturating_mul(2)).saturating_sub(k);
    if !ceil_mode {
        return span / s + 1;
    }
    let out = span.div_ceil(s) + 1;
    // The last window must start inside the input or its left padding.
    if (out - 1).saturating_mul(s) >= len.saturating_add(pad) {
        out - 1
    } else {
        out
    }
}

impl PoolGeom {
    /// Output height: (h + 2·ph − kh) / sh + 1, rounded up in ceil mode (PyTorch's rule).
    pub fn oh(&self) -> usize {
        windows(self.h, self.ph, self.kh, self.sh, self.ceil_mode)
    }

    /// Output width: (w + 2·pw − kw) / sw + 1, rounded up in ceil mode (PyTorch's rule).
    pub fn ow(&self) -> usize {
        windows(self.w, self.pw, self.kw, self.sw, self.ceil_mode)
    }

    /// Whether the last window of a row or column reaches past the padded input (only in
    /// ceil mode).
    pub fn overhangs(&self) -> bool {
        let past = |outs: usize, s: usize, k: usize, len: usize, pad: usize| {
            (outs - 1) * s + k > len + 2 * pad
        };
        past(self.oh(), self.sh, self.kh, self.h, self.ph)
            || past(self.ow(), self.sw, self.kw, self.w, self.pw)
    }

    /// Whether every window of the average has the divisor kh·kw: padding counted and no
    /// window overhanging the padded input. Otherwise each window has its own
    /// ([`PoolGeom::divisor`]).
    pub fn uniform_divisor(&self) -> bool {
        self.count_include_pad && !self.overhangs()
    }

    /// The divisor of window (oy, ox) of the average, as PyTorch's `avg_pool2d`: the
    /// window clipped to the padded input when padding counts, else to the input.
    pub fn divisor(&self, oy: usize, ox: usize) -> usize {
        let span = |start: usize, k: usize, len: usize, pad: usize| {
            let end = (start + k).min(len + 2 * pad);
            if self.count_include_pad {
                end - start
            } else {
                end.min(len + pad) - start.max(pad)
            }
        };
        span(oy * self.sh, self.kh, self.h, self.ph) * span(ox * self.sw, self.kw, self.w, self.pw)
    }

    /// Whether the window reaches past the input (some padding).
    pub fn padded(&self) -> bool {
        self.ph > 0 || self.pw > 0
    }
}

/// Geometry of PyTorch's adaptive pooling (`AdaptiveAvgPool2d`, `AdaptiveMaxPool2d`) over
/// NCHW input: output row `i` of `oh` pools input rows [⌊i·h/oh⌋, ⌈(i+1)·h/oh⌉), likewise
/// for columns, so windows may differ in length and overlap (5 → 3: rows 0..2, 1..4, 3..5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdaptiveGeom {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl AdaptiveGeom {
    /// PyTorch's window `i` of `out` along an axis of `len`: [⌊i·len/out⌋, ⌈(i+1)·len/out⌉).
    pub fn window(i: usize, len: usize, out: usize) -> std::ops::Range<usize> {
        let out = out.max(1);
        i * len / out..((i + 1) * len).div_ceil(out)
    }

    /// The windows along an axis that contain position `p`: [⌊p·out/len⌋,
    /// ⌈(p+1)·out/len⌉) within [0, out) (from ⌊i·len/out⌋ ≤ p < ⌈(i+1)·len/out⌉).
    pub fn covering(p: usize, len: usize, out: usize) -> std::ops::Range<usize> {
        let len = len.max(1);
        p * out / len..((p + 1) * out).div_ceil(len).min(out)
    }

    /// Input rows of output row `oy`.
    pub fn rows(&self, oy: usize) -> std::ops::Range<usize> {
        Self::window(oy, self.h, self.oh)
    }

    /// Input columns of output column `ox`.
    pub fn cols(&self, ox: usize) -> std::ops::Range<usize> {
        Self::window(ox, self.w, self.ow)
    }
}

#[cfg(test)]
mod tests {
    use super::AdaptiveGeom;

    /// PyTorch's windows by hand (5 → 3: rows 0..2, 1..4, 3..5; 7 → 4: 0..2, 1..4, 3..6,
    /// 5..7), and `covering` as their inverse for every size up to 12.
    #[test]
    fn adaptive_windows_follow_pytorch_and_covering_inverts_them() {
        let windows = |len, out| {
            (0..out)
                .map(|i| AdaptiveGeom::window(i, len, out))
                .collect::<Vec<_>>()
        };
        assert_eq!(windows(5, 3), [0..2, 1..4, 3..5]);
        assert_eq!(windows(7, 4), [0..2, 1..4, 3..6, 5..7]);
        assert_eq!(windows(3, 5), [0..1, 0..2, 1..2, 1..3, 2..3]);
        for len in 1..=12 {
            for out in 1..=12 {
                for p in 0..len {
                    let want: Vec<usize> = (0..out)
                        .filter(|&i| AdaptiveGeom::window(i, len, out).contains(&p))
                        .collect();
                    let got: Vec<usize> = AdaptiveGeom::covering(p, len, out).collect();
                    assert_eq!(got, want, "len {len} out {out} p {p}");
                }
            }
        }
    }
}
