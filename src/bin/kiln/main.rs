//! `kiln`: train, check parity of, and benchmark classifiers on any GPU (or the CPU).

mod parity_cmd;
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
    /// Run every op forward and backward on the GPU and compare with the CPU reference.
    Parity(parity_cmd::ParityArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train_cmd::run(*args),
        Command::Parity(args) => parity_cmd::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
