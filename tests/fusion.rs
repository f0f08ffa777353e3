//! The fusions (`graph::fuse`: the bias add, then a relu, sigmoid or tanh, into the
//! product; then im2col into the conv products, as implicit GEMM): training steps with
//! them are bit-identical to steps without them in f32, on the CPU backend and on wgpu
//! (lavapipe in CI), and their plans have one step fewer per linear or conv layer, one
//! fewer per activation fused and no im2col matrix.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::wgpu::{AdapterPolicy, GpuContext, WgpuBackend};
use kiln::backend::Backend;
use kiln::graph::{fuse, fuse_activation, fuse_bias, gradients, ParamLayout, Plan};
use kiln::nn::{Mode, Model};
use kiln::op::{Activation, Op};
use kiln::parity::{run_case, InputKind, OpCase};
use kiln::shape::Shape;
use kiln::train::{objective, TrainConfig};

fn config(fuse: bool, batch_size: usize) -> TrainConfig {
    TrainConfig {
        batch_size,
        fuse,
        ..TrainConfig::default()
    }
}

/// Trains `steps` steps of `spec` with and without fusion on backends from `backend` and
/// asserts that every loss and every parameter has the same bits.
fn same_bits(backend: &dyn Fn() -> Box<dyn Backend>, spec: &str, batch: usize, steps: usize) {
    let (fused_loss, fused_params) =
        common::loss_curve(backend(), spec, &config(true, batch), steps);
    let (plain_loss, plain_params) =
        common::loss_curve(backend(), spec, &config(false, batch), steps);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&fused_loss),
        bits(&plain_loss),
        "{spec}: losses {fused_loss:?} fused vs {plain_loss:?}"
    );
    assert!(fused_loss.iter().all(|l| l.is_finite()), "{fused_loss:?}");
    let differ = fused_params
        .iter()
        .zip(&plain_params)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(fused_params.len(), plain_params.len());
    assert_eq!(
        differ,
        0,
        "{spec}: {differ} parameters differ (largest by {})",
        common::max_abs_diff(&fused_params, &plain_params)
    );
}

#[test]
fn cpu_training_is_bit_identical_with_and_without_fusion() {
    let cpu = || -> Box<dyn Backend> { Box::new(CpuBackend::new()) };
    same_bits(&cpu, "mlp", 64, 3);
    same_bits(&cpu, "cnn", 16, 2);
    same_bits(&cpu, SIGMOID_TANH, 32, 3);
}

/// A model whose fused epilogues apply sigmoid and tanh (the presets fuse relu only), with
/// widths off the tile sizes.
const SIGMOID_TANH: &str = "linear(784,100),sigmoid,linear(100,37),tanh,linear(37,10)";

#[test]
fn gpu_training_is_bit_identical_with_and_without_fusion() {
    if common::gpu().is_none() {
        return;
    }
    let gpu = || -> Box<dyn Backend> {
        match common::gpu() {
            Some(b) => Box::new(b),
            None => panic!("the adapter went away between two tests"),
        }
    };
    same_bits(&gpu, "mlp", 32, 3);
    same_bits(&gpu, SIGMOID_TANH, 32, 3);
    // lavapipe runs a cnn step of batch 8 in about a fifth of a second.
    same_bits(&gpu, "cnn", 8, 2);
}

/// The training plan of `spec` at batch 4, with the fusions `fusion` names.
fn training_plan(spec: &str, fusion: Fusion) -> Plan {
    let model = Model::parse(spec).unwrap();
    let c = TrainConfig::default();
    let fg = objective(
        &model,
        4,
        c.sample,
        Mode::Train,
        c.loss,
        c.label_smoothing,
        c.penalty,
        &|_| true,
    )
    .unwrap();
    let mut graph = fg.graph;
    let grads = gradients(&mut graph, fg.total).unwrap();
    let mut outputs = vec![fg.loss, fg.correct];
    outputs.extend(&fg.updates);
    let keep: Vec<_> = outputs
        .iter()
        .copied()
        .chain(grads.iter().map(|g| g.1))
        .collect();
    let fused = match fusion {
        Fusion::None => 0,
        Fusion::Bias => fuse_bias(&mut graph, &keep).unwrap(),
        Fusion::Epilogues => {
            fuse_bias(&mut graph, &keep).unwrap() + fuse_activation(&mut graph, &keep).unwrap()
        }
        Fusion::All => fuse(&mut graph, &keep).unwrap(),
    };
    let plan = Plan::build(&graph, &ParamLayout::of(&graph), &outputs, &grads).unwrap();
    let mut saved = 0;
    for s in &plan.steps {
        match s.op {
            Op::MatMulBias { .. } => saved += 1,
            Op::MatMulBiasAct { .. } => saved += 2,
            // The im2col step, plus the epilogue's steps.
            Op::ConvMatMul { bias, act, .. } => {
                saved += 1 + usize::from(bias) + usize::from(act.is_some())
            }
            _ => {}
        }
    }
    assert_eq!(fused, saved);
    plan
}

