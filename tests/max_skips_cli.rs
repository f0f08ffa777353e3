//! `--max-skips` on the command line: a run whose gradients stay non-finite stops with an
//! error that names the last good checkpoint, and that checkpoint is the finite epoch
//! before the failure, loadable and resumable.

mod common;

use common::kiln;

use kiln::checkpoint::Checkpoint;

#[test]
fn too_many_skips_stop_the_run_and_keep_the_last_good_checkpoint() {
    let dir = std::env::temp_dir().join(format!("kiln-max-skips-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("run.safetensors");
    let ck_s = ck.display().to_string();
    // Epoch 1 trains normally; StepLR then multiplies the learning rate by 1e33, so the
    // first step of epoch 2 blows the weights up to ~1e31 and every later forward pass
    // overflows: each following step has non-finite gradients and is skipped.
    let (code, text) = kiln(&[
        "train",
        "--backend",
        "cpu",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--schedule",
        "step:step_size=1,gamma=1e33",
        "--epochs",
        "3",
        "--save",
        &ck_s,
        "--checkpoint-every",
        "1",
        "--max-skips",
        "3",
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("4 consecutive steps had non-finite gradients (--max-skips 3)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("the last good checkpoint is kept in {ck_s}")),
        "{text}"
    );
    assert!(text.contains("epoch 1/3"), "{text}");
    assert!(!text.contains("epoch 2/3:"), "{text}");

    // The checkpoint is epoch 1's: 10,000 embedded images in batches of 128 (the last one
    // partial) are 79 steps, all of its weights finite.
    let ckpt = Checkpoint::read(&ck).unwrap();
    assert_eq!(ckpt.metadata.get("step").map(String::as_str), Some("79"));
    assert_eq!(ckpt.metadata.get("epoch").map(String::as_str), Some("1"));
    assert!(ckpt
        .tensors
        .iter()
        .all(|t| t.data.iter().all(|v| v.is_finite())));

    let (code, text) = kiln(&["eval", "--checkpoint", &ck_s, "--backend", "cpu"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("accuracy"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
