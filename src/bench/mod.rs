//! Throughput measurements behind `kiln bench` and `cargo bench`: matmul products, conv
//! layers, softmax, norms, the fused optimizer and whole training steps, each built as a
//! graph and run through the planner and a backend exactly as training runs it, with the
//! device's measured ceilings (a large copy for bandwidth, the best matmul for compute).

mod cases;
mod ceiling;
mod engine;
mod report;
pub mod shapes;
mod step;

pub use engine::{median, Budget};
pub use report::Report;

use crate::precision::Precision;
use std::str::FromStr;

use crate::backend::wgpu::Clock;
use crate::backend::BackendChoice;
use crate::error::{Error, Result};
use crate::optim::Optimizer;
use engine::Engine;

/// A part of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Square products and the training products of the `mlp` and `cnn` presets.
    Matmul,
    /// The `cnn` preset's conv layers, forward and backward.
    Conv,
    /// Softmax and its gradient over [B, C].
    Softmax,
    /// Layer and batch norm and their input gradients over [B, C].
    Norm,
    /// The fused AdamW update over 1M, 10M and 100M parameters.
    Optim,
    /// Whole training steps of the presets.
    Step,
    /// The measured ceilings (bandwidth, and compute when no matmul was selected).
    Ceiling,
}

impl Group {
    /// Every selectable group, in the order the suite runs them.
    pub const ALL: [Group; 6] = [
        Group::Matmul,
        Group::Conv,
        Group::Softmax,
        Group::Norm,
        Group::Optim,
        Group::Step,
    ];

    /// The lower-case name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Group::Matmul => "matmul",
            Group::Conv => "conv",
            Group::Softmax => "softmax",
            Group::Norm => "norm",
            Group::Optim => "optim",
            Group::Step => "step",
            Group::Ceiling => "ceiling",
        }
    }

    /// Parses `matmul|conv|softmax|norm|optim|step|all` into the groups it selects.
    pub fn parse_selection(s: &str) -> Result<Vec<Group>> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(Group::ALL.to_vec());
        }
        Group::from_str(s).map(|g| vec![g])
    }
}

impl FromStr for Group {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Group::ALL
            .into_iter()
            .find(|g| g.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown benchmark '{s}' (matmul, conv, softmax, norm, optim, step, all)"
                ))
            })
    }
}

/// What to measure and where.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// The groups to run, in the suite's order.
    pub groups: Vec<Group>,
    /// The backend.
    pub backend: BackendChoice,
    /// Small shapes and few repetitions (CI smoke tests, software adapters).
    pub quick: bool,
    /// f32, or f16 storage (activations and matmul/conv operands in f16, f32 accumulation)
    /// for the op and training-step rows.
    pub precision: Precision,
}

/// One measured row.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The part of the suite it belongs to.
    pub group: Group,
    /// What was measured.
    pub name: String,
    /// Its shape or configuration.
    pub shape: String,
    /// Median seconds per call (per training step for steps).
    pub seconds: f64,
    /// How many timed calls the median is over.
    pub calls: usize,
    /// How the time was taken.
    pub clock: Clock,
    /// Floating-point operations per call, when meaningful (matmul FLOPs for steps).
    pub flops: Option<f64>,
    /// Bytes that must move per call: inputs read and outputs written once.
    pub bytes: Option<f64>,
    /// Images per call (training steps).
    pub images: Option<f64>,
}

impl BenchResult {
    /// GFLOP/s, when the op has a FLOP count.
    pub fn gflops(&self) -> Option<f64> {
        self.flops.map(|f| f / self.seconds / 1e9)
    }

    /// GB/s (10⁹ bytes) of the bytes that must move, when counted.
    pub fn gbps(&self) -> Option<f64> {
        self.bytes.map(|b| b / self.seconds / 1e9)
    }

    /// Images per second, for training steps.
    pub fn images_per_s(&self) -> Option<f64> {
        self.images.map(|n| n / self.seconds)
    }
}

/// The shapes and budgets of a run.
struct Plan {
    quick: bool,
    software: bool,
    budget: Budget,
    batch: usize,
    precision: Precision,
}

impl Plan {
    fn squares(&self) -> Vec<usize> {
        match (self.quick, self.software) {
            (true, true) => vec![256],
            (true, false) => vec![256, 512],
            // Software adapters manage a few GFLOP/s: 4096³ would take minutes.
            (false, true) => vec![256, 512, 1024, 2048],
            (false, false) => vec![256, 512, 1024, 2048, 4096],
        }
    }

    fn rows_cols(&self) -> Vec<(usize, usize)> {
        if self.quick {
            vec![(128, 10), (128, 1024)]
        } else {
            vec![(128, 10), (128, 1024), (4096, 4096)]
        }
    }

    fn optim_sizes(&self) -> Vec<usize> {
        if self.quick {
            vec![1_000_000]
        } else {
            vec![1_000_000, 10_000_000, 100_000_000]
        }
    }

    fn copy_bytes(&self) -> u64 {
        if self.quick {
            32 << 20
        } else {
            256 << 20
        }
    }
}