/// Which fusions a plan gets.
#[derive(Clone, Copy)]
enum Fusion {
    None,
    Bias,
    /// The bias, then the activation.
    Epilogues,
    All,
}

#[test]
fn fused_plans_have_one_step_fewer_per_linear_or_conv_layer() {
    // mlp: three linear layers; cnn: two conv and two linear layers.
    for (spec, layers) in [("mlp", 3), ("cnn", 4)] {
        let plain = training_plan(spec, Fusion::None);
        let fused = training_plan(spec, Fusion::Bias);
        assert_eq!(
            fused.steps.len() + layers,
            plain.steps.len(),
            "{spec}: {} steps fused, {} plain",
            fused.steps.len(),
            plain.steps.len()
        );
        let count = |p: &Plan, f: &dyn Fn(&Op) -> bool| p.steps.iter().filter(|s| f(&s.op)).count();
        assert_eq!(count(&fused, &|op| *op == Op::BiasAdd), 0, "{spec}");
        assert_eq!(
            count(&fused, &|op| matches!(op, Op::MatMulBias { .. })),
            layers,
            "{spec}"
        );
        assert_eq!(count(&plain, &|op| *op == Op::BiasAdd), layers, "{spec}");
        // The backward products are untouched: the same number of products in all.
        let products = |p: &Plan| {
            count(p, &|op| {
                matches!(op, Op::MatMul { .. } | Op::MatMulBias { .. })
            })
        };
        assert_eq!(products(&fused), products(&plain), "{spec}");
    }
}

#[test]
fn fused_activations_save_one_more_step_each() {
    // mlp: relu after two of its three linear layers; cnn: after its first linear layer
    // only (its conv relus follow batch norms, its logits have none).
    for (spec, acts) in [("mlp", 2), ("cnn", 1), (SIGMOID_TANH, 2)] {
        let bias = training_plan(spec, Fusion::Bias);
        let all = training_plan(spec, Fusion::Epilogues);
        assert_eq!(
            all.steps.len() + acts,
            bias.steps.len(),
            "{spec}: {} steps with activations fused, {} with biases only",
            all.steps.len(),
            bias.steps.len()
        );
        let fused = |p: &Plan| {
            p.steps
                .iter()
                .filter(|s| matches!(s.op, Op::MatMulBiasAct { .. }))
                .count()
        };
        assert_eq!(fused(&all), acts, "{spec}");
        // Every fused activation reads its output in the backward pass: no gradient step
        // reads a pre-activation, and the relus after batch norms are still planned.
        let from_input = all
            .steps
            .iter()
            .filter(|s| matches!(s.op, Op::ActivationGrad(_)))
            .count();
        assert_eq!(from_input, 0, "{spec}");
        let left = all
            .steps
            .iter()
            .filter(|s| s.op == Op::Activation(Activation::Relu))
            .count();
        assert_eq!(left, if spec == "cnn" { 2 } else { 0 }, "{spec}");
    }
}

