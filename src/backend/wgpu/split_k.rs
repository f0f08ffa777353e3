//! Split-K: a product with few output tiles and a long sum, such as a convolution's weight
//! gradient (a [C_out, C_in·KH·KW] output summing over every pixel of the batch: the `cnn`
//! preset's first layer at batch 128 is a [32, 9] output with K = 100,352, one tile), would
//! leave all but a few workgroups of a GPU idle while one walks the whole sum. Such a product
//! runs as two launches instead: `P` partial products, part `p` summing its own range of K
//! (`shaders/matmul.wgsl` with `SPLIT_K` and `dims.e12` set), into an f32 scratch [P, M, N]; then
//! `shaders/matmul_split.wgsl` adds the parts in order and applies the product's epilogue
//! (accumulate, bias, activation).
//!
//! Whether and how a product is split depends on its sizes and the device's limits alone,
//! never on the tile configuration, and the parts' lengths are multiples of every
//! configuration's K tile: so the configuration the autotuner picks still never changes a
//! bit, and a convolution's fused products (`ConvMatMul`, `ConvWeightGrad`) stay
//! bit-identical to im2col followed by a plain product of the same sizes. The split sum is
//! deterministic (the parts are added in a fixed order), but not bit-identical to the
//! unsplit one: it is a different order of the same additions.

use super::kernels::{fold, groups_1d, Launch};
use super::matmul::{MatmulProblem, CONFIGS};
use crate::error::{Error, Result};

/// The workgroups a split product aims for: two waves of a 128-SM GPU, and far more than
/// the threads of a CPU driver.
const TARGET_GROUPS: usize = 256;
/// The shortest sum a part is given: 32 K tiles of 16, so that each workgroup's prologue,
/// epilogue and the second pass stay small next to its share of the product.
const MIN_PART: usize = 512;
/// Parts are multiples of this many k, a multiple of every configuration's K tile, so
/// every configuration stages whole K tiles of each part: the kernel bounds its fetches by
/// K only, so a part of a partial tile would read into the next part's range.
pub const PART_ALIGN: usize = 64;

const _: () = {
    let mut i = 0;
    while i < CONFIGS.len() {
        assert!(PART_ALIGN.is_multiple_of(CONFIGS[i].bk as usize));
        i += 1;
    }
};
/// The output tile used to count a product's workgroups when deciding: the default
/// configuration's, whichever configuration then runs it.
const DECIDING_TILE: usize = 64;

/// How a product is split along K.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitK {
    /// Number of partial products.
    pub parts: usize,
    /// The K each part sums (the last one sums what is left).
    pub part_len: usize,
}

impl SplitK {
    /// Floats of the scratch holding the parts' sums of an `m` x `n` product.
    pub fn scratch_len(&self, p: &MatmulProblem) -> usize {
        self.parts * p.m * p.n
    }
}

/// What a device allows a split product: workgroups per dispatch dimension and floats of
/// scratch (bound whole, so at most a binding's, and at most the room its buffer has left).
#[derive(Clone, Copy, Debug)]
pub struct SplitLimits {
    /// `max_compute_workgroups_per_dimension`.
    pub max_groups: u32,
    /// The most floats the scratch may hold.
    pub max_floats: usize,
}

/// The split of product `p`, or `None` when it has tiles enough for the device already or
/// too short a sum to share.
pub fn split_of(p: &MatmulProblem, limits: SplitLimits) -> Option<SplitK> {
    let tiles = p.m.div_ceil(DECIDING_TILE) * p.n.div_ceil(DECIDING_TILE);
    if tiles == 0 || tiles >= TARGET_GROUPS {
        return None;
    }
    // The most tiles any configuration makes of it must fit the folded dispatch, and the
    // parts the scratch binding.
    let most_tiles = CONFIGS
        .iter()
        .map(|c| p.m.div_ceil(c.tile_m() as usize) * p.n.div_ceil(c.tile_n() as usize))
        .max()
        .unwrap_or(tiles);
    let max_groups = (limits.max_groups as usize).saturating_mul(limits.max_groups as usize);
    let wanted = TARGET_GROUPS
        .div_ceil(tiles)
        .min(p.k / MIN_PART)
        .min(max_groups / most_tiles.max(1))
        .min(limits.max_floats / (p.m * p.n).max(1));
    if wanted < 2 {
        return None;
    }
    let part_len = p.k.div_ceil(wanted).next_multiple_of(PART_ALIGN);
    let parts = p.k.div_ceil(part_len);
    (parts >= 2).then_some(SplitK { parts, part_len })
}

/// The two launches of a split product.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitLaunches {
    /// The partial products: binds the scratch as its output, then the product's first
    /// two inputs.
    pub parts: Launch,
    /// The sum of the parts with the epilogue: binds the product's output, the scratch,
    /// then the bias when the product has one.
    pub sum: Launch,
    /// Whether `sum` binds a bias.
    pub has_bias: bool,
}

