//! `kiln`: train, check parity of, and benchmark classifiers on any GPU (or the CPU).

mod bench_cmd;
mod eval_cmd;
mod log;
mod parity_cmd;
mod plot_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};

/// kiln trains neural-network classifiers on wgpu compute shaders, with a CPU reference.
#[derive(Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier (default: the `mlp` preset on the embedded Fashion-MNIST subset).
    Train(Box<train_cmd::TrainArgs>),
    /// Evaluate a checkpoint: test loss, accuracy, per-class accuracy, confusion matrix.
    Eval(eval_cmd::EvalArgs),
    /// Write a checkpoint's model tensors alone (PyTorch state_dict names) to a file.
    Export(eval_cmd::ExportArgs),
    /// Run every op forward and backward on the GPU and compare with the CPU reference.
    Parity(parity_cmd::ParityArgs),
    /// Measure kernel and training-step throughput against the device's ceilings.
    Bench(bench_cmd::BenchArgs),
    /// Draw the loss and accuracy curves of a `kiln train --log` file to SVG or PNG.
    Plot(plot_cmd::PlotArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train_cmd::run(*args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Export(args) => eval_cmd::export(args),
        Command::Parity(args) => parity_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Plot(args) => plot_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
