//! Fused optimizer kernels: CPU vs GPU over a 10k-element arena for 10 steps, with and
//! without clipping, step counters, and decaying states flushed below the smallest normal
//! f32 alike.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::{Backend, Tail};
use kiln::graph::{gradients, Graph, ParamLayout, Plan};
use kiln::nn::Init;
use kiln::op::Op;
use kiln::optim::{Clip, Optimizer};
use kiln::rng::Philox;
use kiln::shape::Shape;

/// Runs 10 steps of `optimizer` on loss = mse(p, x) (gradient 2(p − x)/n) on a backend and
/// returns the parameters and state buffers.
fn ten_steps(backend: &mut dyn Backend, optimizer: Optimizer, clip: Clip) -> Vec<Vec<f32>> {
    let n = 10_000;
    let mut g = Graph::new();
    let p = g.param("p", Shape::new(&[n]), Init::Constant(0.0));
    // A parameter that gets no gradient: the update must still apply decay but no step.
    let _frozen = g.param("frozen", Shape::new(&[100]), Init::Constant(0.0));
    let x = g.input("x", Shape::new(&[n]));
    let loss = g.op(Op::Mse, &[p, x]).unwrap();
    let grads = gradients(&mut g, loss).unwrap();
    let layout = ParamLayout::of(&g);
    let plan = Plan::build(&g, &layout, &[loss], &grads).unwrap();
    let mut rng = Philox::new(5, 0);
    let params: Vec<f32> = (0..layout.size).map(|_| rng.uniform(-1.0, 1.0)).collect();
    // Every 7th target equals the parameter: a zero gradient there.
    let target: Vec<f32> = (0..n)
        .map(|i| {
            if i % 7 == 0 {
                params[i]
            } else {
                rng.uniform(-1.0, 1.0)
            }
        })
        .collect();
    backend
        .init_model(
            &layout,
            &params,
            &vec![0.0; layout.buffers_size],
            Some(optimizer),
        )
        .unwrap();
    let id = backend
        .compile(
            &plan,
            Tail {
                update: true,
                ..Tail::default()
            },
        )
        .unwrap();
    for step in 1..=10 {
        let s = optimizer.scalars(0.05, step, clip, layout.size);
        // The step counter reaches the kernels exactly.
        assert_eq!(s.step, step);
        backend.run(id, &[&target], &s).unwrap();
    }
    let mut out = vec![backend.read_params().unwrap()];
    for i in 0..3 {
        if optimizer.uses_state(i) {
            out.push(backend.read_state(i).unwrap());
        } else {
            assert!(backend.read_state(i).is_err(), "state {i} should not exist");
        }
    }
    out
}

fn optimizers() -> Vec<(&'static str, Optimizer)> {
    vec![
        ("sgd", Optimizer::sgd(0.0)),
        (
            "sgd momentum",
            Optimizer::Sgd {
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
                weight_decay: 0.01,
            },
        ),
        (
            "sgd nesterov",
            Optimizer::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
                weight_decay: 0.0,
            },
        ),
        ("adamw", Optimizer::adamw()),
        (
            "adam amsgrad l2",
            Optimizer::Adam {
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 0.01,
                amsgrad: true,
                decoupled: false,
            },
        ),
        (
            "adagrad",
            Optimizer::Adagrad {
                lr_decay: 0.01,
                weight_decay: 0.001,
                initial_accumulator_value: 0.1,
                eps: 1e-10,
            },
        ),
        ("rmsprop", Optimizer::rmsprop()),
        (
            "rmsprop centered momentum",
            Optimizer::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: 0.01,
                momentum: 0.9,
                centered: true,
            },
        ),
        ("adadelta", Optimizer::adadelta()),
        (
            "adamax l2",
            Optimizer::Adamax {
                betas: (0.9, 0.99),
                eps: 1e-8,
                weight_decay: 0.01,
            },
        ),
        ("nadam", Optimizer::nadam()),
        (
            "nadam decoupled",
            Optimizer::NAdam {
                betas: (0.8, 0.99),
                eps: 1e-8,
                weight_decay: 0.1,
                momentum_decay: 0.04,
                decoupled: true,
            },
        ),
        // Steps 1–5 unrectified, 6–10 rectified.
        ("radam", Optimizer::radam()),
        (
            "radam l2",
            Optimizer::RAdam {
                betas: (0.9, 0.999),
                eps: 1e-8,
                weight_decay: 0.01,
                decoupled: false,
            },
        ),
        (
            "radam decoupled",
            Optimizer::RAdam {
                betas: (0.9, 0.98),
                eps: 1e-6,
                weight_decay: 0.1,
                decoupled: true,
            },
        ),
    ]
}

