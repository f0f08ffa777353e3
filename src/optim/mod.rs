//! Optimizers and gradient clipping: host-side configuration and the per-step scalars
//! that reach the fused update kernels through one small uniform buffer.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};

/// An optimizer with torch.optim's update rule and defaults. The learning rate is given
/// per step (so schedules need no rebuild).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// torch.optim.SGD.
    Sgd {
        /// Momentum factor (0 disables the buffer).
        momentum: f32,
        /// Dampening of the momentum.
        dampening: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// Coupled L2 weight decay (added to the gradient).
        weight_decay: f32,
    },
    /// torch.optim.AdamW (decoupled weight decay).
    AdamW {
        /// Coefficients of the running averages of the gradient and its square.
        betas: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    },
}

impl Optimizer {
    /// torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn adamw() -> Self {
        Optimizer::AdamW {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }

    /// Plain SGD with momentum and no decay.
    pub fn sgd(momentum: f32) -> Self {
        Optimizer::Sgd {
            momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// How many state buffers (each the size of the parameter arena) it keeps.
    pub fn state_buffers(&self) -> usize {
        match self {
            Optimizer::Sgd { momentum, .. } if *momentum != 0.0 => 1,
            Optimizer::Sgd { .. } => 0,
            Optimizer::AdamW { .. } => 2,
        }
    }

    /// Checks the hyperparameters against torch.optim's own checks.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        match *self {
            Optimizer::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                if !non_negative(momentum) || !non_negative(weight_decay) {
                    return bad(format!(
                        "sgd: momentum ({momentum}) and weight decay ({weight_decay}) must be >= 0"
                    ));
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return bad("sgd: nesterov needs momentum > 0 and zero dampening".into());
                }
            }
            Optimizer::AdamW {
                betas,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&betas.0) || !(0.0..1.0).contains(&betas.1) {
                    return bad(format!("adamw: betas must be in [0, 1), got {betas:?}"));
                }
                if !non_negative(eps) || !non_negative(weight_decay) {
                    return bad(format!(
                        "adamw: eps ({eps}) and weight decay ({weight_decay}) must be >= 0"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The scalars of update number `step` (1-based) at learning rate `lr`.
    pub fn scalars(&self, lr: f32, step: u32, clip_norm: Option<f32>, len: usize) -> StepScalars {
        let mut s = StepScalars {
            lr,
            step,
            len: len as u32,
            max_norm: clip_norm.unwrap_or(0.0),
            ..StepScalars::zeroed()
        };
        match *self {
            Optimizer::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                s.momentum = momentum;
                s.dampening = dampening;
                s.nesterov = u32::from(nesterov);
                s.weight_decay = weight_decay;
            }
            Optimizer::AdamW {
                betas,
                eps,
                weight_decay,
            } => {
                s.beta1 = betas.0;
                s.beta2 = betas.1;
                s.eps = eps;
                s.weight_decay = weight_decay;
                // Computed in f64 on the host, as PyTorch computes them in Python floats.
                let t = f64::from(step);
                s.bias_correction1 = (1.0 - as_decimal(betas.0).powf(t)) as f32;
                s.bias_correction2_sqrt = (1.0 - as_decimal(betas.1).powf(t)).sqrt() as f32;
            }
        }
        s
    }
}

/// The f64 of the shortest decimal that reads back as `v`: 0.999f32 becomes 0.999, the
/// Python float a PyTorch user wrote, not 0.99900001287. Bias corrections 1 − β^t are
/// sensitive to that difference.
fn as_decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// True for finite values >= 0 (false for NaN).
fn non_negative(v: f32) -> bool {
    v.is_finite() && v >= 0.0
}

/// The per-step scalars, laid out as the WGSL `StepScalars` struct in `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StepScalars {
    /// Learning rate of this step.
    pub lr: f32,
    /// Weight decay (coupled for SGD, decoupled for AdamW).
    pub weight_decay: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// SGD dampening.
    pub dampening: f32,
    /// Adam β1.
    pub beta1: f32,
    /// Adam β2.
    pub beta2: f32,
    /// Adam ε.
    pub eps: f32,
    /// 1 − β1^t.
    pub bias_correction1: f32,
    /// sqrt(1 − β2^t).
    pub bias_correction2_sqrt: f32,
    /// Global-norm clipping threshold; 0 disables clipping.
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
    /// Padding to a 16-byte multiple.
    pub pad: u32,
}

/// `clip_grad_norm_`'s factor: min(1, max_norm / (norm + 1e-6)); 1 when clipping is off.
pub fn clip_coefficient(norm_sq: f32, max_norm: f32) -> f32 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    (max_norm / (norm_sq.sqrt() + 1e-6)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_layout_is_64_bytes() {
        assert_eq!(std::mem::size_of::<StepScalars>(), 64);
    }

    #[test]
    fn adam_bias_corrections() {
        let s = Optimizer::adamw().scalars(1e-3, 2, None, 64);
        assert!((s.bias_correction1 - 0.19).abs() < 1e-7);
        assert!((s.bias_correction2_sqrt - (1.0f64 - 0.999f64 * 0.999).sqrt() as f32).abs() < 1e-7);
    }

    #[test]
    fn clip_coefficient_is_capped_at_one() {
        assert_eq!(clip_coefficient(4.0, 10.0), 1.0);
        assert!((clip_coefficient(100.0, 1.0) - 1.0 / (10.0 + 1e-6)).abs() < 1e-9);
        assert_eq!(clip_coefficient(100.0, 0.0), 1.0);
    }
}
