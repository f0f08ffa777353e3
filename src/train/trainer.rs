//! The trainer: builds the training and evaluation plans of a model, feeds batches and
//! reads back metrics.

use std::collections::HashMap;
use std::time::Instant;

mod fit;
mod persist;

pub use super::config::TrainConfig;
use super::early_stop::{Tracker, Verdict};
use super::objective::{objective, one_hot, Objective};
use super::state_dict::{load_model_tensors, model_tensors};
use crate::backend::{Backend, LossScale, PlanId, Tail, METRIC_CORRECT, METRIC_LOSS};
use crate::checkpoint::{Checkpoint, Tensor};
use crate::data::{Batcher, Dataset};
use crate::error::{Error, Result};
use crate::graph::{fuse_for_plan, gradients, ParamEntry, ParamLayout, Plan, Slot, ValueId};
use crate::nn::{Init, Layer, Mode, Model};
use crate::optim::schedule::{LrScheduler, PlateauMode, Schedule, SchedulerState};
use crate::optim::StepScalars;
use crate::shape::Shape;
pub use persist::Evaluation;

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
        /// The learning rate of the step's schedule, as PyTorch's `param_group['lr']`
        /// (Adagrad decays it further by its `lr_decay` inside the step).
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
    /// The scheduled learning rate of the epoch's last step (as [`Event::Step`]'s).
    pub lr: f32,
    /// Seconds spent training in this epoch.
    pub seconds: f64,
    /// With f16 precision: the loss scale at the epoch's end and the steps skipped so far
    /// for non-finite gradients (GradScaler's state).
    pub loss_scale: Option<LossScale>,
}

/// A compiled plan and its batch size.
#[derive(Clone, Copy, Debug)]
struct Compiled {
    id: PlanId,
    /// Where an evaluation plan leaves its predicted classes.
    predictions: Option<Slot>,
    /// Length of its activation arena, in f32 units.
    activations: usize,
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
    /// Updates skipped for non-finite gradients, in all and in a row.
    skipped: u64,
    consecutive_skips: u64,
    /// One-hot targets of the current batch (for losses that read them), reused.
    targets: Vec<f32>,
    /// With `detect_anomaly`: for each training plan, what each of its steps computes.
    sites: HashMap<PlanId, Sites>,
}

