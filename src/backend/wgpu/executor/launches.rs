//! The launch list of a plan: every step (or piece of a step the chunker cut for a small
//! device) as its kernel launch with the slots it binds, a split-K product as its parts
//! and their sum, a long per-channel reduction as its parts and their combination, then the
//! anomaly checks and the metric accumulations of the tail.

use super::super::kernels::{self, Launch};
use super::super::{channel_parts, chunk, matmul, split_k};
use super::WgpuBackend;
use crate::backend::{Tail, METRICS};
use crate::error::{Error, Result};
use crate::graph::{ArenaKind, Plan, Slot, ALIGN};

/// Which buffer a launch's first binding (its output) is, when it is not an arena slot.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Output {
    /// The slot's arena.
    Arena,
    /// The metric accumulators.
    Metrics,
    /// The anomaly flag.
    AnomalyFlag,
}

/// A plan's launches, each with its bindings' slots (output first) and what its first
/// binding is, and the floats the activation buffer needs (the plan's activations, then
/// the scratch of split products and reductions).
pub(super) struct PlanLaunches {
    pub launches: Vec<(Launch, Vec<Slot>, Output)>,
    pub activations_len: usize,
}

impl WgpuBackend {
    /// The launches of `plan` with `tail`, in recording order.
    pub(super) fn plan_launches(&self, plan: &Plan, tail: &Tail) -> Result<PlanLaunches> {
        let mut launches: Vec<(Launch, Vec<Slot>, Output)> = Vec::new();
        let flag_slot = Slot {
            arena: ArenaKind::Params,
            offset: 0,
            len: 1,
        };
        let max_groups = self.max_groups();
        let limits = chunk::BindingLimits {
            max_floats: self.max_binding_floats(),
            align_floats: (self.ctx.limits.min_storage_buffer_offset_alignment as usize / 4).max(1),
        };
        // Each product's tile configuration: the autotuner's choice (tune.rs).
        let pick = |p: &matmul::MatmulProblem| self.ctx.matmul_config(p);
        // Split-K products keep their parts past the activations, in the same buffer: a
        // product is split only when its parts fit there and in one binding.
        let scratch_at = plan.activations_size.next_multiple_of(ALIGN);
        let buffer_floats =
            usize::try_from(self.ctx.limits.max_buffer_size / 4).unwrap_or(usize::MAX);
        let split_limits = split_k::SplitLimits {
            max_groups,
            max_floats: limits
                .max_floats
                .min(buffer_floats.saturating_sub(scratch_at)),
        };
        let mut scratch_len = 0;
        for (index, step) in plan.steps.iter().enumerate() {
            let fits = |s: &crate::graph::Step| kernels::launch_with(s, max_groups, &pick).is_ok();
            for piece in chunk::split(step, limits, fits)? {
                let product = kernels::launch_chunk_with(&piece, max_groups, &pick)?;
                let split = match matmul::problem(&piece.step)? {
                    Some(p) => split_k::split_of(&p, split_limits).map(|s| (p, s)),
                    None => None,
                };
                // A reduction in parts whose scratch would not fit runs whole.
                let parted = if piece.accumulate {
                    None
                } else {
                    channel_parts::launches(&piece.step, &product, max_groups)?
                        .map(|p| (scratch_regions(scratch_at, &p.scratch), p))
                        .filter(|((_, used), _)| *used <= split_limits.max_floats)
                };
                if let Some(((regions, used), parted)) = parted {
                    scratch_len = scratch_len.max(used);
                    for stage in parted.stages {
                        let slots = stage
                            .binds
                            .iter()
                            .map(|b| b.slot(&piece.step, &regions))
                            .collect::<Result<Vec<Slot>>>()?;
                        launches.push((stage.launch, slots, Output::Arena));
                    }
                } else if let Some((p, split)) = split {
                    let l = split_k::launches(&product, &p, split, max_groups)?;
                    let (regions, used) = scratch_regions(scratch_at, &[split.scratch_len(&p)]);
                    let scratch = regions[0];
                    scratch_len = scratch_len.max(used);
                    let ins = &piece.step.inputs;
                    let mut parts_slots = vec![scratch];
                    parts_slots.extend(ins.iter().take(2));
                    let mut sum_slots = vec![piece.step.output, scratch];
                    if l.has_bias {
                        sum_slots.extend(ins.get(2));
                    }
                    launches.push((l.parts, parts_slots, Output::Arena));
                    launches.push((l.sum, sum_slots, Output::Arena));
                } else {
                    let mut slots = vec![piece.step.output];
                    slots.extend(&piece.step.inputs);
                    launches.push((product, slots, Output::Arena));
                }
                if tail.check_finite {
                    launches.push((
                        kernels::check_finite(piece.step.output.len, index, max_groups)?,
                        vec![flag_slot, piece.step.output],
                        Output::AnomalyFlag,
                    ));
                }
            }
        }
        for &(slot, index, weight) in &tail.accumulate {
            let metrics_slot = Slot {
                arena: ArenaKind::Params,
                offset: 0,
                len: METRICS,
            };
            launches.push((
                kernels::accumulate(index, weight)?,
                vec![metrics_slot, slot],
                Output::Metrics,
            ));
        }
        let activations_len = if scratch_len > 0 {
            scratch_at + scratch_len
        } else {
            plan.activations_size
        };
        if (activations_len * 4) as u64 > self.ctx.limits.max_buffer_size {
            return Err(Error::Unsupported(format!(
                "the activation arena and its scratch need {} bytes; this adapter's \
                 buffers hold {}",
                activations_len * 4,
                self.ctx.limits.max_buffer_size
            )));
        }
        Ok(PlanLaunches {
            launches,
            activations_len,
        })
    }
}

/// Slots of `lens` floats one after another from `start`, each at an offset bindings may
/// start at, and the floats they span from `start`.
fn scratch_regions(start: usize, lens: &[usize]) -> (Vec<Slot>, usize) {
    let mut offset = start;
    let slots = lens
        .iter()
        .map(|&len| {
            let slot = Slot {
                arena: ArenaKind::Activations,
                offset,
                len,
            };
            offset = (offset + len).next_multiple_of(ALIGN);
            slot
        })
        .collect::<Vec<_>>();
    let used = slots.last().map_or(0, |r| r.offset + r.len - start);
    (slots, used)
}
