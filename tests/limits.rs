//! Tensors larger than the device's largest storage binding and dispatches larger than its
//! workgroup limit: split into pieces by the wgpu executor, they still match the f64
//! reference and the CPU backend. A device opened with lowered limits (wgpu enforces the
//! limits a device was created with) exercises the same paths on small shapes; one case
//! crosses the real 65535-workgroup limit.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::wgpu::{AdapterPolicy, GpuContext, WgpuBackend};
use kiln::op::{Activation, Op};
use kiln::optim::{Clip, Optimizer};
use kiln::parity::{cases, run_case, InputKind, OpCase};
use kiln::shape::Shape;
use kiln::train::{TrainConfig, Trainer};
use kiln::Error;

/// A wgpu backend whose device allows `binding_bytes` per storage binding and `groups`
/// workgroups per dispatch dimension, or `None` (said loudly) without an adapter.
fn limited(binding_bytes: u64, groups: u32) -> Option<WgpuBackend> {
    common::gpu()?;
    let ctx = GpuContext::with_limits(AdapterPolicy::AllowSoftware, |l| {
        l.max_storage_buffer_binding_size = binding_bytes;
        l.max_compute_workgroups_per_dimension = groups;
    })
    .unwrap();
    Some(WgpuBackend::with_context(ctx))
}

/// Ops whose output reduces over a whole tensor (or whose mask is keyed by the element
/// index, or, for batch norm's input gradient, whose formula takes the whole batch's
/// count M from its input): they cannot be split and say so.
const UNSPLITTABLE: &[&str] = &[
    "cross_entropy",
    "mse",
    "bce_with_logits",
    "l1",
    "smooth_l1",
    "huber",
    "sum",
    "mean",
    "sum_squares",
    "sum_abs",
    "correct",
    "batch_norm_stats",
    "batch_norm_grad",
    "batch_norm_gamma_grad",
    "channel_sum",
    "layer_norm_gamma_grad",
    "dropout",
    "dropout_grad",
    "matmul_ta_tb",
    "matmul_bias_ta_tb",
    "matmul_bias_relu_ta_tb",
    "matmul_bias_sigmoid_ta_tb",
    "matmul_bias_tanh_ta_tb",
];

#[test]
fn every_op_case_is_split_to_fit_a_tiny_device_or_refused_by_name() {
    // 4 KiB bindings (1024 floats) and 4 workgroups per dimension.
    let Some(mut gpu) = limited(4096, 4) else {
        return;
    };
    let (mut split, mut refused, mut coarse) = (0, Vec::new(), 0);
    for (i, case) in cases().iter().enumerate() {
        let largest = case
            .inputs
            .iter()
            .map(|(s, _)| s.numel())
            .max()
            .unwrap_or(0);
        match run_case(&mut gpu, case, 1000 + i as u64) {
            Ok(r) => {
                assert!(
                    r.passed(),
                    "{} {}: max abs {:.3e}, worst/bound {:.2}, {:?}",
                    r.op,
                    r.shapes,
                    r.max_abs,
                    r.worst_ratio,
                    r.mismatches
                );
                if largest > 1024 {
                    split += 1;
                }
            }
            Err(Error::Unsupported(why)) => {
                let name = case.op.name();
                // Splittable ops may still be refused when a tensor every piece reads whole
                // is too large, or when pieces aligned to the device's binding offsets
                // would be too large (lavapipe aligns offsets to 256 bytes).
                let too_coarse = why.contains("bound whole") || why.contains("finely enough");
                if too_coarse && !UNSPLITTABLE.contains(&name.as_str()) {
                    coarse += 1;
                    continue;
                }
                assert!(
                    UNSPLITTABLE.contains(&name.as_str()),
                    "{name} {} was refused: {why}",
                    case.shapes()
                );
                assert!(why.contains(&name), "{why}");
                refused.push(name);
            }
            Err(e) => panic!("{} {}: {e}", case.op.name(), case.shapes()),
        }
    }
    eprintln!(
        "{split} cases with tensors over one binding matched; {coarse} too coarse to split; \
         refused: {refused:?}"
    );
    assert!(split >= 25, "only {split} cases needed splitting");
}

