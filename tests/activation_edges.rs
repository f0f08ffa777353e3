//! Every activation at its edges on the wgpu backend, against the CPU backend: kinks,
//! thresholds, far tails and NaN (which every forward propagates, as PyTorch's do). The
//! parity suite draws inputs uniformly and would meet these points only by chance; here
//! each is fed on purpose. Where the result is decided by a comparison (a kink, a
//! threshold, a NaN's gradient) the two backends must agree exactly; elsewhere to 2e-5
//! relative (the kernels' exp, log, erf and tanh against the CPU's libm).

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::Backend;
use kiln::op::{Activation, Op};
use kiln::parity::{case_output, InputKind, OpCase, ACTIVATIONS};
use kiln::precision::Precision;
use kiln::shape::Shape;

/// The kinks of the tested kinds (0, 6, −0.5, 2, ±3), softplus(2, 3)'s threshold
/// (β·x = 3 at 1.5) and values either side, mish's switch to x (20), the far tails, a tiny
/// value and NaN.
const POINTS: [f32; 25] = [
    f32::NAN,
    -1000.0,
    -100.0,
    -20.0,
    -3.0001,
    -3.0,
    -2.9999,
    -0.5,
    -1e-30,
    0.0,
    1e-30,
    1e-4,
    1.4999,
    1.5,
    1.5001,
    2.0,
    2.9999,
    3.0,
    3.0001,
    6.0,
    19.9,
    20.5,
    100.0,
    50.0,
    1000.0,
];

/// `op` on `inputs` (each of [`POINTS`]'s length) on `backend`.
fn output(backend: &mut dyn Backend, op: Op, inputs: &[Vec<f32>]) -> Vec<f32> {
    let case = OpCase {
        op,
        inputs: vec![(Shape::new(&[POINTS.len()]), InputKind::Real(1.0)); inputs.len()],
        target: None,
    };
    case_output(backend, &case, inputs, Precision::F32).unwrap()
}

/// Whether an activation's value at `x` is decided by a comparison alone (clamped, passed
/// through or zero), so both backends must give the same bits.
fn exact_value(a: Activation, x: f32) -> bool {
    match a {
        Activation::Relu | Activation::Relu6 | Activation::Hardtanh(..) => true,
        // Only the zero side: 6/6 past 3 is a division, which WGSL allows to be inexact.
        Activation::Hardsigmoid | Activation::Hardswish => x <= -3.0,
        Activation::Softplus(beta, threshold) => x * beta > threshold,
        _ => false,
    }
}

#[test]
fn activations_agree_with_the_cpu_at_their_edges() {
    let Some(mut gpu) = common::gpu() else { return };
    let mut cpu = CpuBackend::new();
    let x = POINTS.to_vec();
    let dy: Vec<f32> = (0..POINTS.len()).map(|i| 0.5 + i as f32 * 0.25).collect();
    // Every kind as the parity suite has it, and softplus with PyTorch's defaults and with
    // a threshold past where e^x overflows (both backends switch to x at 88 instead).
    for a in ACTIVATIONS.into_iter().chain([
        Activation::Softplus(1.0, 20.0),
        Activation::Softplus(1.0, 100.0),
    ]) {
        for (op, inputs) in [
            (Op::Activation(a), vec![x.clone()]),
            (Op::ActivationGrad(a), vec![x.clone(), dy.clone()]),
        ] {
            let want = output(&mut cpu, op, &inputs);
            let got = output(&mut gpu, op, &inputs);
            for ((&xi, &w), &g) in POINTS.iter().zip(&want).zip(&got) {
                let what = format!("{} at {xi}: gpu {g}, cpu {w}", op.name());
                if w.is_nan() {
                    assert!(g.is_nan(), "{what}");
                } else if xi.is_nan() || exact_value(a, xi) {
                    // A gradient from a comparison (a kink, a NaN's pass-through) is dy
                    // times a constant: exact on both sides too.
                    assert_eq!(g, w, "{what}");
                } else {
                    // Past e^±88 the kernels keep exponentials finite, so where the CPU
                    // gives 0 or a subnormal the GPU may give a tiny normal value: values
                    // below 1e-35 (e^−80) count as zero.
                    assert!(w.is_finite() && g.is_finite(), "{what}");
                    assert!((g - w).abs() <= 2e-5 * w.abs() + 1e-35, "{what}");
                }
            }
        }
    }
}
