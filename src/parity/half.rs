//! f16 parity: an op's one-op plan in f16 on a backend against the same plan on the CPU
//! backend, which emulates f16 storage by rounding (the `half` crate) and so is the
//! reference for f16 kernels.

use super::cases::OpCase;
use super::compare::{case_output, CaseResult, Mismatch};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::precision::Precision;

/// The allowed |got − want| of an f16 plan's output element. An f16 output may land one f16
/// ulp (2^-10 relative) from the reference's when their f32 values straddle a rounding
/// boundary, plus 1e-5 of the output's largest value near zero (subnormal f16). An f32
/// output (losses, reductions, softmax) of f16 inputs differs only in f32 rounding order,
/// which over sums of 70,000 terms reaches 1e-5 relative: 2^-13 relative (a quarter of
/// the f16 rounding error a wrongly stored f16 output would show) plus 1e-6 of the largest.
pub fn half_bound(want: f32, largest: f32, half_output: bool) -> f32 {
    if half_output {
        2f32.powi(-10) * want.abs() + 1e-5 * largest
    } else {
        2f32.powi(-13) * want.abs() + 1e-6 * largest
    }
}

/// Runs `case` in f16 on `backend` and on `reference` (a CPU backend) with the same inputs
/// and judges the element-wise difference by [`half_bound`].
pub fn run_case_half(
    backend: &mut dyn Backend,
    reference: &mut dyn Backend,
    case: &OpCase,
    seed: u64,
) -> Result<CaseResult> {
    let inputs = case.make_inputs(seed);
    let want = case_output(reference, case, &inputs, Precision::F16)?;
    let got = case_output(backend, case, &inputs, Precision::F16)?;
    if got.len() != want.len() {
        return Err(Error::shape(
            case.op.name(),
            format!("got {} values, expected {}", got.len(), want.len()),
        ));
    }
    let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let half = crate::graph::half_output(&case.op);
    let mut r = CaseResult {
        op: case.op.name(),
        shapes: case.shapes(),
        max_abs: 0.0,
        max_rel: 0.0,
        worst_ratio: 0.0,
        mismatches: Vec::new(),
    };
    for (index, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let bound = half_bound(w, largest, half);
        // Identical values pass (infinities and NaN included); NaN errors compare false.
        let err = if g == w || (g.is_nan() && w.is_nan()) {
            0.0
        } else {
            (g - w).abs()
        };
        let within = err <= bound;
        r.max_abs = r.max_abs.max(f64::from(err));
        if w != 0.0 {
            r.max_rel = r.max_rel.max(f64::from(err / w.abs()));
        }
        if bound > 0.0 {
            r.worst_ratio = r.worst_ratio.max(f64::from(err / bound));
        } else if err > 0.0 {
            r.worst_ratio = f64::INFINITY;
        }
        if !within && r.mismatches.len() < 5 {
            r.mismatches.push(Mismatch {
                index,
                got: g,
                expected: f64::from(w),
                bound: f64::from(bound),
            });
        }
    }
    Ok(r)
}
