//! Learning-rate schedules with the semantics of `torch.optim.lr_scheduler`, computed on
//! the host. The trainer asks [`LrScheduler::lr`] for the rate of the next optimizer step,
//! writes it into the per-step uniform, and calls [`LrScheduler::step`] (or
//! [`LrScheduler::step_metric`]) at the stepping unit it chose.
//!
//! # Stepping model
//!
//! A scheduler holds a step counter `t` that starts at 0, which is PyTorch's `last_epoch`
//! right after a scheduler is constructed; each `step` adds one. Every schedule except
//! ReduceLROnPlateau is a pure function of `t` (PyTorch's `_get_closed_form_lr`), so a
//! checkpoint needs only the counter to resume, and the values agree with PyTorch's
//! recursive `get_lr` up to the last bits of an f64. Arithmetic is done in f64, as Python
//! floats are, with the operations in PyTorch's order; hyperparameters given as f32 are read
//! as the shortest decimal that prints as them (`0.95f32` is used as the Python float
//! `0.95`, not as `0.949999988…`), because powers such as γ^t amplify that difference
//! beyond f32 precision.
//!
//! # Warm-up
//!
//! A [`Warmup`] is PyTorch's `LinearLR(start_factor, end_factor=1.0, total_iters=steps)`
//! chained with the schedule, and both read the same counter, as in
//! `ChainedScheduler([LinearLR(..), schedule])`: lr(t) = factor(t) · schedule(t), with
//! factor(t) = start + (1 − start) · min(t, steps) / steps. The schedule is therefore not
//! delayed by the warm-up (that would be `SequentialLR`); a cosine with `t_max = 50` and a
//! 5-step warm-up still reaches `eta_min` at t = 50. For the multiplicative schedules
//! (Constant, Step, MultiStep, Exponential) that product is exactly what PyTorch's chain
//! gives; for the others PyTorch's result depends on the order of the chain, and kiln keeps
//! the product because it does not.

use std::collections::HashSet;
use std::f64::consts::PI;

use crate::error::{Error, Result};

/// How the learning rate evolves with the scheduler's step counter.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The base learning rate at every step (`ConstantLR` with factor 1).
    Constant,
    /// `StepLR`: base · γ^⌊t / step_size⌋.
    Step {
        /// Steps between two decays (>= 1).
        step_size: usize,
        /// Multiplicative decay (PyTorch default 0.1).
        gamma: f32,
    },
    /// `MultiStepLR`: base · γ^(number of milestones ≤ t), a repeated milestone counting
    /// as many times as it appears (PyTorch keeps them in a `Counter`).
    MultiStep {
        /// Steps at which the rate decays, in any order.
        milestones: Vec<usize>,
        /// Multiplicative decay (PyTorch default 0.1).
        gamma: f32,
    },
    /// `ExponentialLR`: base · γ^t.
    Exponential {
        /// Multiplicative decay per step.
        gamma: f32,
    },
    /// `CosineAnnealingLR` in its documented closed form
    /// eta_min + (base − eta_min)(1 + cos(π·t / t_max)) / 2. Past `t_max` the curve goes on
    /// with period 2·t_max, climbing back to the base rate, as PyTorch's recursive form also
    /// does; pick `t_max` equal to the run's length, or use `CosineWarmRestarts`, to avoid it.
    Cosine {
        /// Half-period of the cosine in steps (>= 1).
        t_max: usize,
        /// Lowest learning rate (PyTorch default 0).
        eta_min: f32,
    },
    /// `CosineAnnealingWarmRestarts`: a cosine from base to `eta_min` over T_i steps, then a
    /// restart at the base rate with T_i multiplied by `t_mult`.
    CosineWarmRestarts {
        /// Length of the first period in steps (>= 1).
        t_0: usize,
        /// Growth factor of the period after each restart (>= 1, PyTorch default 1).
        t_mult: usize,
        /// Lowest learning rate (PyTorch default 0).
        eta_min: f32,
    },
    /// `CyclicLR`, stepped per batch. It ignores the scheduler's base rate and cycles
    /// between its own `base_lr` and `max_lr`, as PyTorch's overrides the optimizer's lr.
    /// PyTorch's momentum cycling (`cycle_momentum`) is not part of this host-side schedule.
    Cyclic {
        /// Lower bound of the cycle.
        base_lr: f32,
        /// Upper bound of the cycle (reached only by the triangular mode's first cycle).
        max_lr: f32,
        /// Steps from `base_lr` up to the peak (>= 1, PyTorch default 2000).
        step_size_up: usize,
        /// Steps from the peak back down; `None` means `step_size_up`.
        step_size_down: Option<usize>,
        /// How the amplitude shrinks from cycle to cycle.
        mode: CyclicMode,
        /// The base of `ExpRange`'s γ^t (PyTorch default 1); unused by the other modes.
        gamma: f32,
    },
    /// `OneCycleLR`, stepped per batch. It ignores the scheduler's base rate: it starts at
    /// max_lr / div_factor, rises to `max_lr` at step pct_start·total_steps − 1 and anneals
    /// to max_lr / (div_factor·final_div_factor) at step total_steps − 1. PyTorch raises
    /// once stepped more than `total_steps` times; here the rate stays at the value of step
    /// total_steps − 1 from then on (so step `total_steps` itself, which PyTorch computes by
    /// extrapolating the last phase and no optimizer step of a `total_steps`-batch run
    /// uses, is clamped as well). Momentum cycling is not part of this schedule.
    OneCycle {
        /// Peak learning rate.
        max_lr: f32,
        /// Number of steps of the whole cycle (>= 1).
        total_steps: usize,
        /// Fraction of the cycle spent rising, in [0, 1] (PyTorch default 0.3).
        pct_start: f32,
        /// Shape of each phase (PyTorch default cosine).
        anneal: Anneal,
        /// initial_lr = max_lr / div_factor (PyTorch default 25).
        div_factor: f32,
        /// min_lr = initial_lr / final_div_factor (PyTorch default 1e4).
        final_div_factor: f32,
        /// fast.ai's variant: up to max_lr, back down to initial_lr, then down to min_lr.
        three_phase: bool,
    },
    /// `ReduceLROnPlateau`: multiplies the rate by `factor` once a metric passed to
    /// [`LrScheduler::step_metric`] has not improved for more than `patience` calls.
    ReduceOnPlateau {
        /// Whether a lower (loss) or a higher (accuracy) metric is an improvement.
        mode: PlateauMode,
        /// Multiplicative decay, in [0, 1) (PyTorch default 0.1).
        factor: f32,
        /// Non-improving calls tolerated before a reduction (PyTorch default 10).
        patience: usize,
        /// Minimum change that counts as an improvement (PyTorch default 1e-4).
        threshold: f32,
        /// Whether `threshold` is relative to the best value or absolute.
        threshold_mode: ThresholdMode,
        /// Calls after a reduction during which non-improving calls are not counted.
        cooldown: usize,
        /// Floor of the learning rate (PyTorch default 0).
        min_lr: f32,
        /// A reduction smaller than this is skipped (PyTorch default 1e-8).
        eps: f32,
    },
}

