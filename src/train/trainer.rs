//! The trainer: builds the training and evaluation plans of a model, feeds batches and
//! reads back metrics.

use std::collections::HashMap;
use std::time::Instant;

use super::early_stop::{EarlyStopping, Tracker, Verdict};
use super::objective::{objective, one_hot, Loss, Objective, Penalty};
use super::state_dict::{load_model_tensors, model_tensors};
use crate::backend::{Backend, PlanId, Tail, METRIC_CORRECT, METRIC_LOSS};
use crate::checkpoint::{Checkpoint, Tensor};
use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::graph::{gradients, ParamEntry, ParamLayout, Plan, Slot, ValueId};
use crate::nn::{Init, InitScheme, Layer, Mode, Model};
use crate::optim::schedule::{LrScheduler, PlateauMode, Schedule, SchedulerState, Warmup};
use crate::optim::{Clip, Optimizer, StepScalars};
use crate::shape::Shape;

/// Everything a training run is configured by.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Epochs over the training set.
    pub epochs: usize,
    /// Mini-batch size (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f32,
    /// Seed for initialisation and shuffling.
    pub seed: u64,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Gradient clipping (by value, then by global L2 norm), inside the optimizer dispatch.
    pub clip: Clip,
    /// Label smoothing of the cross-entropy loss.
    pub label_smoothing: f32,
    /// Shuffle the training set each epoch.
    pub shuffle: bool,
    /// Read the running loss back every this many steps (for progress display).
    pub log_every: usize,
    /// Shape of one input sample: [channels, height, width] (MNIST: [1, 28, 28]).
    pub sample: [usize; 3],
    /// Fraction of the training set held out for validation.
    pub val_split: Option<f32>,
    /// Stop when the validation metric stops improving (needs `val_split`).
    pub early_stopping: Option<EarlyStopping>,
    /// Initialisation of the weights (rank ≥ 2) of linear and conv layers; `Default`
    /// keeps PyTorch's per-layer defaults.
    pub init: InitScheme,
    /// Per-parameter initialisers by state_dict name, which take precedence.
    pub init_overrides: Vec<(String, Init)>,
    /// Parameter kinds exempt from weight decay: `bias` (every `*.bias`) and `norm` (the
    /// weights and biases of batch and layer norms). They form a second parameter group.
    pub no_decay: Vec<String>,
    /// Learning-rate factor of the no-decay group.
    pub no_decay_lr_scale: f32,
    /// The loss minimised.
    pub loss: Loss,
    /// L1/L2 penalties on the weights, added to the training loss (not to the reported
    /// loss); the no-decay group is exempt from them too.
    pub penalty: Penalty,
    /// Learning-rate schedule (stepped per batch for cyclic and one-cycle, per epoch for
    /// the others, as PyTorch's are; reduce-on-plateau watches the validation loss, or the
    /// training loss without a validation split).
    pub schedule: Schedule,
    /// Linear warm-up over the first scheduler steps, composed with the schedule.
    pub warmup: Option<Warmup>,
    /// Stop after this many optimizer steps in all (a resumed run counts the steps
    /// taken before the checkpoint).
    pub max_steps: Option<u64>,
    /// Write a checkpoint to this file every this many epochs (atomically, so a crash
    /// leaves the previous one).
    pub checkpoint_every: Option<(std::path::PathBuf, usize)>,
    /// Emit [`Event::Step`] after every step (for logs; costs one readback per step).
    pub step_events: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 128,
            lr: 1e-3,
            seed: 0,
            optimizer: Optimizer::adamw(),
            clip: Clip::default(),
            label_smoothing: 0.0,
            shuffle: true,
            log_every: 20,
            sample: [1, 28, 28],
            val_split: None,
            early_stopping: None,
            init: InitScheme::Default,
            init_overrides: Vec::new(),
            no_decay: Vec::new(),
            no_decay_lr_scale: 1.0,
            schedule: Schedule::Constant,
            warmup: None,
            max_steps: None,
            checkpoint_every: None,
            step_events: false,
            loss: Loss::CrossEntropy,
            penalty: Penalty::default(),
        }
    }
}

