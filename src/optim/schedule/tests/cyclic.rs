//! CyclicLR and OneCycleLR.

use super::*;

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
