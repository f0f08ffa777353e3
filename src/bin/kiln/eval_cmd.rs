//! `kiln eval` and `kiln export`: a checkpoint's test metrics, and its model tensors alone.

use std::path::PathBuf;

use clap::Args;

use kiln::backend::{select_backend, BackendChoice};
use kiln::checkpoint::Checkpoint;
use kiln::train::{TrainConfig, Trainer};
use kiln::{data, Error, Result};

/// Arguments of `kiln eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `kiln train --save`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// MNIST-format directory; default: the embedded subset's test images.
    #[arg(long)]
    data: Option<PathBuf>,
    /// auto, gpu or cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

/// Arguments of `kiln export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint written by `kiln train --save`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Where to write the model tensors (a safetensors file PyTorch loads with
    /// `safetensors.torch.load_file` into the `nn.Sequential` of the same layers; a
    /// residual block is a module with `body` and `shortcut` `nn.Sequential`s).
    #[arg(long)]
    out: PathBuf,
}

/// The model spec a checkpoint was trained with.
fn model_of(ckpt: &Checkpoint, path: &std::path::Path) -> Result<String> {
    ckpt.metadata.get("model").cloned().ok_or_else(|| {
        Error::data(
            path.display().to_string(),
            "no model spec in the metadata (not a kiln checkpoint)",
        )
    })
}

/// Runs `kiln eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let ckpt = Checkpoint::read(&args.checkpoint)?;
    let spec = model_of(&ckpt, &args.checkpoint)?;
    let (_, test) = match &args.data {
        Some(dir) => data::load_dir(dir)?,
        None => data::embedded()?,
    };
    let backend = select_backend(args.backend)?;
    println!("backend: {}", backend.describe());
    let config = TrainConfig {
        batch_size: args.batch_size,
        sample: [1, test.rows, test.cols],
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(backend, &spec, &config)?;
    trainer.load_weights(&ckpt, &args.checkpoint.display().to_string())?;
    let e = trainer.evaluate_detailed(&test)?;
    println!("model: {spec}");
    println!(
        "test: {} images, loss {:.4}, accuracy {:.2}%",
        test.len,
        e.loss,
        100.0 * e.accuracy
    );
    println!("\nper-class accuracy:");
    for (c, row) in e.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let name = data::CLASS_NAMES.get(c).copied().unwrap_or("?");
        let acc = if total > 0 {
            100.0 * row[c] as f64 / total as f64
        } else {
            0.0
        };
        println!("  {c} {name:<12} {acc:6.2}%  ({} of {total})", row[c]);
    }
    println!("\nconfusion matrix (rows: true class, columns: predicted):");
    print!("     ");
    for c in 0..e.confusion.len() {
        print!("{c:>6}");
    }
    println!();
    for (c, row) in e.confusion.iter().enumerate() {
        print!("  {c:>2} ");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(())
}

/// Runs `kiln export`.
pub fn export(args: ExportArgs) -> Result<()> {
    let mut ckpt = Checkpoint::read(&args.checkpoint)?;
    ckpt.tensors.retain(|t| !t.name.starts_with("optim."));
    let model = model_of(&ckpt, &args.checkpoint)?;
    ckpt.metadata.clear();
    ckpt.metadata.insert("model".into(), model);
    ckpt.write(&args.out)?;
    println!(
        "wrote {} model tensors to {}",
        ckpt.tensors.len() + ckpt.ints.len(),
        args.out.display()
    );
    Ok(())
}