impl TrainConfig {
    /// Checks every value against its domain.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.batch_size == 0 {
            return bad("batch size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate must be positive and finite, got {}",
                self.lr
            ));
        }
        for (name, v) in [
            ("clip norm", self.clip.max_norm),
            ("clip value", self.clip.max_value),
        ] {
            if let Some(c) = v {
                if !(c.is_finite() && c > 0.0) {
                    return bad(format!("{name} must be positive and finite, got {c}"));
                }
            }
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if self.label_smoothing != 0.0 && self.loss != Loss::CrossEntropy {
            return bad(format!(
                "label smoothing applies to cross_entropy, not {}",
                self.loss
            ));
        }
        for (name, v) in [("l1", self.penalty.l1), ("l2", self.penalty.l2)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} penalty must be >= 0, got {v}"));
            }
        }
        if let Some(k) = self.no_decay.iter().find(|k| *k != "bias" && *k != "norm") {
            return bad(format!("no-decay group kinds are bias and norm, got '{k}'"));
        }
        self.optimizer.validate()
    }
}

/// Progress of a run, for display.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An epoch started.
    EpochStart {
        /// Epoch number, from 1.
        epoch: usize,
        /// Batches in it.
        batches: usize,
    },
    /// A batch finished; `loss` is the mean training loss of the epoch so far when it was
    /// read back on this batch.
    Batch {
        /// Batches done in this epoch.
        done: usize,
        /// Mean loss so far, when read back.
        loss: Option<f32>,
        /// Training images per second so far in this epoch.
        images_per_s: f64,
    },
    /// An optimizer step finished (only with `TrainConfig::step_events`, which costs a
    /// readback per step).
    Step {
        /// Steps taken in all.
        step: u32,
        /// The epoch, from 1.
        epoch: usize,
        /// This batch's mean loss.
        loss: f32,
        /// The learning rate the step used.
        lr: f32,
        /// The global gradient norm before clipping, when clipping by norm.
        grad_norm: Option<f32>,
    },
    /// An epoch finished and was evaluated.
    EpochEnd(EpochReport),
    /// Early stopping restored the weights of `epoch`, which score this on the test set.
    Restored {
        /// The epoch whose weights were restored.
        epoch: usize,
        /// Test loss with them.
        test_loss: f32,
        /// Test accuracy with them.
        test_accuracy: f32,
    },
}

/// What one epoch achieved.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over its batches.
    pub train_loss: f32,
    /// Training accuracy (on the fly, in training mode).
    pub train_accuracy: f32,
    /// Validation loss, with a validation split.
    pub val_loss: Option<f32>,
    /// Validation accuracy, with a validation split.
    pub val_accuracy: Option<f32>,
    /// Test loss.
    pub test_loss: f32,
    /// Test accuracy.
    pub test_accuracy: f32,
    /// Training throughput (images per second of training, evaluation excluded).
    pub images_per_s: f64,
    /// The learning rate of the epoch's last step.
    pub lr: f32,
    /// Seconds spent training in this epoch.
    pub seconds: f64,
}

/// What [`Trainer::evaluate_detailed`] measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per image.
    pub loss: f32,
    /// Fraction classified correctly.
    pub accuracy: f32,
    /// `confusion[true class][predicted class]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// A compiled plan and its batch size.
#[derive(Clone, Copy, Debug)]
struct Compiled {
    id: PlanId,
    /// Where an evaluation plan leaves its predicted classes.
    predictions: Option<Slot>,
}

