//! `kiln parity`: the shared op table on the user's GPU against the f64 reference, as a table.

use clap::Args;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::wgpu::{AdapterPolicy, WgpuBackend};
use kiln::backend::Backend;
use kiln::parity::{cases, run_case, run_case_half};
use kiln::precision::Precision;
use kiln::{Error, Result};

/// Arguments of `kiln parity`.
#[derive(Args, Debug)]
pub struct ParityArgs {
    /// Check the CPU backend instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Only ops whose name contains this text.
    #[arg(long)]
    op: Option<String>,
    /// f32: against the f64 reference. f16: every op reading and writing f16 bindings,
    /// against the CPU backend's emulation of the same f16 plan.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Seed for the random inputs.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
}

/// Runs `kiln parity`; fails when any case is out of tolerance.
pub fn run(args: ParityArgs) -> Result<()> {
    let mut backend: Box<dyn Backend> = if args.cpu {
        Box::new(CpuBackend::new())
    } else {
        Box::new(WgpuBackend::new(AdapterPolicy::AllowSoftware)?)
    };
    println!("device: {} ({})", backend.describe(), args.precision);
    println!(
        "{:<24} {:<32} {:>11} {:>11} {:>9}  result",
        "op", "shapes", "max abs", "max rel", "err/tol"
    );
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in cases().iter().enumerate() {
        if args
            .op
            .as_ref()
            .is_some_and(|f| !case.op.name().contains(f.as_str()))
        {
            continue;
        }
        let seed = args.seed + i as u64;
        let r = match args.precision {
            Precision::F32 => run_case(backend.as_mut(), case, seed)?,
            Precision::F16 => run_case_half(backend.as_mut(), &mut CpuBackend::new(), case, seed)?,
        };
        println!(
            "{:<24} {:<32} {:>11.3e} {:>11.3e} {:>9.3}  {}",
            r.op,
            r.shapes,
            r.max_abs,
            r.max_rel,
            r.worst_ratio,
            if r.passed() { "pass" } else { "FAIL" }
        );
        for m in &r.mismatches {
            println!(
                "    [{}] got {:e}, expected {:e} (allowed ±{:e})",
                m.index, m.got, m.expected, m.bound
            );
        }
        if r.passed() {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(Error::Gpu {
            context: "parity".into(),
            message: format!("{failed} op cases out of tolerance"),
        });
    }
    Ok(())
}
