//! Issue 5: "A 3-epoch run interrupted after epoch 1 (process killed) and resumed gives the
//! same final weights as an uninterrupted run."
//!
//! Drives the `kiln` binary: an uninterrupted 3-epoch run, a run with `--checkpoint-every 1`
//! killed (SIGKILL) as soon as its first checkpoint appears, and `--resume` of that
//! checkpoint; the final files must agree bit for bit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::checkpoint::Checkpoint;

/// The run: the embedded Fashion-MNIST subset (10,000 images), the `mlp` preset, AdamW,
/// shuffled batches of 32 (313 steps per epoch, the last batch partial): about half a
/// second per epoch on two cores, so the process is still busy for a second or so after
/// its first checkpoint.
const RUN: &[&str] = &[
    "train",
    "--backend",
    "cpu",
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--optimizer",
    "adamw",
    "--lr",
    "0.001",
    "--seed",
    "7",
];
const STEPS_PER_EPOCH: u64 = 10_000u64.div_ceil(32);

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-kill-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts kiln with RUN and `extra`.
fn spawn(extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(RUN)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs kiln to the end and asserts it succeeded.
fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn meta<'a>(c: &'a Checkpoint, key: &str) -> &'a str {
    c.metadata
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in the metadata"))
}

/// Asserts that two checkpoints hold the same tensors (model and optimizer state) bit for
/// bit; returns how many values were compared.
fn assert_bit_identical(a: &Checkpoint, b: &Checkpoint) -> usize {
    let names = |c: &Checkpoint| -> Vec<(String, Vec<usize>)> {
        c.tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect()
    };
    assert_eq!(names(a), names(b), "the files hold different tensors");
    let mut count = 0;
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        let differing = x
            .data
            .iter()
            .zip(&y.data)
            .filter(|(p, q)| p.to_bits() != q.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "{}: {differing} of {} values differ (first pair: {:?})",
            x.name,
            x.data.len(),
            x.data
                .iter()
                .zip(&y.data)
                .find(|(p, q)| p.to_bits() != q.to_bits())
        );
        count += x.data.len();
    }
    assert_eq!(a.ints, b.ints);
    count
}

/// Whether any model tensor (not optimizer state) differs in any bit.
fn weights_differ(a: &Checkpoint, b: &Checkpoint) -> bool {
    a.tensors
        .iter()
        .filter(|t| !t.name.starts_with("optim."))
        .any(|t| {
            let u = b.tensor(&t.name).unwrap();
            t.data
                .iter()
                .zip(&u.data)
                .any(|(p, q)| p.to_bits() != q.to_bits())
        })
}

#[test]
fn killed_after_epoch_one_and_resumed_gives_the_uninterrupted_weights() {
    let dir = scratch();
    let (full, ck, resumed, other) = (
        dir.join("full.safetensors"),
        dir.join("ck.safetensors"),
        dir.join("resumed.safetensors"),
        dir.join("other-wd.safetensors"),
    );

    // The run to be killed: poll for its first checkpoint, then SIGKILL it.
    let started = Instant::now();
    let mut victim = spawn(&["--save", s(&ck), "--checkpoint-every", "1"]);
    while !ck.exists() {
        if let Some(status) = victim.try_wait().unwrap() {
            panic!("the run exited ({status}) before writing its first checkpoint");
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = victim.kill();
            panic!("no checkpoint after 120 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let appeared = started.elapsed();
    let exited = victim.try_wait().unwrap();
    assert!(
        exited.is_none(),
        "the run had already exited ({exited:?}) when its first checkpoint appeared after \
         {appeared:?}: it is too short to be killed mid-run; give it more work"
    );
    victim.kill().unwrap();
    let status = victim.wait().unwrap();
    assert!(
        !status.success(),
        "the killed run reports success ({status}): it finished before the kill"
    );
    eprintln!("first checkpoint after {appeared:?}; killed ({status})");

    // The kill left a complete, loadable checkpoint (atomic write; the CRC is checked on
    // reading) at an epoch boundary before the end.
    let saved = Checkpoint::read(&ck).expect("the killed run's checkpoint does not load");
    let epoch: u64 = meta(&saved, "epoch").parse().unwrap();
    assert!(
        (1..3).contains(&epoch),
        "the checkpoint is of epoch {epoch}, not 1 or 2: the run was not interrupted"
    );
    assert_eq!(meta(&saved, "batch_in_epoch"), "0");
    assert_eq!(
        meta(&saved, "step"),
        (epoch * STEPS_PER_EPOCH).to_string(),
        "step count of an epoch-{epoch} checkpoint"
    );
    eprintln!("resuming from the checkpoint of epoch {epoch}");

    // The uninterrupted run, and the resumed one with the same flags.
    let whole = spawn(&["--save", s(&full)]);
    finish(
        spawn(&["--resume", s(&ck), "--save", s(&resumed)]),
        "the resume",
    );
    finish(whole, "the uninterrupted run");

    let a = Checkpoint::read(&full).unwrap();
    let b = Checkpoint::read(&resumed).unwrap();
    for c in [&a, &b] {
        assert_eq!(meta(c, "epoch"), "3");
        assert_eq!(meta(c, "step"), (3 * STEPS_PER_EPOCH).to_string());
    }
    let n = assert_bit_identical(&a, &b);
    eprintln!("{n} values (weights and AdamW moments) bit-identical");
    assert!(
        weights_differ(&saved, &a),
        "training after the checkpoint changed nothing"
    );

    // The comparison can fail: resumed with another weight decay (the learning rate is
    // part of the schedule state a resume checks), the weights differ.
    finish(
        spawn(&[
            "--resume",
            s(&ck),
            "--save",
            s(&other),
            "--weight-decay",
            "0.011",
        ]),
        "the resume with another weight decay",
    );
    let c = Checkpoint::read(&other).unwrap();
    assert!(
        weights_differ(&a, &c),
        "a resume with weight decay 0.011 gave the weights of the default 0.01"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