/// Trains a model on a backend.
pub struct Trainer {
    backend: Box<dyn Backend>,
    model: Model,
    layout: ParamLayout,
    config: TrainConfig,
    features: usize,
    classes: usize,
    plans: HashMap<(bool, usize), Compiled>,
    step: u32,
    /// First element of the no-decay parameter group.
    tail_start: usize,
    scheduler: LrScheduler,
    /// The learning rate of the last step taken.
    last_lr: f32,
    /// Epochs completed.
    epoch: usize,
    /// Batches taken in the epoch in progress.
    batch_in_epoch: usize,
    /// One-hot targets of the current batch (for losses that read them), reused.
    targets: Vec<f32>,
}

impl Trainer {
    /// Parses the model, initialises its parameters (seeded, as PyTorch's defaults) and
    /// makes them resident on the backend.
    pub fn new(mut backend: Box<dyn Backend>, spec: &str, config: &TrainConfig) -> Result<Self> {
        config.validate()?;
        let model = Model::parse(spec)?;
        let features = config.sample.iter().product();
        let graph = build_objective(&model, 1, config, Mode::Train)?;
        let classes = graph.classes;
        let exempt = |name: &str| no_decay(&model, &config.no_decay, name);
        let layout = ParamLayout::grouped(&graph.graph, &exempt);
        let tail_start = layout.tail_start(&exempt);
        let params = initial_values(
            &graph.graph.params(),
            &layout.entries,
            layout.size,
            config,
            0,
        )?;
        // Buffers draw from streams of their own, so adding one leaves parameters unchanged.
        let buffers = initial_values(
            &graph.graph.buffers(),
            &layout.buffers,
            layout.buffers_size,
            config,
            1 << 16,
        )?;
        backend.init_model(&layout, &params, &buffers, Some(config.optimizer))?;
        Ok(Trainer {
            backend,
            model,
            layout,
            config: config.clone(),
            features,
            classes,
            plans: HashMap::new(),
            step: 0,
            tail_start,
            scheduler: LrScheduler::new(config.lr, config.schedule.clone(), config.warmup)?,
            last_lr: config.lr,
            targets: Vec::new(),
            epoch: 0,
            batch_in_epoch: 0,
        })
    }

    /// The backend's description.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The parameter layout (names, shapes, offsets).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The learning rate the next optimizer step uses.
    pub fn lr(&self) -> f32 {
        self.scheduler.lr()
    }

    /// Number of optimizer steps taken.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Reads the parameter arena back.
    pub fn params(&mut self) -> Result<Vec<f32>> {
        self.backend.read_params()
    }

    /// The backend, for inspection in tests and tools.
    pub fn backend_mut(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.features() != self.features {
            return Err(Error::shape(
                format!("dataset '{}'", data.name),
                format!(
                    "images of {}x{} = {} values do not fit the model's input {:?} ({} values)",
                    data.rows,
                    data.cols,
                    data.features(),
                    self.config.sample,
                    self.features
                ),
            ));
        }
        if data.classes > self.classes {
            return Err(Error::shape(
                format!("dataset '{}'", data.name),
                format!(
                    "{} classes but the model has {} outputs",
                    data.classes, self.classes
                ),
            ));
        }
        Ok(())
    }

    fn plan(&mut self, training: bool, batch: usize) -> Result<Compiled> {
        if let Some(c) = self.plans.get(&(training, batch)) {
            return Ok(*c);
        }
        let mode = if training { Mode::Train } else { Mode::Eval };
        let fg = build_objective(&self.model, batch, &self.config, mode)?;
        let mut graph = fg.graph;
        let grads = if training {
            gradients(&mut graph, fg.total)?
        } else {
            Vec::new()
        };
        let mut outputs = vec![fg.loss, fg.correct];
        outputs.extend(&fg.updates);
        if !training {
            outputs.push(fg.predictions);
        }
        let plan = Plan::build(&graph, &self.layout, &outputs, &grads)?;
        let slot = |v| {
            plan.output_slot(v)
                .ok_or_else(|| Error::Graph("planned output missing".into()))
        };
        let tail = Tail {
            // The loss is a batch mean: weighted by the batch size, the accumulator holds the
            // sum over images, so a partial last batch counts for what it is.
            accumulate: vec![
                (slot(fg.loss)?, METRIC_LOSS, batch as f32),
                (slot(fg.correct)?, METRIC_CORRECT, 1.0),
            ],
            update: training,
        };
        let id = self.backend.compile(&plan, tail)?;
        let predictions = if training {
            None
        } else {
            plan.output_slot(fg.predictions)
        };
        let c = Compiled { id, predictions };
        self.plans.insert((training, batch), c);
        Ok(c)
    }

