//! Schedules parsed from their CLI text, and the arguments refused by name.

use super::*;

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
