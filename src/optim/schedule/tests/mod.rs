//! Tests of the schedules against independently derived values, by family; the helpers
//! and the schedule builders they share are here.

use std::fmt;

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

/// A deterministic noisy, slowly improving loss.
fn metric(t: usize) -> f32 {
    let noise = ((t as u64).wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0;
    1.0 / (1.0 + 0.02 * t as f32) + 0.3 * noise
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

// After `tweak!`: a macro is visible to the modules declared below it.
mod cyclic;
mod decay;
mod parse;
mod plateau;
mod restore;
mod warmup;
