//! The matmul kernel's tile configurations and the autotuner: every configuration, forced,
//! matches the f64 reference on odd shapes, all four transpose combinations, accumulating
//! pieces and folded dispatches, and all of them give bit-identical outputs (so what the
//! tuner picks never changes a result); the tuning cache round-trips through its file, a
//! corrupt file is tuned over, and `KILN_TUNE=off` means the default configuration.

mod common;

use std::path::PathBuf;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::wgpu::matmul::{MatmulProblem, CONFIGS, DEFAULT};
use kiln::backend::wgpu::tune::{ShapeClass, TuneCache, Tuning, ENV};
use kiln::backend::wgpu::{AdapterPolicy, GpuContext, WgpuBackend};
use kiln::backend::Backend;
use kiln::op::{Activation, ConvGeom, Op};
use kiln::optim::StepScalars;
use kiln::parity::{check, InputKind, OpCase};
use kiln::shape::Shape;

/// a · b with the given transposes, for an output [m, n] summing over k.
fn case(ta: bool, tb: bool, m: usize, n: usize, k: usize) -> OpCase {
    let a = if ta { [k, m] } else { [m, k] };
    let b = if tb { [n, k] } else { [k, n] };
    OpCase {
        op: Op::MatMul {
            trans_a: ta,
            trans_b: tb,
        },
        inputs: vec![
            (Shape::new(&a), InputKind::Real(1.0)),
            (Shape::new(&b), InputKind::Real(1.0)),
        ],
        target: None,
    }
}

/// Runs the product of `case` on `backend` and returns its output.
fn run(backend: &mut impl Backend, case: &OpCase, inputs: &[Vec<f32>]) -> kiln::Result<Vec<f32>> {
    let (id, plan, out) = common::compiled(backend, case)?;
    let feeds: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    backend.run(id, &feeds, &StepScalars::default())?;
    let slot = plan.output_slot(out).expect("planned output");
    backend.read_slot(id, slot)
}

/// The dispatches of `case`'s plan on `gpu`.
fn dispatches(gpu: &mut WgpuBackend, case: &OpCase) -> usize {
    let (id, _, _) = common::compiled(gpu, case).unwrap();
    gpu.dispatch_count(id).unwrap()
}

/// A convolution with 7x7 output images over 30 images: its weight gradient sums over
/// K = 1470 rows, split in two parts of 768, the second starting in the middle of image 15
/// (row 4, column 5).
const SEVEN_BY_SEVEN: ConvGeom = ConvGeom {
    n: 30,
    c: 3,
    h: 14,
    w: 14,
    kh: 3,
    kw: 3,
    sh: 2,
    sw: 2,
    ph: 1,
    pw: 1,
    dh: 1,
    dw: 1,
};

/// Runs `cases` under every configuration on `backend`: each output within the reference
/// tolerance, and the same bits under every configuration.
fn every_config_on(backend: &mut WgpuBackend, cases: &[OpCase], what: &str) {
    for (i, c) in cases.iter().enumerate() {
        let inputs = c.make_inputs(500 + i as u64);
        let mut first: Option<Vec<u32>> = None;
        for config in CONFIGS {
            backend.context().set_matmul_tuning(Tuning::Fixed(*config));
            let got = run(backend, c, &inputs).unwrap_or_else(|e| {
                panic!(
                    "{what}: {} {} in {}: {e}",
                    c.op.name(),
                    c.shapes(),
                    config.name
                )
            });
            let r = check(c, &inputs, &got).unwrap();
            assert!(
                r.passed(),
                "{what}: {} {} in {}: max abs {:.3e}, worst/bound {:.2}, {:?}",
                r.op,
                r.shapes,
                config.name,
                r.max_abs,
                r.worst_ratio,
                r.mismatches
            );
            let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            match &first {
                None => first = Some(bits),
                Some(f) => assert!(
                    *f == bits,
                    "{what}: {} {}: {} differs from {} in {} of {} outputs",
                    c.op.name(),
                    c.shapes(),
                    config.name,
                    CONFIGS[0].name,
                    f.iter().zip(&bits).filter(|(a, b)| a != b).count(),
                    bits.len()
                ),
            }
        }
    }
}

