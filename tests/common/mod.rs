//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::process::Command;

use kiln::backend::wgpu::{AdapterPolicy, WgpuBackend};
use kiln::backend::{Backend, PlanId, Tail, METRIC_LOSS};
use kiln::data::{self, Batcher};
use kiln::graph::{Graph, ParamLayout, Plan, ValueId};
use kiln::parity::OpCase;
use kiln::train::{TrainConfig, Trainer};

/// A wgpu backend on any adapter (lavapipe in CI). With `CI` set, a missing adapter fails
/// the test; elsewhere the test says loudly that it skipped.
pub fn gpu() -> Option<WgpuBackend> {
    match WgpuBackend::new(AdapterPolicy::AllowSoftware) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but no wgpu adapter is available: {e}");
            }
            eprintln!("\n*** SKIPPED: no wgpu adapter ({e}); install mesa-vulkan-drivers ***\n");
            None
        }
    }
}

/// `case`'s op as a plan of its own, compiled on `backend` (with a model of no parameters):
/// the plan's id, the plan and the op's output.
pub fn compiled(
    backend: &mut impl Backend,
    case: &OpCase,
) -> kiln::Result<(PlanId, Plan, ValueId)> {
    let mut g = Graph::new();
    let ids: Vec<_> = case
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (s, _))| g.input(&format!("in{i}"), s.clone()))
        .collect();
    let out = g.op(case.op, &ids)?;
    let layout = ParamLayout::of(&g);
    let plan = Plan::build(&g, &layout, &[out], &[])?;
    backend.init_model(
        &layout,
        &vec![0.0; layout.size],
        &vec![0.0; layout.buffers_size],
        None,
    )?;
    let id = backend.compile(&plan, Tail::default())?;
    Ok((id, plan, out))
}

/// Largest |a − b| over two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Runs the `kiln` binary with `args`: (exit code, stdout followed by stderr).
pub fn kiln(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Per-step losses of `steps` training steps of `spec` on the first batches of the
/// embedded set (in order), and the parameters after them.
pub fn loss_curve(
    backend: Box<dyn Backend>,
    spec: &str,
    config: &TrainConfig,
    steps: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (losses, mut trainer) = trained(backend, spec, config, steps);
    (losses, trainer.params().unwrap())
}

/// [`loss_curve`]'s per-step losses and the trainer after them.
pub fn trained(
    backend: Box<dyn Backend>,
    spec: &str,
    config: &TrainConfig,
    steps: usize,
) -> (Vec<f32>, Trainer) {
    let (train, _) = data::embedded().unwrap();
    let mut trainer = Trainer::new(backend, spec, config).unwrap();
    let mut batcher = Batcher::new(&train, config.batch_size, false, 0).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut losses = Vec::new();
    for _ in 0..steps {
        batcher.next_batch(&mut x, &mut y).unwrap();
        trainer.backend_mut().reset_metrics().unwrap();
        trainer.train_batch(&x, &y).unwrap();
        let m = trainer.backend_mut().read_metrics().unwrap();
        losses.push(m[METRIC_LOSS] / y.len() as f32);
    }
    (losses, trainer)
}
