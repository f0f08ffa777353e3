//! `kiln train`.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use kiln::backend::{select_backend_for, BackendChoice};
use kiln::checkpoint::Checkpoint;
use kiln::optim::schedule::{parse_schedule, Warmup};
use kiln::optim::{Clip, Optimizer};
use kiln::precision::Precision;
use kiln::train::{EarlyStopping, Event, Monitor, Penalty, TrainConfig, Trainer};
use kiln::{data, Error, Result};

/// Arguments of `kiln train`, named as PyTorch's.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model: a preset (`mlp`, `cnn`, `resnet`) or a layer list such as
    /// "linear(784,256),relu,linear(256,128),relu,linear(128,10)"; `residual(layers...,
    /// shortcut=(layers...))` adds a block's output to its input (or its shortcut's).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// MNIST-format directory (IDX files, gzip or raw); default: the embedded subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// auto (a hardware GPU if there is one, else the CPU), gpu, or cpu.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// f32, or f16 mixed precision: f16 activations and gradients, f32 master weights and
    /// optimizer state, dynamic loss scaling (torch.autocast + GradScaler).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Epochs.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Learning rate (default: the optimizer's torch.optim default).
    #[arg(long)]
    lr: Option<f32>,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// sgd, adam, adamw, adagrad, rmsprop, adadelta, adamax, nadam or radam (torch.optim's
    /// defaults for each).
    #[arg(long, default_value = "adamw")]
    optimizer: String,
    /// Momentum (sgd, rmsprop).
    #[arg(long)]
    momentum: Option<f32>,
    /// SGD dampening.
    #[arg(long)]
    dampening: Option<f32>,
    /// SGD Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// Betas of adam, adamw, adamax, nadam and radam, "b1,b2".
    #[arg(long)]
    betas: Option<String>,
    /// Epsilon added to the denominator (all but sgd).
    #[arg(long)]
    eps: Option<f32>,
    /// Weight decay: decoupled for adamw (default 0.01) and with --decoupled-weight-decay,
    /// an L2 term in the gradient otherwise (default 0).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Adam/AdamW AMSGrad.
    #[arg(long)]
    amsgrad: bool,
    /// Adagrad learning-rate decay.
    #[arg(long)]
    lr_decay: Option<f32>,
    /// Adagrad initial accumulator value.
    #[arg(long)]
    initial_accumulator_value: Option<f32>,
    /// RMSprop smoothing constant.
    #[arg(long)]
    alpha: Option<f32>,
    /// Centred RMSprop.
    #[arg(long)]
    centered: bool,
    /// Adadelta smoothing constant.
    #[arg(long)]
    rho: Option<f32>,
    /// NAdam momentum decay ψ of the schedule μ_t = β1·(1 − ½·0.96^(t·ψ)).
    #[arg(long)]
    momentum_decay: Option<f32>,
    /// Adam, NAdam, RAdam: decay the weights as AdamW does (p·(1 − lr·wd)) instead of
    /// adding an L2 term to the gradient.
    #[arg(long)]
    decoupled_weight_decay: bool,
    /// Clip gradients to this global L2 norm (after any --clip-value).
    #[arg(long)]
    clip_norm: Option<f32>,
    /// With --clip-norm: stop with an error (the update not applied) when the gradient norm
    /// is NaN or infinite, as clip_grad_norm_(error_if_nonfinite=True).
    #[arg(long)]
    error_if_nonfinite: bool,
    /// Skip steps with non-finite gradients (counted) and stop after more than this many
    /// in a row.
    #[arg(long)]
    max_skips: Option<u64>,
    /// Test every op's output for NaN and infinities (on the device) and stop at the first,
    /// naming the op and its layer, like torch.autograd.detect_anomaly. Slow.
    #[arg(long)]
    detect_anomaly: bool,
    /// Clamp every gradient element to [-v, v].
    #[arg(long)]
    clip_value: Option<f32>,
    /// Loss: cross_entropy, bce_with_logits, mse, l1, "smooth_l1:beta=1.0",
    /// "huber:delta=1.0" (all but cross_entropy against one-hot targets).
    #[arg(long, default_value = "cross_entropy")]
    loss: String,
    /// L1 penalty coefficient: adds l1·Σ|w| over every parameter, biases included (unless
    /// --no-decay exempts them), to the training loss.
    #[arg(long, default_value_t = 0.0)]
    l1: f32,
    /// L2 penalty coefficient: adds l2·Σw² over every parameter, biases included (unless
    /// --no-decay exempts them), to the training loss (distinct from --weight-decay,
    /// which acts in the optimizer).
    #[arg(long, default_value_t = 0.0)]
    l2: f32,
    /// Cross-entropy label smoothing.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Weight initialisation of linear and conv layers, e.g. kaiming_normal,
    /// "kaiming_uniform:mode=fan_out,nonlinearity=relu", xavier_uniform, orthogonal,
    /// "normal:std=0.02"; default: PyTorch's per-layer defaults.
    #[arg(long, default_value = "default")]
    init_scheme: String,
    /// Learning-rate schedule, PyTorch's with its arguments: constant,
    /// "step:step_size=30,gamma=0.1", "multistep:milestones=30;80,gamma=0.1",
    /// "exponential:gamma=0.95", "cosine:t_max=50,eta_min=0",
    /// "cosine_restarts:t_0=10,t_mult=2", "cyclic:base_lr=0.001,max_lr=0.1,step_size_up=2000,mode=triangular2",
    /// "onecycle:max_lr=0.1,total_steps=2350", "plateau:factor=0.5,patience=3".
    /// Cyclic and one-cycle step per batch, the others per epoch.
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Linear warm-up over this many scheduler steps (from --warmup-start-factor x lr).
    #[arg(long)]
    warmup: Option<usize>,
    /// Starting factor of the warm-up (PyTorch's LinearLR default 1/3).
    #[arg(long, default_value_t = 1.0 / 3.0)]
    warmup_start_factor: f32,
    /// Exempt these from weight decay: "bias", "norm", "prelu" (PReLU's slopes, which
    /// PyTorch's documentation advises not to decay), or several, "bias,norm".
    #[arg(long, value_delimiter = ',')]
    no_decay: Vec<String>,
    /// Hold out this fraction of the training set for validation.
    #[arg(long)]
    val_split: Option<f32>,
    /// Stop after this many epochs without validation improvement (needs --val-split),
    /// restoring the best weights.
    #[arg(long)]
    early_stop: Option<usize>,
    /// The smallest change that counts as an improvement for --early-stop.
    #[arg(long, default_value_t = 0.0)]
    min_delta: f32,
    /// What --early-stop watches: val_loss or val_accuracy.
    #[arg(long, default_value = "val_loss")]
    monitor: String,
    /// Write a checkpoint (safetensors: model tensors under PyTorch names, optimizer
    /// state, metadata) at the end of training.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Also write the --save checkpoint every N epochs during training.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Continue the run saved in this checkpoint exactly (weights, optimizer state, step,
    /// schedule, data position); pass the same hyperparameters.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop after this many optimizer steps in all.
    #[arg(long)]
    steps: Option<u64>,
    /// Write one JSON object per step (step, epoch, loss, lr, grad_norm when clipping) and
    /// per epoch (train_loss, test_loss, test_accuracy, images_per_s) to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Draw training and test loss and test accuracy per epoch (and validation metrics,
    /// and per-step loss with --log) to this .svg or .png file after training.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Feed batches in dataset order.
    #[arg(long)]
    no_shuffle: bool,
    /// Start from the model tensors of a safetensors file with PyTorch names and layouts.
    #[arg(long)]
    init: Option<PathBuf>,
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

