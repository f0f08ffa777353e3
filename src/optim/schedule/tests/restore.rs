//! Restoring a schedule from a checkpoint.

use super::*;

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
