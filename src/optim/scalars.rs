//! The per-step scalars of the fused optimizer kernels.

use bytemuck::{Pod, Zeroable};

/// The per-step scalars, laid out as the WGSL `StepScalars` struct in `shaders/optim.wgsl`
/// (tests/shaders.rs checks the two agree). The first sixteen words are also read by
/// `shaders/dropout.wgsl` for the step and the seed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct StepScalars {
    /// Learning rate of this step (Adagrad's already decayed).
    pub lr: f32,
    /// Weight decay (coupled L2, or decoupled for AdamW).
    pub weight_decay: f32,
    /// SGD and RMSprop momentum.
    pub momentum: f32,
    /// SGD dampening.
    pub dampening: f32,
    /// β1 of the Adam family (Adam, AdamW, Adamax, NAdam, RAdam).
    pub beta1: f32,
    /// β2 of the Adam family (Adamax: the infinity norm's decay).
    pub beta2: f32,
    /// ε of every optimizer but SGD.
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
    /// 1 − dampening (SGD), from [`StepScalars::with_complements`].
    pub one_minus_dampening: f32,
    /// RMSprop's alpha, Adadelta's rho.
    pub alpha: f32,
    /// 1 − alpha (RMSprop), 1 − rho (Adadelta), from [`StepScalars::with_complements`].
    pub one_minus_alpha: f32,
    /// Element-wise clipping threshold; 0 disables it.
    pub clip_value: f32,
    /// 1 for decoupled weight decay (AdamW; Adam, NAdam, RAdam with
    /// `decoupled_weight_decay`).
    pub decoupled: u32,
    /// 1 for AMSGrad.
    pub amsgrad: u32,
    /// 1 for centred RMSprop.
    pub centered: u32,
    /// 1 − β1 (the Adam family), from [`StepScalars::with_complements`].
    pub one_minus_beta1: f32,
    /// 1 − β2 (the Adam family), from [`StepScalars::with_complements`].
    pub one_minus_beta2: f32,
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
    /// 1 − β2^t (NAdam divides the second moment by it before the square root).
    pub bias_correction2: f32,
    /// RAdam's variance rectification r_t; 0 while ρ_t ≤ 5 (an unrectified momentum step).
    pub rect: f32,
    /// NAdam's coefficient of the gradient, (1 − μ_t) / (1 − Π μ).
    pub nadam_grad_coef: f32,
    /// NAdam's coefficient of the first moment, μ_(t+1) / (1 − Π μ · μ_(t+1)).
    pub nadam_avg_coef: f32,
}

/// Zero hyperparameters with their complements (1 − 0 = 1) and no tail group: an update
/// built from it and a few fields set by hand moves as those fields say, where zeroed
/// complements would freeze every moment and a tail group from element 0 would take
/// every parameter's rate and decay from the (zero) tail fields. Call
/// [`StepScalars::with_complements`] again after changing β, α or dampening.
impl Default for StepScalars {
    fn default() -> Self {
        StepScalars {
            tail_start: u32::MAX,
            tail_lr_scale: 1.0,
            ..Self::zeroed()
        }
        .with_complements()
    }
}

impl StepScalars {
    /// Sets `1 − dampening`, `1 − alpha`, `1 − β1` and `1 − β2` from the decimals the
    /// user wrote, in f64, rounded once, as PyTorch computes `1 - beta2` in Python floats
    /// before the kernel sees it. Why not in the kernels: `1 − 0.999f32` in f32 is
    /// 0.00099998713, 1.3e-5 (relative) below 0.001, and every second-moment update would
    /// carry that bias (1.4e-3 at β2 = 0.99999).
    pub fn with_complements(mut self) -> Self {
        let complement = |v: f32| (1.0 - as_decimal(v)) as f32;
        self.one_minus_dampening = complement(self.dampening);
        self.one_minus_alpha = complement(self.alpha);
        self.one_minus_beta1 = complement(self.beta1);
        self.one_minus_beta2 = complement(self.beta2);
        self
    }

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

/// The f64 of the shortest decimal that reads back as `v`: 0.999f32 becomes 0.999, the
/// Python float a PyTorch user wrote, not 0.99900001287. Bias corrections 1 − β^t and
/// complements 1 − β are sensitive to that difference.
pub(crate) fn as_decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scalars_update_with_the_main_group_and_unit_complements() {
        let s = StepScalars {
            lr: 0.1,
            weight_decay: 0.01,
            ..StepScalars::default()
        };
        assert_eq!(s.hyper(0), (0.1, 0.01));
        assert_eq!(s.hyper(1 << 20), (0.1, 0.01));
        assert_eq!(
            [
                s.one_minus_dampening,
                s.one_minus_alpha,
                s.one_minus_beta1,
                s.one_minus_beta2
            ],
            [1.0; 4]
        );
    }

    #[test]
    fn complements_are_those_of_the_decimals() {
        let s = StepScalars {
            dampening: 0.1,
            alpha: 0.99,
            beta1: 0.9,
            beta2: 0.999,
            ..StepScalars::default()
        }
        .with_complements();
        assert_eq!(s.one_minus_dampening, 0.9);
        assert_eq!(s.one_minus_alpha, 0.01);
        assert_eq!(s.one_minus_beta1, 0.1);
        assert_eq!(s.one_minus_beta2, 0.001);
        // In f32, 1 − 0.9f32 and 1 − 0.999f32 are 0.100000024 and 0.00099998713.
    }

    #[test]
    fn layout_is_128_bytes() {
        assert_eq!(std::mem::size_of::<StepScalars>(), 128);
    }
}
