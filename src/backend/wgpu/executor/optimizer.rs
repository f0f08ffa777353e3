//! The optimizer's dispatches over the parameter, gradient and state arenas: the two
//! passes of the global gradient norm (used when clipping or guarding against non-finite
//! gradients) and the fused update. Arenas larger than one storage binding are processed
//! in pieces, each bound at its own offset and told where it starts by a small uniform.
//!
//! f16 models use `optim_half.wgsl`'s kernels instead: the norm passes always run (their
//! sum is the loss scaler's found_inf), the update unscales the gradients and writes the
//! f16 weight copy (bound in pieces like the other arenas, at half their byte offsets), and
//! `scaler.wgsl`'s `update_loss_scale` follows (see `scaler.rs`).

use wgpu::util::DeviceExt;
use wgpu::Buffer;

use super::{BindingKind, Dispatch, ExtraUniform, ModelBuffers, WgpuBackend, UNIFORM_STRIDE};
use crate::backend::wgpu::kernels::{groups_1d, NORM_CHUNK};
use crate::error::{Error, Result};
use crate::graph::{ArenaKind, Slot};
use crate::optim::{Optimizer, StepScalars};

/// Binding of the piece uniform (`struct Piece` in `shaders/optim.wgsl`); 8 is the f16
/// weight copy of `optim_half.wgsl`, so storage bindings run 1..=n without a gap.
pub(super) const PIECE_BINDING: u32 = 9;

/// Words of the norm buffer the optimizer binds: the squared norm, and for f16 models the
/// loss scaler's state after it (`shaders/scaler.wgsl`).
const NORM_WORDS_F32: usize = 1;
const NORM_WORDS_F16: usize = super::scaler::SCALER_WORDS;

/// `optim_half.wgsl`'s update kernel of `optimizer` (unscale, skip on found_inf, write
/// the f16 copy).
fn half_kernel(optimizer: &Optimizer) -> &'static str {
    match optimizer {
        Optimizer::Sgd { .. } => "sgd_step_half",
        Optimizer::Adam { .. } => "adam_step_half",
        Optimizer::Adagrad { .. } => "adagrad_step_half",
        Optimizer::RmsProp { .. } => "rmsprop_step_half",
        Optimizer::Adadelta { .. } => "adadelta_step_half",
        Optimizer::Adamax { .. } => "adamax_step_half",
        Optimizer::NAdam { .. } => "nadam_step_half",
        Optimizer::RAdam { .. } => "radam_step_half",
    }
}

/// Where one optimizer piece starts in the arenas and how many parameters it covers.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Piece {
    base: u32,
    len: u32,
    pad: [u32; 2],
}

/// The optimizer's dispatches: (norm passes, updates, the piece uniforms they read). For
/// f16 models the norm passes are part of the updates (they always run) and the first
/// list is empty, so a run records the same two lists either way.
type OptimizerDispatches = (Vec<Dispatch>, Vec<Dispatch>, Buffer);

impl WgpuBackend {
    /// Splits `size` parameters into pieces that fit one binding, each a multiple of the
    /// norm pass's chunk so that partial sums land at the same index whatever the split.
    fn pieces(&self, size: usize) -> Result<Vec<Piece>> {
        let chunk = NORM_CHUNK as usize;
        let per = self.max_binding_floats() / chunk * chunk;
        if per == 0 {
            return Err(Error::Unsupported(format!(
                "the optimizer needs bindings of at least {chunk} floats; this adapter allows {}",
                self.max_binding_floats()
            )));
        }
        let u = |v: usize| {
            u32::try_from(v).map_err(|_| {
                Error::Unsupported(format!(
                    "{v} parameters exceed the u32 index of the kernels"
                ))
            })
        };
        (0..size.max(1))
            .step_by(per)
            .map(|base| {
                Ok(Piece {
                    base: u(base)?,
                    len: u(per.min(size - base.min(size)))?,
                    pad: [0; 2],
                })
            })
            .collect()
    }