    /// One optimizer step on a batch given as `pixel/255` images `[n, features]` and f32 class
    /// indices `[n]`. The loss and correct count are added to the backend's accumulators.
    pub fn train_batch(&mut self, images: &[f32], labels: &[f32]) -> Result<()> {
        let n = labels.len();
        if n == 0 || images.len() != n * self.features {
            return Err(Error::shape(
                "train_batch",
                format!(
                    "{} image values for {n} labels of {} features",
                    images.len(),
                    self.features
                ),
            ));
        }
        if let Some(bad) = labels
            .iter()
            .find(|&&l| !(l >= 0.0 && (l as usize) < self.classes && l.fract() == 0.0))
        {
            return Err(Error::Config(format!(
                "label {bad} is not a class index below {}",
                self.classes
            )));
        }
        let c = self.plan(true, n)?;
        let scalars = self.scalars_for(self.step + 1);
        if !(scalars.lr.is_finite() && scalars.lr >= 0.0) {
            return Err(Error::NonFinite(format!(
                "the learning rate for step {} is {}",
                self.step + 1,
                scalars.lr
            )));
        }
        self.step += 1;
        self.last_lr = scalars.lr;
        self.run_plan(c.id, images, labels, &scalars)?;
        if self.config.clip.error_if_nonfinite && self.config.clip.max_norm.is_some() {
            let norm_sq = self.backend.read_grad_norm_sq()?;
            if !norm_sq.is_finite() {
                return Err(Error::NonFinite(format!(
                    "the total gradient norm at step {} is {} (error_if_nonfinite); the \
                     update was not applied",
                    self.step,
                    norm_sq.sqrt()
                )));
            }
        }
        Ok(())
    }

    /// Runs a plan on a batch, adding one-hot targets when the loss reads them.
    fn run_plan(
        &mut self,
        id: PlanId,
        images: &[f32],
        labels: &[f32],
        s: &StepScalars,
    ) -> Result<()> {
        if self.config.loss.one_hot() {
            let mut targets = std::mem::take(&mut self.targets);
            one_hot(labels, self.classes, &mut targets);
            let r = self.backend.run(id, &[images, labels, &targets], s);
            self.targets = targets;
            r
        } else {
            self.backend.run(id, &[images, labels], s)
        }
    }

    fn scalars(&self) -> StepScalars {
        self.scalars_for(self.step)
    }

    /// The per-step scalars for optimizer step `step`.
    fn scalars_for(&self, step: u32) -> StepScalars {
        let mut s = self.config.optimizer.scalars(
            self.scheduler.lr(),
            step,
            self.config.clip,
            self.layout.size,
        );
        s.seed_lo = self.config.seed as u32;
        s.seed_hi = (self.config.seed >> 32) as u32;
        if !self.config.no_decay.is_empty() {
            s = s.with_tail_group(self.tail_start, self.config.no_decay_lr_scale, 0.0);
        }
        s
    }

