//! The optimizers of torch.optim, as configuration: their hyperparameters, defaults,
//! argument checks and the per-step scalars their fused kernels read.

use bytemuck::Zeroable;

use super::scalars::{as_decimal, StepScalars};
use crate::error::{Error, Result};

/// An optimizer with torch.optim's update rule, defaults and argument checks. The learning
/// rate is given per step, so schedules need no rebuild.
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
    /// torch.optim.Adam (weight decay as a coupled L2 term) and torch.optim.AdamW
    /// (decoupled weight decay).
    Adam {
        /// Coefficients of the running averages of the gradient and its square.
        betas: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Keep the maximum of the second moments (AMSGrad).
        amsgrad: bool,
        /// AdamW's decoupled decay (p ← p·(1 − lr·wd)) instead of Adam's L2 term.
        decoupled: bool,
    },
    /// torch.optim.Adagrad.
    Adagrad {
        /// Learning-rate decay: lr / (1 + (t − 1)·lr_decay).
        lr_decay: f32,
        /// Coupled L2 weight decay.
        weight_decay: f32,
        /// Starting value of the sum of squares.
        initial_accumulator_value: f32,
        /// Added to the denominator.
        eps: f32,
    },
    /// torch.optim.RMSprop.
    RmsProp {
        /// Smoothing constant of the squared-gradient average.
        alpha: f32,
        /// Added to the denominator.
        eps: f32,
        /// Coupled L2 weight decay.
        weight_decay: f32,
        /// Momentum factor (0 disables the buffer).
        momentum: f32,
        /// Normalise by the centred second moment (an estimate of the variance).
        centered: bool,
    },
    /// torch.optim.Adadelta.
    Adadelta {
        /// Smoothing constant of the running averages.
        rho: f32,
        /// Added inside the square roots.
        eps: f32,
        /// Coupled L2 weight decay.
        weight_decay: f32,
    },
    /// torch.optim.Adamax: Adam with the infinity norm in place of the second moment.
    Adamax {
        /// Coefficients of the running average of the gradient and of the infinity norm.
        betas: (f32, f32),
        /// Added to |g| before the maximum.
        eps: f32,
        /// Coupled L2 weight decay.
        weight_decay: f32,
    },
    /// torch.optim.NAdam: Adam with Nesterov momentum and the momentum schedule
    /// μ_t = β1·(1 − ½·0.96^(t·momentum_decay)).
    NAdam {
        /// Coefficients of the running averages of the gradient and its square.
        betas: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// ψ of the momentum schedule.
        momentum_decay: f32,
        /// `decoupled_weight_decay`: p ← p·(1 − lr·wd) instead of an L2 term.
        decoupled: bool,
    },
    /// torch.optim.RAdam: Adam whose adaptive step is rectified by the variance of the
    /// second moment's estimate, and plain momentum SGD while that variance is undefined.
    RAdam {
        /// Coefficients of the running averages of the gradient and its square.
        betas: (f32, f32),
        /// Added to the denominator.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// `decoupled_weight_decay`: p ← p·(1 − lr·wd) instead of an L2 term.
        decoupled: bool,
    },
}

/// Gradient clipping applied inside the optimizer dispatch: first by value
/// (`clip_grad_value_`), then by global L2 norm (`clip_grad_norm_`) of the clipped values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clip {
    /// Global L2-norm threshold.
    pub max_norm: Option<f32>,
    /// Element-wise threshold: gradients are clamped to [−v, v].
    pub max_value: Option<f32>,
    /// `error_if_nonfinite`: a step whose gradient norm is NaN or infinite is not applied
    /// and training stops with an error (needs `max_norm`; costs one readback per step).
    pub error_if_nonfinite: bool,
}

/// The hyperparameters every member of the Adam family (Adam, AdamW, Adamax, NAdam,
/// RAdam) has, and that reach its kernel the same way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamFamily {
    /// β1 and β2 (Adamax: the infinity norm's decay).
    pub betas: (f32, f32),
    /// ε.
    pub eps: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Decoupled (AdamW's) weight decay; always false for Adamax.
    pub decoupled: bool,
}

/// The optimizer names the command line accepts.
pub const OPTIMIZER_NAMES: &str =
    "sgd, adam, adamw, adagrad, rmsprop, adadelta, adamax, nadam, radam";