/// Whole training steps on a device with small bindings and 8 workgroups per dimension:
/// the batch, the conv products (implicit GEMM, split by images) and the activations are
/// split by rows or samples, the weight and bias gradients are summed over pieces of the
/// batch, and the optimizer
/// updates a parameter arena larger than one binding in pieces (with clipping and a
/// no-decay group whose boundary falls in the second piece).
#[test]
fn training_steps_split_to_fit_a_small_device_match_the_cpu() {
    // (model, binding bytes): the CNN's linear weight [10, 2704] is bound whole, so its
    // device has larger bindings (its conv output, 173,056 floats, still splits).
    let models = [
        (
            "linear(784,8),relu,linear(8,64),relu,linear(64,64),relu,linear(64,10)",
            32 * 1024,
        ),
        (
            "conv2d(1,4,3),relu,maxpool2d(2),flatten,linear(676,10)",
            512 * 1024,
        ),
    ];
    let config = TrainConfig {
        batch_size: 64,
        optimizer: Optimizer::by_name("adamw").unwrap(),
        no_decay: vec!["bias".into()],
        clip: Clip {
            max_norm: Some(0.5),
            ..Clip::default()
        },
        ..TrainConfig::default()
    };
    for (spec, binding) in models {
        let Some(gpu) = limited(binding, 8) else {
            return;
        };
        let (cpu_loss, cpu_params) =
            common::loss_curve(Box::new(CpuBackend::new()), spec, &config, 6);
        let (gpu_loss, gpu_params) = common::loss_curve(Box::new(gpu), spec, &config, 6);
        for (i, (c, g)) in cpu_loss.iter().zip(&gpu_loss).enumerate() {
            assert!(
                (c - g).abs() <= 1e-4 * c.abs().max(1.0),
                "{spec} step {i}: cpu {c} gpu {g}"
            );
        }
        assert!(cpu_loss[5] < cpu_loss[0], "{spec}: {cpu_loss:?}");
        let d = common::max_abs_diff(&cpu_params, &gpu_params);
        assert!(d < 1e-3, "{spec}: parameters diverged by {d}");
    }
}

#[test]
fn batch_statistics_larger_than_a_binding_are_refused_by_name() {
    let Some(gpu) = limited(512 * 1024, 8) else {
        return;
    };
    // Batch statistics over [64, 4, 676]: 173,056 floats, more than 131,072 a binding.
    let spec = "conv2d(1,4,3),batchnorm2d(4),relu,maxpool2d(2),flatten,linear(676,10)";
    let config = TrainConfig {
        batch_size: 64,
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(Box::new(gpu), spec, &config).unwrap();
    let err = t.train_batch(&vec![0.5; 64 * 784], &[1.0; 64]).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported(m) if m.contains("batch_norm")),
        "{err}"
    );
}

/// One op over more than 65535 x 256 elements: 65537 workgroups of 256, more than one
/// dispatch dimension holds, on the device's real limits.
#[test]
fn a_dispatch_past_65535_workgroups_matches_the_reference() {
    let Some(mut gpu) = common::gpu() else { return };
    let n = 65_536 * 256 + 100;
    let relu = OpCase {
        op: Op::Activation(Activation::Relu),
        inputs: vec![(Shape(vec![n]), InputKind::Real(1.0))],
        target: None,
    };
    let r = run_case(&mut gpu, &relu, 7).unwrap();
    assert!(r.passed(), "relu over {n}: {:?}", r.mismatches);
    // A product with more than 65535 row tiles of 64.
    let m = 65_536 * 64 + 3;
    let matmul = OpCase {
        op: Op::MatMul {
            trans_a: false,
            trans_b: false,
        },
        inputs: vec![
            (Shape(vec![m, 1]), InputKind::Real(1.0)),
            (Shape(vec![1, 2]), InputKind::Real(1.0)),
        ],
        target: None,
    };
    let r = run_case(&mut gpu, &matmul, 8).unwrap();
    assert!(r.passed(), "matmul of {m} rows: {:?}", r.mismatches);
}

/// Layer norm's gamma gradient over [500, 2] runs in parts (statistics, partial sums, their
/// sum) on a roomy device; with 4 KiB bindings its inputs (1,000 floats) still fit one
/// binding but the parts' scratch (the rows' statistics, 1,000 floats, then 2 x 31 partial
/// sums at the next 256-byte boundary) does not, so it runs whole, and still matches the
/// reference.
#[test]
fn a_reduction_whose_scratch_would_not_fit_a_binding_runs_whole() {
    let case = OpCase {
        op: Op::LayerNormGammaGrad { eps: 1e-5 },
        inputs: vec![
            (Shape::new(&[500, 2]), InputKind::Real(4.0)),
            (Shape::new(&[500, 2]), InputKind::Real(1.0)),
        ],
        target: None,
    };
    let Some(mut roomy) = common::gpu() else {
        return;
    };
    let (id, _, _) = common::compiled(&mut roomy, &case).unwrap();
    assert_eq!(roomy.dispatch_count(id).unwrap(), 3);
    let mut small = limited(4096, 65_535).unwrap();
    let (id, _, _) = common::compiled(&mut small, &case).unwrap();
    assert_eq!(small.dispatch_count(id).unwrap(), 1);
    let r = run_case(&mut small, &case, 9).unwrap();
    assert!(r.passed(), "{r:?}");
}