/// The optimizer named by `--optimizer` with torch.optim's defaults, overridden by the
/// flags given; a flag the optimizer does not take is an error rather than ignored.
fn optimizer(args: &TrainArgs) -> Result<Optimizer> {
    let mut opt = Optimizer::by_name(&args.optimizer)?;
    let mut used: Vec<&str> = Vec::new();
    match &mut opt {
        Optimizer::Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } => {
            set(momentum, args.momentum, "--momentum", &mut used);
            set(dampening, args.dampening, "--dampening", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
            *nesterov = args.nesterov;
            used.push("--nesterov");
        }
        Optimizer::Adam {
            betas,
            eps,
            weight_decay,
            amsgrad,
            decoupled,
        } => {
            set_betas(betas, args, &mut used)?;
            set(eps, args.eps, "--eps", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
            *amsgrad = args.amsgrad;
            used.push("--amsgrad");
            // torch.optim.Adam takes decoupled_weight_decay; AdamW is always decoupled and
            // does not.
            if !*decoupled {
                *decoupled = args.decoupled_weight_decay;
                used.push("--decoupled-weight-decay");
            }
        }
        Optimizer::Adagrad {
            lr_decay,
            weight_decay,
            initial_accumulator_value,
            eps,
        } => {
            set(lr_decay, args.lr_decay, "--lr-decay", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
            set(
                initial_accumulator_value,
                args.initial_accumulator_value,
                "--initial-accumulator-value",
                &mut used,
            );
            set(eps, args.eps, "--eps", &mut used);
        }
        Optimizer::RmsProp {
            alpha,
            eps,
            weight_decay,
            momentum,
            centered,
        } => {
            set(alpha, args.alpha, "--alpha", &mut used);
            set(eps, args.eps, "--eps", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
            set(momentum, args.momentum, "--momentum", &mut used);
            *centered = args.centered;
            used.push("--centered");
        }
        Optimizer::Adadelta {
            rho,
            eps,
            weight_decay,
        } => {
            set(rho, args.rho, "--rho", &mut used);
            set(eps, args.eps, "--eps", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
        }
        Optimizer::Adamax {
            betas,
            eps,
            weight_decay,
        } => {
            set_betas(betas, args, &mut used)?;
            set(eps, args.eps, "--eps", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
        }
        Optimizer::NAdam {
            betas,
            eps,
            weight_decay,
            momentum_decay,
            decoupled,
        } => {
            set_betas(betas, args, &mut used)?;
            set(eps, args.eps, "--eps", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
            set(
                momentum_decay,
                args.momentum_decay,
                "--momentum-decay",
                &mut used,
            );
            *decoupled = args.decoupled_weight_decay;
            used.push("--decoupled-weight-decay");
        }
        Optimizer::RAdam {
            betas,
            eps,
            weight_decay,
            decoupled,
        } => {
            set_betas(betas, args, &mut used)?;
            set(eps, args.eps, "--eps", &mut used);
            set(weight_decay, args.weight_decay, "--weight-decay", &mut used);
            *decoupled = args.decoupled_weight_decay;
            used.push("--decoupled-weight-decay");
        }
    }
    let given = [
        ("--momentum", args.momentum.is_some()),
        ("--dampening", args.dampening.is_some()),
        ("--nesterov", args.nesterov),
        ("--betas", args.betas.is_some()),
        ("--eps", args.eps.is_some()),
        ("--weight-decay", args.weight_decay.is_some()),
        ("--amsgrad", args.amsgrad),
        ("--lr-decay", args.lr_decay.is_some()),
        (
            "--initial-accumulator-value",
            args.initial_accumulator_value.is_some(),
        ),
        ("--alpha", args.alpha.is_some()),
        ("--centered", args.centered),
        ("--rho", args.rho.is_some()),
        ("--momentum-decay", args.momentum_decay.is_some()),
        ("--decoupled-weight-decay", args.decoupled_weight_decay),
    ];
    if let Some((flag, _)) = given.iter().find(|(f, g)| *g && !used.contains(f)) {
        return Err(Error::Config(format!(
            "{flag} does not apply to --optimizer {}",
            args.optimizer
        )));
    }
    opt.validate()?;
    Ok(opt)
}

/// Overrides the default betas with `--betas` and records that the optimizer takes it.
fn set_betas(betas: &mut (f32, f32), args: &TrainArgs, used: &mut Vec<&str>) -> Result<()> {
    if let Some(b) = &args.betas {
        *betas = parse_betas(b)?;
    }
    used.push("--betas");
    Ok(())
}

/// Overrides a default with a flag's value and records that the optimizer takes the flag.
fn set<'a>(field: &mut f32, value: Option<f32>, flag: &'a str, used: &mut Vec<&'a str>) {
    if let Some(v) = value {
        *field = v;
    }
    used.push(flag);
}

/// The early-stopping rule of `--early-stop`, `--min-delta` and `--monitor`.
fn early_stopping(args: &TrainArgs) -> Result<Option<EarlyStopping>> {
    let Some(patience) = args.early_stop else {
        return Ok(None);
    };
    let monitor = match args.monitor.as_str() {
        "val_loss" => Monitor::ValLoss,
        "val_accuracy" | "val_acc" => Monitor::ValAccuracy,
        other => {
            return Err(Error::Config(format!(
                "--monitor takes val_loss or val_accuracy, got '{other}'"
            )))
        }
    };
    Ok(Some(EarlyStopping {
        patience: patience.max(1),
        min_delta: args.min_delta,
        monitor,
    }))
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
    let optimizer = optimizer(&args)?;
    let mut config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr.unwrap_or(optimizer.default_lr()),
        seed: args.seed,
        optimizer,
        clip: Clip {
            max_norm: args.clip_norm,
            max_value: args.clip_value,
            error_if_nonfinite: args.error_if_nonfinite,
        },
        label_smoothing: args.label_smoothing,
        sample: [1, train.rows, train.cols],
        val_split: args.val_split,
        max_steps: args.steps,
        step_events: args.log.is_some(),
        max_skips: args.max_skips,
        detect_anomaly: args.detect_anomaly,
        shuffle: !args.no_shuffle,
        checkpoint_every: match (&args.save, args.checkpoint_every) {
            (Some(path), Some(every)) => Some((path.clone(), every)),
            (None, Some(_)) => {
                return Err(Error::Config("--checkpoint-every needs --save FILE".into()))
            }
            _ => None,
        },
        loss: args.loss.parse()?,
        penalty: Penalty {
            l1: args.l1,
            l2: args.l2,
        },
        schedule: parse_schedule(&args.schedule)?,
        warmup: args.warmup.map(|steps| Warmup {
            steps,
            start_factor: args.warmup_start_factor,
        }),
        no_decay: args.no_decay.clone(),
        early_stopping: early_stopping(&args)?,
        init: kiln::nn::parse_init(&args.init_scheme)?,
        ..TrainConfig::default()
    };
    let (backend, precision) = select_backend_for(args.backend, args.precision)?;
    config.precision = precision;
    println!("backend: {} ({precision})", backend.describe());
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
    if let Some(path) = &args.init {
        let ckpt = Checkpoint::read(path)?;
        trainer.load_weights(&ckpt, &path.display().to_string())?;
        println!("initialised from {}", path.display());
    }
    if let Some(path) = &args.resume {
        let ckpt = Checkpoint::read(path)?;
        trainer.resume(&ckpt, &path.display().to_string())?;
        println!("resumed {} at step {}", path.display(), trainer.steps());
    }
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
        .map_err(|e| Error::Config(e.to_string()))?
        .progress_chars("=> ");
    let mut bar = ProgressBar::hidden();
    let mut last_loss = f32::NAN;
    let mut log = match &args.log {
        Some(path) => Some(crate::log::JsonLog::create(path)?),
        None => None,
    };
    let mut log_error: Option<Error> = None;
    if let Some(path) = &args.plot {
        kiln::report::plot::Format::of(path)?;
    }
    let mut curves = kiln::report::plot::Curves::default();
    let fitted = trainer.fit(&train, &test, &mut |event| {
        if let Some(l) = log.as_mut() {
            if let Err(e) = l.write(event) {
                log_error.get_or_insert(e);
            }
        }
        curves.observe(event);
        match event {
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
            let val = match (r.val_loss, r.val_accuracy) {
                (Some(l), Some(a)) => format!(", val loss {l:.4}, val acc {:.2}%", 100.0 * a),
                _ => String::new(),
            };
            let scale = r.loss_scale.map_or(String::new(), |s| {
                format!(", loss scale {}, {} skipped", s.scale, s.skipped)
            });
            println!(
                "epoch {}/{}: lr {:.3e}, train loss {:.4}, train acc {:.2}%{val}, test loss {:.4}, test acc {:.2}%, {:.0} img/s ({:.1} s){scale}",
                r.epoch,
                config.epochs,
                r.lr,
                r.train_loss,
                100.0 * r.train_accuracy,
                r.test_loss,
                100.0 * r.test_accuracy,
                r.images_per_s,
                r.seconds
            );
        }
        Event::Restored {
            epoch,
            test_loss,
            test_accuracy,
        } => println!(
            "early stopping: restored the weights of epoch {epoch} (test loss {test_loss:.4}, test acc {:.2}%)",
            100.0 * test_accuracy
        ),
        Event::Step { .. } => {}
        }
    });
    if let Err(Error::NonFinite(why)) = fitted {
        return Err(Error::NonFinite(format!(
            "{why}; {}",
            last_good_checkpoint(&args)
        )));
    }
    fitted?;
    if let Some(e) = log_error {
        return Err(e);
    }
    if let Some(path) = &args.plot {
        kiln::report::plot::draw(&curves, path)?;
        println!("plotted {}", path.display());
    }
    if trainer.skipped_steps() > 0 {
        println!(
            "{} steps were skipped for non-finite gradients",
            trainer.skipped_steps()
        );
    }
    if let Some(path) = &args.save {
        trainer.checkpoint()?.write(path)?;
        println!("saved {}", path.display());
    }
    Ok(())
}

/// Where the last good weights are after a run stopped on non-finite values: the periodic
/// checkpoint is written only at the end of a finite epoch and is never overwritten by the
/// failed one.
fn last_good_checkpoint(args: &TrainArgs) -> String {
    match (&args.save, args.checkpoint_every) {
        (Some(path), Some(_)) if path.exists() => format!(
            "the last good checkpoint is kept in {} (resume with --resume)",
            path.display()
        ),
        (Some(path), Some(_)) => format!(
            "no checkpoint was reached before the failure; {} was not written",
            path.display()
        ),
        _ => "nothing was saved: use --save FILE --checkpoint-every N to keep the last \
              good epoch"
            .to_string(),
    }
}