    /// Trains for `config.epochs` epochs, evaluating on `test` after each. With
    /// `config.val_split`, that fraction of `train` is held out and evaluated each epoch;
    /// with `config.early_stopping` as well, training stops when the monitored validation
    /// metric has not improved for `patience` epochs, and the best weights are restored.
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: &Dataset,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<Vec<EpochReport>> {
        self.check_data(train)?;
        self.check_data(test)?;
        let split;
        let (train, val) = match self.config.val_split {
            Some(f) => {
                split = train.split(f, self.config.seed)?;
                (&split.0, Some(&split.1))
            }
            None => (train, None),
        };
        let mut tracker = match (self.config.early_stopping, val) {
            (Some(rule), Some(_)) => Some(Tracker::new(rule)),
            (Some(_), None) => {
                return Err(Error::Config(
                    "early stopping needs a validation split (--val-split)".into(),
                ))
            }
            _ => None,
        };
        let mut best: Option<(usize, Vec<f32>, Vec<f32>)> = None;
        let mut reports = Vec::new();
        let mut batcher = Batcher::new(
            train,
            self.config.batch_size,
            self.config.shuffle,
            self.config.seed,
        )?;
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let mut stopped = false;
        for epoch in (self.epoch + 1)..=self.config.epochs {
            batcher.start_epoch(epoch - 1);
            // A resumed run continues mid-epoch: the batches already taken are skipped.
            for _ in 0..self.batch_in_epoch {
                batcher.next_indices();
            }
            let batches = batcher.batches_per_epoch();
            on_event(&Event::EpochStart { epoch, batches });
            self.backend.reset_metrics()?;
            let start = Instant::now();
            let (mut done, mut seen) = (0usize, 0usize);
            let mut loss_sum_before = 0.0f32;
            while let Some(n) = batcher.next_batch(&mut images, &mut labels) {
                self.train_batch(&images, &labels)?;
                if self.config.step_events {
                    // One readback per step: the accumulated loss·batch tells this batch's loss.
                    let sum = self.backend.read_metrics()?[METRIC_LOSS];
                    let clipping = self.config.clip.max_norm.is_some();
                    on_event(&Event::Step {
                        step: self.step,
                        epoch,
                        loss: (sum - loss_sum_before) / n as f32,
                        lr: self.last_lr,
                        grad_norm: if clipping {
                            Some(self.backend.read_grad_norm_sq()?.sqrt())
                        } else {
                            None
                        },
                    });
                    loss_sum_before = sum;
                }
                self.batch_in_epoch += 1;
                if self.scheduler.per_batch() {
                    self.scheduler.step();
                }
                done += 1;
                seen += n;
                if self
                    .config
                    .max_steps
                    .is_some_and(|max| u64::from(self.step) >= max)
                {
                    stopped = true;
                }
                let loss = if done % self.config.log_every.max(1) == 0 || done == batches {
                    Some(self.backend.read_metrics()?[METRIC_LOSS] / seen as f32)
                } else {
                    None
                };
                let images_per_s = seen as f64 / start.elapsed().as_secs_f64().max(1e-9);
                on_event(&Event::Batch {
                    done,
                    loss,
                    images_per_s,
                });
                if stopped {
                    break;
                }
            }
            let complete = self.batch_in_epoch >= batches;
            if complete {
                self.epoch = epoch;
                self.batch_in_epoch = 0;
            }
            let m = self.backend.read_metrics()?;
            let seconds = start.elapsed().as_secs_f64();
            let validation = match val {
                Some(v) => Some(self.evaluate(v)?),
                None => None,
            };
            let (test_loss, test_accuracy) = self.evaluate(test)?;
            let report = EpochReport {
                epoch,
                train_loss: m[METRIC_LOSS] / seen.max(1) as f32,
                train_accuracy: m[METRIC_CORRECT] / seen.max(1) as f32,
                val_loss: validation.map(|v| v.0),
                val_accuracy: validation.map(|v| v.1),
                test_loss,
                test_accuracy,
                images_per_s: seen as f64 / seconds.max(1e-9),
                lr: self.last_lr,
                seconds,
            };
            if complete && !self.scheduler.per_batch() {
                match &self.config.schedule {
                    // Mode min watches a loss, mode max an accuracy, validation when there
                    // is a split.
                    Schedule::ReduceOnPlateau { mode, .. } => {
                        let metric = match mode {
                            PlateauMode::Min => report.val_loss.unwrap_or(report.train_loss),
                            PlateauMode::Max => {
                                report.val_accuracy.unwrap_or(report.train_accuracy)
                            }
                        };
                        self.scheduler.step_metric(metric)
                    }
                    _ => self.scheduler.step(),
                }
            }
            on_event(&Event::EpochEnd(report.clone()));
            reports.push(report);
            if let (Some(t), Some((vl, va))) = (tracker.as_mut(), validation) {
                match t.observe(vl, va) {
                    Verdict::Improved => {
                        best = Some((
                            epoch,
                            self.backend.read_params()?,
                            self.backend.read_buffers()?,
                        ));
                    }
                    Verdict::Wait => {}
                    Verdict::Stop => break,
                }
            }
            if let Some((path, every)) = self.config.checkpoint_every.clone() {
                if complete && epoch % every.max(1) == 0 {
                    self.checkpoint()?.write(&path)?;
                }
            }
            if stopped {
                break;
            }
        }
        if let Some((epoch, params, buffers)) = best {
            // Reports count this session's epochs; `epoch` is absolute (a run may resume).
            if Some(epoch) != reports.last().map(|r| r.epoch) {
                self.backend.write_params(&params)?;
                self.backend.write_buffers(&buffers)?;
                let (test_loss, test_accuracy) = self.evaluate(test)?;
                on_event(&Event::Restored {
                    epoch,
                    test_loss,
                    test_accuracy,
                });
            }
        }
        Ok(reports)
    }

