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
        let padded = self.h.saturating_add(self.ph.saturating_mul(2));
        padded.saturating_sub(self.kh) / self.sh.max(1) + 1
    }

    /// Output width: (w + 2·pw − kw) / sw + 1.
    pub fn ow(&self) -> usize {
        let padded = self.w.saturating_add(self.pw.saturating_mul(2));
        padded.saturating_sub(self.kw) / self.sw.max(1) + 1
    }

    /// Columns of the im2col matrix: c·kh·kw.
    pub fn patch(&self) -> usize {
        self.c * self.kh * self.kw
    }
}

/// Geometry of a 2-D pooling window over NCHW input in floor mode, with PyTorch's implicit
/// padding (`MaxPool2d(k, stride, padding)`: padded positions never win a window;
/// `AvgPool2d(k, stride, padding)`: they count as zeros, `count_include_pad=True`).
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
}

impl PoolGeom {
    /// Output height: (h + 2·ph − kh) / sh + 1.
    pub fn oh(&self) -> usize {
        let padded = self.h.saturating_add(self.ph.saturating_mul(2));
        padded.saturating_sub(self.kh) / self.sh.max(1) + 1
    }

    /// Output width: (w + 2·pw − kw) / sw + 1.
    pub fn ow(&self) -> usize {
        let padded = self.w.saturating_add(self.pw.saturating_mul(2));
        padded.saturating_sub(self.kw) / self.sw.max(1) + 1
    }

    /// Whether the window reaches past the input (some padding).
    pub fn padded(&self) -> bool {
        self.ph > 0 || self.pw > 0
    }
}
