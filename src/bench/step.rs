//! Whole training steps of a preset through the trainer (forward, backward, AdamW; the
//! batch uploaded every step), timed by the wall clock as `kiln train` sees them, with
//! the activation memory the training plan needs.

use std::time::Instant;

use super::engine::{median, Budget};
use super::{BenchResult, Group};
use crate::backend::wgpu::Clock;
use crate::backend::Backend;
use crate::data::{Batcher, Dataset};
use crate::error::Result;
use crate::precision::Precision;
use crate::train::{TrainConfig, Trainer};

/// Trials whose per-step times are medianed; each runs several steps ended by one
/// synchronising readback, so the device stays busy between steps as in training.
const TRIALS: usize = 3;

/// Times training steps of `spec` on the first `batch` images of `data`, with the
/// default configuration (AdamW); `flops` is the step's matmul FLOPs.
pub fn training_step(
    backend: Box<dyn Backend>,
    spec: &str,
    data: &Dataset,
    batch: usize,
    flops: f64,
    budget: Budget,
    precision: Precision,
) -> Result<BenchResult> {
    let config = TrainConfig {
        precision,
        batch_size: batch,
        sample: [1, data.rows, data.cols],
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(backend, spec, &config)?;
    let subset = data.take(batch)?;
    let mut batcher = Batcher::new(&subset, batch, false, 0)?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    batcher.next_batch(&mut x, &mut y);
    let mut steps = |k: usize| -> Result<f64> {
        let start = Instant::now();
        for _ in 0..k {
            trainer.train_batch(&x, &y)?;
        }
        trainer.backend_mut().read_metrics()?;
        Ok(start.elapsed().as_secs_f64() / k.max(1) as f64)
    };
    // The first step builds and compiles the plan: it is the warm-up, and its time (an
    // overestimate) sizes the trials.
    let estimate = steps(1)?;
    let per_trial = Budget {
        seconds: budget.seconds / TRIALS as f64,
        min_calls: 1,
        max_calls: budget.max_calls,
    }
    .calls(estimate);
    let mut times = Vec::with_capacity(TRIALS);
    for _ in 0..TRIALS {
        times.push(steps(per_trial)?);
    }
    let activations = trainer.activation_bytes(true, subset.len).unwrap_or(0);
    Ok(BenchResult {
        group: Group::Step,
        name: format!("train step {spec}"),
        shape: format!(
            "batch {}, {} of activations",
            subset.len,
            decimal_bytes(activations)
        ),
        seconds: median(&times),
        calls: TRIALS * per_trial,
        clock: Clock::Wall,
        flops: Some(flops),
        bytes: None,
        images: Some(subset.len as f64),
    })
}

/// `bytes` in kB, MB or GB (powers of 1000), one decimal.
fn decimal_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::decimal_bytes;

    #[test]
    fn bytes_in_decimal_units() {
        assert_eq!(decimal_bytes(12_608), "12.6 kB");
        assert_eq!(decimal_bytes(64_299_776), "64.3 MB");
        assert_eq!(decimal_bytes(2_500_000_000), "2.5 GB");
    }
}
