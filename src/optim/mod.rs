//! Optimizers and gradient clipping: host-side configuration and the per-step scalars
//! that reach the fused update kernels through one small uniform buffer.

mod nadam;
mod optimizer;
mod scalars;
pub mod schedule;

pub use optimizer::{AdamFamily, Clip, Optimizer, OPTIMIZER_NAMES};
pub use scalars::StepScalars;

/// `clip_grad_norm_`'s factor: min(1, max_norm / (norm + 1e-6)); 1 when clipping is off.
pub fn clip_coefficient(norm_sq: f32, max_norm: f32) -> f32 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    (max_norm / (norm_sq.sqrt() + 1e-6)).min(1.0)
}

/// `clip_grad_value_`: g clamped to [−v, v]; unchanged when v is 0 (off).
pub fn clip_value(g: f32, v: f32) -> f32 {
    if v > 0.0 {
        g.clamp(-v, v)
    } else {
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_coefficient_is_capped_at_one() {
        assert_eq!(clip_coefficient(4.0, 10.0), 1.0);
        assert!((clip_coefficient(100.0, 1.0) - 1.0 / (10.0 + 1e-6)).abs() < 1e-9);
        assert_eq!(clip_coefficient(100.0, 0.0), 1.0);
    }

    #[test]
    fn clip_value_clamps_both_signs() {
        assert_eq!(clip_value(3.0, 1.0), 1.0);
        assert_eq!(clip_value(-3.0, 1.0), -1.0);
        assert_eq!(clip_value(0.5, 1.0), 0.5);
        assert_eq!(clip_value(-7.0, 0.0), -7.0);
    }
}
