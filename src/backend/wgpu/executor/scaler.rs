//! Dynamic loss scaling of f16 models on the device (`shaders/scaler.wgsl`). The scaler's
//! state is three words after the squared gradient norm in the optimizer's norm buffer
//! (the update kernels already use WebGPU's default 8 storage bindings, so it cannot have
//! a binding of its own there): word 1 the scale, 2 the growth tracker, 3 the skipped
//! steps. A training run records `write_loss_seed` before the plan's dispatches and
//! `update_loss_scale` after the update, so nothing crosses the bus.

use wgpu::Buffer;

use super::{BindingKind, Dispatch, ModelBuffers, WgpuBackend};
use crate::backend::LossScale;
use crate::error::{Error, Result};
use crate::graph::{ArenaKind, Plan, Slot};
use crate::optim::StepScalars;

/// The scaler's words in the norm buffer: the norm (found_inf), scale, tracker, skipped.
pub(super) const SCALER_WORDS: usize = 4;

/// The norm buffer's first words, as the scaler kernels bind them.
fn scaler_slot() -> Slot {
    Slot {
        arena: ArenaKind::Params,
        offset: 0,
        len: SCALER_WORDS,
    }
}

/// The words 1..4 of the scaler's state as stored (the scale's f32 bits, then counters).
fn state_words(s: LossScale) -> [u32; 3] {
    [s.scale.to_bits(), s.growth_tracker, s.skipped]
}

impl WgpuBackend {
    /// Puts a fresh GradScaler's state (scale 2^16) in the model's norm buffer.
    pub(super) fn reset_loss_scale(&self, m: &ModelBuffers) {
        self.write_scaler_words(m, LossScale::default());
    }

    fn write_scaler_words(&self, m: &ModelBuffers, s: LossScale) {
        self.ctx
            .queue
            .write_buffer(&m.norm, 4, bytemuck::cast_slice(&state_words(s)));
    }

    /// A dispatch of `kernel` from `scaler.wgsl` over the scaler's words, then `extra`
    /// storage bindings. Binding 0 (unused by the kernels) is the step scalars.
    fn scaler_dispatch(
        &mut self,
        m: &ModelBuffers,
        kernel: &'static str,
        extra: Option<(&Buffer, Slot)>,
    ) -> Result<Dispatch> {
        let mut storage = vec![(&m.norm, scaler_slot())];
        storage.extend(extra);
        let (pipeline, bgl) = self.pipeline(
            "scaler.wgsl",
            kernel,
            &[],
            BindingKind::Graph,
            storage.len(),
        )?;
        let uniform = (&m.scalars, 0, std::mem::size_of::<StepScalars>() as u64);
        let bind_group = self.bind_group(&bgl, uniform, &storage, None);
        Ok(Dispatch {
            pipeline,
            bind_group,
            groups: (1, 1),
        })
    }

    /// `update_loss_scale`, recorded after an f16 model's update.
    pub(super) fn loss_scale_update_dispatch(&mut self, m: &ModelBuffers) -> Result<Dispatch> {
        self.scaler_dispatch(m, "update_loss_scale", None)
    }

    /// For a training plan of an f16 model, the dispatch that writes the scale into the
    /// plan's loss seed (in its `inputs` buffer) before anything else runs; `None` for
    /// f32 models.
    pub(super) fn loss_seed_dispatch(
        &mut self,
        plan: &Plan,
        inputs: &Buffer,
    ) -> Result<Option<Dispatch>> {
        let model = self
            .model
            .take()
            .ok_or_else(|| Error::Graph("no model on the GPU: call init_model first".into()))?;
        let result = self.loss_seed_dispatch_for(&model, plan, inputs);
        self.model = Some(model);
        result
    }

    fn loss_seed_dispatch_for(
        &mut self,
        m: &ModelBuffers,
        plan: &Plan,
        inputs: &Buffer,
    ) -> Result<Option<Dispatch>> {
        if m.params_half.is_none() {
            return Ok(None);
        }
        let seed = plan.loss_seed.ok_or_else(|| {
            Error::Graph("an f16 training plan needs the loss seed its scale is written to".into())
        })?;
        if seed.arena != ArenaKind::Inputs {
            return Err(Error::Graph(format!(
                "the loss seed {seed:?} is not in the input arena"
            )));
        }
        self.scaler_dispatch(m, "write_loss_seed", Some((inputs, seed)))
            .map(Some)
    }

    /// The GradScaler state of an f16 model (`None` for f32 models); waits for the device.
    pub(super) fn read_loss_scale_words(&self) -> Result<Option<LossScale>> {
        let m = self.model()?;
        if m.params_half.is_none() {
            return Ok(None);
        }
        let words = self.ctx.read(&m.norm, 0, SCALER_WORDS)?;
        let bits = |k: usize| words.get(k).map_or(0, |w| w.to_bits());
        Ok(Some(LossScale {
            scale: f32::from_bits(bits(1)),
            growth_tracker: bits(2),
            skipped: bits(3),
        }))
    }

    /// Overwrites the GradScaler state of an f16 model.
    pub(super) fn write_loss_scale_words(&self, s: LossScale) -> Result<()> {
        let m = self.model()?;
        if m.params_half.is_none() {
            return Err(Error::Config(
                "only f16 models have a loss scale to write".into(),
            ));
        }
        self.write_scaler_words(m, s);
        Ok(())
    }
}
