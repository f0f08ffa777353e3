//! The wgpu executor: pipelines and bind groups are built once per plan; a run writes the
//! batch and the step scalars, records every dispatch into one command encoder and submits
//! it once. Parameters, gradients and optimizer state never leave the device.

use std::collections::HashMap;

use wgpu::util::DeviceExt;
use wgpu::{BindGroup, BindGroupLayout, Buffer, ComputePipeline, PipelineLayout, ShaderModule};

use super::context::{AdapterPolicy, GpuContext};
use super::kernels::{self, Dims, NORM_CHUNK};

mod launches;
mod optimizer;
mod philox;
mod pipelines;
mod record;
mod scaler;
use super::shaders;
use crate::backend::{Backend, LossScale, PlanId, Tail, METRICS};
use crate::error::{Error, Result};
use crate::graph::{ArenaKind, ParamLayout, Plan, Slot, ALIGN};
use crate::optim::{Optimizer, StepScalars};
use launches::{Output, PlanLaunches};

/// Bytes between per-step uniforms: WebGPU's largest uniform offset alignment.
const UNIFORM_STRIDE: u64 = 256;

/// One recorded dispatch.
struct Dispatch {
    pipeline: ComputePipeline,
    bind_group: BindGroup,
    groups: (u32, u32),
}

/// The resident state of a model.
struct ModelBuffers {
    params: Buffer,
    /// The f16 copy of the parameters that f16 plans' matmuls read (f16 models only).
    params_half: Option<Buffer>,
    grads: Buffer,
    buffers: Buffer,
    buffers_size: usize,
    /// Optimizer state; unused ones are small placeholders so the update kernels always
    /// have something bound.
    state: [Buffer; 3],
    /// The lengths bound for each state buffer: the arena's for used ones.
    state_len: [usize; 3],
    optimizer: Option<Optimizer>,
    partials: Buffer,
    norm: Buffer,
    metrics: Buffer,
    scalars: Buffer,
    size: usize,
    /// The clipping norm's passes: partial sums of every piece, then the total.
    norm_dispatches: Vec<Dispatch>,
    /// The fused update of every piece (none without an optimizer).
    update: Vec<Dispatch>,
    /// Keeps the per-piece uniforms alive for the optimizer's bind groups.
    _pieces: Option<Buffer>,
}

struct GpuPlan {
    inputs: Buffer,
    activations: Buffer,
    /// Keeps the per-step uniforms alive for the bind groups that point into it.
    _dims: Buffer,
    dispatches: Vec<Dispatch>,
    update: bool,
    plan_inputs: Vec<(String, Slot)>,
    /// `--detect-anomaly`'s flag: the first step index with a non-finite output.
    anomaly: Option<Buffer>,
}

/// The wgpu backend.
pub struct WgpuBackend {
    ctx: GpuContext,
    /// Shader modules by file and f16 bindings (see [`shaders::module_source`]).
    modules: HashMap<(&'static str, Vec<bool>), ShaderModule>,
    layouts: HashMap<(BindingKind, usize), (BindGroupLayout, PipelineLayout)>,
    pipelines: HashMap<String, ComputePipeline>,
    model: Option<ModelBuffers>,
    plans: Vec<GpuPlan>,
}

/// The bind-group shapes kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BindingKind {
    /// Dims uniform at 0, storage at 1..=n.
    Graph,
    /// As `Graph`, plus the step scalars uniform at binding 7 (dropout).
    GraphWithScalars,
    /// Step scalars uniform at 0, storage at 1..=n, the piece uniform at 8 (optimizer
    /// kernels).
    Optim,
}

/// A second uniform of a bind group: the step scalars of dropout, or an optimizer
/// dispatch's piece of the arenas.
#[derive(Clone, Copy)]
struct ExtraUniform<'a> {
    binding: u32,
    buffer: &'a Buffer,
    offset: u64,
    size: u64,
}

/// Binding of the step scalars in `BindingKind::GraphWithScalars` layouts.
const SCALARS_BINDING: u32 = 7;

