//! The CNN preset end to end: the same loss curve on both backends, batch-norm running
//! statistics equal after training steps, evaluation using them; models of residual
//! blocks and of grouped convolutions trained alike on both backends.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::{Backend, METRIC_LOSS};
use kiln::data::{self, Batcher};
use kiln::optim::Optimizer;
use kiln::train::{TrainConfig, Trainer};

/// Losses of `steps` training steps of `spec` on the first batches of the embedded set,
/// then the trainer for inspection.
fn run(
    backend: Box<dyn Backend>,
    spec: &str,
    optimizer: Optimizer,
    batch: usize,
    steps: usize,
) -> (Vec<f32>, Trainer) {
    let (train, _) = data::embedded().unwrap();
    let config = TrainConfig {
        batch_size: batch,
        seed: 3,
        lr: 1e-4,
        optimizer,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(backend, spec, &config).unwrap();
    let mut batcher = Batcher::new(&train, batch, false, 0).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut losses = Vec::new();
    for _ in 0..steps {
        batcher.next_batch(&mut x, &mut y).unwrap();
        trainer.backend_mut().reset_metrics().unwrap();
        trainer.train_batch(&x, &y).unwrap();
        losses.push(trainer.backend_mut().read_metrics().unwrap()[METRIC_LOSS] / batch as f32);
    }
    (losses, trainer)
}

#[test]
fn cnn_preset_loss_curve_is_the_same_on_both_backends() {
    let Some(gpu) = common::gpu() else { return };
    let (cpu_loss, _) = run(
        Box::new(CpuBackend::new()),
        "cnn",
        Optimizer::adamw(),
        16,
        10,
    );
    let (gpu_loss, _) = run(Box::new(gpu), "cnn", Optimizer::adamw(), 16, 10);
    // The conv biases feed batch norm, so their true gradient is 0 and what each backend
    // computes is rounding noise; AdamW's first steps move a weight by about lr·sign(g)
    // whatever |g| is, so those biases (which do not change the output) drift apart by up to
    // lr per step and the curves agree to ~1e-4, not to f32 rounding. SGD agrees to 1e-6.
    for (i, (c, g)) in cpu_loss.iter().zip(&gpu_loss).enumerate() {
        assert!(
            (c - g).abs() <= 1e-3 * c.abs().max(1.0),
            "step {i}: cpu {c} gpu {g}"
        );
    }
    assert!(cpu_loss[9] < cpu_loss[0], "loss did not fall: {cpu_loss:?}");
}

#[test]
fn batch_norm_running_statistics_match_and_are_used_in_eval() {
    let Some(gpu) = common::gpu() else { return };
    // SGD, not AdamW: weights fed by features that are constant over the batch (the blank
    // borders of the images) have a true gradient of 0 behind batch norm, and AdamW would
    // turn each backend's rounding noise there into steps of ±lr (see the test above).
    let spec = "conv2d(1,4,3,stride=2,bias=false),batchnorm2d(4),relu,flatten,\
linear(676,10,bias=false),batchnorm1d(10)";
    let sgd = Optimizer::sgd(0.9);
    let (_, mut cpu) = run(Box::new(CpuBackend::new()), spec, sgd, 8, 3);
    let (_, mut dev) = run(Box::new(gpu), spec, sgd, 8, 3);
    let cpu_buf = cpu.backend_mut().read_buffers().unwrap();
    let dev_buf = dev.backend_mut().read_buffers().unwrap();
    // After 3 steps from (0, 1) with momentum 0.1 the statistics have moved.
    let layout = cpu.layout().clone();
    for e in &layout.buffers {
        let c = e.shape.0[1];
        let (mean, var) = (
            &cpu_buf[e.offset..e.offset + c],
            &cpu_buf[e.offset + c..e.offset + 2 * c],
        );
        assert!(
            mean.iter().any(|&m| m != 0.0),
            "{}: running mean never updated",
            e.name
        );
        assert!(
            var.iter().any(|&v| v != 1.0),
            "{}: running var never updated",
            e.name
        );
    }
    // Three AdamW steps and three running updates: 5x the 1e-5 element-wise bound,
    // relative to the statistics' scale.
    let d = common::max_abs_diff(&cpu_buf, &dev_buf);
    let scale = cpu_buf.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        d <= 5e-5 * scale,
        "running statistics differ by {d} (scale {scale})"
    );
    // Evaluation reads the running statistics: both backends agree, and the loss differs
    // from what a fresh model (statistics 0 and 1) gives.
    let (_, test) = data::embedded().unwrap();
    let test = test.take(64).unwrap();
    let (cpu_eval, _) = cpu.evaluate(&test).unwrap();
    let (dev_eval, _) = dev.evaluate(&test).unwrap();
    assert!(
        (cpu_eval - dev_eval).abs() < 1e-3 * cpu_eval.max(1.0),
        "eval {cpu_eval} vs {dev_eval}"
    );
}

