//! The backend a benchmark runs on and how a compiled plan is timed there: the median of
//! repeated calls after a warm-up, by GPU timestamps when the device has them, else by the
//! wall clock (around each call on the CPU, around a submit and a wait on the GPU).

use std::time::Instant;

use super::cases::Case;
use super::{BenchResult, Group};
use crate::backend::cpu::CpuBackend;
use crate::backend::wgpu::{AdapterPolicy, Clock, WgpuBackend};
use crate::backend::{Backend, BackendChoice, PlanId, Tail};
use crate::error::{Error, Result};
use crate::graph::{fuse, ArenaKind, Graph, ParamLayout, Plan, ValueId};
use crate::optim::{Optimizer, StepScalars};
use crate::precision::Precision;

/// How long to spend on one measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Target seconds of timed calls (after the warm-up).
    pub seconds: f64,
    /// At least this many timed calls.
    pub min_calls: usize,
    /// At most this many.
    pub max_calls: usize,
}

impl Budget {
    /// How many calls fit the budget when one takes `estimate` seconds.
    pub fn calls(&self, estimate: f64) -> usize {
        let fit = if estimate > 0.0 && estimate.is_finite() {
            (self.seconds / estimate).ceil().min(1e6) as usize
        } else {
            self.max_calls
        };
        fit.clamp(
            self.min_calls.max(1),
            self.max_calls.max(self.min_calls).max(1),
        )
    }
}

/// The median of `v` (the mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// A median time and how it was taken.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Median seconds per call.
    pub seconds: f64,
    /// Timed calls.
    pub calls: usize,
    /// The clock.
    pub clock: Clock,
}

/// The CPU backend or a wgpu device.
pub enum Engine {
    /// The CPU reference backend.
    Cpu(Box<CpuBackend>),
    /// A wgpu device, opened under this policy.
    Gpu(Box<WgpuBackend>, AdapterPolicy),
}

impl Engine {
    /// Opens the backend the user chose; `Auto` prefers a hardware GPU and says in one
    /// line on stderr when it falls back to the CPU.
    pub fn open(choice: BackendChoice) -> Result<Engine> {
        let gpu = |policy| -> Result<Engine> {
            Ok(Engine::Gpu(Box::new(WgpuBackend::new(policy)?), policy))
        };
        match choice {
            BackendChoice::Cpu => Ok(Engine::Cpu(Box::new(CpuBackend::new()))),
            BackendChoice::Gpu => gpu(AdapterPolicy::AllowSoftware),
            BackendChoice::Auto => gpu(AdapterPolicy::HardwareOnly).or_else(|e| {
                eprintln!(
                    "{e}; benchmarking the CPU backend (use --backend gpu for a software adapter)"
                );
                Ok(Engine::Cpu(Box::new(CpuBackend::new())))
            }),
        }
    }