const TRANSPOSES: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

#[test]
fn every_configuration_matches_the_reference_with_identical_bits() {
    let Some(mut gpu) = common::gpu() else { return };
    // Odd sizes (scalar reads, partial tiles everywhere) and multiples of 4 (vec4 reads of
    // one operand or both, depending on which dimension the transposes make contiguous).
    let shapes = [
        (1, 1, 1),
        (3, 17, 63),
        (65, 129, 3),
        (255, 63, 129),
        (17, 255, 65),
        (4, 8, 255),
        (64, 128, 256),
        (129, 36, 12),
        // Split along K (split_k.rs): 2 parts (the last one short), and 5 parts of a
        // 37x70 product.
        (5, 7, 1100),
        (37, 70, 2600),
    ];
    let mut cases = Vec::new();
    for (m, n, k) in shapes {
        for (ta, tb) in TRANSPOSES {
            cases.push(case(ta, tb, m, n, k));
        }
    }
    // The fused epilogues (bias; bias and an activation) under every configuration: the
    // 128x128 tiles store two column groups per invocation, each with its own bias reads.
    for (m, n, k) in [(3, 17, 63), (64, 128, 256), (129, 36, 12), (37, 70, 2600)] {
        for (ta, tb) in TRANSPOSES {
            for act in [None, Some(Activation::Sigmoid)] {
                let mut c = case(ta, tb, m, n, k);
                c.op = match act {
                    None => Op::MatMulBias {
                        trans_a: ta,
                        trans_b: tb,
                    },
                    Some(act) => Op::MatMulBiasAct {
                        trans_a: ta,
                        trans_b: tb,
                        act,
                    },
                };
                c.inputs.push((Shape::new(&[n]), InputKind::Real(1.0)));
                cases.push(c);
            }
        }
    }
    // The implicit-GEMM convolution products, whose index arithmetic depends on the tile
    // configuration (which column of a tile each invocation stages): strides, padding,
    // kh ≠ kw, several tiles of rows and of K.
    let geoms = [
        ConvGeom {
            n: 3,
            c: 5,
            h: 7,
            w: 9,
            kh: 3,
            kw: 2,
            sh: 2,
            sw: 1,
            ph: 1,
            pw: 0,
            dh: 1,
            dw: 1,
        },
        ConvGeom {
            n: 4,
            c: 4,
            h: 12,
            w: 12,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 1,
            dh: 1,
            dw: 1,
        },
    ];
    // Output images of 2x2: a K tile of the weight gradient spans several images.
    let tiny = ConvGeom {
        n: 9,
        c: 2,
        h: 3,
        w: 3,
        kh: 2,
        kw: 2,
        sh: 1,
        sw: 1,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
    };
    // Split along K: the weight gradient sums over 8 images of 16x16 (K = 2048, 4 parts)
    // and over 30 of 7x7 (K = 1470, 2 parts, the second from the middle of an image); the
    // forward product over 128 channels of 3x3 taps (K = 1152, 2 parts).
    let long_sums = [
        SEVEN_BY_SEVEN,
        ConvGeom {
            n: 8,
            c: 3,
            h: 16,
            w: 16,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 1,
            dh: 1,
            dw: 1,
        },
        ConvGeom {
            n: 1,
            c: 128,
            h: 4,
            w: 4,
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 1,
            dh: 1,
            dw: 1,
        },
    ];
    for (g, oc) in geoms
        .into_iter()
        .chain([tiny])
        .chain(long_sums)
        .zip([37, 40, 5, 6, 6, 8])
    {
        let real = |d: &[usize]| (Shape::new(d), InputKind::Real(1.0));
        let (x, w) = (real(&[g.n, g.c, g.h, g.w]), real(&[oc, g.patch()]));
        let forward = |bias: bool, act| Op::ConvMatMul { geom: g, bias, act };
        let rows = g.n * g.oh() * g.ow();
        for (op, inputs) in [
            (forward(false, None), vec![x.clone(), w.clone()]),
            (
                forward(true, Some(Activation::Relu)),
                vec![x.clone(), w, real(&[oc])],
            ),
            (Op::ConvWeightGrad(g), vec![real(&[rows, oc]), x]),
        ] {
            cases.push(OpCase {
                op,
                inputs,
                target: None,
            });
        }
    }
    every_config_on(&mut gpu, &cases, "lavapipe");
}