impl Optimizer {
    /// torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn adamw() -> Self {
        Optimizer::Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
            amsgrad: false,
            decoupled: true,
        }
    }

    /// torch.optim.Adam's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam() -> Self {
        Optimizer::Adam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled: false,
        }
    }

    /// SGD with momentum and no decay.
    pub fn sgd(momentum: f32) -> Self {
        Optimizer::Sgd {
            momentum,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// torch.optim.Adagrad's defaults (eps 1e-10).
    pub fn adagrad() -> Self {
        Optimizer::Adagrad {
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }

    /// torch.optim.RMSprop's defaults (alpha 0.99, eps 1e-8).
    pub fn rmsprop() -> Self {
        Optimizer::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }

    /// torch.optim.Adadelta's defaults (rho 0.9, eps 1e-6).
    pub fn adadelta() -> Self {
        Optimizer::Adadelta {
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
        }
    }

    /// torch.optim.Adamax's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adamax() -> Self {
        Optimizer::Adamax {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// torch.optim.NAdam's defaults: betas (0.9, 0.999), eps 1e-8, momentum decay 4e-3,
    /// no weight decay.
    pub fn nadam() -> Self {
        Optimizer::NAdam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled: false,
        }
    }

    /// torch.optim.RAdam's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn radam() -> Self {
        Optimizer::RAdam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// The optimizer with torch.optim's defaults for a name in [`OPTIMIZER_NAMES`].
    pub fn by_name(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "sgd" => Optimizer::sgd(0.0),
            "adam" => Optimizer::adam(),
            "adamw" => Optimizer::adamw(),
            "adagrad" => Optimizer::adagrad(),
            "rmsprop" => Optimizer::rmsprop(),
            "adadelta" => Optimizer::adadelta(),
            "adamax" => Optimizer::adamax(),
            "nadam" => Optimizer::nadam(),
            "radam" => Optimizer::radam(),
            other => {
                return Err(Error::Config(format!(
                    "unknown optimizer '{other}' ({OPTIMIZER_NAMES})"
                )))
            }
        })
    }

    /// The shared hyperparameters of an Adam-family optimizer; `None` for the others.
    pub fn adam_family(&self) -> Option<AdamFamily> {
        let family = |betas, eps, weight_decay, decoupled| AdamFamily {
            betas,
            eps,
            weight_decay,
            decoupled,
        };
        match *self {
            Optimizer::Adam {
                betas,
                eps,
                weight_decay,
                decoupled,
                ..
            }
            | Optimizer::NAdam {
                betas,
                eps,
                weight_decay,
                decoupled,
                ..
            }
            | Optimizer::RAdam {
                betas,
                eps,
                weight_decay,
                decoupled,
            } => Some(family(betas, eps, weight_decay, decoupled)),
            Optimizer::Adamax {
                betas,
                eps,
                weight_decay,
            } => Some(family(betas, eps, weight_decay, false)),
            _ => None,
        }
    }

    /// torch.optim's default learning rate for this optimizer.
    pub fn default_lr(&self) -> f32 {
        match self {
            Optimizer::Sgd { .. } | Optimizer::Adam { .. } | Optimizer::RAdam { .. } => 1e-3,
            Optimizer::Adamax { .. } | Optimizer::NAdam { .. } => 2e-3,
            Optimizer::Adagrad { .. } | Optimizer::RmsProp { .. } => 1e-2,
            Optimizer::Adadelta { .. } => 1.0,
        }
    }

    /// The name of the kernel entry point in `shaders/optim.wgsl`.
    pub fn kernel(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd_step",
            Optimizer::Adam { .. } => "adam_step",
            Optimizer::Adagrad { .. } => "adagrad_step",
            Optimizer::RmsProp { .. } => "rmsprop_step",
            Optimizer::Adadelta { .. } => "adadelta_step",
            Optimizer::Adamax { .. } => "adamax_step",
            Optimizer::NAdam { .. } => "nadam_step",
            Optimizer::RAdam { .. } => "radam_step",
        }
    }

    /// Whether state buffer `index` (0..3, each the size of the parameter arena) is used.
    /// SGD: 0 momentum. Adam: 0 m, 1 v, 2 max v (AMSGrad). Adagrad: 0 sum of squares.
    /// RMSprop: 0 square average, 1 gradient average (centred), 2 momentum.
    /// Adadelta: 0 square average, 1 accumulated update. Adamax: 0 m, 1 infinity norm.
    /// NAdam, RAdam: 0 m, 1 v.
    pub fn uses_state(&self, index: usize) -> bool {
        match *self {
            Optimizer::Sgd { momentum, .. } => index == 0 && momentum != 0.0,
            Optimizer::Adam { amsgrad, .. } => index < 2 || (index == 2 && amsgrad),
            Optimizer::Adagrad { .. } => index == 0,
            Optimizer::RmsProp {
                momentum, centered, ..
            } => index == 0 || (index == 1 && centered) || (index == 2 && momentum != 0.0),
            Optimizer::Adadelta { .. }
            | Optimizer::Adamax { .. }
            | Optimizer::NAdam { .. }
            | Optimizer::RAdam { .. } => index < 2,
        }
    }

    /// The value state buffer `index` starts from (Adagrad's initial accumulator; else 0).
    pub fn initial_state(&self, index: usize) -> f32 {
        match *self {
            Optimizer::Adagrad {
                initial_accumulator_value,
                ..
            } if index == 0 => initial_accumulator_value,
            _ => 0.0,
        }
    }

    /// Checks the hyperparameters as torch.optim's constructors do.
    pub fn validate(&self) -> Result<()> {
        let name = self.kernel().trim_end_matches("_step");
        let check = |what: &str, v: f32, ok: bool| -> Result<()> {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(Error::Config(format!("{name}: invalid {what} {v}")))
            }
        };
        if let Some(f) = self.adam_family() {
            check("beta1", f.betas.0, (0.0..1.0).contains(&f.betas.0))?;
            check("beta2", f.betas.1, (0.0..1.0).contains(&f.betas.1))?;
            check("eps", f.eps, f.eps >= 0.0)?;
            check("weight decay", f.weight_decay, f.weight_decay >= 0.0)?;
        }
        match *self {
            Optimizer::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                check("momentum", momentum, momentum >= 0.0)?;
                check("weight decay", weight_decay, weight_decay >= 0.0)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(Error::Config(
                        "sgd: nesterov needs momentum > 0 and zero dampening".into(),
                    ));
                }
            }
            Optimizer::NAdam { momentum_decay, .. } => {
                check("momentum_decay", momentum_decay, momentum_decay >= 0.0)?;
            }
            Optimizer::Adam { .. } | Optimizer::Adamax { .. } | Optimizer::RAdam { .. } => {}
            Optimizer::Adagrad {
                lr_decay,
                weight_decay,
                initial_accumulator_value,
                eps,
            } => {
                check("lr decay", lr_decay, lr_decay >= 0.0)?;
                check("weight decay", weight_decay, weight_decay >= 0.0)?;
                check(
                    "initial accumulator value",
                    initial_accumulator_value,
                    initial_accumulator_value >= 0.0,
                )?;
                check("eps", eps, eps >= 0.0)?;
            }
            Optimizer::RmsProp {
                alpha,
                eps,
                weight_decay,
                momentum,
                ..
            } => {
                check("alpha", alpha, alpha >= 0.0)?;
                check("eps", eps, eps >= 0.0)?;
                check("weight decay", weight_decay, weight_decay >= 0.0)?;
                check("momentum", momentum, momentum >= 0.0)?;
            }
            Optimizer::Adadelta {
                rho,
                eps,
                weight_decay,
            } => {
                check("rho", rho, (0.0..=1.0).contains(&rho))?;
                check("eps", eps, eps >= 0.0)?;
                check("weight decay", weight_decay, weight_decay >= 0.0)?;
            }
        }
        Ok(())
    }

    /// The scalars of update number `step` (from 1) at learning rate `lr`, with one
    /// parameter group; see [`StepScalars::with_tail_group`] for a second.
    pub fn scalars(&self, lr: f32, step: u32, clip: Clip, len: usize) -> StepScalars {
        let mut s = StepScalars {
            lr,
            step,
            len: len as u32,
            max_norm: clip.max_norm.unwrap_or(0.0),
            clip_value: clip.max_value.unwrap_or(0.0),
            tail_start: len as u32,
            tail_lr_scale: 1.0,
            skip_nonfinite: u32::from(clip.error_if_nonfinite),
            ..StepScalars::zeroed()
        };
        if let Some(AdamFamily {
            betas,
            eps,
            weight_decay,
            decoupled,
        }) = self.adam_family()
        {
            s.beta1 = betas.0;
            s.beta2 = betas.1;
            s.eps = eps;
            s.weight_decay = weight_decay;
            s.decoupled = u32::from(decoupled);
            // In f64 on the host, as PyTorch computes them in Python floats; each kernel
            // reads the ones it uses.
            let t = f64::from(step);
            let (b1t, b2t) = (as_decimal(betas.0).powf(t), as_decimal(betas.1).powf(t));
            s.bias_correction1 = (1.0 - b1t) as f32;
            s.bias_correction2 = (1.0 - b2t) as f32;
            s.bias_correction2_sqrt = (1.0 - b2t).sqrt() as f32;
        }
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
            Optimizer::Adam { amsgrad, .. } => s.amsgrad = u32::from(amsgrad),
            Optimizer::Adagrad {
                lr_decay,
                weight_decay,
                eps,
                ..
            } => {
                s.weight_decay = weight_decay;
                s.eps = eps;
                // clr = lr / (1 + (t − 1)·lr_decay), in f64 as PyTorch's Python arithmetic.
                let clr = f64::from(lr) / (1.0 + (f64::from(step) - 1.0) * as_decimal(lr_decay));
                s.lr = clr as f32;
            }
            Optimizer::RmsProp {
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
            } => {
                s.alpha = alpha;
                s.eps = eps;
                s.weight_decay = weight_decay;
                s.momentum = momentum;
                s.centered = u32::from(centered);
            }
            Optimizer::Adadelta {
                rho,
                eps,
                weight_decay,
            } => {
                s.alpha = rho;
                s.eps = eps;
                s.weight_decay = weight_decay;
            }
            Optimizer::Adamax { .. } => {}
            Optimizer::NAdam {
                betas,
                momentum_decay,
                ..
            } => {
                let (beta1, psi) = (as_decimal(betas.0), as_decimal(momentum_decay));
                let (grad, avg) = super::nadam::coefficients(beta1, psi, step);
                s.nadam_grad_coef = grad as f32;
                s.nadam_avg_coef = avg as f32;
            }
            Optimizer::RAdam { betas, .. } => {
                s.rect = radam_rectification(as_decimal(betas.1), f64::from(step)) as f32;
            }
        }
        s.with_complements()
    }
}

