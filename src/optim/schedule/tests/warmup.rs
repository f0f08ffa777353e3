//! Linear warm-up and per-batch stepping.

use super::*;

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
