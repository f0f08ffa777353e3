//! Recording a compiled plan into a caller's compute pass: the dispatches `run` records,
//! without the uploads and the submit, so that `kiln bench` can bracket them with
//! timestamp queries (see `backend/wgpu/timing.rs`).

use super::WgpuBackend;
use crate::backend::PlanId;
use crate::error::{Error, Result};

impl WgpuBackend {
    /// Records plan `id`'s dispatches into `pass`, followed by the optimizer update when
    /// the plan has one (after the clipping-norm passes when `clip_by_norm`). Inputs and
    /// step scalars are whatever the last [`crate::backend::Backend::run`] wrote.
    pub(crate) fn record_plan(
        &self,
        id: PlanId,
        clip_by_norm: bool,
        pass: &mut wgpu::ComputePass<'_>,
    ) -> Result<()> {
        let p = self
            .plans
            .get(id)
            .ok_or_else(|| Error::Graph(format!("no plan {id}")))?;
        Self::record(pass, p.dispatches.iter());
        if p.update {
            let m = self.model()?;
            if clip_by_norm {
                Self::record(pass, m.norm_dispatches.iter());
            }
            Self::record(pass, m.update.iter());
        }
        Ok(())
    }
}