/// The amplitude policy of [`Schedule::Cyclic`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CyclicMode {
    /// The same amplitude every cycle.
    #[default]
    Triangular,
    /// The amplitude halves after every cycle.
    Triangular2,
    /// The amplitude is scaled by γ^t at step t.
    ExpRange,
}

/// The shape of each phase of [`Schedule::OneCycle`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anneal {
    /// Half a cosine from the phase's start value to its end value.
    #[default]
    Cos,
    /// A straight line from the phase's start value to its end value.
    Linear,
}

/// Which direction of the metric counts as an improvement for [`Schedule::ReduceOnPlateau`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    #[default]
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How [`Schedule::ReduceOnPlateau`]'s threshold is applied to the best value so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better means beyond best·(1 ∓ threshold).
    #[default]
    Rel,
    /// Better means beyond best ∓ threshold.
    Abs,
}

impl Schedule {
    /// `OneCycleLR(max_lr, total_steps)` with PyTorch's defaults: pct_start 0.3, cosine
    /// annealing, div_factor 25, final_div_factor 1e4, two phases.
    pub fn one_cycle(max_lr: f32, total_steps: usize) -> Self {
        Schedule::OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            anneal: Anneal::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }

    /// `CyclicLR(base_lr, max_lr)` with PyTorch's defaults: 2000 steps up, as many down,
    /// triangular, γ 1.
    pub fn cyclic(base_lr: f32, max_lr: f32) -> Self {
        Schedule::Cyclic {
            base_lr,
            max_lr,
            step_size_up: 2000,
            step_size_down: None,
            mode: CyclicMode::Triangular,
            gamma: 1.0,
        }
    }