/// A device with 4 KiB bindings and 4 workgroups per dimension: products are split by rows
/// (and further when their tiles do not fit 4 x 4 workgroups, which depends on the tile
/// size) and weight gradients along K into pieces that add into the output.
#[test]
fn accumulating_pieces_and_folded_dispatches_on_a_small_device() {
    if common::gpu().is_none() {
        return;
    }
    let ctx = GpuContext::with_limits(AdapterPolicy::AllowSoftware, |l| {
        l.max_storage_buffer_binding_size = 4096;
        l.max_compute_workgroups_per_dimension = 4;
    })
    .unwrap();
    let mut gpu = WgpuBackend::with_context(ctx);
    let cases = [
        // aᵀ·b with a [600, 5], b [600, 7]: K = 600 split into accumulating pieces.
        case(true, false, 5, 7, 600),
        case(true, false, 3, 17, 255),
        // 700 rows: split by the binding limit, and by the dispatch limit for small tiles.
        case(false, false, 700, 3, 1),
        case(false, true, 129, 7, 3),
        case(false, false, 255, 1, 2),
    ];
    every_config_on(&mut gpu, &cases, "small device");

    // 64 KiB bindings and 8 workgroups per dimension: rows of 1088 columns are split into
    // pieces of 8 rows, whose 9 (128x128) to 34 (32x32) tiles are folded into x and y.
    let ctx = GpuContext::with_limits(AdapterPolicy::AllowSoftware, |l| {
        l.max_storage_buffer_binding_size = 64 * 1024;
        l.max_compute_workgroups_per_dimension = 8;
    })
    .unwrap();
    let mut gpu = WgpuBackend::with_context(ctx);
    let cases = [
        case(false, false, 20, 1088, 8),
        case(false, true, 20, 1088, 8),
        // Split along K into 3 parts (at most 8 x 8 workgroups); and K = 10,000 cut by the
        // binding limit into accumulating pieces, each split along K, whose sums add into
        // the output.
        case(true, false, 5, 7, 2000),
        case(true, false, 5, 7, 10_000),
        // The same with a bias and an activation: only the last piece's second pass adds
        // them, after its parts and the earlier pieces' sums.
        {
            let mut c = case(true, false, 5, 7, 10_000);
            c.op = Op::MatMulBiasAct {
                trans_a: true,
                trans_b: false,
                act: Activation::Tanh,
            };
            c.inputs.push((Shape::new(&[7]), InputKind::Real(1.0)));
            c
        },
    ];
    every_config_on(&mut gpu, &cases, "folded");
}

/// Integers in [-3, 3], from a fixed linear congruential sequence.
fn small_integers(len: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005) | 1;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 33) % 7) as f32 - 3.0
        })
        .collect()
}

