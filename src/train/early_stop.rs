//! Early stopping on a validation metric, restoring the best weights (as Keras's
//! `restore_best_weights` and Lightning's `EarlyStopping` do).

/// Which validation metric decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// Lower is better.
    ValLoss,
    /// Higher is better.
    ValAccuracy,
}

/// When to stop: after `patience` epochs without an improvement larger than `min_delta`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    pub min_delta: f32,
    /// The metric watched.
    pub monitor: Monitor,
}

/// The verdict after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The metric improved: keep these weights as the best.
    Improved,
    /// No improvement, but patience is not exhausted.
    Wait,
    /// Patience exhausted: stop and restore the best weights.
    Stop,
}

/// Tracks the best value and the epochs since it.
#[derive(Clone, Debug)]
pub struct Tracker {
    rule: EarlyStopping,
    best: Option<f32>,
    waited: usize,
}

impl Tracker {
    /// A tracker for `rule`.
    pub fn new(rule: EarlyStopping) -> Self {
        Tracker {
            rule,
            best: None,
            waited: 0,
        }
    }

    /// The best value seen.
    pub fn best(&self) -> Option<f32> {
        self.best
    }

    /// Records an epoch's validation loss and accuracy.
    pub fn observe(&mut self, val_loss: f32, val_accuracy: f32) -> Verdict {
        let (value, better) = match self.rule.monitor {
            Monitor::ValLoss => (
                val_loss,
                self.best.is_none_or(|b| val_loss < b - self.rule.min_delta),
            ),
            Monitor::ValAccuracy => (
                val_accuracy,
                self.best
                    .is_none_or(|b| val_accuracy > b + self.rule.min_delta),
            ),
        };
        if better && value.is_finite() {
            self.best = Some(value);
            self.waited = 0;
            return Verdict::Improved;
        }
        self.waited += 1;
        if self.waited >= self.rule.patience {
            Verdict::Stop
        } else {
            Verdict::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_epochs_without_improvement() {
        let mut t = Tracker::new(EarlyStopping {
            patience: 2,
            min_delta: 0.01,
            monitor: Monitor::ValLoss,
        });
        assert_eq!(t.observe(1.0, 0.0), Verdict::Improved);
        assert_eq!(t.observe(0.5, 0.0), Verdict::Improved);
        // 0.495 is better, but not by more than min_delta.
        assert_eq!(t.observe(0.495, 0.0), Verdict::Wait);
        assert_eq!(t.observe(0.6, 0.0), Verdict::Stop);
        assert_eq!(t.best(), Some(0.5));
    }

    #[test]
    fn accuracy_is_maximised_and_nan_never_improves() {
        let mut t = Tracker::new(EarlyStopping {
            patience: 3,
            min_delta: 0.0,
            monitor: Monitor::ValAccuracy,
        });
        assert_eq!(t.observe(9.0, 0.8), Verdict::Improved);
        assert_eq!(t.observe(9.0, 0.7), Verdict::Wait);
        assert_eq!(t.observe(9.0, 0.9), Verdict::Improved);
        let mut n = Tracker::new(EarlyStopping {
            patience: 1,
            min_delta: 0.0,
            monitor: Monitor::ValLoss,
        });
        assert_eq!(n.observe(f32::NAN, 0.0), Verdict::Stop);
    }
}
