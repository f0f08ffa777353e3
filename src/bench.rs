//! Throughput measurements behind `kiln bench`: single ops through the planner and a
//! backend, and whole training steps. Times are wall clock around repeated runs ended by
//! one synchronising readback (GPU timestamp queries are the kernel-throughput issue's
//! next step), reported as the median of several trials.

use std::time::Instant;

use crate::backend::{Backend, Tail};
use crate::data::Dataset;
use crate::error::Result;
use crate::graph::{Graph, ParamLayout, Plan};
use crate::op::Op;
use crate::optim::StepScalars;
use crate::rng::Philox;
use crate::shape::Shape;
use crate::train::{TrainConfig, Trainer};

/// One measured line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// What was measured.
    pub name: String,
    /// Its shape or configuration.
    pub shape: String,
    /// Median seconds per call (per training step for steps).
    pub seconds: f64,
    /// Floating-point operations per call, when meaningful.
    pub flops: Option<f64>,
    /// Images per call (training steps).
    pub images: Option<f64>,
}

impl BenchResult {
    /// GFLOP/s, when the op has a FLOP count.
    pub fn gflops(&self) -> Option<f64> {
        self.flops.map(|f| f / self.seconds / 1e9)
    }

    /// Images per second, for training steps.
    pub fn images_per_s(&self) -> Option<f64> {
        self.images.map(|n| n / self.seconds)
    }
}

/// The median of `trials` measurements of `reps` calls of `call(false)`, each trial ended
/// by `call(true)`, which must wait for the device (after a warm-up call).
fn median_time(
    trials: usize,
    reps: usize,
    call: &mut dyn FnMut(bool) -> Result<()>,
) -> Result<f64> {
    call(true)?;
    let mut times = Vec::with_capacity(trials);
    for _ in 0..trials.max(1) {
        let start = Instant::now();
        for r in 0..reps.max(1) {
            call(r + 1 == reps.max(1))?;
        }
        times.push(start.elapsed().as_secs_f64() / reps.max(1) as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// `op(a)·op(b)` with a [m, k] and b [k, n] (transposes read in place) on `backend`.
pub fn matmul(
    backend: &mut dyn Backend,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    reps: usize,
) -> Result<BenchResult> {
    let mut g = Graph::new();
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    let a = g.input("a", Shape::new(&a_shape));
    let b = g.input("b", Shape::new(&b_shape));
    let op = Op::MatMul { trans_a, trans_b };
    let c = g.op(op, &[a, b])?;
    let layout = ParamLayout::of(&g);
    let plan = Plan::build(&g, &layout, &[c], &[])?;
    backend.init_model(
        &layout,
        &vec![0.0; layout.size],
        &vec![0.0; layout.buffers_size],
        None,
    )?;
    let id = backend.compile(&plan, Tail::default())?;
    let mut rng = Philox::new(1, 0);
    let xa: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let xb: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let scalars = StepScalars::default();
    // Each run uploads the operands too, as a training step uploads its batch; for the
    // shapes here that is a small fraction of the product's time.
    let seconds = median_time(5, reps, &mut |sync| {
        backend.run(id, &[&xa, &xb], &scalars)?;
        if sync {
            backend.read_metrics()?;
        }
        Ok(())
    })?;
    Ok(BenchResult {
        name: op.name(),
        shape: format!("{m}x{k} · {k}x{n}"),
        seconds,
        flops: Some(2.0 * (m * n * k) as f64),
        images: None,
    })
}

/// Whole training steps of a model on the first `batch` images of `data`.
pub fn training_step(
    backend: Box<dyn Backend>,
    spec: &str,
    data: &Dataset,
    batch: usize,
    reps: usize,
) -> Result<BenchResult> {
    let config = TrainConfig {
        batch_size: batch,
        sample: [1, data.rows, data.cols],
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(backend, spec, &config)?;
    let subset = data.take(batch)?;
    let mut batcher = crate::data::Batcher::new(&subset, batch, false, 0)?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    batcher.next_batch(&mut x, &mut y);
    let seconds = median_time(3, reps, &mut |sync| {
        trainer.train_batch(&x, &y)?;
        if sync {
            trainer.backend_mut().read_metrics()?;
        }
        Ok(())
    })?;
    Ok(BenchResult {
        name: format!("train step {spec}"),
        shape: format!("batch {batch}"),
        seconds,
        flops: None,
        images: Some(subset.len as f64),
    })
}