/// `values` as f16 bytes (round to nearest even), padded to whole 4-byte words.
fn half_bytes(values: &[f32]) -> Vec<u8> {
    let mut bytes: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    bytes.resize(bytes.len().next_multiple_of(4).max(4), 0);
    bytes
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

impl WgpuBackend {
    /// Opens a device under the given adapter policy.
    pub fn new(policy: AdapterPolicy) -> Result<Self> {
        Ok(Self::with_context(GpuContext::new(policy)?))
    }

    /// A backend on an existing device.
    pub fn with_context(ctx: GpuContext) -> Self {
        WgpuBackend {
            ctx,
            modules: HashMap::new(),
            layouts: HashMap::new(),
            pipelines: HashMap::new(),
            model: None,
            plans: Vec::new(),
        }
    }

    /// The device context.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The compute dispatches one run of `plan` records before the optimizer's update: one
    /// per step or piece of a step, two per split-K product, plus any anomaly checks,
    /// metric accumulations and the loss-scale seed.
    pub fn dispatch_count(&self, plan: PlanId) -> Result<usize> {
        self.plans
            .get(plan)
            .map(|p| p.dispatches.len())
            .ok_or_else(|| Error::Graph(format!("no plan {plan}")))
    }

    fn buffer(&self, label: &str, floats: usize) -> Buffer {
        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (floats.max(ALIGN) * 4) as u64,
            usage: storage_usage(),
            mapped_at_creation: false,
        })
    }

    /// The device's workgroups per dispatch dimension.
    fn max_groups(&self) -> u32 {
        self.ctx.limits.max_compute_workgroups_per_dimension
    }

    /// The floats one storage binding may hold on this device.
    fn max_binding_floats(&self) -> usize {
        usize::try_from(self.ctx.limits.max_storage_buffer_binding_size / 4).unwrap_or(usize::MAX)
    }

    fn check_binding(&self, what: &str, bytes: usize) -> Result<()> {
        let bytes = bytes as u64;
        if bytes > self.ctx.limits.max_storage_buffer_binding_size {
            return Err(Error::Unsupported(format!(
                "{what} needs a binding of {bytes} bytes; this adapter allows {}",
                self.ctx.limits.max_storage_buffer_binding_size
            )));
        }
        Ok(())
    }

    fn model(&self) -> Result<&ModelBuffers> {
        self.model
            .as_ref()
            .ok_or_else(|| Error::Graph("no model on the GPU: call init_model first".into()))
    }

    /// Records dispatches into one compute pass.
    fn record<'a>(
        pass: &mut wgpu::ComputePass<'_>,
        dispatches: impl Iterator<Item = &'a Dispatch>,
    ) {
        for d in dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
        }
    }
}

impl Backend for WgpuBackend {
    fn describe(&self) -> String {
        format!("wgpu: {}", self.ctx.describe())
    }