/// Products split along K on integer operands: every partial sum and their total are exact
/// in f32, so the GPU's output must equal the CPU backend's bit for bit. A part summed
/// twice, left out or given another part's range changes the numbers.
#[test]
fn split_k_products_sum_every_part_exactly() {
    let Some(mut gpu) = common::gpu() else { return };
    // An unsplit product is one dispatch (the counterpart of the check below).
    assert_eq!(dispatches(&mut gpu, &case(false, false, 37, 70, 1000)), 1);
    let mut cases: Vec<OpCase> = TRANSPOSES
        .iter()
        .map(|&(ta, tb)| case(ta, tb, 37, 70, 2600))
        .collect();
    let mut biased = case(false, true, 37, 70, 2600);
    biased.op = Op::MatMulBiasAct {
        trans_a: false,
        trans_b: true,
        act: Activation::Relu,
    };
    biased
        .inputs
        .push((Shape::new(&[70]), InputKind::Real(1.0)));
    cases.push(biased);
    let g = ConvGeom {
        n: 8,
        c: 3,
        h: 16,
        w: 16,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 2,
        ph: 1,
        pw: 1,
        dh: 1,
        dw: 1,
    };
    let rows = g.n * g.oh() * g.ow();
    let real = |d: &[usize]| (Shape::new(d), InputKind::Real(1.0));
    cases.push(OpCase {
        op: Op::ConvWeightGrad(g),
        inputs: vec![real(&[rows, 6]), real(&[g.n, g.c, g.h, g.w])],
        target: None,
    });
    let odd = SEVEN_BY_SEVEN;
    let odd_rows = odd.n * odd.oh() * odd.ow();
    cases.push(OpCase {
        op: Op::ConvWeightGrad(odd),
        inputs: vec![real(&[odd_rows, 6]), real(&[odd.n, odd.c, odd.h, odd.w])],
        target: None,
    });
    let wide = ConvGeom {
        n: 1,
        c: 128,
        ph: 0,
        pw: 0,
        ..g
    };
    cases.push(OpCase {
        op: Op::ConvMatMul {
            geom: wide,
            bias: true,
            act: Some(Activation::Relu),
        },
        inputs: vec![
            real(&[1, 128, 16, 16]),
            real(&[8, wide.patch()]),
            real(&[8]),
        ],
        target: None,
    });
    assert_eq!((odd.oh(), odd.ow(), odd_rows), (7, 7, 1470));
    let mut cpu = CpuBackend::new();
    for (i, c) in cases.iter().enumerate() {
        let inputs: Vec<Vec<f32>> = c
            .inputs
            .iter()
            .enumerate()
            .map(|(j, (shape, _))| small_integers(shape.numel(), (10 * i + j) as u64))
            .collect();
        let want = run(&mut cpu, c, &inputs).unwrap();
        let got = run(&mut gpu, c, &inputs).unwrap();
        // The product ran as its parts and their sum.
        assert_eq!(dispatches(&mut gpu, c), 2, "{} {}", c.op.name(), c.shapes());
        assert!(want.iter().any(|v| v.abs() > 100.0), "{}", c.op.name());
        let differ = want
            .iter()
            .zip(&got)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differ,
            0,
            "{} {}: {differ} of {} outputs differ",
            c.op.name(),
            c.shapes(),
            want.len()
        );
    }
}

fn temp_cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-tune-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("sub").join("matmul-tune.json")
}

/// A small shallow product: the cheapest class to tune on a software adapter.
const SMALL: MatmulProblem = MatmulProblem {
    m: 10,
    n: 20,
    k: 30,
};

