//! ReduceLROnPlateau.

use super::*;

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
