//! Philox on the device against the published known answers and the host generator, and
//! dropout masks bit-equal on both backends.

mod common;

use kiln::backend::cpu::CpuBackend;
use kiln::backend::{Backend, Tail};
use kiln::graph::{Graph, ParamLayout, Plan};
use kiln::op::{DropoutSpec, Op};
use kiln::optim::StepScalars;
use kiln::rng::philox4x32_10;
use kiln::shape::Shape;

#[test]
fn device_philox_matches_known_answers_and_host() {
    let Some(mut gpu) = common::gpu() else { return };
    let vectors: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in vectors {
        assert_eq!(gpu.philox_blocks(ctr, key, 1).unwrap(), want.to_vec());
    }
    // A longer stream, with the first counter word wrapping around.
    let (ctr, key) = ([u32::MAX - 500, 7, 8, 9], [0xdead_beef, 0x1234_5678]);
    let device = gpu.philox_blocks(ctr, key, 1000).unwrap();
    for b in 0..1000u32 {
        let host = philox4x32_10([ctr[0].wrapping_add(b), ctr[1], ctr[2], ctr[3]], key);
        assert_eq!(
            &device[4 * b as usize..4 * b as usize + 4],
            &host,
            "block {b}"
        );
    }
}

fn dropout_output(
    backend: &mut dyn Backend,
    n: usize,
    spec: DropoutSpec,
    seed: u64,
    step: u32,
) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.input("x", Shape::new(&[n]));
    let y = g.op(Op::Dropout(spec), &[x]).unwrap();
    let layout = ParamLayout::of(&g);
    let plan = Plan::build(&g, &layout, &[y], &[]).unwrap();
    backend
        .init_model(&layout, &vec![0.0; layout.size], &[], None)
        .unwrap_or_else(|_| {
            backend
                .init_model(
                    &layout,
                    &vec![0.0; layout.size],
                    &vec![0.0; layout.buffers_size],
                    None,
                )
                .unwrap()
        });
    let id = backend.compile(&plan, Tail::default()).unwrap();
    let ones = vec![1.0f32; n];
    let scalars = StepScalars {
        step,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        ..StepScalars::default()
    };
    backend.run(id, &[&ones], &scalars).unwrap();
    backend.read_slot(id, plan.output_slot(y).unwrap()).unwrap()
}

#[test]
fn dropout_masks_are_bit_equal_on_both_backends() {
    let Some(mut gpu) = common::gpu() else { return };
    // Plain dropout (per = 1) and Dropout2d's channels of `per` elements, over lengths
    // that end inside a block of four draws or a channel, and past the CPU's pieces.
    for (seed, step, n, p, layer, per) in [
        (0u64, 1u32, 1usize, 0.5f32, 0u32, 1u32),
        (42, 7, 1001, 0.25, 3, 1),
        (0xfeed_f00d_0000_0001, 1000, 65_537, 0.5, 9, 1),
        (5, 2, 4096, 0.9, 1, 1),
        (42, 7, 9 * 49, 0.5, 3, 49),
        (7, 3, 1000 * 196, 0.3, 2, 196),
        (7, 3, 77, 0.5, 2, 11),
        // Two draws in one shader block of four elements (2), and runs across blocks (3).
        (11, 5, 1001, 0.5, 4, 2),
        (11, 5, 999, 0.5, 4, 3),
    ] {
        let spec = DropoutSpec { p, layer, per };
        let cpu = dropout_output(&mut CpuBackend::new(), n, spec, seed, step);
        let dev = dropout_output(&mut gpu, n, spec, seed, step);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&cpu),
            bits(&dev),
            "seed {seed} step {step} n {n} p {p} per {per}"
        );
        // Kept elements are scaled by 1/(1-p); each run of `per` is kept or dropped whole,
        // and the kept fraction of runs is within 4 sigma of 1-p.
        assert!(cpu.iter().all(|&v| v == 0.0 || v == spec.scale()));
        let runs: Vec<&[f32]> = cpu.chunks(per as usize).collect();
        assert!(
            runs.iter().all(|r| r.iter().all(|&v| v == r[0])),
            "per {per}"
        );
        let kept = runs.iter().filter(|r| r[0] != 0.0).count() as f64;
        let draws = runs.len() as f64;
        let sigma = (draws * f64::from(p) * f64::from(1.0 - p)).sqrt();
        assert!(
            (kept - draws * f64::from(1.0 - p)).abs() <= 4.0 * sigma.max(0.5),
            "kept {kept} of {draws} at p {p}"
        );
    }
}
