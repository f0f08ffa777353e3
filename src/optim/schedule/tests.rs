//! Tests of the schedules against independently derived values.

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

#[test]
fn one_cycle_with_a_zero_step_phase_is_refused() {
    for (total, pct) in [(10, 0.1), (4, 0.25), (5, 0.2), (1, 1.0)] {
        let mut s = Schedule::one_cycle(0.1, total);
        if let Schedule::OneCycle { pct_start, .. } = &mut s {
            *pct_start = pct;
        }
        assert!(s.validate().is_err(), "total {total}, pct {pct}");
    }
    assert!(Schedule::one_cycle(0.1, 100).validate().is_ok());
}
