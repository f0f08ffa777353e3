//! The per-step scalars of the fused optimizer kernels.

use bytemuck::{Pod, Zeroable};

/// The per-step scalars, laid out as the WGSL `StepScalars` struct in `shaders/optim.wgsl`
/// (tests/shaders.rs checks the two agree). The first sixteen words are also read by
/// `shaders/dropout.wgsl` for the step and the seed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StepScalars {
    /// Learning rate of this step (Adagrad's already decayed).
    pub lr: f32,
    /// Weight decay (coupled L2, or decoupled for AdamW).
    pub weight_decay: f32,
    /// SGD and RMSprop momentum.
    pub momentum: f32,
    /// SGD dampening.
    pub dampening: f32,
    /// Adam β1.
    pub beta1: f32,
    /// Adam β2.
    pub beta2: f32,
    /// ε of Adam, Adagrad, RMSprop, Adadelta.
    pub eps: f32,
    /// 1 − β1^t.
    pub bias_correction1: f32,
    /// sqrt(1 − β2^t).
    pub bias_correction2_sqrt: f32,
    /// Global-norm clipping threshold; 0 disables it.
    pub max_norm: f32,
    /// 1 for Nesterov momentum.
    pub nesterov: u32,
    /// Update number, from 1.
    pub step: u32,
    /// Length of the parameter arena in f32.
    pub len: u32,
    /// Seed for device-side randomness (low word).
    pub seed_lo: u32,
    /// Seed for device-side randomness (high word).
    pub seed_hi: u32,
    /// Padding (keeps the first block 16-byte aligned).
    pub pad: u32,
    /// RMSprop's alpha, Adadelta's rho.
    pub alpha: f32,
    /// Adagrad's learning-rate decay (already applied to `lr`; kept for the record).
    pub lr_decay: f32,
    /// Element-wise clipping threshold; 0 disables it.
    pub clip_value: f32,
    /// 1 for AdamW's decoupled weight decay.
    pub decoupled: u32,
    /// 1 for AMSGrad.
    pub amsgrad: u32,
    /// 1 for centred RMSprop.
    pub centered: u32,
    /// Padding to a 16-byte multiple.
    pub pad1: u32,
    /// Padding to a 16-byte multiple.
    pub pad2: u32,
    /// First element of the tail parameter group (e.g. no weight decay); `len` when there
    /// is none.
    pub tail_start: u32,
    /// Learning-rate factor of the tail group.
    pub tail_lr_scale: f32,
    /// Weight decay of the tail group.
    pub tail_weight_decay: f32,
    /// 1: when clipping by norm and the norm is not finite, leave parameters and state
    /// untouched (`clip_grad_norm_(error_if_nonfinite=True)` raises before the step; the
    /// host reads the norm back and reports it).
    pub skip_nonfinite: u32,
}

impl StepScalars {
    /// Makes elements from `start` on a second parameter group with its own learning-rate
    /// factor and weight decay (PyTorch's parameter groups, for the common two-group case).
    pub fn with_tail_group(mut self, start: usize, lr_scale: f32, weight_decay: f32) -> Self {
        self.tail_start = start.min(self.len as usize) as u32;
        self.tail_lr_scale = lr_scale;
        self.tail_weight_decay = weight_decay;
        self
    }

    /// The learning rate and weight decay of element `i`.
    pub fn hyper(&self, i: usize) -> (f32, f32) {
        if i >= self.tail_start as usize {
            (self.lr * self.tail_lr_scale, self.tail_weight_decay)
        } else {
            (self.lr, self.weight_decay)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_112_bytes() {
        assert_eq!(std::mem::size_of::<StepScalars>(), 112);
    }
}
