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
}

impl ConvGeom {
    /// Output height: (h + 2·ph − kh) / sh + 1.
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.ph).saturating_sub(self.kh) / self.sh.max(1) + 1
    }

    /// Output width: (w + 2·pw − kw) / sw + 1.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pw).saturating_sub(self.kw) / self.sw.max(1) + 1
    }

    /// Columns of the im2col matrix: c·kh·kw.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }
}

/// Geometry of a 2-D pooling window over NCHW input (no padding, floor mode, as PyTorch's
/// `MaxPool2d(k, stride)` / `AvgPool2d(k, stride)` defaults).
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
}

impl PoolGeom {
    /// Output height: (h − kh) / sh + 1.
    pub fn oh(&self) -> usize {
        self.h.saturating_sub(self.kh) / self.sh.max(1) + 1
    }

    /// Output width: (w − kw) / sw + 1.
    pub fn ow(&self) -> usize {
        self.w.saturating_sub(self.kw) / self.sw.max(1) + 1
    }
}
