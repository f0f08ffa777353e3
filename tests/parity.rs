//! Every op of the shared table, forward and backward, on the CPU backend and on wgpu,
//! against the f64 reference (DESIGN.md's tolerance policy).

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::Backend;
use kiln::parity::{cases, run_case};

fn run_all(backend: &mut dyn Backend, name: &str) {
    let mut failures = Vec::new();
    let all = cases();
    for (i, case) in all.iter().enumerate() {
        let r = run_case(backend, case, 1000 + i as u64)
            .unwrap_or_else(|e| panic!("{name}: {} {}: {e}", case.op.name(), case.shapes()));
        if !r.passed() {
            failures.push(format!(
                "{} {}: max abs {:.3e}, worst/bound {:.2}, first mismatches {:?}",
                r.op, r.shapes, r.max_abs, r.worst_ratio, r.mismatches
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {} cases passed", all.len());
}

#[test]
fn cpu_backend_matches_f64_reference() {
    run_all(&mut CpuBackend::new(), "cpu");
}

#[test]
fn gpu_backend_matches_f64_reference() {
    let Some(mut gpu) = common::gpu() else { return };
    run_all(&mut gpu, "gpu");
}

#[test]
fn table_covers_every_op_variant() {
    let names: std::collections::BTreeSet<String> = cases().iter().map(|c| c.op.name()).collect();
    // Every op but reshape (a view planned without a kernel).
    for expected in [
        "matmul",
        "matmul_ta",
        "matmul_tb",
        "matmul_ta_tb",
        "matmul_bias",
        "matmul_bias_ta",
        "matmul_bias_tb",
        "matmul_bias_ta_tb",
        "matmul_bias_relu",
        "matmul_bias_relu_ta",
        "matmul_bias_relu_tb",
        "matmul_bias_relu_ta_tb",
        "matmul_bias_sigmoid",
        "matmul_bias_sigmoid_ta",
        "matmul_bias_sigmoid_tb",
        "matmul_bias_sigmoid_ta_tb",
        "matmul_bias_tanh",
        "matmul_bias_tanh_ta",
        "matmul_bias_tanh_tb",
        "matmul_bias_tanh_ta_tb",
        "bias_add",
        "bias_grad",
        "add",
        "scale",
        "relu",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "gelu",
        "silu",
        "elu",
        "selu",
        "relu6",
        "hardtanh",
        "hardsigmoid",
        "hardswish",
        "softplus",
        "mish",
        "relu_grad",
        "leaky_relu_grad",
        "sigmoid_grad",
        "tanh_grad",
        "gelu_grad",
        "silu_grad",
        "elu_grad",
        "selu_grad",
        "relu6_grad",
        "hardtanh_grad",
        "hardsigmoid_grad",
        "hardswish_grad",
        "softplus_grad",
        "mish_grad",
        "relu_grad_from_output",
        "sigmoid_grad_from_output",
        "tanh_grad_from_output",
        "softmax",
        "softmax_grad",
        "log_softmax",
        "log_softmax_grad",
        "cross_entropy",
        "cross_entropy_grad",
        "mse",
        "mse_grad",
        "bce_with_logits",
        "bce_with_logits_grad",
        "l1",
        "l1_grad",
        "smooth_l1",
        "smooth_l1_grad",
        "huber",
        "huber_grad",
        "sum",
        "mean",
        "sum_squares",
        "sum_squares_grad",
        "sum_abs",
        "sum_abs_grad",
        "broadcast",
        "argmax",
        "correct",
        "im2col",
        "col2im",
        "conv_matmul",
        "conv_matmul_bias",
        "conv_matmul_bias_relu",
        "conv_matmul_bias_sigmoid",
        "conv_matmul_bias_tanh",
        "conv_weight_grad",
        "grouped_conv",
        "grouped_conv_input_grad",
        "grouped_conv_weight_grad",
        "adaptive_avg_pool",
        "adaptive_avg_pool_grad",
        "adaptive_max_pool",
        "adaptive_max_pool_grad",
        "rows_to_nchw",
        "nchw_to_rows",
        "max_pool",
        "max_pool_grad",
        "avg_pool",
        "avg_pool_grad",
        "batch_norm_stats",
        "batch_norm_apply",
        "batch_norm_grad",
        "batch_norm_gamma_grad",
        "channel_sum",
        "channel_affine",
        "prelu",
        "prelu_grad",
        "prelu_weight_terms",
        "batch_norm_running",
        "layer_norm",
        "layer_norm_grad",
        "layer_norm_gamma_grad",
        "dropout",
        "dropout_grad",
    ] {
        assert!(names.contains(expected), "no parity case for {expected}");
    }
}
