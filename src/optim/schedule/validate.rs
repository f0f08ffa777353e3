//! The argument checks of each schedule ([`Schedule::validate`]).

use super::{config, decimal, Schedule};
use crate::error::Result;

impl Schedule {
    /// Checks the arguments where PyTorch checks them, and also where PyTorch would only
    /// fail later with a division by zero or produce a negative or non-finite rate.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        let positive_count = |key: &str, v: usize| {
            if v == 0 {
                Err(config(format!("{name}: {key} must be >= 1, got 0")))
            } else {
                Ok(())
            }
        };
        let non_negative = |key: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(config(format!(
                    "{name}: {key} must be a finite number >= 0, got {v}"
                )))
            }
        };
        let positive = |key: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(config(format!(
                    "{name}: {key} must be a finite number > 0, got {v}"
                )))
            }
        };
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                positive_count("step_size", step_size)?;
                non_negative("gamma", gamma)
            }
            Schedule::MultiStep { gamma, .. } | Schedule::Exponential { gamma } => {
                non_negative("gamma", gamma)
            }
            Schedule::Cosine { t_max, eta_min } => {
                positive_count("t_max", t_max)?;
                non_negative("eta_min", eta_min)
            }
            Schedule::CosineWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => {
                positive_count("t_0", t_0)?;
                positive_count("t_mult", t_mult)?;
                non_negative("eta_min", eta_min)
            }
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                gamma,
                ..
            } => {
                non_negative("base_lr", base_lr)?;
                non_negative("max_lr", max_lr)?;
                // PyTorch divides by step_size_up / total_size, which is zero here.
                positive_count("step_size_up", step_size_up)?;
                if step_size_up
                    .checked_add(step_size_down.unwrap_or(step_size_up))
                    .is_none()
                {
                    return Err(config(format!(
                        "{name}: step_size_up + step_size_down overflows"
                    )));
                }
                non_negative("gamma", gamma)
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                ..
            } => {
                non_negative("max_lr", max_lr)?;
                positive_count("total_steps", total_steps)?;
                if !(0.0..=1.0).contains(&pct_start) {
                    return Err(config(format!(
                        "{name}: pct_start must be in [0, 1], got {pct_start}"
                    )));
                }
                // A phase of zero steps would divide by zero (PyTorch's ZeroDivisionError);
                // the phase ends are those `lr_at` uses.
                let (total, pct) = (total_steps as f64, decimal(pct_start));
                let ends: Vec<f64> = if three_phase {
                    vec![pct * total - 1.0, 2.0 * pct * total - 2.0, total - 1.0]
                } else {
                    vec![pct * total - 1.0, total - 1.0]
                };
                let mut start = 0.0;
                for end in ends {
                    if end - start == 0.0 {
                        return Err(config(format!(
                            "{name}: total_steps={total_steps} with pct_start={pct_start} \
                             leaves a phase of zero steps"
                        )));
                    }
                    start = end;
                }
                positive("div_factor", div_factor)?;
                positive("final_div_factor", final_div_factor)
            }
            Schedule::ReduceOnPlateau {
                factor,
                threshold,
                min_lr,
                eps,
                ..
            } => {
                if !(0.0..1.0).contains(&factor) {
                    return Err(config(format!(
                        "{name}: factor must be in [0, 1), got {factor}"
                    )));
                }
                non_negative("threshold", threshold)?;
                non_negative("min_lr", min_lr)?;
                non_negative("eps", eps)
            }
        }
    }
}