/// RAdam's variance rectification r_t at step `t`, or 0 while the length of the
/// approximated simple moving average ρ_t is at most 5 (the variance of the adaptive
/// step is then undefined and RAdam takes a plain momentum step). In f64, as PyTorch
/// computes it in Python floats.
fn radam_rectification(beta2: f64, t: f64) -> f64 {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let rho_t = rho_inf - 2.0 * t * beta2.powf(t) / (1.0 - beta2.powf(t));
    if rho_t > 5.0 {
        ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_bias_corrections() {
        let s = Optimizer::adamw().scalars(1e-3, 2, Clip::default(), 64);
        assert!((s.bias_correction1 - 0.19).abs() < 1e-7);
        let want = (1.0f64 - 0.999f64 * 0.999).sqrt() as f32;
        assert!((s.bias_correction2_sqrt - want).abs() < 1e-7);
    }

    #[test]
    fn adagrad_decays_the_learning_rate() {
        let opt = Optimizer::Adagrad {
            lr_decay: 0.5,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        };
        // 0.1 / (1 + 2·0.5) at step 3.
        assert!((opt.scalars(0.1, 3, Clip::default(), 1).lr - 0.05).abs() < 1e-9);
    }

    #[test]
    fn names_and_defaults_follow_torch() {
        for (name, lr) in [
            ("sgd", 1e-3),
            ("adam", 1e-3),
            ("adamw", 1e-3),
            ("adagrad", 1e-2),
            ("rmsprop", 1e-2),
            ("adadelta", 1.0),
            ("adamax", 2e-3),
            ("nadam", 2e-3),
            ("radam", 1e-3),
        ] {
            let o = Optimizer::by_name(name).unwrap();
            assert_eq!(o.default_lr(), lr, "{name}");
            assert!(o.validate().is_ok(), "{name}");
        }
        assert!(Optimizer::by_name("lion").is_err());
        let bad = Optimizer::Adam {
            betas: (1.0, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            decoupled: false,
        };
        assert!(bad.validate().is_err());
        let nadam = Optimizer::NAdam {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: -1e-3,
            decoupled: false,
        };
        assert!(nadam.validate().is_err());
        let radam = Optimizer::RAdam {
            betas: (0.9, 1.0),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: true,
        };
        assert!(radam.validate().is_err());
        let adamax = Optimizer::Adamax {
            betas: (0.9, 0.999),
            eps: -1.0,
            weight_decay: 0.0,
        };
        assert!(adamax.validate().is_err());
    }
}
