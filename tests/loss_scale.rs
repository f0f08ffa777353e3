//! Dynamic loss scaling of f16 models (GradScaler's semantics) on the CPU reference and
//! on the GPU: overflow steps are skipped without touching anything, the scale backs off
//! and grows on schedule, scaled f16 steps match unscaled f32 ones, and the two backends
//! agree (parameters within the f16 tolerance, the scaler's state exactly).

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::wgpu::{AdapterPolicy, GpuContext, WgpuBackend};
use kiln::backend::{Backend, LossScale, PlanId, Tail};
use kiln::graph::{gradients, ArenaKind, Graph, ParamLayout, Plan, Slot};
use kiln::nn::Init;
use kiln::op::{Activation, Op};
use kiln::optim::{Clip, Optimizer};
use kiln::precision::{round_f16, Precision};
use kiln::rng::Philox;
use kiln::shape::Shape;

const BATCH: usize = 8;
const FEATURES: usize = 8;
const HIDDEN: usize = 16;
const CLASSES: usize = 4;
/// A hidden width that makes the parameter arena span two optimizer pieces on a device
/// with 16 KiB bindings (pieces are multiples of 4,096 parameters) while every tensor
/// fits one binding.
const WIDE: usize = 400;

/// A two-layer MLP with cross-entropy, its training plan, initial parameters and a batch.
struct Net {
    layout: ParamLayout,
    plan: Plan,
    params: Vec<f32>,
    x: Vec<f32>,
    labels: Vec<f32>,
}

fn net(precision: Precision) -> Net {
    net_of(precision, HIDDEN)
}

fn net_of(precision: Precision, hidden: usize) -> Net {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[BATCH, FEATURES]));
    let labels = g.input("labels", Shape::new(&[BATCH]));
    let w1 = g.param("w1", Shape::new(&[FEATURES, hidden]), Init::Constant(0.0));
    let b1 = g.param("b1", Shape::new(&[hidden]), Init::Constant(0.0));
    let w2 = g.param("w2", Shape::new(&[hidden, CLASSES]), Init::Constant(0.0));
    let b2 = g.param("b2", Shape::new(&[CLASSES]), Init::Constant(0.0));
    let mm = Op::MatMul {
        trans_a: false,
        trans_b: false,
    };
    let h = g.op(mm, &[x, w1]).unwrap();
    let h = g.op(Op::BiasAdd, &[h, b1]).unwrap();
    let h = g.op(Op::Activation(Activation::Relu), &[h]).unwrap();
    let logits = g.op(mm, &[h, w2]).unwrap();
    let logits = g.op(Op::BiasAdd, &[logits, b2]).unwrap();
    let loss = g
        .op(
            Op::SoftmaxCrossEntropy {
                label_smoothing: 0.0,
            },
            &[logits, labels],
        )
        .unwrap();
    let grads = gradients(&mut g, loss).unwrap();
    let layout = ParamLayout::grouped_in(&g, &|_| false, precision);
    let plan = Plan::build(&g, &layout, &[loss], &grads).unwrap();
    // Per tensor, so that f16 and f32 layouts (aligned differently) hold the same values;
    // padding stays zero.
    let mut params = vec![0.0; layout.size];
    for (k, e) in layout.entries.iter().enumerate() {
        let mut rng = Philox::new(11, k as u32);
        for p in &mut params[e.offset..e.offset + e.shape.numel()] {
            *p = rng.uniform(-0.5, 0.5);
        }
    }
    let mut rng = Philox::new(12, 0);
    let x = (0..BATCH * FEATURES)
        .map(|_| rng.uniform(-1.0, 1.0))
        .collect();
    let labels = (0..BATCH).map(|i| (i % CLASSES) as f32).collect();
    Net {
        layout,
        plan,
        params,
        x,
        labels,
    }
}

/// Puts `net` on `backend` with `optimizer` and compiles its training plan.
fn load(backend: &mut dyn Backend, net: &Net, optimizer: Optimizer) -> PlanId {
    backend
        .init_model(
            &net.layout,
            &net.params,
            &vec![0.0; net.layout.buffers_size],
            Some(optimizer),
        )
        .unwrap();
    backend
        .compile(
            &net.plan,
            Tail {
                update: true,
                ..Tail::default()
            },
        )
        .unwrap()
}

/// One training step number `step` (lr 0.01).
fn step(backend: &mut dyn Backend, id: PlanId, net: &Net, opt: Optimizer, clip: Clip, step: u32) {
    let feeds: Vec<&[f32]> = net
        .plan
        .inputs
        .iter()
        .map(|(name, _, _)| match name.as_str() {
            "x" => net.x.as_slice(),
            "labels" => net.labels.as_slice(),
            other => panic!("unexpected input {other}"),
        })
        .collect();
    let s = opt.scalars(0.01, step, clip, net.layout.size);
    backend.run(id, &feeds, &s).unwrap();
}