    /// The norm passes and the fused update of `optimizer` over the model's arenas (for
    /// f16 models, with the loss scaler's update after them).
    pub(super) fn optimizer_dispatches(
        &mut self,
        optimizer: Option<Optimizer>,
        m: &ModelBuffers,
    ) -> Result<OptimizerDispatches> {
        // Plans without an update (evaluation, parity) need neither pass.
        let pieces = match optimizer {
            Some(_) => self.pieces(m.size)?,
            None => Vec::new(),
        };
        let mut bytes = vec![0u8; pieces.len().max(1) * UNIFORM_STRIDE as usize];
        for (i, p) in pieces.iter().enumerate() {
            let at = i * UNIFORM_STRIDE as usize;
            bytes[at..at + std::mem::size_of::<Piece>()].copy_from_slice(bytemuck::bytes_of(p));
        }
        let uniforms = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("optimizer pieces"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let half = m.params_half.as_ref();
        if half.is_some() {
            self.reset_loss_scale(m);
        }
        let (shader, storage_count, norm_words) = match half {
            Some(_) => ("optim_half.wgsl", 8, NORM_WORDS_F16),
            None => ("optim.wgsl", 7, NORM_WORDS_F32),
        };
        let max = self.max_groups();
        let partial_count = m.size.div_ceil(NORM_CHUNK as usize).max(1);
        let mut partials = Vec::new();
        let mut updates = Vec::new();
        let mut last = None;
        for (i, p) in pieces.iter().enumerate() {
            let range = Slot {
                arena: ArenaKind::Params,
                offset: p.base as usize,
                len: (p.len as usize).max(1),
            };
            let whole = |len: usize| Slot {
                arena: ArenaKind::Params,
                offset: 0,
                len,
            };
            // Unused optimizer state is a small placeholder, bound whole by every piece.
            let state = |k: usize| {
                if m.state_len[k] >= m.size {
                    range
                } else {
                    whole(m.state_len[k])
                }
            };
            let mut storage: Vec<(&Buffer, Slot)> = vec![
                (&m.params, range),
                (&m.grads, range),
                (&m.state[0], state(0)),
                (&m.state[1], state(1)),
                (&m.state[2], state(2)),
                (&m.partials, whole(partial_count)),
                (&m.norm, whole(norm_words)),
            ];
            if let Some(h) = half {
                // The f16 copy at the same element offsets: byte 2·base, 8 KiB-aligned
                // since pieces are multiples of 4,096 parameters.
                let half_range = Slot {
                    arena: ArenaKind::ParamsHalf,
                    ..range
                };
                storage.push((h, half_range));
            }
            let piece = ExtraUniform {
                binding: PIECE_BINDING,
                buffer: &uniforms,
                offset: i as u64 * UNIFORM_STRIDE,
                size: std::mem::size_of::<Piece>() as u64,
            };
            let mut make = |entry: &'static str, groups: (u32, u32)| -> Result<Dispatch> {
                let (pipeline, bgl) =
                    self.pipeline(shader, entry, &[], BindingKind::Optim, storage_count)?;
                let uniform = (&m.scalars, 0, std::mem::size_of::<StepScalars>() as u64);
                let bind_group = self.bind_group(&bgl, uniform, &storage, Some(piece));
                Ok(Dispatch {
                    pipeline,
                    bind_group,
                    groups,
                })
            };
            let chunks = (p.len as usize).div_ceil(NORM_CHUNK as usize).max(1);
            let partial_entry = match half {
                Some(_) => "grad_norm_partial_half",
                None => "grad_norm_partial",
            };
            partials.push(make(
                partial_entry,
                groups_1d(chunks * super::kernels::WORKGROUP as usize, max)?,
            )?);
            if i == 0 {
                last = Some(make("grad_norm_final", (1, 1))?);
            }
            if let Some(o) = optimizer {
                let entry = match half {
                    Some(_) => half_kernel(&o),
                    None => o.kernel(),
                };
                updates.push(make(entry, groups_1d(p.len as usize, max)?)?);
            }
        }
        partials.extend(last);
        if half.is_some() && optimizer.is_some() {
            // f16: norm passes, updates, then the scaler, all in every training run.
            let mut all = partials;
            all.append(&mut updates);
            all.push(self.loss_scale_update_dispatch(m)?);
            return Ok((Vec::new(), all, uniforms));
        }
        Ok((partials, updates, uniforms))
    }
}