#[test]
fn gpu_optimizers_match_cpu_after_ten_steps() {
    let Some(mut gpu) = common::gpu() else { return };
    for (name, opt) in optimizers() {
        let clips = [
            Clip::default(),
            Clip {
                max_norm: Some(0.01),
                max_value: None,
                ..Clip::default()
            },
            Clip {
                max_norm: Some(0.01),
                max_value: Some(1e-4),
                ..Clip::default()
            },
        ];
        for clip in clips {
            let cpu = ten_steps(&mut CpuBackend::new(), opt, clip);
            let gpu_out = ten_steps(&mut gpu, opt, clip);
            for (k, (c, g)) in cpu.iter().zip(&gpu_out).enumerate() {
                // 5x the single-op element-wise bound, relative to the values' scale.
                let scale = c.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                let d = common::max_abs_diff(c, g);
                assert!(
                    d <= 5.0 * 1e-5 * scale,
                    "{name} clip {clip:?} buffer {k}: max diff {d:e} (scale {scale})"
                );
            }
        }
    }
}

#[test]
fn clipping_changes_the_trajectory_on_cpu() {
    // A sanity check that the clip path is live: a tiny max_norm must slow the descent.
    let opt = Optimizer::sgd(0.0);
    let free = ten_steps(&mut CpuBackend::new(), opt, Clip::default());
    let clipped = ten_steps(
        &mut CpuBackend::new(),
        opt,
        Clip {
            max_norm: Some(1e-3),
            max_value: None,
            ..Clip::default()
        },
    );
    assert!(common::max_abs_diff(&free[0], &clipped[0]) > 1e-4);
}

/// Parameter groups: the tail group (here the frozen tensor, laid out last) gets its own
/// weight decay and learning-rate factor, identically on both backends.
#[test]
fn tail_group_is_exempt_from_weight_decay() {
    let run = |backend: &mut dyn Backend, grouped: bool| {
        let mut g = Graph::new();
        let frozen = g.param("0.bias", Shape::new(&[100]), Init::Constant(1.0));
        let p = g.param("1.weight", Shape::new(&[1000]), Init::Constant(0.0));
        let x = g.input("x", Shape::new(&[1000]));
        let loss = g.op(Op::Mse, &[p, x]).unwrap();
        let grads = gradients(&mut g, loss).unwrap();
        let layout = ParamLayout::grouped(&g, &|n: &str| n.ends_with(".bias"));
        assert!(layout.get("0.bias").unwrap().offset > layout.get("1.weight").unwrap().offset);
        let plan = Plan::build(&g, &layout, &[loss], &grads).unwrap();
        let _ = frozen;
        let params = vec![1.0f32; layout.size];
        let opt = Optimizer::adamw();
        backend
            .init_model(&layout, &params, &vec![0.0; layout.buffers_size], Some(opt))
            .unwrap();
        let id = backend
            .compile(
                &plan,
                Tail {
                    update: true,
                    ..Tail::default()
                },
            )
            .unwrap();
        let target = vec![0.5f32; 1000];
        let tail = layout.tail_start(&|n: &str| n.ends_with(".bias"));
        for step in 1..=3 {
            let mut s = opt.scalars(0.1, step, Clip::default(), layout.size);
            if grouped {
                s = s.with_tail_group(tail, 0.5, 0.0);
            }
            backend.run(id, &[&target], &s).unwrap();
        }
        let out = backend.read_params().unwrap();
        let e = layout.get("0.bias").unwrap();
        (out.clone(), out[e.offset..e.offset + 100].to_vec())
    };
    let (cpu, cpu_frozen) = run(&mut CpuBackend::new(), true);
    assert!(
        cpu_frozen.iter().all(|&v| v == 1.0),
        "the exempt group decayed"
    );
    let (_, decayed) = run(&mut CpuBackend::new(), false);
    // AdamW decay alone: (1 − 0.1·0.01)³.
    assert!(
        (decayed[0] - 0.999f32.powi(3)).abs() < 1e-6,
        "{}",
        decayed[0]
    );
    let Some(mut gpu) = common::gpu() else { return };
    let (dev, dev_frozen) = run(&mut gpu, true);
    assert_eq!(dev_frozen, cpu_frozen);
    assert!(common::max_abs_diff(&cpu, &dev) < 1e-6);
}

