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
use std::fmt;

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

    /// Checks the arguments where PyTorch checks them, and also where PyTorch would only
    /// fail later with a division by zero or produce a negative or non-finite rate.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        let positive_count = |key: &str, v: usize| {
            if v == 0 {
                Err(config(format!("{name}: {key} must be >= 1, got 0")))
            } else {
                Ok(())
            }
        };
        let non_negative = |key: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(config(format!(
                    "{name}: {key} must be a finite number >= 0, got {v}"
                )))
            }
        };
        let positive = |key: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(config(format!(
                    "{name}: {key} must be a finite number > 0, got {v}"
                )))
            }
        };
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                positive_count("step_size", step_size)?;
                non_negative("gamma", gamma)
            }
            Schedule::MultiStep { gamma, .. } | Schedule::Exponential { gamma } => {
                non_negative("gamma", gamma)
            }
            Schedule::Cosine { t_max, eta_min } => {
                positive_count("t_max", t_max)?;
                non_negative("eta_min", eta_min)
            }
            Schedule::CosineWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => {
                positive_count("t_0", t_0)?;
                positive_count("t_mult", t_mult)?;
                non_negative("eta_min", eta_min)
            }
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                gamma,
                ..
            } => {
                non_negative("base_lr", base_lr)?;
                non_negative("max_lr", max_lr)?;
                // PyTorch divides by step_size_up / total_size, which is zero here.
                positive_count("step_size_up", step_size_up)?;
                if step_size_up
                    .checked_add(step_size_down.unwrap_or(step_size_up))
                    .is_none()
                {
                    return Err(config(format!(
                        "{name}: step_size_up + step_size_down overflows"
                    )));
                }
                non_negative("gamma", gamma)
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                ..
            } => {
                non_negative("max_lr", max_lr)?;
                positive_count("total_steps", total_steps)?;
                if !(0.0..=1.0).contains(&pct_start) {
                    return Err(config(format!(
                        "{name}: pct_start must be in [0, 1], got {pct_start}"
                    )));
                }
                positive("div_factor", div_factor)?;
                positive("final_div_factor", final_div_factor)
            }
            Schedule::ReduceOnPlateau {
                factor,
                threshold,
                min_lr,
                eps,
                ..
            } => {
                if !(0.0..1.0).contains(&factor) {
                    return Err(config(format!(
                        "{name}: factor must be in [0, 1), got {factor}"
                    )));
                }
                non_negative("threshold", threshold)?;
                non_negative("min_lr", min_lr)?;
                non_negative("eps", eps)
            }
        }
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

/// The names [`parse_schedule`] accepts.
pub const SCHEDULE_NAMES: [&str; 9] = [
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "onecycle",
    "plateau",
];

/// Parses the command-line syntax `name[:key=value,key=value,...]` (see [`SCHEDULE_NAMES`];
/// list values such as milestones are separated by `;`), filling PyTorch's defaults for the
/// keys left out, then validates the result. Errors name the offending key or value.
///
/// ```
/// use kiln::optim::schedule::{parse_schedule, Schedule};
/// # fn main() -> kiln::Result<()> {
/// let s = parse_schedule("step:step_size=30,gamma=0.1")?;
/// assert_eq!(s, Schedule::Step { step_size: 30, gamma: 0.1 });
/// assert_eq!(parse_schedule(&s.to_string())?, s);
/// # Ok(()) }
/// ```
pub fn parse_schedule(text: &str) -> Result<Schedule> {
    let text = text.trim();
    let (name, args) = match text.split_once(':') {
        Some((name, args)) => (name.trim(), args),
        None => (text, ""),
    };
    if !SCHEDULE_NAMES.contains(&name) {
        return Err(config(format!(
            "schedule: unknown name `{name}` (expected one of {})",
            SCHEDULE_NAMES.join(", ")
        )));
    }
    let mut a = Args::parse(name, args)?;
    let schedule = match name {
        "constant" => Schedule::Constant,
        "step" => Schedule::Step {
            step_size: a.required("step_size")?,
            gamma: a.or("gamma", 0.1)?,
        },
        "multistep" => Schedule::MultiStep {
            milestones: a.milestones()?,
            gamma: a.or("gamma", 0.1)?,
        },
        "exponential" => Schedule::Exponential {
            gamma: a.required("gamma")?,
        },
        "cosine" => Schedule::Cosine {
            t_max: a.required("t_max")?,
            eta_min: a.or("eta_min", 0.0)?,
        },
        "cosine_restarts" => Schedule::CosineWarmRestarts {
            t_0: a.required("t_0")?,
            t_mult: a.or("t_mult", 1)?,
            eta_min: a.or("eta_min", 0.0)?,
        },
        "cyclic" => Schedule::Cyclic {
            base_lr: a.required("base_lr")?,
            max_lr: a.required("max_lr")?,
            step_size_up: a.or("step_size_up", 2000)?,
            step_size_down: a.optional("step_size_down")?,
            mode: a.choice(
                "mode",
                &[
                    ("triangular", CyclicMode::Triangular),
                    ("triangular2", CyclicMode::Triangular2),
                    ("exp_range", CyclicMode::ExpRange),
                ],
            )?,
            gamma: a.or("gamma", 1.0)?,
        },
        "onecycle" => Schedule::OneCycle {
            max_lr: a.required("max_lr")?,
            total_steps: a.required("total_steps")?,
            pct_start: a.or("pct_start", 0.3)?,
            anneal: a.choice(
                "anneal",
                &[("cos", Anneal::Cos), ("linear", Anneal::Linear)],
            )?,
            div_factor: a.or("div_factor", 25.0)?,
            final_div_factor: a.or("final_div_factor", 1e4)?,
            three_phase: a.or("three_phase", false)?,
        },
        _ => Schedule::ReduceOnPlateau {
            mode: a.choice(
                "mode",
                &[("min", PlateauMode::Min), ("max", PlateauMode::Max)],
            )?,
            factor: a.or("factor", 0.1)?,
            patience: a.or("patience", 10)?,
            threshold: a.or("threshold", 1e-4)?,
            threshold_mode: a.choice(
                "threshold_mode",
                &[("rel", ThresholdMode::Rel), ("abs", ThresholdMode::Abs)],
            )?,
            cooldown: a.or("cooldown", 0)?,
            min_lr: a.or("min_lr", 0.0)?,
            eps: a.or("eps", 1e-8)?,
        },
    };
    a.finish()?;
    schedule.validate()?;
    Ok(schedule)
}

