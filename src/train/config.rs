//! The configuration of a training run.

use crate::error::{Error, Result};
use crate::nn::{Init, InitScheme};
use crate::optim::schedule::{Schedule, Warmup};
use crate::optim::{Clip, Optimizer};

use super::early_stop::EarlyStopping;
use super::objective::{Loss, Penalty};

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
    /// Parameter kinds exempt from weight decay: `bias` (every `*.bias`), `norm` (the
    /// weights and biases of batch, layer and group norms) and `prelu` (PReLU's slopes).
    /// They form a second parameter group.
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
    /// Skip updates whose gradients hold NaN or infinities (tested on the device; one
    /// float read back per step) and stop after more than this many in a row, as AMP's
    /// GradScaler skips steps.
    pub max_skips: Option<u64>,
    /// Test every op's output for NaN and infinities on the device and stop at the first
    /// one, naming the op and its layer (`torch.autograd.detect_anomaly`); the update of
    /// that step is not applied. Slow: one extra pass over every value.
    pub detect_anomaly: bool,
    /// f32, or f16 mixed precision (f16 activations, f32 master weights, dynamic loss
    /// scaling).
    pub precision: crate::precision::Precision,
    /// Emit [`Event::Step`](crate::train::Event::Step) after every step (for logs; costs one readback per step).
    pub step_events: bool,
    /// Fuse each product's bias add, and a relu, sigmoid or tanh after it, into the
    /// product's epilogue ([`fuse`](crate::graph::fuse)), saving a pass over every linear
    /// and conv output and one over every such activation. In f32 the results are
    /// bit-identical either way; `false` plans the ops separately, for comparisons.
    pub fuse: bool,
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
            fuse: true,
            max_skips: None,
            detect_anomaly: false,
            precision: crate::precision::Precision::F32,
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
        // PyTorch's optimizers accept 0 (nothing moves but the running statistics).
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(format!(
                "learning rate must be >= 0 and finite, got {}",
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
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label smoothing must be in [0, 1], got {}",
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
        let kinds = ["bias", "norm", "prelu"];
        if let Some(k) = self.no_decay.iter().find(|k| !kinds.contains(&k.as_str())) {
            return bad(format!(
                "no-decay group kinds are bias, norm and prelu, got '{k}'"
            ));
        }
        self.optimizer.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_zero_is_accepted_as_pytorch_accepts_it() {
        let with = |lr: f32| {
            TrainConfig {
                lr,
                ..TrainConfig::default()
            }
            .validate()
        };
        assert!(with(0.0).is_ok());
        assert!(with(1e-3).is_ok());
        for bad in [-1e-3, f32::INFINITY, f32::NAN] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_smoothing_takes_pytorchs_closed_range() {
        let with = |e: f32| {
            TrainConfig {
                label_smoothing: e,
                ..TrainConfig::default()
            }
            .validate()
        };
        for ok in [0.0, 0.1, 1.0] {
            assert!(with(ok).is_ok(), "{ok}");
        }
        for bad in [-0.01, 1.01, f32::NAN] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }
}