/// `product` (the launch `matmul::launch` made of a `p.m` x `p.n` product, accumulate flag
/// included) as the launches of `split`, on a device with at most `max` workgroups per
/// dimension.
pub fn launches(
    product: &Launch,
    p: &MatmulProblem,
    split: SplitK,
    max: u32,
) -> Result<SplitLaunches> {
    // The epilogue moves to the sum: read from the product's constants, which must all be
    // there (a renamed one would otherwise drop the bias or the activation silently).
    let constant = |name: &str| -> Result<f64> {
        product
            .constants
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| Error::Graph(format!("a matmul launch without {name}")))
    };
    let has_bias = constant("HAS_BIAS")? != 0.0;
    constant("SPLIT_K")?;
    let epilogue = [
        ("HAS_BIAS", constant("HAS_BIAS")?),
        ("HAS_ACT", constant("HAS_ACT")?),
        ("ACT_KIND", constant("ACT_KIND")?),
    ];
    let mut parts = product.clone();
    parts.entry = without_bias(product.entry)?;
    for (name, value) in &mut parts.constants {
        if epilogue.iter().any(|(n, _)| n == name) {
            *value = 0.0;
        } else if *name == "SPLIT_K" {
            *value = 1.0;
        }
    }
    let tiles = (product.dims.e[0] as usize) * p.m.div_ceil(tile_m(product)?);
    parts.groups = fold(tiles * split.parts, max)?;
    parts.dims.d[3] = 0;
    parts.dims.e[12] = u(split.part_len)?;
    let mut sum = Launch {
        shader: "matmul_split.wgsl",
        entry: if has_bias {
            "split_sum_bias"
        } else {
            "split_sum"
        },
        constants: epilogue.to_vec(),
        dims: product.dims,
        groups: groups_1d(p.m * p.n, max)?,
        needs_scalars: false,
    };
    sum.dims.d = [u(p.m * p.n)?, u(p.n)?, u(split.parts)?, product.dims.d[3]];
    sum.dims.e = [0; 16];
    Ok(SplitLaunches {
        parts,
        sum,
        has_bias,
    })
}

/// The rows of the output tile of the configuration `product` runs in.
fn tile_m(product: &Launch) -> Result<usize> {
    CONFIGS
        .iter()
        .find(|c| c.shader == product.shader)
        .map(|c| c.tile_m() as usize)
        .ok_or_else(|| Error::Graph(format!("{} is not a matmul module", product.shader)))
}

/// The matmul entry point reading the operands as `entry` does, without the bias.
fn without_bias(entry: &'static str) -> Result<&'static str> {
    Ok(match entry {
        "matmul" | "matmul_bias" => "matmul",
        "matmul_a4" | "matmul_bias_a4" => "matmul_a4",
        "matmul_b4" | "matmul_bias_b4" => "matmul_b4",
        "matmul_a4b4" | "matmul_bias_a4b4" => "matmul_a4b4",
        other => return Err(Error::Graph(format!("{other} is not a matmul entry point"))),
    })
}

fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Unsupported(format!("dimension {v} exceeds u32")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: SplitLimits = SplitLimits {
        max_groups: 65_535,
        max_floats: 1 << 26,
    };

    fn problem(m: usize, n: usize, k: usize) -> MatmulProblem {
        MatmulProblem { m, n, k }
    }

    #[test]
    fn parts_are_whole_k_tiles_and_cover_k_once() {
        for (m, n, k) in [
            (32, 9, 100_352),
            (64, 288, 25_088),
            (128, 128, 3136),
            (5, 7, 1025),
        ] {
            let p = problem(m, n, k);
            let s = split_of(&p, ROOMY).unwrap_or_else(|| panic!("{m}x{n}x{k} not split"));
            assert_eq!(s.part_len % PART_ALIGN, 0);
            assert!(s.part_len >= MIN_PART / 2, "{s:?}");
            // The parts cover k, and the last one is not empty.
            assert!(
                s.parts * s.part_len >= k && (s.parts - 1) * s.part_len < k,
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_cnn_weight_gradients_are_split_by_hand_derived_counts() {
        // [32, 9], K = 100,352: one 64x64 tile, so 256 parts wanted; 196 of at least 512
        // fit K; 100,352 / 196 = 512 exactly, already a multiple of 64.
        assert_eq!(
            split_of(&problem(32, 9, 100_352), ROOMY),
            Some(SplitK {
                parts: 196,
                part_len: 512
            })
        );
        // [64, 288]: 5 tiles, 52 parts wanted, K = 25,088 allows 49 of 512.
        assert_eq!(
            split_of(&problem(64, 288, 25_088), ROOMY),
            Some(SplitK {
                parts: 49,
                part_len: 512
            })
        );
        // The fc128 forward of the cnn [128, 128], K = 3136: 4 tiles want 64 parts, K
        // allows 6: ceil(3136 / 6) = 523, rounded up to 576, makes 6 parts (the last 256).
        assert_eq!(
            split_of(&problem(128, 128, 3136), ROOMY),
            Some(SplitK {
                parts: 6,
                part_len: 576
            })
        );
    }

    #[test]
    fn products_with_tiles_enough_or_short_sums_are_not_split() {
        // 16 x 16 tiles of 64 already fill the device.
        assert_eq!(split_of(&problem(1024, 1024, 1 << 20), ROOMY), None);
        // The mlp's products: K = 784 and 128 are too short to share.
        assert_eq!(split_of(&problem(128, 256, 784), ROOMY), None);
        assert_eq!(split_of(&problem(784, 256, 128), ROOMY), None);
        assert_eq!(split_of(&problem(0, 5, 100_000), ROOMY), None);
    }

    #[test]
    fn the_device_limits_cap_the_parts() {
        let p = problem(32, 9, 100_352);
        // 4 x 4 workgroups: 16 parts of the one tile.
        let small = SplitLimits {
            max_groups: 4,
            max_floats: 1 << 26,
        };
        assert_eq!(split_of(&p, small).map(|s| s.parts), Some(16));
        // A scratch binding of 1000 floats holds 3 parts of 288.
        let tight = SplitLimits {
            max_groups: 65_535,
            max_floats: 1000,
        };
        assert_eq!(split_of(&p, tight).map(|s| s.parts), Some(3));
        let tiny = SplitLimits {
            max_groups: 1,
            max_floats: 1 << 26,
        };
        assert_eq!(split_of(&p, tiny), None);
    }
}
