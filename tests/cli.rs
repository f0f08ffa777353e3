//! The command-line program: clear errors, never a panic.

use std::process::Command;

fn kiln(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn gpu_backend_without_adapter_is_a_clear_error() {
    let (code, text) = kiln(
        &["train", "--backend", "gpu", "--epochs", "1"],
        &[("WGPU_ADAPTER_NAME", "no-such-adapter-xyz")],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no wgpu adapter found"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn auto_falls_back_to_cpu_in_one_line() {
    let (code, text) = kiln(
        &["train", "--epochs", "1", "--limit", "256"],
        &[("WGPU_ADAPTER_NAME", "no-such-adapter-xyz")],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("training on the CPU backend"), "{text}");
    assert!(text.contains("test acc"), "{text}");
}

#[test]
fn bad_model_spec_points_at_the_layer() {
    let (code, text) = kiln(
        &[
            "train",
            "--backend",
            "cpu",
            "--model",
            "linear(784,64),relu,linear(60,10)",
        ],
        &[],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("layer 2 'linear(60,10)'"), "{text}");
}

#[test]
fn bad_hyperparameters_are_rejected() {
    for args in [
        &["train", "--backend", "cpu", "--batch-size", "0"][..],
        &["train", "--backend", "cpu", "--lr=-1"],
        &["train", "--backend", "cpu", "--betas", "0.9"],
        &["train", "--backend", "cpu", "--optimizer", "lion"],
    ] {
        let (code, text) = kiln(args, &[]);
        assert_eq!(code, 1, "{args:?}: {text}");
        assert!(text.contains("error"), "{args:?}: {text}");
    }
}

#[test]
fn train_help_documents_the_toolkit_flags() {
    let (code, text) = kiln(&["train", "--help"], &[]);
    assert_eq!(code, 0, "{text}");
    for flag in [
        "--model",
        "--data",
        "--backend",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--optimizer",
        "--momentum",
        "--dampening",
        "--nesterov",
        "--betas",
        "--eps",
        "--weight-decay",
        "--amsgrad",
        "--lr-decay",
        "--initial-accumulator-value",
        "--alpha",
        "--centered",
        "--momentum-decay",
        "--decoupled-weight-decay",
        "--rho",
        "--clip-norm",
        "--clip-value",
        "--error-if-nonfinite",
        "--max-skips",
        "--label-smoothing",
        "--loss",
        "--l1",
        "--l2",
        "--schedule",
        "--warmup",
        "--no-decay",
        "--init-scheme",
        "--val-split",
        "--early-stop",
        "--min-delta",
        "--monitor",
    ] {
        assert!(text.contains(flag), "train --help does not document {flag}");
    }
}

#[test]
fn flags_that_do_not_apply_to_the_optimizer_are_rejected() {
    let (code, text) = kiln(
        &[
            "train",
            "--backend",
            "cpu",
            "--optimizer",
            "adagrad",
            "--momentum",
            "0.9",
        ],
        &[],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--momentum does not apply"), "{text}");
}

/// The Adam family's flags go where torch.optim takes them: `momentum_decay` is NAdam's
/// alone, `decoupled_weight_decay` is Adam's, NAdam's and RAdam's but not AdamW's (always
/// decoupled) or Adamax's.
#[test]
fn adam_family_flags_follow_torch_optim() {
    for (optimizer, flag) in [
        ("radam", "--momentum-decay"),
        ("adamax", "--decoupled-weight-decay"),
        ("adamw", "--decoupled-weight-decay"),
    ] {
        let mut args = vec!["train", "--backend", "cpu", "--optimizer", optimizer, flag];
        if flag == "--momentum-decay" {
            args.push("0.01");
        }
        let (code, text) = kiln(&args, &[]);
        assert_eq!(code, 1, "{optimizer} {flag}: {text}");
        assert!(text.contains(&format!("{flag} does not apply")), "{text}");
    }
    for args in [
        &["--optimizer", "nadam", "--momentum-decay", "0.01"][..],
        &["--optimizer", "nadam", "--decoupled-weight-decay"][..],
        &["--optimizer", "radam", "--decoupled-weight-decay"][..],
        &["--optimizer", "adam", "--decoupled-weight-decay"][..],
        &["--optimizer", "adamax", "--betas", "0.8,0.99"][..],
    ] {
        let mut all = vec!["--epochs", "1"];
        all.extend_from_slice(args);
        let log = train_log(&args[1..].join("").replace('-', ""), &all);
        assert!(log.contains("\"test_accuracy\":"), "{args:?}: {log}");
    }
}

/// The `--log` file of `kiln train --backend cpu --limit 300` with `args` (a successful
/// run), read and removed; `name` keeps concurrent tests' files apart.
fn train_log(name: &str, args: &[&str]) -> String {
    let file = format!("kiln-log-{name}-{}.jsonl", std::process::id());
    let path = std::env::temp_dir().join(file);
    let p = path.to_str().unwrap();
    let mut all = vec!["train", "--backend", "cpu", "--limit", "300", "--log", p];
    all.extend_from_slice(args);
    let (code, text) = kiln(&all, &[]);
    assert_eq!(code, 0, "{text}");
    let log = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    log
}

/// `--log`: one line per step and per epoch; the per-step losses, weighted by batch size,
/// average to the epoch's training loss.
#[test]
fn log_has_a_line_per_step_and_per_epoch() {
    let args = ["--epochs", "2", "--batch-size", "128", "--clip-norm", "1"];
    let log = train_log("steps", &args);
    let lines: Vec<&str> = log.lines().collect();
    // 300 images in batches of 128: 3 steps per epoch, 2 epochs, plus 2 epoch lines.
    assert_eq!(lines.len(), 8, "{log}");
    let field = |line: &str, key: &str| -> f64 {
        let at = line.find(&format!("\"{key}\":")).unwrap() + key.len() + 3;
        line[at..]
            .split([',', '}'])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        lines[0].starts_with("{\"step\":1,\"epoch\":1,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("\"grad_norm\":"));
    let weighted: f64 = [(0, 128.0), (1, 128.0), (2, 44.0)]
        .iter()
        .map(|&(i, n)| field(lines[i], "loss") * n)
        .sum::<f64>()
        / 300.0;
    let epoch_loss = field(lines[3], "train_loss");
    assert!(
        (weighted - epoch_loss).abs() < 1e-5,
        "{weighted} vs {epoch_loss}"
    );
}

/// The logged learning rate is the schedule's (PyTorch's `param_group['lr']`): Adagrad's
/// `lr_decay` acts inside the step and does not change it.
#[test]
fn log_reports_the_scheduled_rate_not_adagrads_decayed_one() {
    let args = [
        "--epochs",
        "1",
        "--optimizer",
        "adagrad",
        "--lr",
        "0.05",
        "--lr-decay",
        "0.1",
    ];
    let log = train_log("lr", &args);
    let steps: Vec<&str> = log.lines().filter(|l| l.starts_with("{\"step\"")).collect();
    assert_eq!(steps.len(), 3, "{log}");
    for line in steps {
        assert!(line.contains("\"lr\":0.05"), "{line}");
    }
}
