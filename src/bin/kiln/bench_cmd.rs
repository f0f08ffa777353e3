//! `kiln bench`: matmul and whole-step throughput on a backend, as a table or JSON.

use clap::Args;

use kiln::backend::{select_backend, BackendChoice};
use kiln::bench::{matmul, training_step, BenchResult};
use kiln::{data, Result};

/// Arguments of `kiln bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: matmul, step or all.
    #[arg(default_value = "all")]
    what: String,
    /// auto, gpu or cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Smaller shapes and fewer repetitions (software adapters, CI smoke tests).
    #[arg(long)]
    quick: bool,
}

fn print(r: &BenchResult, json: bool) {
    let gflops = r.gflops().map_or("null".into(), |g| format!("{g:.2}"));
    let ips = r
        .images_per_s()
        .map_or("null".into(), |v| format!("{v:.0}"));
    if json {
        println!(
            "{{\"name\":\"{}\",\"shape\":\"{}\",\"ms\":{:.4},\"gflops\":{gflops},\"images_per_s\":{ips}}}",
            r.name,
            r.shape,
            r.seconds * 1e3
        );
    } else {
        println!(
            "{:<28} {:<22} {:>10.3} {:>10} {:>12}",
            r.name,
            r.shape,
            r.seconds * 1e3,
            r.gflops().map_or("-".into(), |g| format!("{g:.1}")),
            r.images_per_s().map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
}

/// Runs `kiln bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let mut backend = select_backend(args.backend)?;
    let device = backend.describe();
    if !args.json {
        println!("device: {device}");
        println!(
            "{:<28} {:<22} {:>10} {:>10} {:>12}",
            "op", "shape", "ms/call", "GFLOP/s", "images/s"
        );
    }
    let reps = if args.quick { 2 } else { 10 };
    if args.what == "matmul" || args.what == "all" {
        let squares: &[usize] = if args.quick {
            &[64, 128]
        } else {
            &[256, 512, 1024]
        };
        for &s in squares {
            print(
                &matmul(backend.as_mut(), s, s, s, false, false, reps)?,
                args.json,
            );
        }
        // The mlp preset's training products at batch 128: forward, and both backward ones.
        let shapes: &[(usize, usize, usize, bool, bool)] = &[
            (128, 256, 784, false, true),
            (256, 784, 128, true, false),
            (128, 784, 256, false, false),
        ];
        for &(m, n, k, ta, tb) in shapes.iter().take(if args.quick { 1 } else { 3 }) {
            print(&matmul(backend.as_mut(), m, n, k, ta, tb, reps)?, args.json);
        }
    }
    if args.what == "step" || args.what == "all" {
        let (train, _) = data::embedded()?;
        let specs: &[&str] = if args.quick {
            &["mlp"]
        } else {
            &["mlp", "cnn"]
        };
        for spec in specs {
            let b = select_backend(args.backend)?;
            let r = training_step(b, spec, &train, 128, if args.quick { 2 } else { 5 })?;
            print(&r, args.json);
        }
    }
    Ok(())
}
