//! StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR and its warm restarts.

use super::*;

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