#[test]
fn conv_products_read_the_image_and_no_im2col_matrix_is_planned() {
    let epilogues = training_plan("cnn", Fusion::Epilogues);
    let all = training_plan("cnn", Fusion::All);
    let count = |p: &Plan, f: &dyn Fn(&Op) -> bool| p.steps.iter().filter(|s| f(&s.op)).count();
    // Two conv layers: two im2col steps fewer, each forward product (with its bias) and
    // weight gradient reading the image; the input gradient of the second layer is still
    // a product followed by col2im.
    assert_eq!(all.steps.len() + 2, epilogues.steps.len());
    assert_eq!(count(&all, &|op| matches!(op, Op::Im2Col(_))), 0);
    assert_eq!(count(&epilogues, &|op| matches!(op, Op::Im2Col(_))), 2);
    let forward = |op: &Op| {
        matches!(
            op,
            Op::ConvMatMul {
                bias: true,
                act: None,
                ..
            }
        )
    };
    assert_eq!(count(&all, &forward), 2);
    assert_eq!(count(&all, &|op| matches!(op, Op::ConvWeightGrad(_))), 2);
    assert_eq!(count(&all, &|op| matches!(op, Op::Col2Im(_))), 1);
    // The matrices were the largest activations: [4·28·28, 9] and [4·14·14, 288] floats,
    // alive from the forward pass to the weight gradients.
    assert!(
        all.activations_size + 4 * 14 * 14 * 288 <= epilogues.activations_size,
        "{} floats of activations with implicit GEMM, {} without",
        all.activations_size,
        epilogues.activations_size
    );
}

/// A weight-gradient-shaped product (aᵀ·b) with a fused bias on a device whose bindings
/// hold 1024 floats: split along K into summed pieces, of which only the last adds the
/// bias (were each piece to add it, the result would be off by a multiple of the bias).
/// Rows split with the bias bound whole are covered by the training steps of
/// `tests/limits.rs`, which fuse by default. The same with a fused sigmoid, which only the
/// last piece may apply, to the whole sum.
#[test]
fn a_fused_product_split_along_k_adds_its_bias_once() {
    let (k, m, n) = (200, 16, 8);
    let real = |d: &[usize]| (Shape::new(d), InputKind::Real(1.0));
    let inputs = vec![real(&[k, m]), real(&[k, n]), real(&[n])];
    let products = [
        Op::MatMulBias {
            trans_a: true,
            trans_b: false,
        },
        Op::MatMulBiasAct {
            trans_a: true,
            trans_b: false,
            act: Activation::Sigmoid,
        },
    ];
    let cases = products.map(|op| (op, inputs.clone()));
    pass_on_a_small_device(4096, &cases, 7);
}

/// Each `(op, inputs)` case within the tolerance policy on lavapipe opened with storage
/// bindings of `binding_bytes`, so that the steps are split to fit.
fn pass_on_a_small_device(binding_bytes: u64, cases: &[(Op, Vec<(Shape, InputKind)>)], seed: u64) {
    if common::gpu().is_none() {
        return;
    }
    let ctx = GpuContext::with_limits(AdapterPolicy::AllowSoftware, |l| {
        l.max_storage_buffer_binding_size = binding_bytes;
    })
    .unwrap();
    let mut gpu = WgpuBackend::with_context(ctx);
    for (op, inputs) in cases {
        let case = OpCase {
            op: *op,
            inputs: inputs.clone(),
            target: None,
        };
        let r = run_case(&mut gpu, &case, seed).unwrap();
        assert!(
            r.passed(),
            "{}: max abs {:.3e}, worst/bound {:.2}, {:?}",
            r.op,
            r.max_abs,
            r.worst_ratio,
            r.mismatches
        );
    }
}

/// The implicit-GEMM conv products on a device whose bindings hold 4096 floats: the
/// forward product's output ([6·8·8, 16], 6144 floats) is split by images, each piece
/// reading its images' range of the input; the weight gradient's output gradient likewise,
/// its pieces summed (accumulate mode, the bias-free summed path).
#[test]
fn conv_products_split_by_images_match_the_reference() {
    let geom = kiln::op::ConvGeom {
        n: 6,
        c: 3,
        h: 8,
        w: 8,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
        dh: 1,
        dw: 1,
    };
    let real = |d: &[usize]| (Shape::new(d), InputKind::Real(1.0));
    let (x, w, b, dy) = (
        real(&[6, 3, 8, 8]),
        real(&[16, 27]),
        real(&[16]),
        real(&[6 * 64, 16]),
    );
    let forward = |bias: bool, act| Op::ConvMatMul { geom, bias, act };
    let cases = [
        (forward(false, None), vec![x.clone(), w.clone()]),
        (forward(true, Some(Activation::Tanh)), vec![x.clone(), w, b]),
        (Op::ConvWeightGrad(geom), vec![dy, x]),
    ];
    pass_on_a_small_device(16 * 1024, &cases, 11);
}

