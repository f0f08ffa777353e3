//! Every op of the shared table in f16 (inputs read from f16 bindings, outputs stored in
//! f16 where autocast says so) on wgpu, against the same plans on the CPU backend, which
//! emulates f16 storage by rounding with the `half` crate.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::graph::half_output;
use kiln::parity::{case_output, cases, run_case_half};
use kiln::precision::Precision;

#[test]
fn cpu_emulation_rounds_f16_values() {
    // The emulated plans must really store f16: a half output equals its f16 rounding,
    // and differs from the f32 plan somewhere.
    let mut cpu = CpuBackend::new();
    let mut rounded_somewhere = false;
    for (i, case) in cases().iter().enumerate() {
        let inputs = case.make_inputs(2000 + i as u64);
        let half = case_output(&mut cpu, case, &inputs, Precision::F16).unwrap();
        let full = case_output(&mut cpu, case, &inputs, Precision::F32).unwrap();
        if half_output(&case.op) {
            for v in &half {
                assert!(
                    v.is_nan() || kiln::precision::round_f16(*v) == *v,
                    "{}: {v} is not an f16 value",
                    case.op.name()
                );
            }
        }
        rounded_somewhere |= half != full;
    }
    assert!(rounded_somewhere);
}

#[test]
fn gpu_f16_kernels_match_emulated_reference() {
    let Some(mut gpu) = common::gpu() else { return };
    if !gpu.context().has_f16() {
        eprintln!("skipped: the adapter lacks SHADER_F16");
        return;
    }
    let mut cpu = CpuBackend::new();
    let mut failures = Vec::new();
    let all = cases();
    for (i, case) in all.iter().enumerate() {
        let r = run_case_half(&mut gpu, &mut cpu, case, 2000 + i as u64)
            .unwrap_or_else(|e| panic!("{} {}: {e}", case.op.name(), case.shapes()));
        if !r.passed() {
            failures.push(format!(
                "{} {}: max abs {:.3e}, worst/bound {:.2}, first mismatches {:?}",
                r.op, r.shapes, r.max_abs, r.worst_ratio, r.mismatches
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} f16 cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    eprintln!("gpu f16: {} cases match the emulated reference", all.len());
}