    /// `ReduceLROnPlateau()` with PyTorch's defaults: min mode, factor 0.1, patience 10,
    /// relative threshold 1e-4, no cooldown, min_lr 0, eps 1e-8.
    pub fn plateau() -> Self {
        Schedule::ReduceOnPlateau {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }

    /// The schedule's name in [`parse_schedule`]'s syntax.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Step { .. } => "step",
            Schedule::MultiStep { .. } => "multistep",
            Schedule::Exponential { .. } => "exponential",
            Schedule::Cosine { .. } => "cosine",
            Schedule::CosineWarmRestarts { .. } => "cosine_restarts",
            Schedule::Cyclic { .. } => "cyclic",
            Schedule::OneCycle { .. } => "onecycle",
            Schedule::ReduceOnPlateau { .. } => "plateau",
        }
    }

    /// Whether the schedule is meant to be stepped after every batch (OneCycle and Cyclic,
    /// as PyTorch documents them) rather than after every epoch.
    pub fn per_batch(&self) -> bool {
        matches!(self, Schedule::OneCycle { .. } | Schedule::Cyclic { .. })
    }

    /// The rate at step `t` for every schedule but ReduceOnPlateau, whose rate is state
    /// (for it this returns `base`).
    fn closed_form(&self, base: f64, t: u64) -> f64 {
        let tf = t as f64;
        match *self {
            Schedule::Constant | Schedule::ReduceOnPlateau { .. } => base,
            Schedule::Step { step_size, gamma } => {
                base * decimal(gamma).powf((t / step_size as u64) as f64)
            }
            Schedule::MultiStep {
                ref milestones,
                gamma,
            } => {
                let passed = milestones.iter().filter(|&&m| m as u64 <= t).count();
                base * decimal(gamma).powf(passed as f64)
            }
            Schedule::Exponential { gamma } => base * decimal(gamma).powf(tf),
            Schedule::Cosine { t_max, eta_min } => {
                let eta_min = decimal(eta_min);
                eta_min + (base - eta_min) * (1.0 + (PI * tf / t_max as f64).cos()) / 2.0
            }
            Schedule::CosineWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => {
                let (t_cur, t_i) = restart_position(t, t_0 as u64, t_mult as u64);
                let eta_min = decimal(eta_min);
                eta_min + (base - eta_min) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
            }
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                gamma,
            } => {
                let (base_lr, max_lr) = (decimal(base_lr), decimal(max_lr));
                let up = step_size_up as f64;
                let total = up + step_size_down.map_or(up, |d| d as f64);
                let step_ratio = up / total;
                let cycle = (1.0 + tf / total).floor();
                let x = 1.0 + tf / total - cycle;
                let scale_factor = if x <= step_ratio {
                    x / step_ratio
                } else {
                    (x - 1.0) / (step_ratio - 1.0)
                };
                let base_height = (max_lr - base_lr) * scale_factor;
                let scale = match mode {
                    CyclicMode::Triangular => 1.0,
                    CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
                    CyclicMode::ExpRange => decimal(gamma).powf(tf),
                };
                base_lr + base_height * scale
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal,
                div_factor,
                final_div_factor,
                three_phase,
            } => {
                let max_lr = decimal(max_lr);
                let initial_lr = max_lr / decimal(div_factor);
                let min_lr = initial_lr / decimal(final_div_factor);
                let (total, pct_start) = (total_steps as f64, decimal(pct_start));
                // (end_step, start_lr, end_lr) of each phase, as PyTorch lists them.
                let two = [
                    (pct_start * total - 1.0, initial_lr, max_lr),
                    (total - 1.0, max_lr, min_lr),
                ];
                let three = [
                    (pct_start * total - 1.0, initial_lr, max_lr),
                    (2.0 * pct_start * total - 2.0, max_lr, initial_lr),
                    (total - 1.0, initial_lr, min_lr),
                ];
                let phases: &[(f64, f64, f64)] = if three_phase { &three } else { &two };
                // Clamped so that stepping past the end holds the final rate.
                let step_num = t.min((total_steps as u64).saturating_sub(1)) as f64;
                let mut start_step = 0.0;
                let mut lr = min_lr;
                for (i, &(end_step, start_lr, end_lr)) in phases.iter().enumerate() {
                    if step_num <= end_step || i == phases.len() - 1 {
                        let pct = (step_num - start_step) / (end_step - start_step);
                        lr = match anneal {
                            Anneal::Cos => {
                                end_lr + (start_lr - end_lr) / 2.0 * ((PI * pct).cos() + 1.0)
                            }
                            Anneal::Linear => (end_lr - start_lr) * pct + start_lr,
                        };
                        break;
                    }
                    start_step = end_step;
                }
                lr
            }
        }
    }
}

/// (T_cur, T_i) after `t` steps of `CosineWarmRestarts`, in integers so that no rounding
/// of PyTorch's float `log` shortcut can misplace a restart.
fn restart_position(t: u64, t_0: u64, t_mult: u64) -> (u64, u64) {
    if t_mult == 1 {
        return (t % t_0, t_0);
    }
    let (mut t_cur, mut t_i) = (t, t_0);
    while t_cur >= t_i {
        t_cur -= t_i;
        t_i = t_i.saturating_mul(t_mult);
    }
    (t_cur, t_i)
}

