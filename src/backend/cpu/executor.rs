//! The CPU executor: runs each plan step's reference kernel in order over Vec arenas laid
//! out exactly as the GPU's buffers.

use super::cols_cache::ColsCache;
use super::conv_product::{build_cols, conv_matmul, conv_weight_grad};
use super::{
    check_lengths, grad_norm_sq, grad_norm_sq_unscaled, optimizer_step, optimizer_step_unscaled,
    run_op,
};
use crate::backend::{step_rng, Backend, LossScale, PlanId, Tail, METRICS};
use crate::error::{Error, Result};
use crate::graph::{rounds_im2col, ArenaKind, ParamLayout, Plan, Slot, Step, ARENA_KINDS};
use crate::op::Op;
use crate::optim::{Optimizer, StepScalars};
use crate::precision::{round_slice_f16, Precision};
use crate::rng::StepRng;

struct CpuPlan {
    plan: Plan,
    tail: Tail,
    inputs: Vec<f32>,
    activations: Vec<f32>,
    /// The f16 activations, held as f32 values already rounded to f16, indexed by element
    /// (twice the f32 arena's length: the planner gives f16 values half an f32 each).
    activations_half: Vec<f32>,
    /// The first step of the last run whose output was not finite (with `check_finite`).
    anomaly: Option<usize>,
    /// The im2col matrices of its convolution products.
    cols: ColsCache,
}

/// The CPU reference backend (f32; multi-threaded matmul through `gemm`).
#[derive(Default)]
pub struct CpuBackend {
    params: Vec<f32>,
    /// The f16 copy of the parameters an f16 model's matmuls read (rounded f32 values);
    /// empty for f32 models.
    params_half: Vec<f32>,
    precision: Precision,
    grads: Vec<f32>,
    buffers: Vec<f32>,
    /// Optimizer state buffers by index; unused ones are empty.
    state: [Vec<f32>; 3],
    optimizer: Option<Optimizer>,
    metrics: [f32; METRICS],
    plans: Vec<CpuPlan>,
    /// Print each step's op, shape and microseconds to stderr (`KILN_PROFILE=1`).
    profile: bool,
    /// The squared gradient norm of the last clipped update (of an f16 model: of every
    /// update, unscaled; non-finite when the update was skipped).
    last_norm_sq: f32,
    /// The GradScaler state of an f16 model (`None` for f32 models).
    loss_scale: Option<LossScale>,
}

impl CpuBackend {
    /// A backend with no model yet. With `KILN_PROFILE` set in the environment, every
    /// step prints `kiln-profile <op> <shape> <microseconds>` to stderr.
    pub fn new() -> Self {
        CpuBackend {
            profile: std::env::var_os("KILN_PROFILE").is_some(),
            ..Self::default()
        }
    }

    fn arena<'a>(&'a self, plan: &'a CpuPlan, kind: ArenaKind) -> &'a [f32] {
        match kind {
            ArenaKind::Params => &self.params,
            ArenaKind::Grads => &self.grads,
            ArenaKind::Buffers => &self.buffers,
            ArenaKind::Inputs => &plan.inputs,
            ArenaKind::Activations => &plan.activations,
            ArenaKind::ParamsHalf => &self.params_half,
            ArenaKind::ActivationsHalf => &plan.activations_half,
        }
    }

    /// Rewrites the f16 copy of the parameters from the f32 masters (f16 models only).
    fn refresh_params_half(&mut self) {
        refresh_half_copy(self.precision, &self.params, &mut self.params_half);
    }
}

/// `half` = `params` rounded to f16 when the model trains in f16 (else left empty).
fn refresh_half_copy(precision: Precision, params: &[f32], half: &mut Vec<f32>) {
    if precision.is_half() {
        half.clear();
        half.extend_from_slice(params);
        round_slice_f16(half);
    }
}