    /// Loss, accuracy and the confusion matrix (`confusion[true][predicted]`) on a dataset,
    /// in evaluation mode. Reads each batch's predictions back.
    pub fn evaluate_detailed(&mut self, data: &Dataset) -> Result<Evaluation> {
        self.check_data(data)?;
        let mut batcher = Batcher::new(data, self.config.batch_size, false, 0)?;
        let scalars = self.scalars();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let mut confusion = vec![vec![0u64; self.classes]; self.classes];
        self.backend.reset_metrics()?;
        while let Some(n) = batcher.next_batch(&mut images, &mut labels) {
            let c = self.plan(false, n)?;
            self.run_plan(c.id, &images, &labels, &scalars)?;
            let slot = c
                .predictions
                .ok_or_else(|| Error::Graph("evaluation plan without predictions".into()))?;
            let predicted = self.backend.read_slot(c.id, slot)?;
            for (&p, &l) in predicted.iter().zip(&labels) {
                if let Some(cell) = confusion
                    .get_mut(l as usize)
                    .and_then(|r| r.get_mut(p as usize))
                {
                    *cell += 1;
                }
            }
        }
        let m = self.backend.read_metrics()?;
        self.backend.reset_metrics()?;
        let n = data.len as f32;
        Ok(Evaluation {
            loss: m[METRIC_LOSS] / n,
            accuracy: m[METRIC_CORRECT] / n,
            confusion,
        })
    }

