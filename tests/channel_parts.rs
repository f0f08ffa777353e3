//! Batch norm's per-channel reductions and layer norm's gamma gradient in parts on the
//! wgpu backend (`src/backend/wgpu/channel_parts.rs`): long channels run as a partial pass
//! and an ordered combination (shown by the plan's dispatch count), match the f64
//! reference within the tolerance policy, give the same bits from run to run, keep the
//! two-pass variance's accuracy on data far from zero, and match the CPU backend in f16.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::wgpu::WgpuBackend;
use kiln::op::{Channels, Op};
use kiln::parity::{case_output, check, run_case_half, InputKind, OpCase};
use kiln::precision::Precision;
use kiln::shape::Shape;

/// The four per-channel reductions over x of `dims` with `c` channels, with the inputs
/// `kiln parity` gives them.
fn reductions(dims: &[usize], c: usize) -> Vec<OpCase> {
    let s: usize = dims[2..].iter().product();
    let spec = Channels { c, s, eps: 1e-5 };
    let x = (Shape::new(dims), InputKind::Real(4.0));
    let dy = (Shape::new(dims), InputKind::Real(1.0));
    let stats = (Shape::new(&[2, c]), InputKind::Stats);
    let case = |op, inputs| OpCase {
        op,
        inputs,
        target: None,
    };
    vec![
        case(Op::BatchNormStats(spec), vec![x.clone()]),
        case(Op::BatchNormGammaGrad(spec), vec![x, stats, dy.clone()]),
        case(Op::ChannelSum(spec), vec![dy]),
    ]
}

/// The dispatches of `case`'s one-op plan on `gpu`.
fn dispatches(gpu: &mut WgpuBackend, case: &OpCase) -> usize {
    let (id, _, _) = common::compiled(gpu, case).unwrap();
    gpu.dispatch_count(id).unwrap()
}

/// Launches of each reduction when split: batch_norm_stats its parts and their merge, the
/// others their parts and their sum.
const SPLIT_LAUNCHES: [usize; 3] = [2, 2, 2];

#[test]
fn long_channels_run_in_parts_and_match_the_reference() {
    let Some(mut gpu) = common::gpu() else { return };
    // 3 channels of 6,400 values (6 parts of 1,067, crossing image boundaries), 32 of
    // 16·28·28 = 12,544 (12 parts), and 2 channels of 5,000 rows of [N, C] (4 parts).
    for (dims, c) in [
        (&[4, 3, 40, 40][..], 3),
        (&[16, 32, 28, 28], 32),
        (&[5000, 2], 2),
    ] {
        for (case, launches) in reductions(dims, c).iter().zip(SPLIT_LAUNCHES) {
            let what = format!("{} {}", case.op.name(), case.shapes());
            assert_eq!(dispatches(&mut gpu, case), launches, "{what}");
            let inputs = case.make_inputs(41);
            let got = case_output(&mut gpu, case, &inputs, Precision::F32).unwrap();
            let verdict = check(case, &inputs, &got).unwrap();
            assert!(verdict.passed(), "{what}: {verdict:?}");
            let again = case_output(&mut gpu, case, &inputs, Precision::F32).unwrap();
            let same_bits = got
                .iter()
                .zip(&again)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same_bits, "{what}: two runs differ");
        }
    }
}

#[test]
fn layer_norm_gamma_gradients_take_the_row_statistics_once() {
    let Some(mut gpu) = common::gpu() else { return };
    // [5, 7]: too few rows, the whole-tensor kernel; [24, 5]: statistics, then one part;
    // [100, 300] and [128, 1024]: statistics, 6 and 8 parts, their sum.
    for (dims, launches) in [
        (&[5, 7][..], 1),
        (&[2, 3, 4, 5], 2),
        (&[100, 300], 3),
        (&[128, 1024], 3),
    ] {
        let case = OpCase {
            op: Op::LayerNormGammaGrad { eps: 1e-5 },
            inputs: vec![
                (Shape::new(dims), InputKind::Real(4.0)),
                (Shape::new(dims), InputKind::Real(1.0)),
            ],
            target: None,
        };
        assert_eq!(dispatches(&mut gpu, &case), launches, "{dims:?}");
        let inputs = case.make_inputs(5);
        let got = case_output(&mut gpu, &case, &inputs, Precision::F32).unwrap();
        let verdict = check(&case, &inputs, &got).unwrap();
        assert!(verdict.passed(), "{dims:?}: {verdict:?}");
    }
}

#[test]
fn short_or_many_channels_stay_one_launch() {
    let Some(mut gpu) = common::gpu() else { return };
    // 1,568 values per channel are too few to share; 600 channels fill a GPU already.
    for (dims, c) in [(&[8, 32, 14, 14][..], 32), (&[64, 600, 2, 2], 600)] {
        for case in reductions(dims, c) {
            assert_eq!(dispatches(&mut gpu, &case), 1, "{}", case.shapes());
        }
    }
}

#[test]
fn merged_variances_of_data_far_from_zero_keep_their_digits() {
    let Some(mut gpu) = common::gpu() else { return };
    // Values 1000 + u, u uniform in (−1, 1): E[x²] − mean² in f32 would lose every digit
    // of a variance of 1/3 next to 10⁶; the parts' two-pass variances merged by their
    // means' distances keep them.
    let case = &reductions(&[4, 3, 40, 40], 3)[0];
    let mut inputs = case.make_inputs(7);
    for (i, v) in inputs[0].iter_mut().enumerate() {
        // A slope across the channel too, so the parts' means differ.
        *v = 1000.0 + *v / 4.0 + (i % 1600) as f32 * 1e-3;
    }
    let got = case_output(&mut gpu, case, &inputs, Precision::F32).unwrap();
    let (c, s) = (3, 1600);
    for k in 0..c {
        let values: Vec<f64> = (0..4)
            .flat_map(|n| {
                let start = (n * c + k) * s;
                inputs[0][start..start + s].iter().map(|&v| f64::from(v))
            })
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        let got_mean = f64::from(got[k]);
        let got_var = f64::from(got[c + k]);
        // A few ulps of f32 at 1000 (6.1e-5 each).
        let ulps = (got_mean - mean).abs() / (f64::from(f32::EPSILON) * mean.abs());
        assert!(ulps < 8.0, "channel {k}: {got_mean} vs {mean}");
        assert!(
            (got_var - var).abs() < 1e-4 * var,
            "channel {k}: variance {got_var} vs {var}"
        );
    }
}

#[test]
fn split_reductions_match_the_cpu_in_f16() {
    let Some(mut gpu) = common::gpu() else { return };
    if !gpu.context().has_f16() {
        eprintln!("skipped: this adapter has no SHADER_F16");
        return;
    }
    let mut cpu = CpuBackend::new();
    for case in reductions(&[4, 3, 40, 40], 3) {
        let verdict = run_case_half(&mut gpu, &mut cpu, &case, 3).unwrap();
        assert!(verdict.passed(), "{}: {verdict:?}", case.op.name());
    }
}