/// Runs one step: inputs borrowed from the arenas (indexed by [`ArenaKind::index`]),
/// output written in place. The planner guarantees an output overlaps none of its inputs.
/// An f16 output is computed in f32, then rounded, as the GPU stores it. A convolution
/// product gets its im2col buffer in `cols`, with whether to build the matrix there.
fn execute_step(
    step: &Step,
    arenas: &mut [&mut Vec<f32>; ARENA_KINDS],
    rng: &StepRng,
    cols: Option<(&mut Vec<f32>, bool)>,
) -> Result<()> {
    let o = step.output.arena.index();
    let (left, right) = arenas.split_at_mut(o);
    let Some((out_vec, right)) = right.split_first_mut() else {
        return Err(Error::Graph("arena index out of range".into()));
    };
    let (out_start, out_end) = (step.output.offset, step.output.offset + step.output.len);
    if out_end > out_vec.len() {
        return Err(out_of_bounds(step, step.output));
    }
    let (before, rest) = out_vec.split_at_mut(out_start);
    let (out, after) = rest.split_at_mut(step.output.len);
    let (before, after): (&[f32], &[f32]) = (before, after);
    let mut ins: Vec<&[f32]> = Vec::with_capacity(step.inputs.len());
    for &s in &step.inputs {
        let a = s.arena.index();
        let view = if a == o {
            if s.offset + s.len <= out_start {
                before.get(s.range())
            } else if s.offset >= out_end {
                after.get(s.offset - out_end..s.offset - out_end + s.len)
            } else {
                return Err(Error::Graph(format!(
                    "step {} ({}) writes over its own input",
                    step.node,
                    step.op.name()
                )));
            }
        } else if a < o {
            left[a].get(s.range())
        } else {
            right[a - o - 1].get(s.range())
        };
        ins.push(view.ok_or_else(|| out_of_bounds(step, s))?);
    }
    match (cols, step.op) {
        (Some((buf, builds)), Op::ConvMatMul { geom, act, .. }) => {
            check_lengths(&step.op, &ins, &step.input_shapes, out, &step.shape)?;
            if builds {
                build_cols(ins[0], buf, &geom);
                if rounds_im2col(step) {
                    round_slice_f16(buf);
                }
            }
            let oc = step.input_shapes[1].0[0];
            conv_matmul(buf, ins[1], ins.get(2).copied(), out, &geom, oc, act);
        }
        (Some((buf, builds)), Op::ConvWeightGrad(geom)) => {
            check_lengths(&step.op, &ins, &step.input_shapes, out, &step.shape)?;
            if builds {
                build_cols(ins[1], buf, &geom);
                if rounds_im2col(step) {
                    round_slice_f16(buf);
                }
            }
            conv_weight_grad(ins[0], buf, out, &geom, step.shape.0[0]);
        }
        _ => run_op(&step.op, &ins, &step.input_shapes, out, &step.shape, rng)?,
    }
    if step.output.arena.is_half() {
        round_slice_f16(out);
    }
    Ok(())
}