    /// The whole training state as a checkpoint: model tensors under PyTorch's names,
    /// optimizer state as `optim.state{k}.{name}`, and metadata (model spec, step count,
    /// learning rate, optimizer, scheduler steps).
    pub fn checkpoint(&mut self) -> Result<Checkpoint> {
        let params = self.backend.read_params()?;
        let buffers = self.backend.read_buffers()?;
        let (mut tensors, ints) =
            model_tensors(&self.layout, &params, &buffers, u64::from(self.step));
        for k in 0..3 {
            if !self.config.optimizer.uses_state(k) {
                continue;
            }
            let state = self.backend.read_state(k)?;
            for e in &self.layout.entries {
                tensors.push(Tensor {
                    name: format!("optim.state{k}.{}", e.name),
                    shape: e.shape.0.clone(),
                    data: state[e.offset..e.offset + e.shape.numel()].to_vec(),
                });
            }
        }
        let mut ckpt = Checkpoint {
            tensors,
            ints,
            ..Checkpoint::default()
        };
        let meta = [
            ("model", self.model.spec.clone()),
            ("step", self.step.to_string()),
            ("lr", self.scheduler.lr().to_string()),
            ("optimizer", format!("{:?}", self.config.optimizer)),
            ("sample", format!("{:?}", self.config.sample)),
            ("seed", self.config.seed.to_string()),
            ("epoch", self.epoch.to_string()),
            ("batch_in_epoch", self.batch_in_epoch.to_string()),
        ];
        let sched = self.scheduler.state();
        let sched_meta = [
            ("scheduler.steps", sched.steps.to_string()),
            ("scheduler.lr", sched.lr.to_string()),
            ("scheduler.plateau_lr", sched.plateau_lr.to_string()),
            ("scheduler.best", sched.best.to_string()),
            ("scheduler.num_bad_epochs", sched.num_bad_epochs.to_string()),
            (
                "scheduler.cooldown_counter",
                sched.cooldown_counter.to_string(),
            ),
        ];
        for (k, v) in meta.into_iter().chain(sched_meta) {
            ckpt.metadata.insert(k.to_string(), v);
        }
        Ok(ckpt)
    }

    /// Continues the run a [`Trainer::checkpoint`] saved: weights, running statistics,
    /// optimizer state, step count, schedule and data position. With the same
    /// configuration, training on from here reproduces the uninterrupted run bit for bit
    /// on the same backend.
    pub fn resume(&mut self, ckpt: &Checkpoint, path: &str) -> Result<()> {
        let meta = |key: &str| -> Result<&str> {
            ckpt.metadata.get(key).map(String::as_str).ok_or_else(|| {
                Error::data(
                    path,
                    format!("no '{key}' in the metadata: not a kiln training checkpoint"),
                )
            })
        };
        fn num<T: std::str::FromStr>(path: &str, key: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| Error::data(path, format!("metadata '{key}' is not a number: '{v}'")))
        }
        if meta("model")? != self.model.spec {
            return Err(Error::data(
                path,
                format!("trained '{}', not '{}'", meta("model")?, self.model.spec),
            ));
        }
        self.load_weights(ckpt, path)?;
        for k in 0..3 {
            if !self.config.optimizer.uses_state(k) {
                continue;
            }
            let mut arena = vec![self.config.optimizer.initial_state(k); self.layout.size];
            for e in &self.layout.entries {
                let name = format!("optim.state{k}.{}", e.name);
                let t = ckpt.tensor(&name).ok_or_else(|| {
                    Error::data(path, format!("no {name}: saved with another optimizer?"))
                })?;
                if t.data.len() != e.shape.numel() {
                    return Err(Error::data(
                        path,
                        format!(
                            "{name} has {} values, expected {}",
                            t.data.len(),
                            e.shape.numel()
                        ),
                    ));
                }
                arena[e.offset..e.offset + t.data.len()].copy_from_slice(&t.data);
            }
            self.backend.write_state(k, &arena)?;
        }
        let field = |key: &str| -> Result<&str> { meta(key) };
        self.step = num(path, "step", field("step")?)?;
        self.epoch = num(path, "epoch", field("epoch")?)?;
        self.batch_in_epoch = num(path, "batch_in_epoch", field("batch_in_epoch")?)?;
        let state = SchedulerState {
            steps: num(path, "scheduler.steps", field("scheduler.steps")?)?,
            lr: num(path, "scheduler.lr", field("scheduler.lr")?)?,
            plateau_lr: num(path, "scheduler.plateau_lr", field("scheduler.plateau_lr")?)?,
            best: num(path, "scheduler.best", field("scheduler.best")?)?,
            num_bad_epochs: num(
                path,
                "scheduler.num_bad_epochs",
                field("scheduler.num_bad_epochs")?,
            )?,
            cooldown_counter: num(
                path,
                "scheduler.cooldown_counter",
                field("scheduler.cooldown_counter")?,
            )?,
        };
        self.scheduler.restore(&state)
    }

    /// Loads the model tensors (parameters and running statistics) of a checkpoint or of
    /// any safetensors file with PyTorch's names and layouts; `path` names it in errors.
    pub fn load_weights(&mut self, ckpt: &Checkpoint, path: &str) -> Result<()> {
        let mut params = self.backend.read_params()?;
        let mut buffers = self.backend.read_buffers()?;
        load_model_tensors(&self.layout, ckpt, &mut params, &mut buffers, path)?;
        self.backend.write_params(&params)?;
        self.backend.write_buffers(&buffers)
    }

    /// Mean loss per image and accuracy on a dataset, in evaluation mode.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<(f32, f32)> {
        self.check_data(data)?;
        let mut batcher = Batcher::new(data, self.config.batch_size, false, 0)?;
        let scalars = self.scalars();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        self.backend.reset_metrics()?;
        while let Some(n) = batcher.next_batch(&mut images, &mut labels) {
            let c = self.plan(false, n)?;
            self.run_plan(c.id, &images, &labels, &scalars)?;
        }
        let m = self.backend.read_metrics()?;
        self.backend.reset_metrics()?;
        let n = data.len as f32;
        Ok((m[METRIC_LOSS] / n, m[METRIC_CORRECT] / n))
    }
}