/// Runs the selected groups and the ceilings, calling `progress` after each row.
pub fn run(options: &BenchOptions, progress: &mut dyn FnMut(&BenchResult)) -> Result<Report> {
    let mut engine = Engine::open(options.backend)?;
    let plan = Plan {
        quick: options.quick,
        software: engine.is_software(),
        budget: if options.quick {
            Budget {
                seconds: 0.05,
                min_calls: 3,
                max_calls: 10,
            }
        } else {
            Budget {
                seconds: 0.5,
                min_calls: 5,
                max_calls: 200,
            }
        },
        batch: if options.quick { 8 } else { 128 },
        precision: options.precision,
    };
    let mut report = Report {
        device: engine.backend().describe(),
        backend: engine.kind(),
        software: plan.software,
        quick: options.quick,
        precision: options.precision,
        clock: engine.clock(),
        rows: Vec::new(),
        skipped: Vec::new(),
    };
    let mut push = |report: &mut Report, r: BenchResult| {
        progress(&r);
        report.rows.push(r);
    };
    let copy = plan.copy_bytes().min(engine.max_buffer_bytes() / 4 * 4);
    push(&mut report, engine.copy(copy, plan.budget)?);
    for group in Group::ALL {
        if !options.groups.contains(&group) {
            continue;
        }
        for r in run_group(&mut engine, group, &plan, &mut report.skipped)? {
            push(&mut report, r);
        }
    }
    if report.compute_gflops().is_none() {
        let mut probe = engine.measure(
            &cases::square(if plan.quick { 256 } else { 1024 })?,
            plan.budget,
            plan.precision,
        )?;
        probe.group = Group::Ceiling;
        push(&mut report, probe);
    }
    Ok(report)
}

fn run_group(
    engine: &mut Engine,
    group: Group,
    plan: &Plan,
    skipped: &mut Vec<String>,
) -> Result<Vec<BenchResult>> {
    let mut out = Vec::new();
    let budget = plan.budget;
    match group {
        Group::Matmul => {
            for n in plan.squares() {
                out.push(engine.measure(&cases::square(n)?, budget, plan.precision)?);
            }
            if !plan.quick && plan.software {
                skipped.push("matmul 4096³: software adapter".into());
            }
            for spec in ["mlp", "cnn"] {
                for p in shapes::training_products(spec, plan.batch)? {
                    out.push(engine.measure(&cases::matmul(p, spec)?, budget, plan.precision)?);
                }
            }
        }
        Group::Conv => {
            for layer in shapes::conv_layers("cnn", plan.batch)? {
                out.push(engine.measure(&cases::conv_forward(&layer)?, budget, plan.precision)?);
                out.push(engine.measure(&cases::conv_backward(&layer)?, budget, plan.precision)?);
            }
        }
        Group::Softmax => {
            for (r, c) in plan.rows_cols() {
                for case in cases::softmax(r, c)? {
                    out.push(engine.measure(&case, budget, plan.precision)?);
                }
            }
        }
        Group::Norm => {
            for (r, c) in plan.rows_cols() {
                for case in cases::norms(r, c)? {
                    out.push(engine.measure(&case, budget, plan.precision)?);
                }
            }
        }
        Group::Optim => {
            for n in plan.optim_sizes() {
                if let Some(why) = too_big_for(engine, n) {
                    skipped.push(format!("adamw over {n} parameters: {why}"));
                    continue;
                }
                match engine.optimizer(Optimizer::adamw(), "adamw", n, budget) {
                    Ok(r) => out.push(r),
                    // Only the largest arena may fail for memory; say so and go on.
                    Err(e) if n >= 100_000_000 => {
                        skipped.push(format!("adamw over {n} parameters: {e}"))
                    }
                    Err(e) => return Err(e),
                }
            }
            if plan.quick {
                skipped.push("adamw over 10M and 100M parameters: --quick".into());
            }
        }
        Group::Step => {
            let (train, _) = crate::data::embedded()?;
            for spec in crate::nn::PRESETS {
                let flops = shapes::step_flops(spec, plan.batch)?;
                let backend = engine.another()?;
                out.push(step::training_step(
                    backend,
                    spec,
                    &train,
                    plan.batch,
                    flops,
                    budget,
                    plan.precision,
                )?);
            }
        }
        Group::Ceiling => {}
    }
    Ok(out)
}

/// Why an optimizer arena of `n` parameters would not fit, if it would not: four arenas
/// of `n` f32 on the device, and on the CPU twice that in host memory while initialising.
fn too_big_for(engine: &Engine, n: usize) -> Option<String> {
    let arena = 4 * n as u64;
    if arena > engine.max_buffer_bytes() {
        return Some(format!(
            "an arena of {arena} bytes exceeds this device's largest buffer"
        ));
    }
    if engine.kind() == "cpu" {
        let need = 6 * arena;
        if let Some(avail) = available_memory() {
            if avail < need {
                return Some(format!(
                    "needs about {} MiB, {} MiB available",
                    need >> 20,
                    avail >> 20
                ));
            }
        }
    }
    None
}

/// MemAvailable from /proc/meminfo, in bytes (Linux; `None` elsewhere).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