    /// The backend as the trait.
    pub fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Engine::Cpu(b) => b.as_mut(),
            Engine::Gpu(b, _) => b.as_mut(),
        }
    }

    /// A second backend on the same kind of device (a trainer owns its backend).
    pub fn another(&self) -> Result<Box<dyn Backend>> {
        match self {
            Engine::Cpu(_) => Ok(Box::new(CpuBackend::new())),
            Engine::Gpu(_, policy) => Ok(Box::new(WgpuBackend::new(*policy)?)),
        }
    }

    /// "cpu" or "gpu".
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Cpu(_) => "cpu",
            Engine::Gpu(..) => "gpu",
        }
    }

    /// Whether this is a software GPU adapter (lavapipe, llvmpipe, WARP).
    pub fn is_software(&self) -> bool {
        match self {
            Engine::Cpu(_) => false,
            Engine::Gpu(b, _) => b.context().is_software(),
        }
    }

    /// The clock op measurements use here.
    pub fn clock(&self) -> Clock {
        match self {
            Engine::Gpu(b, _) => b.bench_clock(),
            Engine::Cpu(_) => Clock::Wall,
        }
    }

    /// The largest buffer the device can allocate, in bytes.
    pub fn max_buffer_bytes(&self) -> u64 {
        match self {
            Engine::Cpu(_) => u64::MAX,
            Engine::Gpu(b, _) => b.context().limits.max_buffer_size,
        }
    }

    /// Waits for queued work.
    fn sync(&mut self) -> Result<()> {
        match self {
            Engine::Cpu(_) => Ok(()),
            Engine::Gpu(b, _) => b.context().wait("a benchmark warm-up"),
        }
    }

    /// Puts `graph`'s parameters (filled from their initialisers) and buffers on the
    /// device, with `optimizer` state when given.
    fn init(
        &mut self,
        graph: &Graph,
        optimizer: Option<Optimizer>,
        precision: Precision,
    ) -> Result<ParamLayout> {
        let layout = ParamLayout::grouped_in(graph, &|_| false, precision);
        let fill = |items: Vec<(
            crate::graph::ValueId,
            &str,
            &crate::shape::Shape,
            crate::nn::Init,
        )>,
                    entries: &[crate::graph::ParamEntry],
                    size: usize,
                    stream0: u32|
         -> Result<Vec<f32>> {
            let mut out = vec![0.0; size];
            for (k, (_, name, shape, init)) in items.into_iter().enumerate() {
                let e = entries
                    .iter()
                    .find(|e| e.name == name)
                    .ok_or_else(|| Error::Graph(format!("'{name}' is not laid out")))?;
                let slice = out
                    .get_mut(e.offset..e.offset + shape.numel())
                    .ok_or_else(|| Error::Graph(format!("'{name}' lies outside its arena")))?;
                init.fill_shaped(slice, shape.dims(), 0x6b696c6e, stream0 + k as u32)?;
            }
            Ok(out)
        };
        let params = fill(graph.params(), &layout.entries, layout.size, 0)?;
        let buffers = fill(
            graph.buffers(),
            &layout.buffers,
            layout.buffers_size,
            1 << 16,
        )?;
        self.backend()
            .init_model(&layout, &params, &buffers, optimizer)?;
        Ok(layout)
    }

    /// Times a compiled plan: one warm-up run (which also puts the step scalars on the
    /// device), then as many timed calls as `budget` allows.
    fn time(
        &mut self,
        id: PlanId,
        scalars: &StepScalars,
        clip_by_norm: bool,
        budget: Budget,
    ) -> Result<Measured> {
        let start = Instant::now();
        self.backend().run(id, &[], scalars)?;
        self.sync()?;
        let calls = budget.calls(start.elapsed().as_secs_f64());
        match self {
            Engine::Cpu(b) => {
                let mut seconds = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let t = Instant::now();
                    b.run(id, &[], scalars)?;
                    seconds.push(t.elapsed().as_secs_f64());
                }
                Ok(Measured {
                    seconds: median(&seconds),
                    calls,
                    clock: Clock::Wall,
                })
            }
            Engine::Gpu(b, _) => {
                let t = b.time_plan(id, clip_by_norm, calls)?;
                Ok(Measured {
                    seconds: median(&t.seconds),
                    calls: t.seconds.len(),
                    clock: t.clock,
                })
            }
        }
    }

    /// Plans, compiles and times one case.
    /// In f16 the operands that matmuls read and the f16 outputs count 2 bytes each.
    pub fn measure(
        &mut self,
        case: &Case,
        budget: Budget,
        precision: Precision,
    ) -> Result<BenchResult> {
        let layout = self.init(&case.graph, None, precision)?;
        // Planned as training plans it: a product's bias add (and activation) fused into its
        // epilogue.
        let mut graph = case.graph.clone();
        fuse(&mut graph, &case.outputs)?;
        let plan = Plan::build(&graph, &layout, &case.outputs, &[])?;
        let bytes = if precision.is_half() {
            plan_traffic(&layout, &plan, &case.outputs)
        } else {
            case.bytes
        };
        let id = self.backend().compile(&plan, Tail::default())?;
        let m = self.time(id, &StepScalars::default(), false, budget)?;
        Ok(BenchResult {
            group: case.group,
            name: case.name.clone(),
            shape: case.shape.clone(),
            seconds: m.seconds,
            calls: m.calls,
            clock: m.clock,
            flops: case.flops,
            bytes: Some(bytes),
            images: None,
        })
    }

    /// Times the fused update of `optimizer` over an arena of `n` parameters (its
    /// gradients, moments and parameters each read once and written once where updated).
    pub fn optimizer(
        &mut self,
        optimizer: Optimizer,
        name: &str,
        n: usize,
        budget: Budget,
    ) -> Result<BenchResult> {
        let mut g = Graph::new();
        g.param(
            "p",
            crate::shape::Shape::new(&[n]),
            crate::nn::Init::Constant(0.5),
        );
        let layout = self.init(&g, Some(optimizer), Precision::F32)?;
        let plan = Plan::build(&g, &layout, &[], &[])?;
        let tail = Tail {
            update: true,
            ..Tail::default()
        };
        let id = self.backend().compile(&plan, tail)?;
        let scalars = optimizer.scalars(1e-3, 1, crate::optim::Clip::default(), layout.size);
        let m = self.time(id, &scalars, false, budget)?;
        let states = (0..3).filter(|&i| optimizer.uses_state(i)).count() as f64;
        // Reads: parameters, gradients, states; writes: parameters, states.
        let bytes = 4.0 * n as f64 * (3.0 + 2.0 * states);
        Ok(BenchResult {
            group: Group::Optim,
            name: format!("{name} update"),
            shape: format!("{} parameters", super::report::count(n)),
            seconds: m.seconds,
            calls: m.calls,
            clock: m.clock,
            flops: None,
            bytes: Some(bytes),
            images: None,
        })
    }

    /// The bandwidth ceiling: a copy of `bytes` bytes between two device buffers (counted
    /// as read plus write), on the CPU a memcpy on all cores.
    pub fn copy(&mut self, bytes: u64, budget: Budget) -> Result<BenchResult> {
        let (seconds, calls, clock, probe) = match self {
            Engine::Cpu(_) => {
                let (s, c) = super::ceiling::cpu_copy(bytes as usize, budget);
                (
                    s,
                    c,
                    Clock::Wall,
                    format!("memcpy, {} threads", rayon::current_num_threads()),
                )
            }
            Engine::Gpu(b, _) => {
                let start = Instant::now();
                b.time_copy(bytes, 1)?;
                let calls = budget.calls(start.elapsed().as_secs_f64());
                let t = b.time_copy(bytes, calls)?;
                (
                    median(&t.seconds),
                    t.seconds.len(),
                    t.clock,
                    "copy_buffer_to_buffer".to_string(),
                )
            }
        };
        Ok(BenchResult {
            group: Group::Ceiling,
            name: format!("copy ({probe})"),
            shape: format!("{} MiB", bytes >> 20),
            seconds,
            calls,
            clock,
            flops: None,
            bytes: Some(2.0 * bytes as f64),
            images: None,
        })
    }
}

/// Bytes a plan must move: each parameter (operand) read once, at the width the plan reads
/// it (f16 where a matmul reads its f16 copy), and each output written once at its slot's
/// width.
fn plan_traffic(layout: &ParamLayout, plan: &Plan, outputs: &[ValueId]) -> f64 {
    let read: f64 = layout
        .entries
        .iter()
        .map(|e| {
            let half = plan.steps.iter().any(|s| {
                s.inputs
                    .iter()
                    .any(|i| i.arena == ArenaKind::ParamsHalf && i.offset == e.offset)
            });
            e.shape.numel() as f64 * if half { 2.0 } else { 4.0 }
        })
        .sum();
    let written: f64 = outputs
        .iter()
        .filter_map(|&o| plan.output_slot(o))
        .map(|s| (s.len * s.arena.element_bytes()) as f64)
        .sum();
    read + written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_budget() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let b = Budget {
            seconds: 1.0,
            min_calls: 3,
            max_calls: 20,
        };
        assert_eq!(b.calls(0.5), 3);
        assert_eq!(b.calls(0.1), 10);
        assert_eq!(b.calls(1e-6), 20);
        assert_eq!(b.calls(0.0), 20);
    }
}