/// Residual blocks (an identity block and a strided block with a projection shortcut, as
/// a ResNet's), and a depthwise-separable block (grouped convolutions, dilated), trained
/// alike on both backends.
#[test]
fn residual_and_grouped_models_train_alike_on_both_backends() {
    let residual = "conv2d(1,4,3,stride=2,padding=1,bias=false),batchnorm2d(4),relu,\
residual(conv2d(4,4,3,padding=1,bias=false),batchnorm2d(4),relu,conv2d(4,4,3,padding=1)),\
relu,residual(conv2d(4,8,3,stride=2,padding=1),relu,\
shortcut=(conv2d(4,8,1,stride=2,bias=false),batchnorm2d(8))),\
adaptiveavgpool2d(1),flatten,linear(8,10)";
    let grouped = "conv2d(1,4,3,stride=2,padding=1),relu,\
conv2d(4,8,3,padding=2,dilation=2,groups=4,bias=false),batchnorm2d(8),relu,\
conv2d(8,8,1),relu,conv2d(8,8,3,stride=2,groups=2),relu,flatten,linear(288,10)";
    for (spec, names) in [
        (residual, ["3.body.3.bias", "5.shortcut.0.weight"]),
        (grouped, ["2.weight", "7.weight"]),
    ] {
        if !trains_alike_on_both_backends(spec, &names) {
            return;
        }
    }
}

/// Group and instance norm, PReLU, Dropout2d, the hard and soft activations and a
/// log-softmax output, each in a whole training step against the CPU.
#[test]
fn norm_dropout2d_and_activation_layers_train_alike_on_both_backends() {
    let cnn = "conv2d(1,4,3,stride=2,padding=1),groupnorm(2,4),hardswish,\
conv2d(4,8,3,padding=1,bias=false),instancenorm2d(8,affine=True),prelu(8),dropout2d(0.2),\
maxpool2d(2),flatten,linear(392,16),mish,linear(16,16),softplus(beta=2),linear(16,10),\
logsoftmax(dim=1)";
    let mlp = "flatten,linear(784,32),relu6,linear(32,32),hardtanh(-0.5,0.5),linear(32,16),\
hardsigmoid,groupnorm(4,16),prelu,linear(16,10)";
    for (spec, names) in [
        (cnn, ["1.weight", "4.bias", "5.weight"]),
        (mlp, ["7.bias", "8.weight", "9.weight"]),
    ] {
        if !trains_alike_on_both_backends(spec, &names) {
            return;
        }
    }
}

/// Trains `spec` 4 steps of SGD with momentum on both backends and asserts that losses,
/// parameters and buffers agree to 1e-5 (buffers 5e-5) and that the layout has `names`;
/// false when there is no GPU (skipped).
fn trains_alike_on_both_backends(spec: &str, names: &[&str]) -> bool {
    let Some(gpu) = common::gpu() else {
        return false;
    };
    let sgd = Optimizer::sgd(0.9);
    let (cpu_loss, mut cpu) = run(Box::new(CpuBackend::new()), spec, sgd, 8, 4);
    let (gpu_loss, mut dev) = run(Box::new(gpu), spec, sgd, 8, 4);
    for (i, (c, g)) in cpu_loss.iter().zip(&gpu_loss).enumerate() {
        assert!(
            (c - g).abs() <= 1e-5 * c.abs(),
            "{spec} step {i}: cpu {c} gpu {g}"
        );
    }
    let (cpu_p, dev_p) = (
        cpu.backend_mut().read_params().unwrap(),
        dev.backend_mut().read_params().unwrap(),
    );
    assert_within(&cpu_p, &dev_p, 1e-5, &format!("{spec}: parameters"));
    let layout: Vec<&str> = cpu
        .layout()
        .entries
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(names.iter().all(|n| layout.contains(n)), "{layout:?}");
    let (cpu_b, dev_b) = (
        cpu.backend_mut().read_buffers().unwrap(),
        dev.backend_mut().read_buffers().unwrap(),
    );
    assert_within(&cpu_b, &dev_b, 5e-5, &format!("{spec}: running statistics"));
    true
}

/// Asserts that `dev` is within `rel` of `cpu`'s largest magnitude, element by element.
fn assert_within(cpu: &[f32], dev: &[f32], rel: f32, what: &str) {
    let scale = cpu.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = common::max_abs_diff(cpu, dev);
    assert!(d <= rel * scale, "{what} differ by {d} (scale {scale})");
}