#[test]
fn tuning_writes_a_cache_that_later_choices_read() {
    let Some(gpu) = common::gpu() else { return };
    let ctx = gpu.context();
    let path = temp_cache("round-trip");
    ctx.set_matmul_tune_cache(Some(path.clone()));
    ctx.set_matmul_tuning(Tuning::Auto);
    let class = ShapeClass::of(&SMALL);

    let r = ctx
        .tune_matmul(class)
        .unwrap()
        .expect("lavapipe runs every configuration");
    assert_eq!(r.timings.len(), CONFIGS.len());
    assert!(r.timings.iter().all(|(_, t)| !t.is_zero()));
    assert!(CONFIGS.contains(&r.best));
    eprintln!(
        "{}: {:?} x{}: {}",
        class.name(),
        r.problem,
        r.dispatches,
        r.timings
            .iter()
            .map(|(c, t)| format!("{} {:.3} ms", c.name, t.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The first choice for the class tunes and writes the file.
    assert!(!path.exists());
    let chosen = ctx.matmul_config(&SMALL);
    let cache = TuneCache::load(&path);
    assert_eq!(cache.get(&ctx.tune_key(), class), Some(chosen));
    assert_eq!(
        TuneCache::parse(&std::fs::read_to_string(&path).unwrap()),
        Some(cache)
    );

    // A choice recorded in the file (here another configuration) is used as it is.
    let other = *CONFIGS.iter().find(|c| **c != chosen).unwrap();
    let mut cache = TuneCache::load(&path);
    cache.insert(&ctx.tune_key(), class, other);
    cache.save(&path).unwrap();
    ctx.set_matmul_tune_cache(Some(path.clone()));
    assert_eq!(ctx.matmul_config(&SMALL), other);
    // Another class of the same device is added next to it.
    let deep = MatmulProblem { k: 100, ..SMALL };
    let deep_choice = ctx.matmul_config(&deep);
    let cache = TuneCache::load(&path);
    assert_eq!(cache.get(&ctx.tune_key(), class), Some(other));
    assert_eq!(
        cache.get(&ctx.tune_key(), ShapeClass::of(&deep)),
        Some(deep_choice)
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn a_corrupt_cache_is_tuned_over() {
    let Some(gpu) = common::gpu() else { return };
    let ctx = gpu.context();
    let path = temp_cache("corrupt");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    for garbage in ["{\"version\": 1, \"devices\": ", "\u{0}\u{1}binary", ""] {
        std::fs::write(&path, garbage).unwrap();
        ctx.set_matmul_tune_cache(Some(path.clone()));
        ctx.set_matmul_tuning(Tuning::Auto);
        let chosen = ctx.matmul_config(&SMALL);
        assert_eq!(
            TuneCache::load(&path).get(&ctx.tune_key(), ShapeClass::of(&SMALL)),
            Some(chosen),
            "after {garbage:?}"
        );
    }
    // A cache that cannot be written (its directory is a file) still gives an answer.
    let blocked = path.parent().unwrap().join("file");
    std::fs::write(&blocked, "x").unwrap();
    ctx.set_matmul_tune_cache(Some(blocked.join("matmul-tune.json")));
    assert!(CONFIGS.contains(&ctx.matmul_config(&SMALL)));
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
}

#[test]
fn kiln_tune_off_uses_the_default_configuration() {
    if common::gpu().is_none() {
        return;
    }
    // Other tests in this binary set their mode explicitly after opening a device, so the
    // variable does not reach them.
    std::env::set_var(ENV, "off");
    let ctx = GpuContext::new(AdapterPolicy::AllowSoftware);
    std::env::remove_var(ENV);
    let ctx = ctx.unwrap();
    assert_eq!(ctx.matmul_tuning(), Tuning::Off);
    let path = temp_cache("off");
    ctx.set_matmul_tune_cache(Some(path.clone()));
    for p in [
        SMALL,
        MatmulProblem {
            m: 4096,
            n: 4096,
            k: 4096,
        },
    ] {
        assert_eq!(ctx.matmul_config(&p), DEFAULT);
    }
    assert!(!path.exists(), "tuning off must not tune");
    ctx.set_matmul_tuning(Tuning::Fixed(CONFIGS[0]));
    assert_eq!(ctx.matmul_config(&SMALL), CONFIGS[0]);
}

/// Prints this device's timings for every class (`--ignored --nocapture`); caches nothing.
#[test]
#[ignore = "times every configuration on every class: slow on a software adapter"]
fn print_the_tuning_table() {
    let Some(gpu) = common::gpu() else { return };
    let ctx = gpu.context();
    eprintln!("{}", ctx.describe());
    for class in ShapeClass::ALL {
        let start = std::time::Instant::now();
        let Some(r) = ctx.tune_matmul(class).unwrap() else {
            eprintln!("{}: cannot be tuned on this device", class.name());
            continue;
        };
        let p = r.problem;
        let flops = 2.0 * (p.m * p.n * p.k) as f64;
        eprintln!(
            "{:>15} {}x{}x{} x{:<3} best {:>7} ({:.1} s): {}",
            class.name(),
            p.m,
            p.n,
            p.k,
            r.dispatches,
            r.best.name,
            start.elapsed().as_secs_f64(),
            r.timings
                .iter()
                .map(|(c, t)| format!("{} {:.1} GFLOP/s", c.name, flops / t.as_secs_f64() / 1e9))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
