//! Inverted dropout with a regenerated Philox mask (mirrored by `shaders/dropout.wgsl`).

use super::{for_each_piece, Real, PIECE};
use crate::op::DropoutSpec;
use crate::rng::StepRng;

const _: () = assert!(PIECE.is_multiple_of(4), "pieces must start on a block");

/// `out = x · mask · scale` (also the gradient: dx = dy · mask · scale). Elements are taken
/// four at a time, one Philox block each, the pieces in parallel; with `spec.per` > 1
/// (Dropout2d) each run of `per` elements takes one draw.
pub fn dropout<T: Real>(x: &[T], out: &mut [T], spec: &DropoutSpec, rng: &StepRng) {
    let scale = T::of(f64::from(spec.scale()));
    let (p, layer, rng) = (spec.p, spec.layer, *rng);
    if spec.per > 1 {
        let per = spec.per as usize;
        for_each_piece(out, |at, out| {
            let (p, layer, rng, scale) = (p, layer, rng, scale);
            // One Philox block per run, not per element: a run is a whole channel.
            let (mut draw, mut keep) = (usize::MAX, false);
            for (i, (o, &v)) in out.iter_mut().zip(&x[at..]).enumerate() {
                if (at + i) / per != draw {
                    draw = (at + i) / per;
                    // The draw index as u32, as the element index is for plain dropout.
                    keep = rng.keep(layer, draw as u32, p);
                }
                *o = if keep { v * scale } else { T::zero() };
            }
        });
        return;
    }
    for_each_piece(out, |at, out| {
        // Values, not the references the closure captured: the loop then keeps them in
        // registers (read through the references, it ran at half the speed).
        let (p, layer, rng, scale) = (p, layer, rng, scale);
        let first = at / 4;
        for (i, (xs, os)) in x[at..].chunks(4).zip(out.chunks_mut(4)).enumerate() {
            // The block index as u32, as it always was here (the shader's element count
            // is a u32, so it never gets that far).
            let u = rng.block(layer, (first + i) as u32);
            for (k, (o, &v)) in os.iter_mut().zip(xs).enumerate() {
                *o = if u[k] >= p { v * scale } else { T::zero() };
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_fraction_is_within_four_sigma() {
        let spec = DropoutSpec {
            p: 0.3,
            layer: 2,
            per: 1,
        };
        let rng = StepRng { seed: 42, step: 7 };
        let n = 100_000;
        let x = vec![1.0f32; n];
        let mut y = vec![0.0f32; n];
        dropout(&x, &mut y, &spec, &rng);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
        let sigma = (n as f64 * 0.3 * 0.7).sqrt();
        assert!((kept - 0.7 * n as f64).abs() < 4.0 * sigma, "kept {kept}");
        assert!(y.iter().all(|&v| v == 0.0 || v == spec.scale()));
    }

    #[test]
    fn masks_depend_on_step_layer_and_seed_only() {
        let spec = DropoutSpec {
            p: 0.5,
            layer: 0,
            per: 1,
        };
        let x: Vec<f32> = (0..64).map(|i| i as f32 + 1.0).collect();
        let run = |seed, step, layer| {
            let mut y = vec![0.0f32; 64];
            dropout(
                &x,
                &mut y,
                &DropoutSpec { layer, ..spec },
                &StepRng { seed, step },
            );
            y
        };
        assert_eq!(run(1, 1, 0), run(1, 1, 0));
        assert_ne!(run(1, 1, 0), run(1, 2, 0));
        assert_ne!(run(1, 1, 0), run(1, 1, 1));
        assert_ne!(run(1, 1, 0), run(2, 1, 0));
    }

    #[test]
    fn every_element_takes_its_own_block_and_word() {
        // One piece, a few in sequence, and enough to run in parallel, ending inside a block.
        let spec = DropoutSpec {
            p: 0.4,
            layer: 3,
            per: 1,
        };
        let rng = StepRng {
            seed: 0x1234_5678_9abc,
            step: 11,
        };
        for n in [5, PIECE + 3, 4 * PIECE + 70] {
            let x: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
            let mut y = vec![f32::NAN; n];
            dropout(&x, &mut y, &spec, &rng);
            for (i, (&v, &out)) in x.iter().zip(&y).enumerate() {
                let kept = rng.keep(spec.layer, i as u32, spec.p);
                let want = if kept { v * spec.scale() } else { 0.0 };
                assert_eq!(out.to_bits(), want.to_bits(), "n {n} element {i}");
            }
        }
    }

    #[test]
    fn dropout2d_runs_take_the_draw_of_their_index() {
        // Runs of 49 straddle the pieces (16,384 is no multiple of 49), which run in
        // parallel past four of them.
        let rng = StepRng { seed: 9, step: 4 };
        for (n, per) in [(49 * 3, 49), (4 * PIECE + 100, 49), (10, 4)] {
            let spec = DropoutSpec {
                p: 0.5,
                layer: 1,
                per,
            };
            let x: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
            let mut y = vec![f32::NAN; n];
            dropout(&x, &mut y, &spec, &rng);
            for (i, (&v, &out)) in x.iter().zip(&y).enumerate() {
                let kept = rng.keep(spec.layer, (i / per as usize) as u32, spec.p);
                let want = if kept { v * spec.scale() } else { 0.0 };
                assert_eq!(out.to_bits(), want.to_bits(), "n {n} element {i}");
            }
        }
    }

    #[test]
    fn p_zero_is_identity_and_p_one_drops_everything() {
        let x = vec![1.5f32; 10];
        let mut y = vec![0.0f32; 10];
        dropout(
            &x,
            &mut y,
            &DropoutSpec {
                p: 0.0,
                layer: 0,
                per: 1,
            },
            &StepRng::default(),
        );
        assert_eq!(y, x);
        dropout(
            &x,
            &mut y,
            &DropoutSpec {
                p: 1.0,
                layer: 0,
                per: 1,
            },
            &StepRng::default(),
        );
        assert!(y.iter().all(|&v| v == 0.0));
    }
}
