//! `detect_anomaly`: every op's output is tested for NaN and infinities on the device; the
//! first op that produced one is named with its layer, and that step's update is not
//! applied. Checks change no value of a healthy run.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::Backend;
use kiln::train::{TrainConfig, Trainer};
use kiln::Error;

const SPEC: &str = "linear(784,16),relu,linear(16,10)";

fn backends() -> Vec<(&'static str, Box<dyn Backend>)> {
    let mut b: Vec<(&'static str, Box<dyn Backend>)> = vec![("cpu", Box::new(CpuBackend::new()))];
    if let Some(gpu) = common::gpu() {
        b.push(("gpu", Box::new(gpu)));
    }
    b
}

fn config(detect_anomaly: bool) -> TrainConfig {
    TrainConfig {
        batch_size: 4,
        detect_anomaly,
        ..TrainConfig::default()
    }
}

fn batch() -> (Vec<f32>, Vec<f32>) {
    let x = (0..4 * 784).map(|i| (i % 97) as f32 / 97.0).collect();
    (x, vec![0.0, 3.0, 7.0, 9.0])
}

#[test]
fn a_non_finite_input_is_pinned_on_the_first_layer_that_reads_it() {
    for (name, backend) in backends() {
        let mut t = Trainer::new(backend, SPEC, &config(true)).unwrap();
        let (mut x, y) = batch();
        t.train_batch(&x, &y).unwrap();
        let before = t.params().unwrap();
        x[3 * 784 + 5] = f32::NAN;
        let err = t.train_batch(&x, &y).unwrap_err();
        let Error::NonFinite(message) = &err else {
            panic!("{name}: {err}")
        };
        // The first op of the plan is layer 0's product with its bias and layer 1's relu
        // fused (relu(x·Wᵀ + b)); its output row 3 is NaN.
        assert!(
            message.contains(
                "step 2: op #0 (matmul_bias_relu_tb -> [4, 16] in layer 0 'linear(784,16)' \
                 and layer 1 'relu')"
            ),
            "{name}: {message}"
        );
        assert!(
            message.contains("the update was not applied"),
            "{name}: {message}"
        );
        assert_eq!(
            t.params().unwrap(),
            before,
            "{name}: the update was applied"
        );
        assert_eq!(t.steps(), 1, "{name}");
    }
}

#[test]
fn an_overflow_deep_in_the_network_is_named_by_its_op_and_layer() {
    for (name, backend) in backends() {
        let mut t = Trainer::new(backend, SPEC, &config(true)).unwrap();
        // Layer 0 gives every hidden unit about 784 · 0.5 · 0.01 ≈ 4, and the second
        // layer's weights are so large that its product overflows to +inf although every
        // value before it is finite.
        let mut p = t.params().unwrap();
        for (name, value) in [("0.weight", 0.01), ("2.weight", 1e38)] {
            let e = t.layout().entries.iter().find(|e| e.name == name).unwrap();
            p[e.offset..e.offset + e.shape.numel()].fill(value);
        }
        t.backend_mut().write_params(&p).unwrap();
        let (x, y) = batch();
        let err = t.train_batch(&x, &y).unwrap_err().to_string();
        assert!(
            err.contains("op #1 (matmul_bias_tb -> [4, 10] in layer 2 'linear(16,10)')"),
            "{name}: {err}"
        );
        assert_eq!(t.params().unwrap(), p, "{name}: the update was applied");
    }
}

#[test]
fn checking_changes_nothing_in_a_healthy_run() {
    for (name, backend) in backends() {
        let gpu = name == "gpu";
        let mut checked = Trainer::new(backend, SPEC, &config(true)).unwrap();
        let other: Box<dyn Backend> = if gpu {
            Box::new(common::gpu().unwrap())
        } else {
            Box::new(CpuBackend::new())
        };
        let mut plain = Trainer::new(other, SPEC, &config(false)).unwrap();
        let (x, y) = batch();
        for _ in 0..3 {
            checked.train_batch(&x, &y).unwrap();
            plain.train_batch(&x, &y).unwrap();
        }
        assert_eq!(checked.params().unwrap(), plain.params().unwrap(), "{name}");
    }
}