/// What the steps of a training plan compute, for naming the first non-finite one.
struct Sites {
    /// "op -> shape in layer" for each step.
    names: Vec<String>,
    /// The index of the first step of the backward pass.
    first_backward: usize,
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
        let layout = ParamLayout::grouped_in(&graph.graph, &exempt, config.precision);
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
            sites: HashMap::new(),
            epoch: 0,
            batch_in_epoch: 0,
            skipped: 0,
            consecutive_skips: 0,
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
        if self.config.fuse {
            // After differentiation, so that every reader of a product is known.
            fuse_for_plan(&mut graph, &outputs, &grads)?;
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
            check_finite: training && self.config.detect_anomaly,
        };
        let id = self.backend.compile(&plan, tail)?;
        if training && self.config.detect_anomaly {
            let names = plan
                .steps
                .iter()
                .map(|s| {
                    let label = &graph.node(s.node).label;
                    let layer = if label.is_empty() {
                        "the objective"
                    } else {
                        label
                    };
                    format!("{} -> {} in {layer}", s.op.name(), s.shape)
                })
                .collect();
            // Backward nodes are created after the loss, so their ids are larger.
            let first_backward = plan
                .steps
                .iter()
                .position(|s| s.node > fg.total)
                .unwrap_or(plan.steps.len());
            self.sites.insert(
                id,
                Sites {
                    names,
                    first_backward,
                },
            );
        }
        let predictions = if training {
            None
        } else {
            plan.output_slot(fg.predictions)
        };
        let c = Compiled {
            id,
            predictions,
            activations: plan.activations_size,
        };
        self.plans.insert((training, batch), c);
        Ok(c)
    }

    /// Bytes of the activation arena of the training (`training`) or evaluation plan for
    /// batches of `batch`, once it is compiled (the first batch of that size compiles it):
    /// the memory a step needs beyond the parameters, gradients and optimizer state.
    pub fn activation_bytes(&self, training: bool, batch: usize) -> Option<usize> {
        self.plans
            .get(&(training, batch))
            .map(|c| c.activations * std::mem::size_of::<f32>())
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
        // The schedule's rate (PyTorch's `param_group['lr']`), not Adagrad's decayed one.
        self.last_lr = self.scheduler.lr();
        self.run_plan(c.id, images, labels, &scalars)?;
        // f16 models skip steps on the device (GradScaler); the host reads whether this one
        // was, so that a skipped step does not advance the optimizer's step count (Adam's
        // bias corrections), as in PyTorch. One float per step.
        let scaled = self.config.precision.is_half();
        if self.config.detect_anomaly {
            if let Some(index) = self.backend.read_anomaly(c.id)? {
                // The device skipped the update if the anomaly reached the gradients.
                let applied = self.backend.read_grad_norm_sq()?.is_finite();
                let sites = self.sites.get(&c.id);
                let in_backward = sites.is_some_and(|s| index >= s.first_backward);
                // An overflow of a loss-scaled backward pass is GradScaler's business: the
                // step was skipped and the scale backs off (counted below), not an anomaly.
                if !(scaled && in_backward && !applied) {
                    if !applied {
                        self.step -= 1;
                    }
                    let site = sites
                        .and_then(|s| s.names.get(index))
                        .map_or("an unknown op", String::as_str);
                    return Err(Error::NonFinite(format!(
                        "anomaly detected at step {}: op #{index} ({site}) produced the first \
                         NaN or infinity; the update was {}applied",
                        self.step + u32::from(!applied),
                        if applied { "" } else { "not " }
                    )));
                }
            }
        }
        let error_if_nonfinite =
            self.config.clip.error_if_nonfinite && self.config.clip.max_norm.is_some();
        if !(self.config.max_skips.is_some() || error_if_nonfinite || scaled) {
            return Ok(());
        }
        // One float read back: the gradient norm the device computed (and tested by its
        // bits before skipping the update).
        let norm_sq = self.backend.read_grad_norm_sq()?;
        if norm_sq.is_finite() {
            self.consecutive_skips = 0;
            return Ok(());
        }
        // The update was not applied: like GradScaler, the optimizer's step count does
        // not advance either.
        self.step -= 1;
        self.skipped += 1;
        self.consecutive_skips += 1;
        match self.config.max_skips {
            Some(max) if self.consecutive_skips <= max => Ok(()),
            Some(max) => Err(Error::NonFinite(format!(
                "{} consecutive steps had non-finite gradients (--max-skips {max}); the \
                 last update was not applied",
                self.consecutive_skips
            ))),
            // GradScaler skips without complaint: the loss scale halved for the next step.
            None if scaled && !error_if_nonfinite => Ok(()),
            None => Err(Error::NonFinite(format!(
                "the total gradient norm at step {} is {} (error_if_nonfinite); the update \
                 was not applied",
                self.step + 1,
                norm_sq.sqrt()
            ))),
        }
    }

    /// Steps whose update was skipped because the gradients were not finite.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped
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
        if self.config.max_skips.is_some() || self.config.detect_anomaly {
            // The norm pass runs for its non-finite test; an infinite threshold never clips.
            s.skip_nonfinite = 1;
            if s.max_norm <= 0.0 {
                s.max_norm = f32::INFINITY;
            }
        }
        s
    }
}

/// Whether parameter `name` belongs to the no-decay group (`kinds`: `bias`, `norm`,
/// `prelu`).
fn no_decay(model: &Model, kinds: &[String], name: &str) -> bool {
    let layer = model.layer_of_param(name);
    let is_norm = matches!(
        layer,
        Some(Layer::BatchNorm { .. } | Layer::LayerNorm { .. } | Layer::GroupNorm { .. })
    );
    kinds.iter().any(|k| match k.as_str() {
        "bias" => name.ends_with(".bias"),
        "norm" => is_norm,
        "prelu" => matches!(layer, Some(Layer::PRelu { .. })),
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
    // A spec can ask for more than the machine has: that is an error, not an abort.
    let mut arena = Vec::new();
    arena.try_reserve_exact(size).map_err(|_| {
        Error::Unsupported(format!(
            "the model's {size} values ({:.1} GiB as f32) cannot be allocated",
            size as f64 * 4.0 / f64::from(1u32 << 30)
        ))
    })?;
    arena.resize(size, 0.0f32);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_parameters_of_every_kind_are_exempt_from_decay() {
        let model = Model::parse(
            "conv2d(1,4,3),batchnorm2d(4),groupnorm(2,4),instancenorm2d(4,affine=True),\
             flatten,linear(16,8),layernorm(8),linear(8,2),prelu",
        )
        .unwrap();
        let norm = ["norm".to_string()];
        for name in [
            "1.weight", "1.bias", "2.weight", "2.bias", "3.weight", "6.bias",
        ] {
            assert!(no_decay(&model, &norm, name), "{name}");
        }
        for name in ["0.weight", "0.bias", "5.weight", "7.bias"] {
            assert!(!no_decay(&model, &norm, name), "{name}");
        }
        let bias = ["bias".to_string()];
        assert!(no_decay(&model, &bias, "0.bias") && !no_decay(&model, &bias, "2.weight"));
        let prelu = ["prelu".to_string()];
        assert!(no_decay(&model, &prelu, "8.weight") && !no_decay(&model, &norm, "8.weight"));
        assert!(!no_decay(&model, &prelu, "7.weight"));
    }
}
