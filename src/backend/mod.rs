//! The two backends behind one trait: the CPU reference and wgpu. Both execute the same
//! [`Plan`]s over the same arena layout, so any value can be compared between them.

pub mod cpu;
mod loss_scale;
mod select;
pub mod wgpu;

pub use loss_scale::LossScale;
pub use select::{select_backend, select_backend_for, BackendChoice};

use crate::error::Result;
use crate::graph::{ParamLayout, Plan, Slot};
use crate::optim::{Optimizer, StepScalars};
use crate::rng::StepRng;

/// The randomness a run's scalars describe (seed and step), as the kernels see it.
pub fn step_rng(s: &StepScalars) -> StepRng {
    StepRng {
        seed: u64::from(s.seed_lo) | u64::from(s.seed_hi) << 32,
        step: s.step,
    }
}

/// Number of f32 metric accumulators a backend keeps.
pub const METRICS: usize = 4;

/// Index of the loss accumulator.
pub const METRIC_LOSS: usize = 0;
/// Index of the correct-prediction accumulator.
pub const METRIC_CORRECT: usize = 1;

/// Identifies a plan compiled on a backend.
pub type PlanId = usize;

/// What runs after a plan's steps in the same submission.
#[derive(Clone, Debug, Default)]
pub struct Tail {
    /// Scalars to add to metric accumulators: (slot of a `[1]` value, accumulator index,
    /// weight it is multiplied by).
    pub accumulate: Vec<(Slot, usize, f32)>,
    /// Whether the optimizer updates the parameters from the gradient arena.
    pub update: bool,
    /// Whether every step's output is tested for NaN and infinities (`--detect-anomaly`);
    /// [`Backend::read_anomaly`] then names the first step that produced one.
    pub check_finite: bool,
}

/// An executor of plans that keeps parameters, gradients and optimizer state resident.
/// `Send`, so that a trainer can run on a thread of its own.
pub trait Backend: Send {
    /// A one-line description (device name, backend, type).
    fn describe(&self) -> String;

    /// Allocates the parameter, gradient, buffer and optimizer-state arenas for a model and
    /// writes the initial parameters (`params.len() == layout.size`) and buffers
    /// (`buffers.len() == layout.buffers_size`). Gradients and optimizer state start at zero.
    fn init_model(
        &mut self,
        layout: &ParamLayout,
        params: &[f32],
        buffers: &[f32],
        optimizer: Option<Optimizer>,
    ) -> Result<()>;

    /// Prepares a plan (buffers, pipelines, bind groups) once; runs replay it.
    fn compile(&mut self, plan: &Plan, tail: Tail) -> Result<PlanId>;

    /// Runs a compiled plan once: `feeds` fills the plan's inputs in order, `scalars`
    /// reaches the optimizer. On the GPU this is one command encoder and one submit.
    fn run(&mut self, plan: PlanId, feeds: &[&[f32]], scalars: &StepScalars) -> Result<()>;

    /// Reads the metric accumulators (waits for queued work).
    fn read_metrics(&mut self) -> Result<[f32; METRICS]>;

    /// Sets the metric accumulators to zero.
    fn reset_metrics(&mut self) -> Result<()>;

    /// Reads the parameter arena.
    fn read_params(&mut self) -> Result<Vec<f32>>;

    /// Overwrites the parameter arena.
    fn write_params(&mut self, params: &[f32]) -> Result<()>;

    /// Reads the buffer arena (batch-norm running statistics).
    fn read_buffers(&mut self) -> Result<Vec<f32>>;

    /// Overwrites the buffer arena.
    fn write_buffers(&mut self, buffers: &[f32]) -> Result<()>;

    /// The squared global gradient norm of the last training run (after clipping by
    /// value), as the clipping pass computed it (waits for queued work; only meaningful
    /// when clipping by norm was on).
    fn read_grad_norm_sq(&mut self) -> Result<f32>;

    /// Reads the gradient arena.
    fn read_grads(&mut self) -> Result<Vec<f32>>;

    /// Reads optimizer state buffer `index`.
    fn read_state(&mut self, index: usize) -> Result<Vec<f32>>;

    /// Overwrites optimizer state buffer `index` (to resume a run).
    fn write_state(&mut self, index: usize, data: &[f32]) -> Result<()>;

    /// The index (in `plan.steps`) of the first step whose output held a NaN or an
    /// infinity in the last run of a plan compiled with [`Tail::check_finite`]; `None` when
    /// all were finite (or the plan does not check). Waits for queued work.
    fn read_anomaly(&mut self, plan: PlanId) -> Result<Option<usize>>;

    /// Reads a value of the last run of `plan` (an output, or any slot still intact).
    fn read_slot(&mut self, plan: PlanId, slot: Slot) -> Result<Vec<f32>>;

    /// The GradScaler state of an f16 model ([`LossScale`]; `None` for f32 models, which
    /// are not scaled). Waits for queued work.
    ///
    /// Every training run of an f16 model seeds its backward pass with the scale, unscales
    /// the gradients in the optimizer and, when any is not finite, skips the whole update
    /// and counts it in `skipped`. To learn whether the last step was skipped, compare
    /// `skipped` with its previous value, or read one float with
    /// [`Backend::read_grad_norm_sq`]: for f16 models it is the squared norm of the
    /// unscaled gradients, non-finite exactly when the update was skipped.
    fn read_loss_scale(&mut self) -> Result<Option<LossScale>>;

    /// Overwrites the GradScaler state of an f16 model (to resume a run, and for tests);
    /// an error for f32 models.
    fn write_loss_scale(&mut self, s: LossScale) -> Result<()>;
}