/// One step of `optimizer` with zero gradients (the target equals the parameters) from
/// states set to `states`, returning the states after it.
fn one_zero_gradient_step(
    backend: &mut dyn Backend,
    optimizer: Optimizer,
    states: &[Vec<f32>],
) -> Vec<Vec<f32>> {
    let n = states[0].len();
    let mut g = Graph::new();
    let p = g.param("p", Shape::new(&[n]), Init::Constant(0.0));
    let x = g.input("x", Shape::new(&[n]));
    let loss = g.op(Op::Mse, &[p, x]).unwrap();
    let grads = gradients(&mut g, loss).unwrap();
    let layout = ParamLayout::of(&g);
    let plan = Plan::build(&g, &layout, &[loss], &grads).unwrap();
    let params: Vec<f32> = (0..layout.size).map(|i| 0.25 + i as f32 * 0.125).collect();
    let buffers = vec![0.0; layout.buffers_size];
    backend
        .init_model(&layout, &params, &buffers, Some(optimizer))
        .unwrap();
    for (i, s) in states.iter().enumerate() {
        let mut full = vec![0.0; layout.size];
        full[..n].copy_from_slice(s);
        backend.write_state(i, &full).unwrap();
    }
    let tail = Tail {
        update: true,
        ..Tail::default()
    };
    let id = backend.compile(&plan, tail).unwrap();
    let s = optimizer.scalars(0.01, 2, Clip::default(), layout.size);
    backend.run(id, &[&params[..n]], &s).unwrap();
    (0..states.len())
        .map(|i| backend.read_state(i).unwrap()[..n].to_vec())
        .collect()
}

/// States that decay below the smallest normal f32 are stored as zero, by the CPU and
/// the WGSL kernels alike, and normal ones are kept as computed.
#[test]
fn decaying_states_are_flushed_alike_on_cpu_and_gpu() {
    let Some(mut gpu) = common::gpu() else { return };
    let tiny = f32::MIN_POSITIVE;
    // Adam: m ← 0.9·m and v ← 0.999·v; SGD's buffer ← 0.9·buffer (no weight decay).
    let adam = Optimizer::Adam {
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.0,
        amsgrad: false,
        decoupled: true,
    };
    let sgd = Optimizer::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    };
    let cases = [
        (
            adam,
            vec![
                vec![1.05 * tiny, -1.05 * tiny, 10.0 * tiny, 0.5],
                vec![1.0004 * tiny, 2.0 * tiny, 0.0, 0.25],
            ],
            [(0, 0), (0, 1), (1, 0)],
        ),
        (
            sgd,
            vec![vec![1.05 * tiny, 20.0 * tiny, -1.05 * tiny, 0.5]],
            [(0, 0), (0, 2), (0, 0)],
        ),
    ];
    for (opt, states, flushed) in cases {
        let cpu = one_zero_gradient_step(&mut CpuBackend::new(), opt, &states);
        let gpu_out = one_zero_gradient_step(&mut gpu, opt, &states);
        for &(k, i) in &flushed {
            assert_eq!(cpu[k][i].to_bits(), 0, "{opt:?}: cpu state {k}[{i}]");
            assert_eq!(gpu_out[k][i].to_bits(), 0, "{opt:?}: gpu state {k}[{i}]");
        }
        for (c, g) in cpu.iter().zip(&gpu_out) {
            // Normal states decay by the same multiplications on both.
            assert_eq!(c, g, "{opt:?}");
            assert!(c.iter().any(|v| v.abs() >= tiny), "{opt:?}: nothing kept");
        }
    }
}
