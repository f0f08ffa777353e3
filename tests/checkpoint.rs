//! Checkpoints: model tensors under PyTorch's names round-trip exactly, bad files are
//! named and refused, and the command line saves, evaluates and exports them.

use kiln::backend::cpu::CpuBackend;
use kiln::checkpoint::Checkpoint;
use kiln::data;
use kiln::train::{TrainConfig, Trainer};

fn trained(spec: &str, steps: usize) -> Trainer {
    let (train, _) = data::embedded().unwrap();
    let config = TrainConfig {
        batch_size: 32,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(Box::new(CpuBackend::new()), spec, &config).unwrap();
    let mut b = data::Batcher::new(&train, 32, false, 0).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        b.next_batch(&mut x, &mut y).unwrap();
        t.train_batch(&x, &y).unwrap();
    }
    t
}

const SMALL_CNN: &str = "conv2d(1,4,3,stride=2),batchnorm2d(4),relu,flatten,linear(676,10)";

#[test]
fn weights_round_trip_through_a_file_with_pytorch_names() {
    let mut a = trained(SMALL_CNN, 5);
    let ckpt = a.checkpoint().unwrap();
    let names: Vec<&str> = ckpt.tensors.iter().map(|t| t.name.as_str()).collect();
    for n in [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "4.weight",
        "4.bias",
    ] {
        assert!(names.contains(&n), "no {n} in {names:?}");
    }
    assert_eq!(ckpt.ints[0].name, "1.num_batches_tracked");
    assert_eq!(ckpt.ints[0].data, vec![5]);
    assert_eq!(ckpt.tensor("0.weight").unwrap().shape, vec![4, 1, 3, 3]);
    let dir = std::env::temp_dir().join(format!("kiln-ckpt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.safetensors");
    ckpt.write(&path).unwrap();
    let back = Checkpoint::read(&path).unwrap();
    let mut b = trained(SMALL_CNN, 0);
    b.load_weights(&back, "a").unwrap();
    let (_, test) = data::embedded().unwrap();
    let test = test.take(200).unwrap();
    assert_eq!(a.evaluate(&test).unwrap(), b.evaluate(&test).unwrap());
    assert_eq!(a.params().unwrap(), b.params().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_extra_and_misshaped_tensors_are_named() {
    let mut a = trained("linear(784,16),relu,linear(16,10)", 1);
    let good = a.checkpoint().unwrap();
    let mut missing = good.clone();
    missing.tensors.retain(|t| t.name != "2.bias");
    let err = a.load_weights(&missing, "f").unwrap_err().to_string();
    assert!(err.contains("missing: 2.bias"), "{err}");
    let mut extra = good.clone();
    let mut t = extra.tensors[0].clone();
    t.name = "7.weight".into();
    extra.tensors.push(t);
    let err = a.load_weights(&extra, "f").unwrap_err().to_string();
    assert!(err.contains("not in the model: 7.weight"), "{err}");
    let mut wrong = good.clone();
    for t in &mut wrong.tensors {
        if t.name == "0.weight" {
            t.shape = vec![784, 16];
        }
    }
    let err = a.load_weights(&wrong, "f").unwrap_err().to_string();
    assert!(err.contains("0.weight is [784, 16]"), "{err}");
}

#[test]
fn command_line_saves_evaluates_and_exports() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("m.safetensors");
    let out = dir.join("weights.safetensors");
    let kiln = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{args:?}: {text}");
        text
    };
    let c = ckpt.to_str().unwrap();
    kiln(&[
        "train",
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--limit",
        "2000",
        "--save",
        c,
    ]);
    let text = kiln(&["eval", "--backend", "cpu", "--checkpoint", c]);
    assert!(text.contains("accuracy"), "{text}");
    assert!(text.contains("confusion matrix"), "{text}");
    kiln(&["export", "--checkpoint", c, "--out", out.to_str().unwrap()]);
    let exported = Checkpoint::read(&out).unwrap();
    assert!(exported
        .tensors
        .iter()
        .all(|t| !t.name.starts_with("optim.")));
    assert_eq!(exported.tensor("0.weight").unwrap().shape, vec![256, 784]);
    // Training again from the exported weights.
    kiln(&[
        "train",
        "--backend",
        "cpu",
        "--epochs",
        "1",
        "--limit",
        "500",
        "--init",
        out.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// N steps, save, resume in a new trainer, N more steps: parameters, optimizer state and
/// running statistics are bit-equal to 2N uninterrupted steps (dropout, batch norm,
/// AdamW, a per-batch schedule and shuffling included), for a plain model and one of
/// residual blocks (whose dropout and batch norm sit inside the blocks).
#[test]
fn resume_reproduces_the_uninterrupted_run_bit_for_bit() {
    for spec in [
        "conv2d(1,4,3,stride=2),batchnorm2d(4),relu,flatten,dropout(0.3),linear(676,10)",
        "conv2d(1,4,3,stride=2),relu,residual(conv2d(4,4,3,padding=1),dropout(0.3),\
         shortcut=(conv2d(4,4,1),batchnorm2d(4))),flatten,linear(676,10)",
    ] {
        resume_matches_uninterrupted(spec);
    }
}

fn resume_matches_uninterrupted(spec: &str) {
    let (train, test) = data::embedded().unwrap();
    let train = train.take(640).unwrap();
    let config = |steps| TrainConfig {
        batch_size: 64,
        epochs: 3,
        max_steps: Some(steps),
        schedule: kiln::optim::schedule::parse_schedule("onecycle:max_lr=0.01,total_steps=30")
            .unwrap(),
        ..TrainConfig::default()
    };
    let run = |t: &mut Trainer| t.fit(&train, &test.take(64).unwrap(), &mut |_| {}).unwrap();
    // 14 steps: one full epoch of 10 batches and 4 into the second.
    let mut whole = Trainer::new(Box::new(CpuBackend::new()), spec, &config(28)).unwrap();
    run(&mut whole);
    let mut first = Trainer::new(Box::new(CpuBackend::new()), spec, &config(14)).unwrap();
    run(&mut first);
    let ckpt = first.checkpoint().unwrap();
    let bytes = ckpt.to_bytes().unwrap();
    let ckpt = Checkpoint::from_bytes(&bytes, "mem").unwrap();
    let mut second = Trainer::new(Box::new(CpuBackend::new()), spec, &config(28)).unwrap();
    second.resume(&ckpt, "mem").unwrap();
    assert_eq!(second.steps(), 14);
    run(&mut second);
    assert_eq!(second.steps(), 28);
    assert_eq!(second.params().unwrap(), whole.params().unwrap(), "{spec}");
    let b = |t: &mut Trainer| t.backend_mut().read_buffers().unwrap();
    assert_eq!(b(&mut second), b(&mut whole));
    for k in 0..2 {
        let s = |t: &mut Trainer| t.backend_mut().read_state(k).unwrap();
        assert_eq!(s(&mut second), s(&mut whole), "state {k}");
    }
}