/// The `key=value` pairs of one schedule, remembering which keys the schedule asked for so
/// that a key it does not know is reported with the list of those it does.
struct Args<'a> {
    name: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
    known: Vec<&'static str>,
}

impl<'a> Args<'a> {
    fn parse(name: &'a str, args: &'a str) -> Result<Self> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let mut seen = HashSet::new();
        for item in args.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(config(format!(
                    "{name}: `{item}` is not of the form key=value"
                )));
            };
            let key = key.trim();
            if !seen.insert(key) {
                return Err(config(format!("{name}: key `{key}` is given twice")));
            }
            pairs.push((key, value.trim()));
        }
        Ok(Args {
            name,
            pairs,
            known: Vec::new(),
        })
    }

    fn raw(&mut self, key: &'static str) -> Option<&'a str> {
        self.known.push(key);
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    fn value<T: FromText>(&self, key: &str, text: &str) -> Result<T> {
        T::from_text(text).ok_or_else(|| {
            config(format!(
                "{}: {key}={text} is not {}",
                self.name,
                T::DESCRIPTION
            ))
        })
    }

    fn optional<T: FromText>(&mut self, key: &'static str) -> Result<Option<T>> {
        match self.raw(key) {
            Some(text) => self.value(key, text).map(Some),
            None => Ok(None),
        }
    }

    fn or<T: FromText>(&mut self, key: &'static str, default: T) -> Result<T> {
        Ok(self.optional(key)?.unwrap_or(default))
    }

    fn required<T: FromText>(&mut self, key: &'static str) -> Result<T> {
        match self.optional(key)? {
            Some(v) => Ok(v),
            None => Err(config(format!(
                "{}: missing required key `{key}`",
                self.name
            ))),
        }
    }

    /// One of the named `options`; the type's default (PyTorch's) when the key is absent.
    fn choice<T: Copy + Default>(&mut self, key: &'static str, options: &[(&str, T)]) -> Result<T> {
        let Some(text) = self.raw(key) else {
            return Ok(T::default());
        };
        match options.iter().find(|(n, _)| *n == text) {
            Some(&(_, v)) => Ok(v),
            None => {
                let names: Vec<&str> = options.iter().map(|&(n, _)| n).collect();
                Err(config(format!(
                    "{}: {key}={text} is not one of {}",
                    self.name,
                    names.join(", ")
                )))
            }
        }
    }

    fn milestones(&mut self) -> Result<Vec<usize>> {
        let Some(text) = self.raw("milestones") else {
            return Err(config(format!(
                "{}: missing required key `milestones`",
                self.name
            )));
        };
        text.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|m| {
                m.parse().map_err(|_| {
                    config(format!(
                        "{}: milestones={text}: `{m}` is not a non-negative integer",
                        self.name
                    ))
                })
            })
            .collect()
    }

    fn finish(self) -> Result<()> {
        match self.pairs.iter().find(|(k, _)| !self.known.contains(k)) {
            Some((key, _)) if self.known.is_empty() => Err(config(format!(
                "{}: unknown key `{key}` ({} takes no arguments)",
                self.name, self.name
            ))),
            Some((key, _)) => Err(config(format!(
                "{}: unknown key `{key}` (expected one of {})",
                self.name,
                self.known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// A value type of the schedule syntax.
trait FromText: Sized {
    const DESCRIPTION: &'static str;
    fn from_text(text: &str) -> Option<Self>;
}

impl FromText for usize {
    const DESCRIPTION: &'static str = "a non-negative integer";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl FromText for f32 {
    const DESCRIPTION: &'static str = "a finite number";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().filter(|v: &f32| v.is_finite())
    }
}

impl FromText for bool {
    const DESCRIPTION: &'static str = "true or false";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Writes the schedule in [`parse_schedule`]'s syntax with every key spelled out, so that
/// parsing the text gives back an equal schedule.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                write!(f, ":step_size={step_size},gamma={gamma}")
            }
            Schedule::MultiStep { milestones, gamma } => {
                let list: Vec<String> = milestones.iter().map(usize::to_string).collect();
                write!(f, ":milestones={},gamma={gamma}", list.join(";"))
            }
            Schedule::Exponential { gamma } => write!(f, ":gamma={gamma}"),
            Schedule::Cosine { t_max, eta_min } => write!(f, ":t_max={t_max},eta_min={eta_min}"),
            Schedule::CosineWarmRestarts {
                t_0,
                t_mult,
                eta_min,
            } => write!(f, ":t_0={t_0},t_mult={t_mult},eta_min={eta_min}"),
            Schedule::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                gamma,
            } => {
                write!(
                    f,
                    ":base_lr={base_lr},max_lr={max_lr},step_size_up={step_size_up}"
                )?;
                if let Some(down) = step_size_down {
                    write!(f, ",step_size_down={down}")?;
                }
                let mode = match mode {
                    CyclicMode::Triangular => "triangular",
                    CyclicMode::Triangular2 => "triangular2",
                    CyclicMode::ExpRange => "exp_range",
                };
                write!(f, ",mode={mode},gamma={gamma}")
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
                let anneal = match anneal {
                    Anneal::Cos => "cos",
                    Anneal::Linear => "linear",
                };
                write!(
                    f,
                    ":max_lr={max_lr},total_steps={total_steps},pct_start={pct_start},\
                     anneal={anneal},div_factor={div_factor},\
                     final_div_factor={final_div_factor},three_phase={three_phase}"
                )
            }
            Schedule::ReduceOnPlateau {
                mode,
                factor,
                patience,
                threshold,
                threshold_mode,
                cooldown,
                min_lr,
                eps,
            } => {
                let mode = match mode {
                    PlateauMode::Min => "min",
                    PlateauMode::Max => "max",
                };
                let threshold_mode = match threshold_mode {
                    ThresholdMode::Rel => "rel",
                    ThresholdMode::Abs => "abs",
                };
                write!(
                    f,
                    ":mode={mode},factor={factor},patience={patience},threshold={threshold},\
                     threshold_mode={threshold_mode},cooldown={cooldown},min_lr={min_lr},eps={eps}"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of `base` with some fields of its variant replaced (enum variants have no
    /// `..base` syntax).
    macro_rules! tweak {
        ($base:expr, $variant:ident { $($field:ident: $value:expr),* $(,)? }) => {{
            let mut s = $base;
            match &mut s {
                Schedule::$variant { $($field),*, .. } => {
                    $(*$field = $value;)*
                }
                _ => unreachable!("tweak! of the wrong variant"),
            }
            s
        }};
    }

    fn sched(base_lr: f32, schedule: Schedule, warmup: Option<Warmup>) -> LrScheduler {
        LrScheduler::new(base_lr, schedule, warmup).unwrap()
    }

    /// The rates of steps 0..n.
    fn run(s: &mut LrScheduler, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let lr = s.lr();
                s.step();
                lr
            })
            .collect()
    }

    /// Within f32 rounding (2^-24 relative) of a value computed in f64 another way.
    fn assert_close(got: f32, want: f64, what: &str) {
        let tol = 1e-7 * want.abs() + 1e-12;
        assert!(
            (f64::from(got) - want).abs() <= tol,
            "{what}: got {got}, want {want}"
        );
    }

    fn config_error(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn step_lr_matches_recursive_decay_and_spot_values() {
        let got = run(
            &mut sched(
                0.1,
                Schedule::Step {
                    step_size: 30,
                    gamma: 0.1,
                },
                None,
            ),
            100,
        );
        // PyTorch's recursive get_lr: multiply by gamma at every positive multiple of 30.
        let mut want = 0.1f64;
        for (t, &lr) in got.iter().enumerate() {
            if t > 0 && t % 30 == 0 {
                want *= 0.1;
            }
            assert_close(lr, want, &format!("step t={t}"));
        }
        assert_eq!(got[0], 0.1);
        assert_eq!(got[29], 0.1);
        assert_close(got[30], 0.01, "t=30");
        assert_close(got[59], 0.01, "t=59");
        assert_close(got[60], 0.001, "t=60");
        assert_close(got[99], 1e-4, "t=99");
    }

    #[test]
    fn multistep_counts_milestones_in_any_order() {
        let s = Schedule::MultiStep {
            milestones: vec![80, 30],
            gamma: 0.1,
        };
        for (t, &lr) in run(&mut sched(0.05, s, None), 100).iter().enumerate() {
            let want = match t {
                0..=29 => 0.05,
                30..=79 => 0.005,
                _ => 0.0005,
            };
            assert_close(lr, want, &format!("multistep t={t}"));
        }
        // A repeated milestone decays twice, as PyTorch's Counter does.
        let s = Schedule::MultiStep {
            milestones: vec![30, 30, 80],
            gamma: 0.5,
        };
        let got = run(&mut sched(1.0, s, None), 100);
        assert_eq!(
            (got[29], got[30], got[79], got[80]),
            (1.0, 0.25, 0.25, 0.125)
        );
    }

    #[test]
    fn exponential_matches_repeated_multiplication() {
        let got = run(
            &mut sched(0.1, Schedule::Exponential { gamma: 0.95 }, None),
            100,
        );
        // Reading gamma as the f32 0.949999988 instead of 0.95 would drift by 1.2e-6 at
        // t = 99, beyond the tolerance: this also checks the decimal reading.
        let mut want = 0.1f64;
        for (t, &lr) in got.iter().enumerate() {
            assert_close(lr, want, &format!("exponential t={t}"));
            want *= 0.95;
        }
        assert_close(got[1], 0.095, "t=1");
        assert_close(got[2], 0.09025, "t=2");
        assert_close(got[10], 0.059_873_693_923_837_87, "t=10");
    }

    #[test]
    fn cosine_matches_half_angle_form_and_continues_past_t_max() {
        let (base, eta) = (0.1f64, 0.001f64);
        let mut s = sched(
            0.1,
            Schedule::Cosine {
                t_max: 50,
                eta_min: 0.001,
            },
            None,
        );
        let got = run(&mut s, 100);
        for (t, &lr) in got.iter().enumerate() {
            // (1 + cos θ) / 2 = cos²(θ / 2).
            let c = (PI * t as f64 / 100.0).cos();
            assert_close(lr, eta + (base - eta) * c * c, &format!("cosine t={t}"));
        }
        assert_eq!(got[0], 0.1);
        assert_close(got[25], 0.0505, "midpoint at t_max/2");
        assert_close(got[50], 0.001, "eta_min at t_max");
        assert_close(got[75], 0.0505, "midpoint on the way back up");
        assert_close(s.lr(), 0.1, "back at base after 2·t_max");
    }

    #[test]
    fn warm_restarts_follow_pytorchs_incremental_counters() {
        let base = 0.1f64;
        let s = Schedule::CosineWarmRestarts {
            t_0: 10,
            t_mult: 2,
            eta_min: 0.0,
        };
        let got = run(&mut sched(0.1, s, None), 100);
        let (mut t_cur, mut t_i) = (0u32, 10u32);
        for (t, &lr) in got.iter().enumerate() {
            let c = (PI * f64::from(t_cur) / f64::from(2 * t_i)).cos();
            assert_close(lr, base * c * c, &format!("restarts t={t}"));
            t_cur += 1;
            if t_cur >= t_i {
                t_cur -= t_i;
                t_i *= 2;
            }
        }
        for restart in [0, 10, 30, 70] {
            assert_eq!(got[restart], 0.1, "restart at {restart}");
        }
        assert_close(got[5], 0.05, "middle of the first period");
        assert_close(got[20], 0.05, "middle of the second period");
        assert_close(got[50], 0.05, "middle of the third period");
        assert!(got[29] < got[28] && got[28] < got[27]);

        let s = Schedule::CosineWarmRestarts {
            t_0: 10,
            t_mult: 1,
            eta_min: 0.01,
        };
        let got = run(&mut sched(0.1, s, None), 100);
        for t in 0..100 {
            assert_eq!(
                got[t].to_bits(),
                got[t % 10].to_bits(),
                "period 10 at t={t}"
            );
        }
        assert_close(got[5], 0.055, "midpoint with eta_min");
    }

    #[test]
    fn cyclic_triangular_is_a_triangle_wave_from_its_own_bounds() {
        let (lo, hi) = (0.001f64, 0.1f64);
        let s = tweak!(Schedule::cyclic(0.001, 0.1), Cyclic { step_size_up: 10 });
        // The scheduler's base rate (0.5) is ignored, as PyTorch ignores the optimizer's.
        let got = run(&mut sched(0.5, s, None), 100);
        for (t, &lr) in got.iter().enumerate() {
            let p = (t % 20) as f64;
            let frac = if p <= 10.0 {
                p / 10.0
            } else {
                (20.0 - p) / 10.0
            };
            assert_close(lr, lo + (hi - lo) * frac, &format!("triangular t={t}"));
        }
        assert_close(got[0], 0.001, "t=0");
        assert_close(got[10], 0.1, "peak");
        assert_close(got[5], 0.0505, "halfway up");
        assert_close(got[20], 0.001, "end of the first cycle");
    }

    #[test]
    fn cyclic_triangular2_peaks_halve_each_cycle() {
        let s = tweak!(
            Schedule::cyclic(0.001, 0.1),
            Cyclic {
                step_size_up: 10,
                mode: CyclicMode::Triangular2,
            }
        );
        let got = run(&mut sched(0.1, s, None), 100);
        for (k, peak) in [10usize, 30, 50, 70, 90].into_iter().enumerate() {
            let amplitude = 0.099 / f64::from(1u32 << k);
            assert_close(got[peak], 0.001 + amplitude, &format!("peak of cycle {k}"));
            let cycle = &got[peak - 10..peak + 10];
            assert!(
                cycle.iter().all(|&lr| lr <= got[peak]),
                "cycle {k} peaks at {peak}"
            );
        }
        for (t, &lr) in got.iter().enumerate() {
            let p = (t % 20) as f64;
            let frac = if p <= 10.0 {
                p / 10.0
            } else {
                (20.0 - p) / 10.0
            };
            let want = 0.001 + 0.099 * frac / f64::from(1u32 << (t / 20));
            assert_close(lr, want, &format!("triangular2 t={t}"));
        }
    }

    #[test]
    fn cyclic_exp_range_with_asymmetric_sides() {
        let s = Schedule::Cyclic {
            base_lr: 0.01,
            max_lr: 0.2,
            step_size_up: 4,
            step_size_down: Some(6),
            mode: CyclicMode::ExpRange,
            gamma: 0.99,
        };
        let got = run(&mut sched(0.1, s, None), 100);
        for (t, &lr) in got.iter().enumerate() {
            let p = (t % 10) as f64;
            let frac = if p <= 4.0 { p / 4.0 } else { (10.0 - p) / 6.0 };
            let want = 0.01 + 0.19 * frac * 0.99f64.powi(t as i32);
            assert_close(lr, want, &format!("exp_range t={t}"));
        }
        assert_close(got[4], 0.01 + 0.19 * 0.99f64.powi(4), "first peak");
        assert_close(got[7], 0.01 + 0.19 * 0.5 * 0.99f64.powi(7), "halfway down");
    }

    /// end + (start − end)·cos²(π·pct / 2), the half-angle form of PyTorch's cosine phase.
    fn cos_phase(start: f64, end: f64, pct: f64) -> f64 {
        let c = (PI * pct / 2.0).cos();
        end + (start - end) * c * c
    }

    #[test]
    fn one_cycle_two_phases() {
        let (initial, max, min) = (0.1 / 25.0, 0.1, 0.1 / 25.0 / 1e4);
        let mut s = sched(0.7, Schedule::one_cycle(0.1, 100), None);
        let got = run(&mut s, 100);
        for (t, &lr) in got.iter().enumerate() {
            let t = t as f64;
            let want = if t <= 29.0 {
                cos_phase(initial, max, t / 29.0)
            } else {
                cos_phase(max, min, (t - 29.0) / 70.0)
            };
            assert_close(lr, want, &format!("onecycle t={t}"));
        }
        assert_close(got[0], 0.004, "starts at max_lr / 25");
        assert_close(got[29], 0.1, "peaks at pct_start·total − 1");
        assert!(got.iter().all(|&lr| lr <= got[29]));
        assert_close(got[99], 4e-7, "ends at max_lr / 25 / 1e4");
        // Past the end the rate holds at the final value instead of failing.
        assert_eq!(s.lr().to_bits(), got[99].to_bits());
        run(&mut s, 50);
        assert_eq!(s.lr().to_bits(), got[99].to_bits());

        let got = run(&mut sched(0.1, Schedule::one_cycle(0.1, 1000), None), 1000);
        assert_close(got[299], 0.1, "peak of a 1000-step cycle");
        assert!(got[298] < got[299] && got[300] < got[299]);
    }

    #[test]
    fn one_cycle_linear_and_three_phase() {
        let s = tweak!(
            Schedule::one_cycle(1.0, 100),
            OneCycle {
                pct_start: 0.25,
                anneal: Anneal::Linear,
                div_factor: 10.0,
                final_div_factor: 100.0,
            }
        );
        for (t, &lr) in run(&mut sched(0.1, s, None), 100).iter().enumerate() {
            let t = t as f64;
            let want = if t <= 24.0 {
                0.1 + 0.9 * t / 24.0
            } else {
                1.0 - (1.0 - 0.001) * (t - 24.0) / 75.0
            };
            assert_close(lr, want, &format!("linear onecycle t={t}"));
        }

        let s = tweak!(
            Schedule::one_cycle(0.1, 100),
            OneCycle { three_phase: true }
        );
        let got = run(&mut sched(0.1, s, None), 100);
        let (initial, max, min) = (0.004, 0.1, 4e-7);
        for (t, &lr) in got.iter().enumerate() {
            let t = t as f64;
            let want = if t <= 29.0 {
                cos_phase(initial, max, t / 29.0)
            } else if t <= 58.0 {
                cos_phase(max, initial, (t - 29.0) / 29.0)
            } else {
                cos_phase(initial, min, (t - 58.0) / 41.0)
            };
            assert_close(lr, want, &format!("three-phase t={t}"));
        }
        assert_close(got[58], 0.004, "back at initial_lr");
    }

    fn plateau(f: f32, p: usize, c: usize, m: f32) -> Schedule {
        tweak!(
            Schedule::plateau(),
            ReduceOnPlateau {
                factor: f,
                patience: p,
                cooldown: c,
                min_lr: m,
                threshold: 0.1,
            }
        )
    }

    fn feed(s: &mut LrScheduler, metrics: &[f32]) -> Vec<f32> {
        metrics
            .iter()
            .map(|&m| {
                s.step_metric(m);
                s.lr()
            })
            .collect()
    }

    #[test]
    fn plateau_patience_cooldown_and_min_lr_by_hand() {
        let mut s = sched(1.0, plateau(0.5, 2, 1, 0.2), None);
        let got = feed(&mut s, &[10.0; 16]);
        // Call 1 sets best; calls 2-4 are bad and the third bad one (patience + 1) halves
        // the rate; the cooldown swallows the next call; the floor 0.2 stops the third
        // reduction at 0.2 and the fourth changes nothing.
        let want = [
            1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2,
        ];
        assert_eq!(got, want);
        // Without cooldown the reductions come every patience + 1 calls.
        let mut s = sched(1.0, plateau(0.5, 2, 0, 0.0), None);
        let got = feed(&mut s, &[10.0; 10]);
        assert_eq!(got, [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]);
    }

    #[test]
    fn plateau_thresholds_in_every_mode() {
        let with = |m, tm, th| {
            tweak!(
                Schedule::plateau(),
                ReduceOnPlateau {
                    mode: m,
                    threshold_mode: tm,
                    threshold: th,
                    factor: 0.5,
                    patience: 0,
                }
            )
        };
        // Patience 0: every non-improving call halves the rate.
        let cases: [(Schedule, [f32; 4], [f32; 4]); 4] = [
            // 9.5 is not below 10·0.9; 8.9 is; 8.5 is not below 8.9·0.9.
            (
                with(PlateauMode::Min, ThresholdMode::Rel, 0.1),
                [10.0, 9.5, 8.9, 8.5],
                [1.0, 0.5, 0.5, 0.25],
            ),
            // 9.6 is not below 10 − 0.5; 9.4 is; 9.0 is not below 8.9.
            (
                with(PlateauMode::Min, ThresholdMode::Abs, 0.5),
                [10.0, 9.6, 9.4, 9.0],
                [1.0, 0.5, 0.5, 0.25],
            ),
            // 0.52 is not above 0.5·1.1; 0.6 is; 0.65 is not above 0.66.
            (
                with(PlateauMode::Max, ThresholdMode::Rel, 0.1),
                [0.5, 0.52, 0.6, 0.65],
                [1.0, 0.5, 0.5, 0.25],
            ),
            // 0.54 is not above 0.5 + 0.05; 0.56 is; 0.6 is not above 0.61.
            (
                with(PlateauMode::Max, ThresholdMode::Abs, 0.05),
                [0.5, 0.54, 0.56, 0.6],
                [1.0, 0.5, 0.5, 0.25],
            ),
        ];
        for (schedule, metrics, want) in cases {
            let got = feed(&mut sched(1.0, schedule.clone(), None), &metrics);
            assert_eq!(got, want, "{schedule}");
        }
        // A NaN never improves.
        let mut s = sched(1.0, with(PlateauMode::Min, ThresholdMode::Rel, 0.0), None);
        assert_eq!(feed(&mut s, &[1.0, f32::NAN]), [1.0, 0.5]);
        // A reduction smaller than eps is skipped.
        let tiny = tweak!(
            with(PlateauMode::Min, ThresholdMode::Rel, 0.0),
            ReduceOnPlateau { eps: 0.1 }
        );
        assert_eq!(
            feed(&mut sched(0.15, tiny, None), &[1.0, 1.0, 1.0]),
            [0.15, 0.15, 0.15]
        );
    }

    /// A deterministic noisy, slowly improving loss.
    fn metric(t: usize) -> f32 {
        let noise = ((t as u64).wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0;
        1.0 / (1.0 + 0.02 * t as f32) + 0.3 * noise
    }

    #[test]
    fn plateau_100_steps_match_a_transcription_of_pytorch() {
        let s = tweak!(
            Schedule::plateau(),
            ReduceOnPlateau {
                factor: 0.5,
                patience: 3,
                cooldown: 2,
                min_lr: 1e-3,
                threshold: 0.01,
            }
        );
        let mut sch = sched(0.1, s, None);
        let (mut lr, mut best, mut bad, mut cool) = (0.1f64, f64::INFINITY, 0, 0);
        let mut reductions = 0;
        for t in 0..100 {
            let current = f64::from(metric(t));
            if current < best * (1.0 - 0.01) {
                best = current;
                bad = 0;
            } else {
                bad += 1;
            }
            if cool > 0 {
                cool -= 1;
                bad = 0;
            }
            if bad > 3 {
                let new_lr = f64::max(lr * 0.5, 1e-3);
                if lr - new_lr > 1e-8 {
                    lr = new_lr;
                    reductions += 1;
                }
                cool = 2;
                bad = 0;
            }
            sch.step_metric(metric(t));
            assert_close(sch.lr(), lr, &format!("plateau t={t}"));
        }
        assert!(
            reductions >= 3,
            "the sequence exercises reductions ({reductions})"
        );
    }

    #[test]
    fn warmup_ramps_linearly_and_shares_the_counter() {
        let w = Warmup {
            steps: 5,
            start_factor: 0.25,
        };
        let got = run(&mut sched(0.1, Schedule::Constant, Some(w)), 8);
        let want = [0.025, 0.04, 0.055, 0.07, 0.085, 0.1, 0.1, 0.1];
        for (t, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert_close(g, w, &format!("warmup t={t}"));
        }
        // PyTorch's default start factor is 1/3.
        let got = run(&mut sched(0.9, Schedule::Constant, Some(Warmup::new(3))), 4);
        for (t, want) in [0.3, 0.5, 0.7, 0.9].into_iter().enumerate() {
            assert_close(got[t], want, &format!("default warmup t={t}"));
        }
        // The step schedule is not delayed: it decays at t = 2 and 4 during the ramp.
        let w = Warmup {
            steps: 4,
            start_factor: 0.5,
        };
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.5,
        };
        let got = run(&mut sched(1.0, s, Some(w)), 7);
        assert_eq!(got, [0.5, 0.625, 0.375, 0.4375, 0.25, 0.25, 0.125]);
        // Cosine under a warm-up: the product of the two closed forms at the same t.
        let w = Warmup {
            steps: 10,
            start_factor: 0.1,
        };
        let got = run(
            &mut sched(
                0.1,
                Schedule::Cosine {
                    t_max: 100,
                    eta_min: 0.0,
                },
                Some(w),
            ),
            100,
        );
        for (t, &lr) in got.iter().enumerate() {
            let ramp = 0.1 + 0.9 * (t.min(10) as f64) / 10.0;
            let c = (PI * t as f64 / 200.0).cos();
            assert_close(lr, 0.1 * c * c * ramp, &format!("warm cosine t={t}"));
        }
        // On a plateau schedule the ramp multiplies the plateau's own rate; plain step()
        // moves the ramp without judging a metric.
        let mut s = sched(1.0, plateau(0.5, 0, 0, 0.0), Some(w));
        assert_close(s.lr(), 0.1, "plateau warmup t=0");
        s.step_metric(1.0);
        s.step_metric(2.0);
        assert_close(s.lr(), 0.5 * 0.28, "after one reduction at t=2");
        s.step();
        assert_close(s.lr(), 0.5 * 0.37, "step() moves only the ramp");
    }

    #[test]
    fn per_batch_follows_pytorch_convention() {
        assert!(sched(0.1, Schedule::one_cycle(0.1, 10), None).per_batch());
        assert!(sched(0.1, Schedule::cyclic(0.01, 0.1), None).per_batch());
        for s in [
            Schedule::Constant,
            Schedule::Exponential { gamma: 0.9 },
            Schedule::Cosine {
                t_max: 5,
                eta_min: 0.0,
            },
            Schedule::plateau(),
        ] {
            assert!(!sched(0.1, s, None).per_batch());
        }
    }

    fn every_schedule() -> Vec<Schedule> {
        vec![
            Schedule::Constant,
            Schedule::Step {
                step_size: 7,
                gamma: 0.3,
            },
            Schedule::MultiStep {
                milestones: vec![5, 20, 60],
                gamma: 0.25,
            },
            Schedule::Exponential { gamma: 0.97 },
            Schedule::Cosine {
                t_max: 40,
                eta_min: 1e-4,
            },
            Schedule::CosineWarmRestarts {
                t_0: 3,
                t_mult: 3,
                eta_min: 0.002,
            },
            Schedule::Cyclic {
                base_lr: 0.002,
                max_lr: 0.3,
                step_size_up: 7,
                step_size_down: Some(3),
                mode: CyclicMode::ExpRange,
                gamma: 0.995,
            },
            tweak!(
                Schedule::cyclic(0.01, 0.05),
                Cyclic {
                    mode: CyclicMode::Triangular2,
                    step_size_up: 9,
                }
            ),
            tweak!(
                Schedule::one_cycle(0.3, 90),
                OneCycle {
                    pct_start: 0.4,
                    anneal: Anneal::Linear,
                    div_factor: 10.0,
                    final_div_factor: 50.0,
                    three_phase: true,
                }
            ),
            Schedule::ReduceOnPlateau {
                mode: PlateauMode::Max,
                factor: 0.7,
                patience: 2,
                threshold: 0.02,
                threshold_mode: ThresholdMode::Abs,
                cooldown: 3,
                min_lr: 1e-5,
                eps: 1e-9,
            },
            tweak!(
                Schedule::plateau(),
                ReduceOnPlateau {
                    factor: 0.5,
                    patience: 3,
                    cooldown: 2,
                    threshold: 0.01,
                }
            ),
        ]
    }

    #[test]
    fn parse_round_trips_every_schedule() {
        for s in every_schedule() {
            let text = s.to_string();
            assert_eq!(parse_schedule(&text).unwrap(), s, "{text}");
        }
    }

    #[test]
    fn parse_fills_pytorch_defaults() {
        let cases = [
            ("constant", Schedule::Constant),
            (
                "step:step_size=30,gamma=0.1",
                Schedule::Step {
                    step_size: 30,
                    gamma: 0.1,
                },
            ),
            (
                " step : step_size = 30 ",
                Schedule::Step {
                    step_size: 30,
                    gamma: 0.1,
                },
            ),
            (
                "multistep:milestones=30;80,gamma=0.1",
                Schedule::MultiStep {
                    milestones: vec![30, 80],
                    gamma: 0.1,
                },
            ),
            (
                "exponential:gamma=0.95",
                Schedule::Exponential { gamma: 0.95 },
            ),
            (
                "cosine:t_max=50,eta_min=0",
                Schedule::Cosine {
                    t_max: 50,
                    eta_min: 0.0,
                },
            ),
            (
                "cosine_restarts:t_0=10,t_mult=2",
                Schedule::CosineWarmRestarts {
                    t_0: 10,
                    t_mult: 2,
                    eta_min: 0.0,
                },
            ),
            (
                "cyclic:base_lr=0.001,max_lr=0.1,step_size_up=2000,mode=triangular2",
                Schedule::Cyclic {
                    base_lr: 0.001,
                    max_lr: 0.1,
                    step_size_up: 2000,
                    step_size_down: None,
                    mode: CyclicMode::Triangular2,
                    gamma: 1.0,
                },
            ),
            (
                "onecycle:max_lr=0.1,total_steps=1000",
                Schedule::OneCycle {
                    max_lr: 0.1,
                    total_steps: 1000,
                    pct_start: 0.3,
                    anneal: Anneal::Cos,
                    div_factor: 25.0,
                    final_div_factor: 10000.0,
                    three_phase: false,
                },
            ),
            (
                "plateau:factor=0.5,patience=3",
                Schedule::ReduceOnPlateau {
                    mode: PlateauMode::Min,
                    factor: 0.5,
                    patience: 3,
                    threshold: 1e-4,
                    threshold_mode: ThresholdMode::Rel,
                    cooldown: 0,
                    min_lr: 0.0,
                    eps: 1e-8,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_schedule(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn parse_errors_name_the_bad_key_or_value() {
        let cases = [
            ("warmup", "unknown name `warmup`"),
            ("step:gamma=0.1", "missing required key `step_size`"),
            (
                "step:step_size=abc",
                "step_size=abc is not a non-negative integer",
            ),
            (
                "step:step_size=30,foo=1",
                "unknown key `foo` (expected one of step_size, gamma)",
            ),
            (
                "step:step_size=30,step_size=20",
                "`step_size` is given twice",
            ),
            ("step:step_size", "`step_size` is not of the form key=value"),
            (
                "constant:gamma=1",
                "unknown key `gamma` (constant takes no arguments)",
            ),
            ("cosine:t_max=0", "t_max must be >= 1"),
            ("exponential:gamma=nan", "gamma=nan is not a finite number"),
            (
                "exponential:gamma=-0.5",
                "gamma must be a finite number >= 0",
            ),
            (
                "multistep:milestones=30;x",
                "`x` is not a non-negative integer",
            ),
            ("multistep:gamma=0.5", "missing required key `milestones`"),
            (
                "cyclic:base_lr=0.1,max_lr=1,mode=sine",
                "mode=sine is not one of triangular, triangular2, exp_range",
            ),
            (
                "onecycle:max_lr=0.1,total_steps=100,pct_start=1.5",
                "pct_start must be in [0, 1]",
            ),
            (
                "onecycle:max_lr=0.1,total_steps=100,three_phase=yes",
                "three_phase=yes is not true or false",
            ),
            ("plateau:factor=1", "factor must be in [0, 1)"),
            (
                "plateau:threshold_mode=ratio",
                "threshold_mode=ratio is not one of rel, abs",
            ),
        ];
        for (text, want) in cases {
            let message = config_error(parse_schedule(text));
            assert!(message.contains(want), "{text}: `{message}` lacks `{want}`");
        }
    }

    #[test]
    fn new_rejects_bad_arguments_by_name() {
        let w = |steps, start_factor| {
            Some(Warmup {
                steps,
                start_factor,
            })
        };
        let cases: Vec<(f32, Schedule, Option<Warmup>, &str)> = vec![
            (-0.1, Schedule::Constant, None, "base_lr"),
            (f32::NAN, Schedule::Constant, None, "base_lr"),
            (
                0.1,
                Schedule::Step {
                    step_size: 0,
                    gamma: 0.1,
                },
                None,
                "step_size",
            ),
            (
                0.1,
                Schedule::Step {
                    step_size: 3,
                    gamma: f32::INFINITY,
                },
                None,
                "gamma",
            ),
            (
                0.1,
                Schedule::Cosine {
                    t_max: 10,
                    eta_min: -1.0,
                },
                None,
                "eta_min",
            ),
            (
                0.1,
                Schedule::CosineWarmRestarts {
                    t_0: 0,
                    t_mult: 1,
                    eta_min: 0.0,
                },
                None,
                "t_0",
            ),
            (
                0.1,
                Schedule::CosineWarmRestarts {
                    t_0: 5,
                    t_mult: 0,
                    eta_min: 0.0,
                },
                None,
                "t_mult",
            ),
            (
                0.1,
                tweak!(Schedule::cyclic(0.01, 0.1), Cyclic { step_size_up: 0 }),
                None,
                "step_size_up",
            ),
            (
                0.1,
                tweak!(
                    Schedule::cyclic(0.01, 0.1),
                    Cyclic {
                        step_size_down: Some(usize::MAX),
                    }
                ),
                None,
                "step_size_down",
            ),
            (0.1, Schedule::cyclic(-0.01, 0.1), None, "base_lr"),
            (0.1, Schedule::one_cycle(0.1, 0), None, "total_steps"),
            (
                0.1,
                tweak!(Schedule::one_cycle(0.1, 10), OneCycle { pct_start: -0.1 }),
                None,
                "pct_start",
            ),
            (
                0.1,
                tweak!(Schedule::one_cycle(0.1, 10), OneCycle { div_factor: 0.0 }),
                None,
                "div_factor",
            ),
            (
                0.1,
                tweak!(
                    Schedule::one_cycle(0.1, 10),
                    OneCycle {
                        final_div_factor: -2.0,
                    }
                ),
                None,
                "final_div_factor",
            ),
            (0.1, plateau(1.0, 3, 0, 0.0), None, "factor"),
            (0.1, plateau(0.5, 3, 0, -1.0), None, "min_lr"),
            (0.1, Schedule::Constant, w(0, 0.5), "steps"),
            (0.1, Schedule::Constant, w(5, 0.0), "start_factor"),
            (0.1, Schedule::Constant, w(5, 1.5), "start_factor"),
        ];
        for (base, schedule, warmup, key) in cases {
            let message = config_error(LrScheduler::new(base, schedule.clone(), warmup));
            assert!(
                message.contains(key),
                "{schedule:?}: `{message}` lacks `{key}`"
            );
        }
        // The edges PyTorch accepts are accepted.
        assert!(LrScheduler::new(0.0, Schedule::one_cycle(0.1, 1), w(1, 1.0)).is_ok());
        assert!(LrScheduler::new(0.1, plateau(0.0, 0, 0, 0.0), None).is_ok());
    }

    /// Drives a scheduler as a trainer would, feeding a metric to every step.
    fn drive(s: &mut LrScheduler, from: usize, to: usize) -> Vec<u32> {
        (from..to)
            .map(|t| {
                let lr = s.lr().to_bits();
                s.step_metric(metric(t));
                lr
            })
            .collect()
    }

    #[test]
    fn restore_resumes_bit_identically() {
        let warmup = Some(Warmup {
            steps: 8,
            start_factor: 0.2,
        });
        for schedule in every_schedule() {
            for w in [None, warmup] {
                let mut whole = sched(0.05, schedule.clone(), w);
                let want = drive(&mut whole, 0, 100);

                let mut first = sched(0.05, schedule.clone(), w);
                let mut got = drive(&mut first, 0, 50);
                let state = first.state();
                assert_eq!(state.steps, 50);
                let mut resumed = sched(0.05, schedule.clone(), w);
                resumed.restore(&state).unwrap();
                assert_eq!(resumed.state(), state);
                got.extend(drive(&mut resumed, 50, 100));
                assert_eq!(got, want, "{schedule} with warmup {w:?}");
            }
        }
    }

    #[test]
    fn restore_needs_the_plateau_state_not_only_the_counter() {
        // Without the plateau fields a resumed plateau would start from the base rate again;
        // this checks the reductions before step 50 do carry over.
        let s = tweak!(
            Schedule::plateau(),
            ReduceOnPlateau {
                factor: 0.5,
                patience: 1,
            }
        );
        let mut first = sched(0.1, s.clone(), None);
        for _ in 0..5 {
            first.step_metric(1.0);
        }
        let state = first.state();
        assert_close(state.lr, 0.025, "two reductions");
        let mut resumed = sched(0.1, s, None);
        resumed.restore(&state).unwrap();
        assert_eq!(resumed.lr(), first.lr());
        resumed.step_metric(1.0);
        first.step_metric(1.0);
        assert_eq!(resumed.state(), first.state());
    }

    #[test]
    fn restore_rejects_inconsistent_states_and_changes_nothing() {
        let mut cosine = sched(
            0.1,
            Schedule::Cosine {
                t_max: 50,
                eta_min: 0.0,
            },
            None,
        );
        run(&mut cosine, 10);
        let mut step = sched(
            0.1,
            Schedule::Step {
                step_size: 5,
                gamma: 0.5,
            },
            None,
        );
        run(&mut step, 3);
        let before = step.state();
        let message = config_error(step.restore(&cosine.state()));
        assert!(message.contains("lr"), "{message}");
        assert_eq!(step.state(), before);

        let p = plateau(0.5, 2, 1, 0.0);
        let mut s = sched(0.1, p, None);
        let good = s.state();
        let cases = [
            (
                SchedulerState {
                    num_bad_epochs: 3,
                    ..good
                },
                "num_bad_epochs",
            ),
            (
                SchedulerState {
                    cooldown_counter: 2,
                    ..good
                },
                "cooldown_counter",
            ),
            (
                SchedulerState {
                    plateau_lr: -1.0,
                    ..good
                },
                "plateau_lr",
            ),
            (
                SchedulerState {
                    plateau_lr: f64::NAN,
                    ..good
                },
                "plateau_lr",
            ),
            (
                SchedulerState {
                    best: f64::NAN,
                    ..good
                },
                "best",
            ),
            (
                SchedulerState {
                    plateau_lr: 0.2,
                    ..good
                },
                "lr",
            ),
        ];
        for (state, key) in cases {
            let message = config_error(s.restore(&state));
            assert!(
                message.contains(key),
                "{state:?}: `{message}` lacks `{key}`"
            );
            assert_eq!(s.state(), good);
        }
    }
}