/// PyTorch's `LinearLR(start_factor, end_factor=1.0, total_iters=steps)`, chained with the
/// schedule on the same step counter (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup {
    /// Steps over which the factor ramps up to 1 (>= 1).
    pub steps: usize,
    /// Factor at step 0, in (0, 1] (PyTorch default 1/3).
    pub start_factor: f32,
}

impl Warmup {
    /// A warm-up over `steps` steps from PyTorch's default start factor 1/3.
    pub fn new(steps: usize) -> Self {
        Warmup {
            steps,
            start_factor: 1.0 / 3.0,
        }
    }

    /// LinearLR's checks: a start factor in (0, 1] and at least one step.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(config("warmup: steps must be >= 1, got 0".into()));
        }
        if !(self.start_factor > 0.0 && self.start_factor <= 1.0) {
            return Err(config(format!(
                "warmup: start_factor must be in (0, 1], got {}",
                self.start_factor
            )));
        }
        Ok(())
    }

    /// The multiplier at step `t`.
    fn factor(&self, t: u64) -> f64 {
        let start = decimal(self.start_factor);
        let steps = self.steps as u64;
        start + (1.0 - start) * t.min(steps) as f64 / steps as f64
    }
}

/// ReduceLROnPlateau's mutable state.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Plateau {
    lr: f64,
    best: f64,
    num_bad_epochs: u64,
    cooldown_counter: u64,
}

/// A schedule, an optional warm-up and the counters that place them in time.
#[derive(Clone, Debug)]
pub struct LrScheduler {
    base_lr: f64,
    schedule: Schedule,
    warmup: Option<Warmup>,
    t: u64,
    plateau: Plateau,
}

/// Everything a checkpoint needs to resume a scheduler exactly, as plain data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SchedulerState {
    /// Scheduler steps taken so far (PyTorch's `last_epoch`).
    pub steps: u64,
    /// The rate [`LrScheduler::lr`] returned when the state was taken; `restore` checks it
    /// so that a checkpoint cannot silently resume under a different schedule.
    pub lr: f32,
    /// ReduceLROnPlateau: its current rate before warm-up, in full precision (other
    /// schedules ignore the plateau fields).
    pub plateau_lr: f64,
    /// ReduceLROnPlateau: the best metric so far (±∞ before the first).
    pub best: f64,
    /// ReduceLROnPlateau: consecutive non-improving calls counted so far.
    pub num_bad_epochs: u64,
    /// ReduceLROnPlateau: calls left in the current cooldown.
    pub cooldown_counter: u64,
}

impl LrScheduler {
    /// A scheduler at step 0. Fails with [`Error::Config`] naming the first invalid argument.
    pub fn new(base_lr: f32, schedule: Schedule, warmup: Option<Warmup>) -> Result<Self> {
        if !(base_lr.is_finite() && base_lr >= 0.0) {
            return Err(config(format!(
                "base_lr must be a finite number >= 0, got {base_lr}"
            )));
        }
        schedule.validate()?;
        if let Some(w) = &warmup {
            w.validate()?;
        }
        let base_lr = decimal(base_lr);
        let best = match schedule {
            Schedule::ReduceOnPlateau {
                mode: PlateauMode::Max,
                ..
            } => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        };
        Ok(LrScheduler {
            base_lr,
            schedule,
            warmup,
            t: 0,
            plateau: Plateau {
                lr: base_lr,
                best,
                num_bad_epochs: 0,
                cooldown_counter: 0,
            },
        })
    }

    /// The learning rate for the next optimizer step.
    pub fn lr(&self) -> f32 {
        self.lr_with(self.t, &self.plateau) as f32
    }

    /// Advances one scheduler step. For ReduceOnPlateau this moves the counter (and so the
    /// warm-up) without judging any metric; use [`LrScheduler::step_metric`] for it.
    pub fn step(&mut self) {
        self.t = self.t.saturating_add(1);
    }