/// The outputs of one conv layer's forward product (with its bias) and weight gradient in
/// an f16 plan, built from `image_in_f16` an f16 image (an op's output) or the f32 input
/// itself (as the first layer reads the data), with or without `fuse_im2col`.
fn conv_in_f16(backend: &mut dyn Backend, fused: bool, image_in_f16: bool) -> Vec<Vec<u32>> {
    let geom = kiln::op::ConvGeom {
        n: 2,
        c: 3,
        h: 7,
        w: 6,
        kh: 3,
        kw: 3,
        sh: 2,
        sw: 1,
        ph: 1,
        pw: 1,
        dh: 1,
        dw: 1,
    };
    let rows = geom.n * geom.oh() * geom.ow();
    let mut g = kiln::graph::Graph::new();
    let x = g.input("x", Shape::new(&[2, 3, 7, 6]));
    let dy = g.input("dy", Shape::new(&[rows, 5]));
    let init = kiln::nn::Init::Uniform { bound: 1.0 };
    let w = g.param("w", Shape::new(&[5, 27]), init);
    let b = g.param("b", Shape::new(&[5]), init);
    let image = if image_in_f16 {
        g.op(Op::Scale(1.0), &[x]).unwrap()
    } else {
        x
    };
    let cols = g.op(Op::Im2Col(geom), &[image]).unwrap();
    let product = Op::MatMulBias {
        trans_a: false,
        trans_b: true,
    };
    let y = g.op(product, &[cols, w, b]).unwrap();
    let weight_grad = Op::MatMul {
        trans_a: true,
        trans_b: false,
    };
    let dw = g.op(weight_grad, &[dy, cols]).unwrap();
    if fused {
        assert_eq!(kiln::graph::fuse_im2col(&mut g, &[y, dw]).unwrap(), 1);
    }
    let layout = ParamLayout::grouped_in(&g, &|_| false, kiln::precision::Precision::F16);
    let plan = Plan::build(&g, &layout, &[y, dw], &[]).unwrap();
    let wave = |n: usize, k: usize| -> Vec<f32> {
        (0..n)
            .map(|i| (((i * k) % 97) as f32 / 97.0 - 0.5) * 1.7)
            .collect()
    };
    let params = wave(layout.size, 7);
    backend
        .init_model(&layout, &params, &vec![0.0; layout.buffers_size], None)
        .unwrap();
    let id = backend
        .compile(&plan, kiln::backend::Tail::default())
        .unwrap();
    let (xs, dys) = (wave(2 * 3 * 7 * 6, 13), wave(rows * 5, 5));
    backend
        .run(id, &[&xs, &dys], &kiln::optim::StepScalars::default())
        .unwrap();
    [y, dw]
        .iter()
        .map(|&v| {
            let slot = plan.output_slot(v).unwrap();
            let got = backend.read_slot(id, slot).unwrap();
            got.iter().map(|x| x.to_bits()).collect()
        })
        .collect()
}

/// In f16 the implicit-GEMM products round the entries they gather as the unfused plan's
/// f16 im2col matrix holds them: the same bits with and without the fusion, from an f32
/// image (the data) and from an f16 one, on the CPU and on wgpu.
#[test]
fn f16_conv_products_are_bit_identical_with_and_without_implicit_gemm() {
    let mut backends: Vec<(&str, Box<dyn Backend>)> = vec![("cpu", Box::new(CpuBackend::new()))];
    if let Some(gpu) = common::gpu() {
        if gpu.context().has_f16() {
            backends.push(("gpu", Box::new(gpu)));
        }
    }
    for (name, backend) in &mut backends {
        for image_in_f16 in [false, true] {
            let plain = conv_in_f16(backend.as_mut(), false, image_in_f16);
            let fused = conv_in_f16(backend.as_mut(), true, image_in_f16);
            assert_eq!(plain, fused, "{name}, image in f16: {image_in_f16}");
        }
    }
}
