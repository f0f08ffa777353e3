//! GPU faults: a device lost in the middle of a run ends it with a typed error within one
//! step (no hang), and the last checkpoint written before the loss resumes on the CPU.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use kiln::backend::cpu::CpuBackend;
use kiln::checkpoint::Checkpoint;
use kiln::data::{self, Batcher};
use kiln::train::{TrainConfig, Trainer};
use kiln::Error;

const SPEC: &str = "linear(784,32),relu,linear(32,10)";

fn config() -> TrainConfig {
    TrainConfig {
        batch_size: 16,
        ..TrainConfig::default()
    }
}

#[test]
fn device_lost_mid_run_is_a_typed_error_and_the_checkpoint_resumes_on_the_cpu() {
    let Some(gpu) = common::gpu() else { return };
    let device = gpu.context().device.clone();
    let (train, _) = data::embedded().unwrap();
    let mut batches = Batcher::new(&train, 16, false, 0).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());

    let mut trainer = Trainer::new(Box::new(gpu), SPEC, &config()).unwrap();
    for _ in 0..3 {
        batches.next_batch(&mut x, &mut y).unwrap();
        trainer.train_batch(&x, &y).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("kiln-device-lost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("last.safetensors");
    trainer.checkpoint().unwrap().write(&path).unwrap();

    device.destroy();

    // The remaining steps run on another thread so that a hang fails the test instead of
    // stalling the suite; the first step after the loss must already fail.
    let next: Vec<(Vec<f32>, Vec<f32>)> = (0..3)
        .map(|_| {
            batches.next_batch(&mut x, &mut y).unwrap();
            (x.clone(), y.clone())
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut outcome = Vec::new();
        for (x, y) in &next {
            let r = trainer.train_batch(x, y).and_then(|()| trainer.params());
            let failed = r.is_err();
            outcome.push(r.map(|_| ()));
            if failed {
                break;
            }
        }
        let _ = tx.send(outcome);
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("training on a destroyed device hung");
    assert_eq!(
        outcome.len(),
        1,
        "the first step after the loss must fail: {outcome:?}"
    );
    match &outcome[0] {
        Err(Error::Gpu { message, .. }) => {
            assert!(message.to_lowercase().contains("lost"), "{message}")
        }
        other => panic!("expected a typed GPU error, got {other:?}"),
    }

    // The checkpoint written before the loss carries on on the CPU backend.
    let ckpt = Checkpoint::read(&path).unwrap();
    let mut cpu = Trainer::new(Box::new(CpuBackend::new()), SPEC, &config()).unwrap();
    cpu.resume(&ckpt, &path.display().to_string()).unwrap();
    assert_eq!(cpu.steps(), 3);
    let mut batches = Batcher::new(&train, 16, false, 0).unwrap();
    for _ in 0..3 {
        batches.next_batch(&mut x, &mut y).unwrap();
    }
    let resumed = cpu.checkpoint().unwrap();
    for t in &ckpt.tensors {
        let r = resumed.tensor(&t.name).unwrap();
        assert_eq!(bits(&r.data), bits(&t.data), "{} was not restored", t.name);
    }
    let before = cpu.params().unwrap();
    for _ in 0..2 {
        batches.next_batch(&mut x, &mut y).unwrap();
        cpu.train_batch(&x, &y).unwrap();
    }
    assert_eq!(cpu.steps(), 5);
    let after = cpu.params().unwrap();
    assert!(after.iter().all(|v| v.is_finite()));
    assert_ne!(before, after, "the resumed run did not train");
    std::fs::remove_dir_all(&dir).ok();
}

/// The bit patterns of `v`, so that equality is exact.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}