    /// Advances one step after a validation `metric`: ReduceLROnPlateau judges it exactly as
    /// PyTorch's `step(metrics)` does (a NaN never improves); other schedules ignore it.
    pub fn step_metric(&mut self, metric: f32) {
        self.step();
        if let Schedule::ReduceOnPlateau {
            mode,
            factor,
            patience,
            threshold,
            threshold_mode,
            cooldown,
            min_lr,
            eps,
        } = self.schedule
        {
            // PyTorch's float(tensor) widens the f32 exactly, unlike the decimal reading of
            // hyperparameters.
            let current = f64::from(metric);
            let threshold = decimal(threshold);
            let p = &mut self.plateau;
            let better = match (mode, threshold_mode) {
                (PlateauMode::Min, ThresholdMode::Rel) => current < p.best * (1.0 - threshold),
                (PlateauMode::Min, ThresholdMode::Abs) => current < p.best - threshold,
                (PlateauMode::Max, ThresholdMode::Rel) => current > p.best * (threshold + 1.0),
                (PlateauMode::Max, ThresholdMode::Abs) => current > p.best + threshold,
            };
            if better {
                p.best = current;
                p.num_bad_epochs = 0;
            } else {
                p.num_bad_epochs = p.num_bad_epochs.saturating_add(1);
            }
            if p.cooldown_counter > 0 {
                p.cooldown_counter -= 1;
                p.num_bad_epochs = 0;
            }
            if p.num_bad_epochs > patience as u64 {
                let new_lr = (p.lr * decimal(factor)).max(decimal(min_lr));
                if p.lr - new_lr > decimal(eps) {
                    p.lr = new_lr;
                }
                p.cooldown_counter = cooldown as u64;
                p.num_bad_epochs = 0;
            }
        }
    }

    /// Whether the schedule is meant to be stepped per batch rather than per epoch.
    pub fn per_batch(&self) -> bool {
        self.schedule.per_batch()
    }

    /// Scheduler steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The schedule being followed.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The warm-up, if any.
    pub fn warmup(&self) -> Option<Warmup> {
        self.warmup
    }

    /// The state to store in a checkpoint.
    pub fn state(&self) -> SchedulerState {
        SchedulerState {
            steps: self.t,
            lr: self.lr(),
            plateau_lr: self.plateau.lr,
            best: self.plateau.best,
            num_bad_epochs: self.plateau.num_bad_epochs,
            cooldown_counter: self.plateau.cooldown_counter,
        }
    }

    /// Resumes from a checkpointed state. Nothing changes unless the state is consistent
    /// with this scheduler's configuration, including the rate it recorded.
    pub fn restore(&mut self, s: &SchedulerState) -> Result<()> {
        let plateau = match self.schedule {
            Schedule::ReduceOnPlateau {
                patience, cooldown, ..
            } => {
                if !(s.plateau_lr.is_finite() && s.plateau_lr >= 0.0) {
                    return Err(config(format!(
                        "restore: plateau_lr must be a finite number >= 0, got {}",
                        s.plateau_lr
                    )));
                }
                if s.best.is_nan() {
                    return Err(config("restore: best is NaN".into()));
                }
                // step_metric resets the counter once it exceeds patience and only ever
                // counts the cooldown down from `cooldown`.
                if s.num_bad_epochs > patience as u64 {
                    return Err(config(format!(
                        "restore: num_bad_epochs {} exceeds patience {patience}",
                        s.num_bad_epochs
                    )));
                }
                if s.cooldown_counter > cooldown as u64 {
                    return Err(config(format!(
                        "restore: cooldown_counter {} exceeds cooldown {cooldown}",
                        s.cooldown_counter
                    )));
                }
                Plateau {
                    lr: s.plateau_lr,
                    best: s.best,
                    num_bad_epochs: s.num_bad_epochs,
                    cooldown_counter: s.cooldown_counter,
                }
            }
            _ => self.plateau,
        };
        let lr = self.lr_with(s.steps, &plateau) as f32;
        if lr.to_bits() != s.lr.to_bits() {
            return Err(config(format!(
                "restore: lr {} in the state differs from {lr}, this schedule's rate at step {}; \
                 the state was saved under a different schedule",
                s.lr, s.steps
            )));
        }
        self.t = s.steps;
        self.plateau = plateau;
        Ok(())
    }

    /// The rate at step `t` in f64, given the plateau state.
    fn lr_with(&self, t: u64, plateau: &Plateau) -> f64 {
        let scheduled = match self.schedule {
            Schedule::ReduceOnPlateau { .. } => plateau.lr,
            ref s => s.closed_form(self.base_lr, t),
        };
        match &self.warmup {
            Some(w) => scheduled * w.factor(t),
            None => scheduled,
        }
    }
}

/// The f64 of the shortest decimal that reads back as `v`, i.e. the Python float a PyTorch
/// user would have written.
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

fn config(message: String) -> Error {
    Error::Config(message)
}

mod parse;
mod validate;

pub use parse::{parse_schedule, SCHEDULE_NAMES};

#[cfg(test)]
mod tests;
