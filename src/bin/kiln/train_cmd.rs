//! `kiln train`.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use kiln::backend::{select_backend, BackendChoice};
use kiln::optim::Optimizer;
use kiln::train::{Event, TrainConfig, Trainer};
use kiln::{data, Error, Result};

/// Arguments of `kiln train`, named as PyTorch's.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model: a preset (`mlp`) or a layer list such as
    /// "linear(784,256),relu,linear(256,128),relu,linear(128,10)".
    #[arg(long, default_value = "mlp")]
    model: String,
    /// MNIST-format directory (IDX files, gzip or raw); default: the embedded subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// auto (a hardware GPU if there is one, else the CPU), gpu, or cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Epochs.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// sgd or adamw.
    #[arg(long, default_value = "adamw")]
    optimizer: String,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.0)]
    momentum: f32,
    /// SGD dampening.
    #[arg(long, default_value_t = 0.0)]
    dampening: f32,
    /// SGD Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// AdamW betas, "b1,b2".
    #[arg(long, default_value = "0.9,0.999")]
    betas: String,
    /// AdamW epsilon.
    #[arg(long, default_value_t = 1e-8)]
    eps: f32,
    /// Weight decay (decoupled for AdamW, default 0.01; L2 for SGD, default 0).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Clip gradients to this global L2 norm.
    #[arg(long)]
    clip_norm: Option<f32>,
    /// Cross-entropy label smoothing.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Use only the first N training images (quick runs).
    #[arg(long)]
    limit: Option<usize>,
}

fn parse_betas(text: &str) -> Result<(f32, f32)> {
    let parts: Vec<Option<f32>> = text.split(',').map(|p| p.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(a), Some(b)] => Ok((*a, *b)),
        _ => Err(Error::Config(format!(
            "--betas takes two numbers like 0.9,0.999, got '{text}'"
        ))),
    }
}

fn optimizer(args: &TrainArgs) -> Result<Optimizer> {
    match args.optimizer.to_ascii_lowercase().as_str() {
        "sgd" => Ok(Optimizer::Sgd {
            momentum: args.momentum,
            dampening: args.dampening,
            nesterov: args.nesterov,
            weight_decay: args.weight_decay.unwrap_or(0.0),
        }),
        "adamw" => Ok(Optimizer::AdamW {
            betas: parse_betas(&args.betas)?,
            eps: args.eps,
            weight_decay: args.weight_decay.unwrap_or(0.01),
        }),
        other => Err(Error::Config(format!(
            "unknown optimizer '{other}' (sgd, adamw)"
        ))),
    }
}

/// Runs `kiln train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (mut train, test) = match &args.data {
        Some(dir) => data::load_dir(dir)?,
        None => data::embedded()?,
    };
    if let Some(n) = args.limit {
        train = train.take(n)?;
    }
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        optimizer: optimizer(&args)?,
        clip_norm: args.clip_norm,
        label_smoothing: args.label_smoothing,
        sample: [1, train.rows, train.cols],
        ..TrainConfig::default()
    };
    let backend = select_backend(args.backend)?;
    println!("backend: {}", backend.describe());
    println!(
        "data: {} ({} train, {} test images of {}x{})",
        args.data
            .as_ref()
            .map_or("embedded Fashion-MNIST subset".into(), |d| d
                .display()
                .to_string()),
        train.len,
        test.len,
        train.rows,
        train.cols
    );
    let mut trainer = Trainer::new(backend, &args.model, &config)?;
    println!(
        "model: {} ({} parameters)",
        trainer.model().spec,
        trainer.layout().numel()
    );
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
        .map_err(|e| Error::Config(e.to_string()))?
        .progress_chars("=> ");
    let mut bar = ProgressBar::hidden();
    let mut last_loss = f32::NAN;
    trainer.fit(&train, &test, &mut |event| match event {
        Event::EpochStart { epoch, batches } => {
            bar = ProgressBar::new(*batches as u64).with_style(style.clone());
            bar.set_prefix(format!("{epoch}/{}", config.epochs));
        }
        Event::Batch { done, loss, images_per_s } => {
            if let Some(l) = loss {
                last_loss = *l;
            }
            bar.set_position(*done as u64);
            bar.set_message(format!("loss {last_loss:.4}  {images_per_s:.0} img/s"));
        }
        Event::EpochEnd(r) => {
            bar.finish_and_clear();
            println!(
                "epoch {}/{}: train loss {:.4}, train acc {:.2}%, test loss {:.4}, test acc {:.2}%, {:.0} img/s ({:.1} s)",
                r.epoch,
                config.epochs,
                r.train_loss,
                100.0 * r.train_accuracy,
                r.test_loss,
                100.0 * r.test_accuracy,
                r.images_per_s,
                r.seconds
            );
        }
    })?;
    Ok(())
}