fn out_of_bounds(step: &Step, s: Slot) -> Error {
    Error::Graph(format!(
        "step {} ({}) addresses {:?} beyond its arena",
        step.node,
        step.op.name(),
        s
    ))
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        format!(
            "CPU reference backend ({} threads)",
            rayon::current_num_threads()
        )
    }

    fn init_model(
        &mut self,
        layout: &ParamLayout,
        params: &[f32],
        buffers: &[f32],
        optimizer: Option<Optimizer>,
    ) -> Result<()> {
        layout.check_arenas(params.len(), buffers.len())?;
        self.params = params.to_vec();
        self.buffers = buffers.to_vec();
        self.grads = vec![0.0; layout.size];
        self.state = std::array::from_fn(|i| match optimizer {
            Some(o) if o.uses_state(i) => vec![o.initial_state(i); layout.size],
            _ => Vec::new(),
        });
        self.optimizer = optimizer;
        self.precision = layout.precision;
        self.loss_scale = layout.precision.is_half().then(LossScale::default);
        self.refresh_params_half();
        Ok(())
    }

    fn compile(&mut self, plan: &Plan, tail: Tail) -> Result<PlanId> {
        if tail.update && self.loss_scale.is_some() && plan.loss_seed.is_none() {
            return Err(Error::Graph(
                "an f16 training plan needs the loss seed its scale is written to".into(),
            ));
        }
        let mut inputs = vec![0.0; plan.inputs_size];
        for (slot, v) in &plan.constants {
            inputs[slot.range()].iter_mut().for_each(|x| *x = *v);
        }
        let uses_half = plan
            .steps
            .iter()
            .any(|s| s.output.arena == ArenaKind::ActivationsHalf);
        self.plans.push(CpuPlan {
            plan: plan.clone(),
            tail,
            inputs,
            activations: vec![0.0; plan.activations_size],
            activations_half: vec![
                0.0;
                if uses_half {
                    2 * plan.activations_size
                } else {
                    0
                }
            ],
            anomaly: None,
            cols: ColsCache::of(plan),
        });
        Ok(self.plans.len() - 1)
    }

    fn run(&mut self, id: PlanId, feeds: &[&[f32]], scalars: &StepScalars) -> Result<()> {
        let CpuBackend {
            params,
            params_half,
            precision,
            grads,
            buffers,
            state,
            optimizer,
            metrics,
            plans,
            profile,
            last_norm_sq,
            loss_scale,
        } = self;
        let profile = *profile;
        let cp = plans
            .get_mut(id)
            .ok_or_else(|| Error::Graph(format!("no plan {id}")))?;
        if feeds.len() != cp.plan.inputs.len() {
            return Err(Error::Graph(format!(
                "plan takes {} inputs, got {}",
                cp.plan.inputs.len(),
                feeds.len()
            )));
        }
        for ((name, slot, _), feed) in cp.plan.inputs.iter().zip(feeds) {
            if feed.len() != slot.len {
                return Err(Error::shape(
                    format!("input '{name}'"),
                    format!("expected {} values, got {}", slot.len, feed.len()),
                ));
            }
            cp.inputs[slot.range()].copy_from_slice(feed);
        }
        let CpuPlan {
            plan,
            tail,
            inputs,
            activations,
            activations_half,
            anomaly,
            cols,
        } = cp;
        // Loss scaling: the backward pass is seeded with the scale instead of 1.
        if let (true, Some(ls), Some(seed)) = (tail.update, *loss_scale, plan.loss_seed) {
            inputs
                .get_mut(seed.range())
                .ok_or_else(|| Error::Graph(format!("loss seed {seed:?} out of bounds")))?
                .fill(ls.scale);
        }
        let mut arenas: [&mut Vec<f32>; ARENA_KINDS] = [
            params,
            grads,
            buffers,
            inputs,
            activations,
            params_half,
            activations_half,
        ];
        let rng = step_rng(scalars);
        *anomaly = None;
        for (index, step) in plan.steps.iter().enumerate() {
            let start = profile.then(std::time::Instant::now);
            execute_step(step, &mut arenas, &rng, cols.for_step(index))?;
            if tail.check_finite && anomaly.is_none() {
                let out = &arenas[step.output.arena.index()][step.output.range()];
                if out.iter().any(|v| !v.is_finite()) {
                    *anomaly = Some(index);
                }
            }
            if let Some(t) = start {
                eprintln!(
                    "kiln-profile {} {} {}",
                    step.op.name(),
                    step.shape,
                    t.elapsed().as_micros()
                );
            }
        }
        for &(slot, index, weight) in &tail.accumulate {
            let value = arenas[slot.arena.index()]
                .get(slot.offset)
                .copied()
                .ok_or_else(|| Error::Graph(format!("metric slot {slot:?} out of bounds")))?;
            metrics[index] += value * weight;
        }
        if !tail.update {
            return Ok(());
        }
        let [params, grads, _, _, _, params_half, _] = arenas;
        let optimizer = optimizer.as_ref().ok_or_else(|| {
            Error::Config("a training plan ran on a model without an optimizer".into())
        })?;
        // Only f16 models have a loss scale (and an f16 copy of the weights).
        if let Some(ls) = loss_scale {
            // Always the norm pass: its non-finite sum is GradScaler's found_inf.
            let inv_scale = ls.inv_scale();
            let norm_sq = grad_norm_sq_unscaled(grads, scalars, inv_scale);
            *last_norm_sq = norm_sq;
            let applied = optimizer_step_unscaled(
                optimizer, params, grads, state, scalars, norm_sq, inv_scale,
            )?;
            if applied {
                refresh_half_copy(*precision, params, params_half);
            }
            ls.update(!applied);
            return Ok(());
        }
        let norm_sq = if scalars.max_norm > 0.0 {
            grad_norm_sq(grads, scalars)
        } else {
            0.0
        };
        *last_norm_sq = norm_sq;
        optimizer_step(optimizer, params, grads, state, scalars, norm_sq)
    }

    fn read_metrics(&mut self) -> Result<[f32; METRICS]> {
        Ok(self.metrics)
    }

    fn read_anomaly(&mut self, plan: PlanId) -> Result<Option<usize>> {
        self.plans
            .get(plan)
            .map(|p| p.anomaly)
            .ok_or_else(|| Error::Graph(format!("no plan {plan}")))
    }

    fn reset_metrics(&mut self) -> Result<()> {
        self.metrics = [0.0; METRICS];
        Ok(())
    }

    fn read_params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn write_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.params.len() {
            return Err(Error::Graph(format!(
                "parameter arena has {} values, got {}",
                self.params.len(),
                params.len()
            )));
        }
        self.params.copy_from_slice(params);
        self.refresh_params_half();
        Ok(())
    }

    fn read_grads(&mut self) -> Result<Vec<f32>> {
        Ok(self.grads.clone())
    }

    fn read_grad_norm_sq(&mut self) -> Result<f32> {
        Ok(self.last_norm_sq)
    }

    fn read_buffers(&mut self) -> Result<Vec<f32>> {
        Ok(self.buffers.clone())
    }

    fn write_buffers(&mut self, buffers: &[f32]) -> Result<()> {
        if buffers.len() != self.buffers.len() {
            return Err(Error::Graph(format!(
                "buffer arena has {} values, got {}",
                self.buffers.len(),
                buffers.len()
            )));
        }
        self.buffers.copy_from_slice(buffers);
        Ok(())
    }

    fn read_state(&mut self, index: usize) -> Result<Vec<f32>> {
        self.state
            .get(index)
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| Error::Graph(format!("no optimizer state buffer {index}")))
    }

    fn write_state(&mut self, index: usize, data: &[f32]) -> Result<()> {
        match self.state.get_mut(index) {
            Some(s) if !s.is_empty() && s.len() == data.len() => {
                s.copy_from_slice(data);
                Ok(())
            }
            _ => Err(Error::Graph(format!(
                "no optimizer state buffer {index} of {} values",
                data.len()
            ))),
        }
    }

    fn read_loss_scale(&mut self) -> Result<Option<LossScale>> {
        Ok(self.loss_scale)
    }

    fn write_loss_scale(&mut self, s: LossScale) -> Result<()> {
        match &mut self.loss_scale {
            Some(ls) => {
                *ls = s;
                Ok(())
            }
            None => Err(Error::Config(
                "only f16 models have a loss scale to write".into(),
            )),
        }
    }

    fn read_slot(&mut self, plan: PlanId, slot: Slot) -> Result<Vec<f32>> {
        let cp = self
            .plans
            .get(plan)
            .ok_or_else(|| Error::Graph(format!("no plan {plan}")))?;
        self.arena(cp, slot.arena)
            .get(slot.range())
            .map(<[f32]>::to_vec)
            .ok_or_else(|| Error::Graph(format!("{slot:?} is outside its arena")))
    }
}