    fn init_model(
        &mut self,
        layout: &ParamLayout,
        params: &[f32],
        buffers: &[f32],
        optimizer: Option<Optimizer>,
    ) -> Result<()> {
        layout.check_arenas(params.len(), buffers.len())?;
        let size = layout.size;
        let state_len: [usize; 3] = std::array::from_fn(|i| match optimizer {
            Some(o) if o.uses_state(i) => size,
            _ => ALIGN,
        });
        let state: [Buffer; 3] = std::array::from_fn(|i| {
            let init = optimizer.map_or(0.0, |o| o.initial_state(i));
            if init == 0.0 {
                self.buffer("optimizer state", state_len[i])
            } else {
                self.ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("optimizer state"),
                        contents: bytemuck::cast_slice(&vec![init; state_len[i]]),
                        usage: storage_usage(),
                    })
            }
        });
        let params_half = if layout.precision.is_half() {
            if !self.ctx.has_f16() {
                return Err(Error::Unsupported(format!(
                    "f16 precision needs the SHADER_F16 feature, which {} lacks",
                    self.ctx.describe()
                )));
            }
            Some(
                self.ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("f16 params"),
                        contents: &half_bytes(params),
                        usage: storage_usage(),
                    }),
            )
        } else {
            None
        };
        let mut m = ModelBuffers {
            params_half,
            params: self
                .ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("params"),
                    contents: bytemuck::cast_slice(params),
                    usage: storage_usage(),
                }),
            grads: self.buffer("grads", size),
            buffers: self
                .ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("buffers"),
                    contents: bytemuck::cast_slice(buffers),
                    usage: storage_usage(),
                }),
            buffers_size: layout.buffers_size,
            state,
            state_len,
            optimizer,
            partials: self.buffer("norm partials", size.div_ceil(NORM_CHUNK as usize)),
            norm: self.buffer("norm", 1),
            metrics: self.buffer("metrics", METRICS),
            scalars: self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step scalars"),
                size: std::mem::size_of::<StepScalars>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            size,
            norm_dispatches: Vec::new(),
            update: Vec::new(),
            _pieces: None,
        };
        let (norm, update, pieces) = self.optimizer_dispatches(optimizer, &m)?;
        m.norm_dispatches = norm;
        m.update = update;
        m._pieces = Some(pieces);
        self.model = Some(m);
        self.plans.clear();
        self.ctx.check("initialising the model")
    }

    fn compile(&mut self, plan: &Plan, tail: Tail) -> Result<PlanId> {
        let (params, params_half, grads, buffers, metrics, scalars) = {
            let m = self.model()?;
            (
                m.params.clone(),
                m.params_half.clone(),
                m.grads.clone(),
                m.buffers.clone(),
                m.metrics.clone(),
                m.scalars.clone(),
            )
        };
        if tail.update && self.model()?.update.is_empty() {
            return Err(Error::Config("a training plan needs an optimizer".into()));
        }
        // The arena is bound slot by slot (each slot is checked below), so only the buffer
        // size limit applies to it as a whole.
        let arena_bytes = (plan.activations_size.max(plan.inputs_size) * 4) as u64;
        if arena_bytes > self.ctx.limits.max_buffer_size {
            return Err(Error::Unsupported(format!(
                "the activation arena needs {arena_bytes} bytes; this adapter's buffers hold {}",
                self.ctx.limits.max_buffer_size
            )));
        }
        let inputs = self.buffer("inputs", plan.inputs_size);
        for (slot, v) in &plan.constants {
            let data = vec![*v; slot.len];
            self.ctx.queue.write_buffer(
                &inputs,
                (slot.offset * 4) as u64,
                bytemuck::cast_slice(&data),
            );
        }
        let PlanLaunches {
            launches,
            activations_len,
        } = self.plan_launches(plan, &tail)?;
        let activations = self.buffer("activations", activations_len);
        // One 256-byte-aligned uniform per launch, written once.
        let mut dims_bytes = vec![0u8; launches.len().max(1) * UNIFORM_STRIDE as usize];
        for (i, (l, _, _)) in launches.iter().enumerate() {
            let at = i * UNIFORM_STRIDE as usize;
            dims_bytes[at..at + std::mem::size_of::<Dims>()]
                .copy_from_slice(bytemuck::bytes_of(&l.dims));
        }
        let dims = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("step dims"),
                contents: &dims_bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let anomaly = tail.check_finite.then(|| self.buffer("anomaly flag", 1));
        let mut dispatches = Vec::with_capacity(launches.len());
        for (i, (l, slots, output)) in launches.iter().enumerate() {
            let kind = if l.needs_scalars {
                BindingKind::GraphWithScalars
            } else {
                BindingKind::Graph
            };
            // The metrics and the anomaly flag are f32 whatever arena their stand-in names.
            let half: Vec<bool> = slots
                .iter()
                .enumerate()
                .map(|(k, s)| s.arena.is_half() && (k > 0 || *output == Output::Arena))
                .collect();
            let (pipeline, bgl) =
                self.pipeline_typed(l.shader, l.entry, &l.constants, kind, &half)?;
            let storage: Vec<(&Buffer, Slot)> = slots
                .iter()
                .enumerate()
                .map(|(k, s)| -> Result<(&Buffer, Slot)> {
                    let buffer = match (k, output, &anomaly) {
                        (0, Output::Metrics, _) => &metrics,
                        (0, Output::AnomalyFlag, Some(flag)) => flag,
                        _ => match s.arena {
                            ArenaKind::Params => &params,
                            ArenaKind::Grads => &grads,
                            ArenaKind::Buffers => &buffers,
                            ArenaKind::Inputs => &inputs,
                            ArenaKind::Activations | ArenaKind::ActivationsHalf => &activations,
                            ArenaKind::ParamsHalf => params_half.as_ref().ok_or_else(|| {
                                Error::Graph(
                                    "an f16 plan on a model laid out in f32 (no f16 weights)"
                                        .into(),
                                )
                            })?,
                        },
                    };
                    Ok((buffer, *s))
                })
                .collect::<Result<_>>()?;
            for (_, s) in &storage {
                self.check_binding("a tensor", s.byte_len())?;
            }
            let uniform = (
                &dims,
                i as u64 * UNIFORM_STRIDE,
                std::mem::size_of::<Dims>() as u64,
            );
            let step_scalars = l.needs_scalars.then_some(ExtraUniform {
                binding: SCALARS_BINDING,
                buffer: &scalars,
                offset: 0,
                size: std::mem::size_of::<StepScalars>() as u64,
            });
            let bind_group = self.ctx.scoped("creating bind groups", || {
                self.bind_group(&bgl, uniform, &storage, step_scalars)
            })?;
            dispatches.push(Dispatch {
                pipeline,
                bind_group,
                groups: l.groups,
            });
        }
        // f16 training: the loss scale seeds the backward pass (scaler.rs).
        if tail.update {
            if let Some(seed) = self.loss_seed_dispatch(plan, &inputs)? {
                dispatches.insert(0, seed);
            }
        }
        self.plans.push(GpuPlan {
            inputs,
            activations,
            _dims: dims,
            dispatches,
            update: tail.update,
            plan_inputs: plan
                .inputs
                .iter()
                .map(|(n, s, _)| (n.clone(), *s))
                .collect(),
            anomaly,
        });
        Ok(self.plans.len() - 1)
    }

    fn run(&mut self, id: PlanId, feeds: &[&[f32]], scalars: &StepScalars) -> Result<()> {
        let m = self.model()?;
        let p = self
            .plans
            .get(id)
            .ok_or_else(|| Error::Graph(format!("no plan {id}")))?;
        if feeds.len() != p.plan_inputs.len() {
            return Err(Error::Graph(format!(
                "plan takes {} inputs, got {}",
                p.plan_inputs.len(),
                feeds.len()
            )));
        }
        for ((name, slot), feed) in p.plan_inputs.iter().zip(feeds) {
            if feed.len() != slot.len {
                return Err(Error::shape(
                    format!("input '{name}'"),
                    format!("expected {} values, got {}", slot.len, feed.len()),
                ));
            }
            self.ctx.queue.write_buffer(
                &p.inputs,
                (slot.offset * 4) as u64,
                bytemuck::cast_slice(feed),
            );
        }
        self.ctx
            .queue
            .write_buffer(&m.scalars, 0, bytemuck::bytes_of(scalars));
        if let Some(flag) = &p.anomaly {
            self.ctx
                .queue
                .write_buffer(flag, 0, bytemuck::bytes_of(&u32::MAX));
        }
        let ctx = &self.ctx;
        ctx.scoped("a training step", || {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("step"),
                    timestamp_writes: None,
                });
                Self::record(&mut pass, p.dispatches.iter());
                if p.update {
                    if scalars.max_norm > 0.0 {
                        Self::record(&mut pass, m.norm_dispatches.iter());
                    }
                    Self::record(&mut pass, m.update.iter());
                }
            }
            ctx.queue.submit([encoder.finish()]);
        })
    }

    fn read_anomaly(&mut self, plan: PlanId) -> Result<Option<usize>> {
        let p = self
            .plans
            .get(plan)
            .ok_or_else(|| Error::Graph(format!("no plan {plan}")))?;
        let Some(flag) = &p.anomaly else {
            return Ok(None);
        };
        let index = self.ctx.read(flag, 0, 1)?[0].to_bits();
        Ok((index != u32::MAX).then_some(index as usize))
    }

    fn read_metrics(&mut self) -> Result<[f32; METRICS]> {
        let m = self.model()?;
        let v = self.ctx.read(&m.metrics, 0, METRICS)?;
        let mut out = [0.0; METRICS];
        out.copy_from_slice(&v[..METRICS]);
        Ok(out)
    }

    fn reset_metrics(&mut self) -> Result<()> {
        let m = self.model()?;
        self.ctx
            .queue
            .write_buffer(&m.metrics, 0, bytemuck::cast_slice(&[0.0f32; METRICS]));
        Ok(())
    }

    fn read_params(&mut self) -> Result<Vec<f32>> {
        let m = self.model()?;
        self.ctx.read(&m.params, 0, m.size)
    }

    fn write_params(&mut self, params: &[f32]) -> Result<()> {
        let m = self.model()?;
        if params.len() != m.size {
            return Err(Error::Graph(format!(
                "parameter arena has {} values, got {}",
                m.size,
                params.len()
            )));
        }
        self.ctx
            .queue
            .write_buffer(&m.params, 0, bytemuck::cast_slice(params));
        if let Some(h) = &m.params_half {
            self.ctx.queue.write_buffer(h, 0, &half_bytes(params));
        }
        Ok(())
    }

    fn read_grad_norm_sq(&mut self) -> Result<f32> {
        let m = self.model()?;
        Ok(self
            .ctx
            .read(&m.norm, 0, 1)?
            .first()
            .copied()
            .unwrap_or(f32::NAN))
    }

    fn read_grads(&mut self) -> Result<Vec<f32>> {
        let m = self.model()?;
        self.ctx.read(&m.grads, 0, m.size)
    }

    fn read_buffers(&mut self) -> Result<Vec<f32>> {
        let m = self.model()?;
        self.ctx.read(&m.buffers, 0, m.buffers_size)
    }

    fn write_buffers(&mut self, buffers: &[f32]) -> Result<()> {
        let m = self.model()?;
        if buffers.len() != m.buffers_size {
            return Err(Error::Graph(format!(
                "buffer arena has {} values, got {}",
                m.buffers_size,
                buffers.len()
            )));
        }
        self.ctx
            .queue
            .write_buffer(&m.buffers, 0, bytemuck::cast_slice(buffers));
        Ok(())
    }

    fn read_state(&mut self, index: usize) -> Result<Vec<f32>> {
        let m = self.model()?;
        let b = m
            .state
            .get(index)
            .filter(|_| m.optimizer.is_some_and(|o| o.uses_state(index)))
            .ok_or_else(|| Error::Graph(format!("no optimizer state buffer {index}")))?;
        self.ctx.read(b, 0, m.size)
    }

    fn write_state(&mut self, index: usize, data: &[f32]) -> Result<()> {
        let m = self.model()?;
        let used = m.optimizer.is_some_and(|o| o.uses_state(index));
        match m.state.get(index) {
            Some(b) if used && data.len() == m.size => {
                self.ctx
                    .queue
                    .write_buffer(b, 0, bytemuck::cast_slice(data));
                Ok(())
            }
            _ => Err(Error::Graph(format!(
                "no optimizer state buffer {index} of {} values",
                data.len()
            ))),
        }
    }

    fn read_loss_scale(&mut self) -> Result<Option<LossScale>> {
        self.read_loss_scale_words()
    }

    fn write_loss_scale(&mut self, s: LossScale) -> Result<()> {
        self.write_loss_scale_words(s)
    }

    fn read_slot(&mut self, plan: PlanId, slot: Slot) -> Result<Vec<f32>> {
        let m = self.model()?;
        let p = self
            .plans
            .get(plan)
            .ok_or_else(|| Error::Graph(format!("no plan {plan}")))?;
        let buffer = match slot.arena {
            ArenaKind::Params => &m.params,
            ArenaKind::Grads => &m.grads,
            ArenaKind::Buffers => &m.buffers,
            ArenaKind::Inputs => &p.inputs,
            ArenaKind::Activations | ArenaKind::ActivationsHalf => &p.activations,
            ArenaKind::ParamsHalf => m
                .params_half
                .as_ref()
                .ok_or_else(|| Error::Graph("this model has no f16 weights".into()))?,
        };
        if !slot.arena.is_half() {
            return self.ctx.read(buffer, slot.offset, slot.len);
        }
        if !slot.offset.is_multiple_of(2) {
            return Err(Error::Graph(format!(
                "{slot:?} starts inside a word; kiln reads f16 slots from even offsets"
            )));
        }
        // f16 slots start on a 4-byte boundary (even element offsets): read whole words.
        let words = self
            .ctx
            .read(buffer, slot.offset / 2, slot.len.div_ceil(2))?;
        Ok(bytemuck::cast_slice::<f32, u16>(&words)[..slot.len]
            .iter()
            .map(|&b| half::f16::from_bits(b).to_f32())
            .collect())
    }
}