/// The f16 weight copy the next forward pass reads.
fn params_half(backend: &mut dyn Backend, id: PlanId, net: &Net) -> Vec<f32> {
    backend
        .read_slot(
            id,
            Slot {
                arena: ArenaKind::ParamsHalf,
                offset: 0,
                len: net.layout.size,
            },
        )
        .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Everything a skipped step must leave alone: parameters, Adam's three state buffers
/// (AMSGrad) and the f16 copy, as bits.
fn snapshot(backend: &mut dyn Backend, id: PlanId, net: &Net) -> Vec<Vec<u32>> {
    let mut out = vec![bits(&backend.read_params().unwrap())];
    for k in 0..3 {
        out.push(bits(&backend.read_state(k).unwrap()));
    }
    out.push(bits(&params_half(backend, id, net)));
    out
}

fn amsgrad() -> Optimizer {
    Optimizer::Adam {
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.01,
        amsgrad: true,
        decoupled: true,
    }
}

/// A scale of 1e30 overflows the f16 gradients: the step is skipped (nothing changes, not
/// even with clipping by value, which would otherwise clamp the infinities away), the scale
/// halves, the tracker restarts and the skip is counted. The next step at a sane scale
/// goes through.
fn overflow_is_skipped(backend: &mut dyn Backend) {
    let net = net(Precision::F16);
    let opt = amsgrad();
    let id = load(backend, &net, opt);
    assert_eq!(
        backend.read_loss_scale().unwrap(),
        Some(LossScale::default())
    );
    step(backend, id, &net, opt, Clip::default(), 1);
    let after_one = backend.read_loss_scale().unwrap().unwrap();
    assert_eq!(
        after_one,
        LossScale {
            scale: 65536.0,
            growth_tracker: 1,
            skipped: 0
        },
        "a normal first step"
    );
    backend
        .write_loss_scale(LossScale {
            scale: 1e30,
            growth_tracker: 5,
            skipped: 0,
        })
        .unwrap();
    let before = snapshot(backend, id, &net);
    let clip = Clip {
        max_norm: Some(1.0),
        max_value: Some(0.5),
        error_if_nonfinite: false,
    };
    step(backend, id, &net, opt, clip, 2);
    assert!(
        !backend.read_grad_norm_sq().unwrap().is_finite(),
        "the norm of a skipped step is not finite"
    );
    assert_eq!(
        backend.read_loss_scale().unwrap(),
        Some(LossScale {
            scale: 1e30 * 0.5,
            growth_tracker: 0,
            skipped: 1
        })
    );
    let after = snapshot(backend, id, &net);
    for (k, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(b == a, "buffer {k} changed on a skipped step");
    }
    backend
        .write_loss_scale(LossScale {
            scale: 1024.0,
            growth_tracker: 0,
            skipped: 1,
        })
        .unwrap();
    step(backend, id, &net, opt, clip, 2);
    assert!(backend.read_grad_norm_sq().unwrap().is_finite());
    assert_ne!(
        snapshot(backend, id, &net)[0],
        after[0],
        "the next step was applied"
    );
    assert_eq!(
        backend.read_loss_scale().unwrap(),
        Some(LossScale {
            scale: 1024.0,
            growth_tracker: 1,
            skipped: 1
        })
    );
}

/// After 1999 good steps, the 2000th doubles the scale and restarts the tracker.
fn scale_grows(backend: &mut dyn Backend) {
    let net = net(Precision::F16);
    let opt = Optimizer::sgd(0.9);
    let id = load(backend, &net, opt);
    backend
        .write_loss_scale(LossScale {
            scale: 65536.0,
            growth_tracker: 1999,
            skipped: 3,
        })
        .unwrap();
    step(backend, id, &net, opt, Clip::default(), 1);
    assert_eq!(
        backend.read_loss_scale().unwrap(),
        Some(LossScale {
            scale: 131072.0,
            growth_tracker: 0,
            skipped: 3
        })
    );
    step(backend, id, &net, opt, Clip::default(), 2);
    assert_eq!(
        backend.read_loss_scale().unwrap().map(|s| s.growth_tracker),
        Some(1)
    );
}

/// f32 models have no scaler.
fn f32_has_no_scaler(backend: &mut dyn Backend) {
    let net = net(Precision::F32);
    load(backend, &net, Optimizer::sgd(0.0));
    assert_eq!(backend.read_loss_scale().unwrap(), None);
    assert!(backend.write_loss_scale(LossScale::default()).is_err());
}

/// The tensors of an arena laid out by `net.layout`, concatenated without padding (f16
/// and f32 layouts align tensors differently).
fn tensors(net: &Net, arena: &[f32]) -> Vec<f32> {
    net.layout
        .entries
        .iter()
        .flat_map(|e| arena[e.offset..e.offset + e.shape.numel()].iter().copied())
        .collect()
}

/// Largest |got − want| / max(|want|, floor), with floor a hundredth of the largest |want|.
fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    let peak = want.iter().fold(0.0f32, |m, w| m.max(w.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(0.01 * peak).max(f32::MIN_POSITIVE))
        .fold(0.0, f32::max)
}

/// The parameters' change over `steps` SGD steps (momentum 0.9), and the scaler's state.
fn sgd_run(
    backend: &mut dyn Backend,
    net: &Net,
    steps: u32,
) -> (Vec<f32>, Vec<f32>, Option<LossScale>) {
    optimizer_run(backend, net, Optimizer::sgd(0.9), steps)
}

/// The parameters after `steps` steps of `opt`, their change, and the scaler's state.
fn optimizer_run(
    backend: &mut dyn Backend,
    net: &Net,
    opt: Optimizer,
    steps: u32,
) -> (Vec<f32>, Vec<f32>, Option<LossScale>) {
    let id = load(backend, net, opt);
    for t in 1..=steps {
        step(backend, id, net, opt, Clip::default(), t);
    }
    let params = backend.read_params().unwrap();
    let delta = params.iter().zip(&net.params).map(|(p, q)| p - q).collect();
    (params, delta, backend.read_loss_scale().unwrap())
}

#[test]
fn cpu_overflow_step_is_skipped() {
    overflow_is_skipped(&mut CpuBackend::new());
}

#[test]
fn cpu_scale_grows_after_the_interval() {
    scale_grows(&mut CpuBackend::new());
}

#[test]
fn cpu_f32_models_have_no_scaler() {
    f32_has_no_scaler(&mut CpuBackend::new());
}

/// A step scaled by 2^16 in f16 changes the parameters as the unscaled f32 step does,
/// within f16's precision: the bound is f16's unit roundoff (2^-11) times the 16- and
/// 8-term sums of the products, with a margin (what differs is f16 storage of weights and
/// activations; a missing or doubled unscale would be off by 2^16).
#[test]
fn cpu_scaled_f16_step_matches_unscaled_f32() {
    let (n16, n32) = (net(Precision::F16), net(Precision::F32));
    assert_eq!(tensors(&n16, &n16.params), tensors(&n32, &n32.params));
    let (_, d16, s16) = sgd_run(&mut CpuBackend::new(), &n16, 1);
    let (_, d32, s32) = sgd_run(&mut CpuBackend::new(), &n32, 1);
    let (d16, d32) = (tensors(&n16, &d16), tensors(&n32, &d32));
    assert_eq!(s32, None);
    assert_eq!(s16.map(|s| (s.scale, s.skipped)), Some((65536.0, 0)));
    let err = max_rel_err(&d16, &d32);
    eprintln!("f16 vs f32 update: max relative error {err}");
    assert!(
        err < 3e-2,
        "f16 update differs from f32 by {err} (relative)"
    );
    assert!(d32.iter().any(|d| d.abs() > 1e-4), "the step moved nothing");
}

/// Runs `f` on the GPU when there is one with SHADER_F16, else says why it skipped.
fn on_gpu(f: impl FnOnce(&mut dyn Backend)) {
    let Some(mut gpu) = common::gpu() else {
        return;
    };
    if !gpu.context().has_f16() {
        eprintln!("\n*** SKIPPED: the wgpu adapter lacks SHADER_F16 ***\n");
        return;
    }
    f(&mut gpu);
}

#[test]
fn gpu_overflow_step_is_skipped() {
    on_gpu(overflow_is_skipped);
}

#[test]
fn gpu_scale_grows_after_the_interval() {
    on_gpu(scale_grows);
}

#[test]
fn gpu_f32_models_have_no_scaler() {
    on_gpu(f32_has_no_scaler);
}

/// A few f16 steps agree between the backends: parameters (and their f16 copies) within
/// f16's tolerance, the scaler's state exactly; on each, the f16 copy is the rounding of
/// the f32 masters.
#[test]
fn gpu_f16_steps_match_the_cpu() {
    on_gpu(|gpu| {
        let net = net(Precision::F16);
        let steps = 4;
        let (p_gpu, d_gpu, s_gpu) = sgd_run(gpu, &net, steps);
        let mut cpu = CpuBackend::new();
        let (p_cpu, d_cpu, s_cpu) = sgd_run(&mut cpu, &net, steps);
        assert_eq!(s_gpu, s_cpu, "scaler state");
        assert_eq!(
            s_cpu,
            Some(LossScale {
                scale: 65536.0,
                growth_tracker: steps,
                skipped: 0
            })
        );
        let err = max_rel_err(&d_gpu, &d_cpu);
        eprintln!("GPU vs CPU f16 updates: max relative error {err}");
        assert!(
            err < 1e-2,
            "GPU and CPU f16 updates differ by {err} (relative)"
        );
        let err = max_rel_err(&p_gpu, &p_cpu);
        assert!(
            err < 1e-2,
            "GPU and CPU parameters differ by {err} (relative)"
        );
        // The optimizer wrote the f16 copy on the device: the masters rounded to f16.
        let compiled = gpu
            .compile(
                &net.plan,
                Tail {
                    update: false,
                    ..Tail::default()
                },
            )
            .unwrap();
        let half = params_half(gpu, compiled, &net);
        let rounded: Vec<f32> = p_gpu.iter().map(|&p| round_f16(p)).collect();
        let off = half
            .iter()
            .zip(&rounded)
            .filter(|(h, r)| h.to_bits() != r.to_bits())
            .count();
        assert_eq!(
            off, 0,
            "{off} f16 weights are not their master rounded to f16"
        );
    });
}

/// The f16 update kernels of Adamax, NAdam and RAdam (seven steps: RAdam's first
/// rectified step is the sixth) against the CPU's, and the f16 copy they write.
#[test]
fn gpu_f16_adam_variants_match_the_cpu() {
    on_gpu(|gpu| {
        let net = net(Precision::F16);
        for opt in [Optimizer::adamax(), Optimizer::nadam(), Optimizer::radam()] {
            let (p_gpu, d_gpu, _) = optimizer_run(gpu, &net, opt, 7);
            let (p_cpu, d_cpu, _) = optimizer_run(&mut CpuBackend::new(), &net, opt, 7);
            let err = max_rel_err(&d_gpu, &d_cpu);
            assert!(err < 1e-2, "{opt:?}: updates differ by {err} (relative)");
            let id = gpu
                .compile(
                    &net.plan,
                    Tail {
                        update: false,
                        ..Tail::default()
                    },
                )
                .unwrap();
            let half = params_half(gpu, id, &net);
            assert!(
                half.iter()
                    .zip(&p_gpu)
                    .all(|(h, p)| h.to_bits() == round_f16(*p).to_bits()),
                "{opt:?}: the f16 copy is not the masters rounded"
            );
            assert!(max_rel_err(&p_gpu, &p_cpu) < 1e-2);
        }
    });
}

/// On a device whose bindings hold 4,096 floats, the optimizer (and the f16 copy it
/// writes) is bound in pieces: the f16 steps still match the CPU, and an overflow step is
/// still skipped as a whole.
#[test]
fn gpu_f16_steps_in_pieces_match_the_cpu() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = GpuContext::with_limits(AdapterPolicy::AllowSoftware, |l| {
        l.max_storage_buffer_binding_size = 16 << 10;
    })
    .unwrap();
    if !ctx.has_f16() {
        eprintln!("\n*** SKIPPED: the wgpu adapter lacks SHADER_F16 ***\n");
        return;
    }
    let mut gpu = WgpuBackend::with_context(ctx);
    let net = net_of(Precision::F16, WIDE);
    assert!(net.layout.size > 4096, "the arena spans several pieces");
    let (p_gpu, d_gpu, s_gpu) = sgd_run(&mut gpu, &net, 3);
    let (p_cpu, d_cpu, s_cpu) = sgd_run(&mut CpuBackend::new(), &net, 3);
    assert_eq!(s_gpu, s_cpu, "scaler state");
    let err = max_rel_err(&d_gpu, &d_cpu);
    assert!(
        err < 1e-2,
        "GPU and CPU f16 updates differ by {err} (relative)"
    );
    let err = max_rel_err(&p_gpu, &p_cpu);
    assert!(
        err < 1e-2,
        "GPU and CPU parameters differ by {err} (relative)"
    );
    let id = gpu
        .compile(
            &net.plan,
            Tail {
                update: true,
                ..Tail::default()
            },
        )
        .unwrap();
    let half = params_half(&mut gpu, id, &net);
    assert!(
        half.iter()
            .zip(&p_gpu)
            .all(|(h, p)| h.to_bits() == round_f16(*p).to_bits()),
        "every piece of the f16 copy was written"
    );
    gpu.write_loss_scale(LossScale {
        scale: 1e30,
        growth_tracker: 0,
        skipped: 0,
    })
    .unwrap();
    let before = bits(&gpu.read_params().unwrap());
    step(&mut gpu, id, &net, Optimizer::sgd(0.9), Clip::default(), 4);
    assert_eq!(
        bits(&gpu.read_params().unwrap()),
        before,
        "skipped in every piece"
    );
    assert_eq!(bits(&params_half(&mut gpu, id, &net)), bits(&half));
    assert_eq!(gpu.read_loss_scale().unwrap().map(|s| s.skipped), Some(1));
}
