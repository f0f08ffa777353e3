//! The small parameter records ops carry: a channels-first layout, how batch norm sees its
//! input, and which dropout layer a mask belongs to.

/// A channels-first tensor's dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nchw {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

/// How batch-norm ops see their input: C channels of S values each per sample
/// (S = H·W for batchnorm2d, 1 for batchnorm1d), and eps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Channels {
    /// Channels.
    pub c: usize,
    /// Values per channel per sample.
    pub s: usize,
    /// Added to the variance.
    pub eps: f32,
}

/// Which dropout layer and how much it drops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutSpec {
    /// Probability of zeroing an element.
    pub p: f32,
    /// The layer's number in spec order, containers and their layers counted (its index
    /// in a flat list); part of the random stream's counter.
    pub layer: u32,
    /// Consecutive elements that share one draw: 1 for `nn.Dropout`, H·W for
    /// `nn.Dropout2d`, which keeps or zeroes a sample's channel whole. Element i takes
    /// draw i / per, the draws numbered as dropout's elements are.
    pub per: u32,
}

impl DropoutSpec {
    /// The factor kept elements are multiplied by, 1/(1 − p), rounded to f32 once on the
    /// host so both backends use the same value (0 when p = 1: everything is dropped).
    pub fn scale(&self) -> f32 {
        if self.p >= 1.0 {
            0.0
        } else {
            1.0 / (1.0 - self.p)
        }
    }
}
