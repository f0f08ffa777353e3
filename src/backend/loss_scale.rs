//! Dynamic loss scaling for f16 models, with `torch.cuda.amp.GradScaler`'s semantics and
//! defaults. The state lives with the model on each backend (on the GPU in the words after
//! the gradient norm, see `shaders/scaler.wgsl`); this is its host-side form and the rule
//! both backends apply after every training step, in the same f32 arithmetic, so they
//! agree bit for bit on the scale.
//!
//! A training run of an f16 model: the scale seeds the backward pass instead of 1 (so
//! every gradient comes out multiplied by it and small f16 gradients do not flush to
//! zero); the optimizer multiplies each gradient by 1/scale before clipping (as
//! `scaler.unscale_(opt)` then `clip_grad_norm_` do); the norm pass sums the squares of the
//! unscaled gradients with +infinity for any non-finite one, so a non-finite norm means
//! `found_inf` (a finite sum that overflows f32 is also taken as `found_inf`: gradients
//! that large would make the step diverge anyway); a step with `found_inf` updates
//! nothing (parameters, optimizer state and the f16 weight copy stay bit-identical), and
//! then [`LossScale::update`] runs.

/// GradScaler state of an f16 model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScale {
    /// The factor the loss's gradient is seeded with (GradScaler's `_scale`).
    pub scale: f32,
    /// Good steps since the scale last changed (GradScaler's `_growth_tracker`).
    pub growth_tracker: u32,
    /// Steps skipped because their gradients were not finite, since the model was
    /// initialised (or since the last [`crate::backend::Backend::write_loss_scale`]).
    pub skipped: u32,
}

impl LossScale {
    /// GradScaler's `init_scale`: 2^16.
    pub const INIT_SCALE: f32 = 65536.0;
    /// GradScaler's `growth_factor`.
    pub const GROWTH_FACTOR: f32 = 2.0;
    /// GradScaler's `backoff_factor`.
    pub const BACKOFF_FACTOR: f32 = 0.5;
    /// GradScaler's `growth_interval`: good steps in a row before the scale grows.
    pub const GROWTH_INTERVAL: u32 = 2000;

    /// The factor gradients are multiplied by to unscale them. PyTorch computes it as
    /// `scale.double().reciprocal().float()`; for the powers of two the scale takes unless
    /// written otherwise, both that and this f32 division are exact (the GPU's division
    /// too), so the backends agree.
    pub fn inv_scale(&self) -> f32 {
        1.0 / self.scale
    }

    /// `torch._amp_update_scale_`: after a step with non-finite gradients the scale is
    /// multiplied by the backoff factor and the tracker reset (and the skip counted);
    /// otherwise the tracker counts the good step and, on reaching the growth interval,
    /// the scale grows (only if it stays finite) and the tracker restarts.
    /// `shaders/scaler.wgsl`'s `update_loss_scale` is the same rule.
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= Self::BACKOFF_FACTOR;
            self.growth_tracker = 0;
            self.skipped = self.skipped.wrapping_add(1);
            return;
        }
        let successful = self.growth_tracker.wrapping_add(1);
        if successful >= Self::GROWTH_INTERVAL {
            let grown = self.scale * Self::GROWTH_FACTOR;
            if grown.is_finite() {
                self.scale = grown;
            }
            self.growth_tracker = 0;
        } else {
            self.growth_tracker = successful;
        }
    }
}

impl Default for LossScale {
    /// The state of a fresh GradScaler: scale 2^16, nothing counted.
    fn default() -> Self {
        LossScale {
            scale: Self::INIT_SCALE,
            growth_tracker: 0,
            skipped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_and_growth_follow_grad_scaler() {
        let mut s = LossScale::default();
        s.update(true);
        assert_eq!(
            s,
            LossScale {
                scale: 32768.0,
                growth_tracker: 0,
                skipped: 1
            }
        );
        for _ in 0..LossScale::GROWTH_INTERVAL - 1 {
            s.update(false);
        }
        assert_eq!((s.scale, s.growth_tracker), (32768.0, 1999));
        s.update(false);
        assert_eq!((s.scale, s.growth_tracker, s.skipped), (65536.0, 0, 1));
        // Growth that would overflow keeps the scale but still restarts the count.
        let mut big = LossScale {
            scale: f32::MAX,
            growth_tracker: 1999,
            skipped: 0,
        };
        big.update(false);
        assert_eq!((big.scale, big.growth_tracker), (f32::MAX, 0));
    }
}