/// Whether parameter `name` belongs to the no-decay group (`kinds`: `bias`, `norm`).
fn no_decay(model: &Model, kinds: &[String], name: &str) -> bool {
    let layer = name
        .split('.')
        .next()
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| model.layers.get(i));
    let is_norm = matches!(
        layer,
        Some(Layer::BatchNorm { .. } | Layer::LayerNorm { .. })
    );
    kinds.iter().any(|k| match k.as_str() {
        "bias" => name.ends_with(".bias"),
        "norm" => is_norm,
        _ => false,
    })
}

/// An arena filled by each entry's initialiser, entry k drawing from stream `stream0 + k`:
/// a per-parameter override from `config.init_overrides` if there is one, else
/// `config.init` for weights (tensors of rank 2 and more), else the layer's PyTorch default.
fn initial_values(
    items: &[(ValueId, &str, &Shape, Init)],
    entries: &[ParamEntry],
    size: usize,
    config: &TrainConfig,
    stream0: u32,
) -> Result<Vec<f32>> {
    let mut arena = vec![0.0f32; size];
    for (k, (_, name, shape, layer_default)) in items.iter().enumerate() {
        let Some(entry) = entries.iter().find(|e| e.name == *name) else {
            return Err(Error::Graph(format!("{name} is not in the layout")));
        };
        let init = match config.init_overrides.iter().find(|(n, _)| n == name) {
            Some((_, init)) => *init,
            None if shape.rank() >= 2 => config.init.or_layer_default(*layer_default),
            None => *layer_default,
        };
        let n = entry.shape.numel();
        init.fill_shaped(
            &mut arena[entry.offset..entry.offset + n],
            shape.dims(),
            config.seed,
            stream0 + k as u32,
        )
        .map_err(|e| Error::Config(format!("initialising {name}: {e}")))?;
    }
    Ok(arena)
}

/// The objective of `model` under `config` (loss, penalties on the decayed group).
fn build_objective(
    model: &Model,
    batch: usize,
    config: &TrainConfig,
    mode: Mode,
) -> Result<Objective> {
    objective(
        model,
        batch,
        config.sample,
        mode,
        config.loss,
        config.label_smoothing,
        config.penalty,
        &|name: &str| !no_decay(model, &config.no_decay, name),
    )
}
