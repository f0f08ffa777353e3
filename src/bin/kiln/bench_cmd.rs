//! `kiln bench`: kernel and training-step throughput against the device's measured
//! ceilings, as a table or one JSON document.

use std::io::IsTerminal;

use clap::Args;

use kiln::backend::BackendChoice;
use kiln::bench::{self, BenchOptions, Group};
use kiln::Result;

/// Arguments of `kiln bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: matmul, conv, softmax, norm, optim, step or all.
    #[arg(default_value = "all")]
    what: String,
    /// auto, gpu or cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Smaller shapes and fewer repetitions (software adapters, CI smoke tests).
    #[arg(long)]
    quick: bool,
    /// f32, or f16: activations and matmul/conv operands stored in f16 (f32 accumulation),
    /// training steps in mixed precision.
    #[arg(long, default_value = "f32")]
    precision: kiln::precision::Precision,
}

/// Runs `kiln bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let options = BenchOptions {
        groups: Group::parse_selection(&args.what)?,
        backend: args.backend,
        quick: args.quick,
        precision: args.precision,
    };
    // Rows are printed once the ceilings are known; a terminal sees progress meanwhile.
    let live = std::io::stderr().is_terminal();
    let report = bench::run(&options, &mut |r| {
        if live {
            eprintln!("  {} {} {:.4} ms", r.name, r.shape, r.seconds * 1e3);
        }
    })?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
