//! Per-channel reductions in parts: batch norm's statistics and gradients sum each
//! channel's N·S values, one workgroup per channel. A layer with few channels and large
//! images (the `cnn` preset's first batch norm at batch 128: 32 channels of 100,352
//! values) would then keep 32 workgroups busy on a GPU that runs thousands at once, each
//! walking 100,352 values. Such a reduction runs in `P` parts per channel instead: one
//! workgroup per part writes a partial result into an f32 scratch, and a second kernel
//! combines each channel's parts in order (`shaders/norm.wgsl`).
//!
//! Layer norm's gamma gradient is a per-column sum over rows of terms that need each
//! row's statistics. Its whole-tensor kernel re-derives every row's statistics in each
//! workgroup of 256 columns and then walks all rows in one loop, which only suits a few
//! rows; from [`MIN_ROWS`] rows on it runs as the rows' statistics (once), per-column sums
//! over parts of the rows, and, with more than one part, their ordered sum.
//!
//! Whether and how a reduction is split depends on its sizes and the device's dispatch
//! limit only (a device too small to dispatch the stages, or to bind their scratch, runs
//! the whole-tensor kernels instead), so on adapters with WebGPU's limits or larger a plan
//! runs the same additions; the parts are combined in a fixed order, so results are
//! bit-identical from run to run. They are not
//! bit-identical to the unsplit kernels (a different order of the same additions, and for
//! the variance Chan et al.'s merge of the parts' means and squared deviations), and, as
//! before, agree with the CPU reference to rounding.

use super::kernels::{fold, groups_1d, Dims, Launch};
use crate::error::{Error, Result};
use crate::graph::{Slot, Step};
use crate::op::{Channels, Op};

/// The workgroups a split reduction aims for: about two waves of a 128-SM GPU at two
/// workgroups of 256 per SM, far more than a CPU driver's threads.
const TARGET_GROUPS: usize = 512;
/// The fewest values a part sums: four per invocation, so that the tree and the second
/// kernel stay small next to the part's loads.
const MIN_PART: usize = 1024;
/// The fewest rows a layer norm's gamma gradient runs in parts for, and the fewest a part
/// sums: each invocation walks its rows in a loop, so a part's rows are its latency.
pub const MIN_ROWS: usize = 16;
/// Invocations per workgroup of the 1-D kernels.
const WG: usize = 256;

/// How each channel's values are divided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// Parts per channel.
    pub parts: usize,
    /// Values (of the channel's N·S, in sample-major order) each part sums; the last part
    /// sums what is left.
    pub part_len: usize,
}

/// The parts of a reduction over `channels` channels of `count` values each on a device
/// with at most `max_groups` workgroups per dimension, or `None` when the channels fill
/// the device already or are too short to share.
pub fn parts_of(channels: usize, count: usize, max_groups: u32) -> Option<Parts> {
    if channels == 0 || channels >= TARGET_GROUPS {
        return None;
    }
    let most_groups = (max_groups as usize).saturating_mul(max_groups as usize);
    let wanted = (TARGET_GROUPS / channels)
        .min(count / MIN_PART)
        .min(most_groups / channels);
    if wanted < 2 {
        return None;
    }
    let part_len = count.div_ceil(wanted);
    let parts = count.div_ceil(part_len);
    (parts >= 2).then_some(Parts { parts, part_len })
}

/// The row parts of a layer norm's gamma gradient over [`rows`, `cols`] (one part when
/// the columns fill the device already), or `None` for fewer than [`MIN_ROWS`] rows, which
/// the whole-tensor kernel sums.
pub fn row_parts_of(rows: usize, cols: usize, max_groups: u32) -> Option<Parts> {
    if rows < MIN_ROWS || cols == 0 {
        return None;
    }
    let blocks = cols.div_ceil(WG);
    let most_groups = (max_groups as usize).saturating_mul(max_groups as usize);
    let wanted = (TARGET_GROUPS / blocks)
        .min(rows / MIN_ROWS)
        .min(most_groups / blocks)
        .max(1);
    let part_len = rows.div_ceil(wanted);
    let parts = rows.div_ceil(part_len);
    Some(Parts { parts, part_len })
}

/// What one binding of a stage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// The step's output.
    Output,
    /// The step's input of this index.
    Input(usize),
    /// Scratch region of this index (f32; [`PartedLaunches::scratch`] gives the sizes).
    Scratch(usize),
}

impl Bind {
    /// The slot this binding is for `step`, given the scratch regions' slots.
    pub fn slot(self, step: &Step, scratch: &[Slot]) -> Result<Slot> {
        match self {
            Bind::Output => Ok(step.output),
            Bind::Input(i) => step
                .inputs
                .get(i)
                .copied()
                .ok_or_else(|| Error::Graph(format!("{} has no input {i}", step.op.name()))),
            Bind::Scratch(r) => scratch
                .get(r)
                .copied()
                .ok_or_else(|| Error::Graph(format!("no scratch region {r}"))),
        }
    }
}

/// One launch of a split reduction with its bindings, output first.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// The kernel launch.
    pub launch: Launch,
    /// Its storage bindings in order.
    pub binds: Vec<Bind>,
}

/// A split reduction: its launches in order and the floats of each scratch region.
#[derive(Clone, Debug, PartialEq)]
pub struct PartedLaunches {
    /// The launches, in recording order.
    pub stages: Vec<Stage>,
    /// Floats of each scratch region the stages bind.
    pub scratch: Vec<usize>,
}

/// `step` as the launches of a split reduction, or `None` when it is not a per-channel
/// reduction, has too few values to split, or a stage would exceed `max_groups`
/// workgroups per dimension. `whole` is its unsplit launch ([`super::kernels::launch`]),
/// whose dims the stages reuse.
pub fn launches(step: &Step, whole: &Launch, max_groups: u32) -> Result<Option<PartedLaunches>> {
    let x = step
        .input_shapes
        .first()
        .ok_or_else(|| Error::Graph(format!("{} without inputs", step.op.name())))?;
    match step.op {
        Op::BatchNormStats(ch) | Op::BatchNormGammaGrad(ch) | Op::ChannelSum(ch) => {
            channel_launches(step.op, ch, x.numel(), whole, max_groups)
        }
        Op::LayerNormGammaGrad { .. } => {
            layer_norm_gamma_launches(x.rows(), x.last(), whole, max_groups)
        }
        _ => Ok(None),
    }
}

/// `whole`'s dims with the parts in e0 (how many) and e1 (how long).
fn dims_with(whole: &Launch, split: Parts) -> Result<Dims> {
    let word = |v: usize| {
        u32::try_from(v).map_err(|_| Error::Unsupported(format!("{v} parts or values exceed u32")))
    };
    let mut dims = whole.dims;
    dims.e[0] = word(split.parts)?;
    dims.e[1] = word(split.part_len)?;
    Ok(dims)
}

/// A stage running `entry` of `whole`'s shader with `dims`.
fn stage(
    whole: &Launch,
    entry: &'static str,
    dims: Dims,
    groups: (u32, u32),
    binds: Vec<Bind>,
) -> Stage {
    Stage {
        launch: Launch {
            shader: whole.shader,
            entry,
            constants: vec![],
            dims,
            groups,
            needs_scalars: false,
        },
        binds,
    }
}

/// Batch norm's reductions over `c` channels of `numel / c` values each.
fn channel_launches(
    op: Op,
    ch: Channels,
    numel: usize,
    whole: &Launch,
    max_groups: u32,
) -> Result<Option<PartedLaunches>> {
    let Some(split) = parts_of(ch.c, numel / ch.c.max(1), max_groups) else {
        return Ok(None);
    };
    let dims = dims_with(whole, split)?;
    let kernel = |entry, groups, binds| stage(whole, entry, dims, groups, binds);
    // A device too small to dispatch a stage runs the reduction whole.
    let (Ok(per_part), Ok(per_channel)) = (
        fold(ch.c * split.parts, max_groups),
        groups_1d(ch.c, max_groups),
    ) else {
        return Ok(None);
    };
    let partials = ch.c * split.parts;
    use Bind::{Input, Output, Scratch};
    Ok(Some(match op {
        Op::BatchNormStats(_) => PartedLaunches {
            stages: vec![
                kernel("batch_norm_stats", per_part, vec![Scratch(0), Input(0)]),
                kernel(
                    "batch_norm_stats_combine",
                    per_channel,
                    vec![Output, Scratch(0)],
                ),
            ],
            scratch: vec![2 * partials],
        },
        Op::BatchNormGammaGrad(_) => PartedLaunches {
            stages: vec![
                kernel(
                    "batch_norm_gamma_grad",
                    per_part,
                    vec![Scratch(0), Input(0), Input(1), Input(2)],
                ),
                kernel("channel_parts_sum", per_channel, vec![Output, Scratch(0)]),
            ],
            scratch: vec![partials],
        },
        _ => PartedLaunches {
            stages: vec![
                kernel("channel_sum", per_part, vec![Scratch(0), Input(0)]),
                kernel("channel_parts_sum", per_channel, vec![Output, Scratch(0)]),
            ],
            scratch: vec![partials],
        },
    }))
}

/// Layer norm's gamma gradient over [`rows`, `cols`]: the rows' statistics, the columns'
/// sums over each part of the rows, then (with more than one part) their ordered sum.
fn layer_norm_gamma_launches(
    rows: usize,
    cols: usize,
    whole: &Launch,
    max_groups: u32,
) -> Result<Option<PartedLaunches>> {
    let Some(split) = row_parts_of(rows, cols, max_groups) else {
        return Ok(None);
    };
    let padded = cols.div_ceil(WG) * WG;
    let mut dims = dims_with(whole, split)?;
    dims.e[2] = u32::try_from(padded)
        .map_err(|_| Error::Unsupported(format!("{cols} columns exceed u32")))?;
    let kernel = |entry, groups, binds| stage(whole, entry, dims, groups, binds);
    // A device too small to dispatch a stage runs the gradient whole.
    let (Ok(per_row), Ok(per_sum), Ok(per_column)) = (
        fold(rows, max_groups),
        groups_1d(split.parts * padded, max_groups),
        groups_1d(cols, max_groups),
    ) else {
        return Ok(None);
    };
    use Bind::{Input, Output, Scratch};
    let stats = kernel("layer_norm_row_stats", per_row, vec![Scratch(0), Input(0)]);
    let sums_into = if split.parts == 1 { Output } else { Scratch(1) };
    let sums = kernel(
        "layer_norm_gamma_grad_partial",
        per_sum,
        vec![sums_into, Input(0), Scratch(0), Input(1)],
    );
    Ok(Some(if split.parts == 1 {
        PartedLaunches {
            stages: vec![stats, sums],
            scratch: vec![2 * rows],
        }
    } else {
        PartedLaunches {
            stages: vec![
                stats,
                sums,
                kernel("channel_parts_sum", per_column, vec![Output, Scratch(1)]),
            ],
            scratch: vec![2 * rows, cols * split.parts],
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cnn_batch_norms_are_split_by_hand_derived_counts() {
        // conv1 at batch 128: 32 channels of 128·28·28 = 100,352 values; 512 / 32 = 16
        // parts of 6,272.
        assert_eq!(
            parts_of(32, 100_352, 65_535),
            Some(Parts {
                parts: 16,
                part_len: 6272
            })
        );
        // conv2: 64 channels of 128·14·14 = 25,088; 8 parts of 3,136.
        assert_eq!(
            parts_of(64, 25_088, 65_535),
            Some(Parts {
                parts: 8,
                part_len: 3136
            })
        );
        // 3 channels of 6,400: 170 parts wanted, 6 of at least 1,024 fit; ceil(6400 / 6)
        // = 1,067, so 5 parts of 1,067 and a last one of 1,065.
        assert_eq!(
            parts_of(3, 6400, 65_535),
            Some(Parts {
                parts: 6,
                part_len: 1067
            })
        );
    }

    #[test]
    fn parts_cover_each_channel_once_and_none_is_empty() {
        for (c, count) in [
            (1, 2048),
            (3, 6400),
            (7, 100_001),
            (100, 5000),
            (2, 1 << 20),
        ] {
            let p = parts_of(c, count, 65_535).unwrap_or_else(|| panic!("{c}x{count}"));
            assert!(p.parts >= 2 && p.part_len >= MIN_PART / 2, "{p:?}");
            assert!(p.parts * p.part_len >= count, "{p:?}");
            assert!((p.parts - 1) * p.part_len < count, "{p:?}");
            assert!(c * p.parts <= TARGET_GROUPS, "{p:?}");
        }
    }

    #[test]
    fn layer_norm_gamma_gradients_split_their_rows_by_hand_derived_counts() {
        // [128, 1024]: 4 column blocks, 128 parts wanted, 128 / 16 = 8 allowed: 8 parts of
        // 16 rows.
        assert_eq!(
            row_parts_of(128, 1024, 65_535),
            Some(Parts {
                parts: 8,
                part_len: 16
            })
        );
        // [100, 300]: 2 blocks, 6 parts of ceil(100 / 6) = 17 rows (the last 15).
        assert_eq!(
            row_parts_of(100, 300, 65_535),
            Some(Parts {
                parts: 6,
                part_len: 17
            })
        );
        // 600 blocks of columns fill the device: one part, the statistics still once.
        assert_eq!(
            row_parts_of(64, 600 * 256, 65_535),
            Some(Parts {
                parts: 1,
                part_len: 64
            })
        );
        // Fewer than 16 rows: the whole-tensor kernel.
        assert_eq!(row_parts_of(15, 1024, 65_535), None);
        assert_eq!(row_parts_of(128, 0, 65_535), None);
    }

    /// The one step of a plan running `op` on inputs of `shapes`.
    fn step_of(op: Op, shapes: &[&[usize]]) -> Step {
        use crate::graph::{Graph, ParamLayout, Plan};
        use crate::shape::Shape;
        let mut g = Graph::new();
        let ids: Vec<_> = shapes
            .iter()
            .enumerate()
            .map(|(i, d)| g.input(&format!("in{i}"), Shape::new(d)))
            .collect();
        let out = g.op(op, &ids).unwrap();
        let plan = Plan::build(&g, &ParamLayout::of(&g), &[out], &[]).unwrap();
        plan.steps[0].clone()
    }

    #[test]
    fn stages_a_device_cannot_dispatch_fall_back_to_the_whole_kernels() {
        let ch = Channels {
            c: 3,
            s: 1600,
            eps: 1e-5,
        };
        let x: &[usize] = &[4, 3, 40, 40];
        let grad = step_of(Op::BatchNormGammaGrad(ch), &[x, &[2, 3], x]);
        let whole = super::super::kernels::launch(&grad, 65_535).unwrap();
        let parted = launches(&grad, &whole, 65_535).unwrap().unwrap();
        let entries: Vec<_> = parted.stages.iter().map(|s| s.launch.entry).collect();
        assert_eq!(entries, ["batch_norm_gamma_grad", "channel_parts_sum"]);
        assert_eq!(parted.scratch, vec![3 * 6]);
        // 8 x 8 workgroups still take the 18 parts (folded) and the 3 channels; on 2 x 2
        // two parts of each of 3 channels do not fit, so the reduction stays whole.
        assert!(launches(&grad, &whole, 8).unwrap().is_some());
        assert_eq!(parts_of(3, 6400, 2), None);
        // Layer norm's gamma gradient over [100, 300]: 100 rows need 100 workgroups.
        let ln = step_of(
            Op::LayerNormGammaGrad { eps: 1e-5 },
            &[&[100, 300], &[100, 300]],
        );
        let whole = super::super::kernels::launch(&ln, 65_535).unwrap();
        assert_eq!(
            launches(&ln, &whole, 65_535)
                .unwrap()
                .map(|p| p.stages.len()),
            Some(3)
        );
        assert_eq!(launches(&ln, &whole, 8).unwrap(), None);
    }

    #[test]
    fn wide_or_short_reductions_and_small_devices_stay_whole() {
        // The mlp-style [128, 1024] batch norm: channels enough.
        assert_eq!(parts_of(1024, 128, 65_535), None);
        assert_eq!(parts_of(512, 1 << 20, 65_535), None);
        // 1,568 values (a batch of 8 of 14x14 images) are too short to share.
        assert_eq!(parts_of(32, 1568, 65_535), None);
        assert_eq!(parts_of(0, 1 << 20, 65_535), None);
        // A device of 2 x 2 workgroups runs 4 parts of one channel at most.
        assert_eq!(parts_of(1, 1 << 20, 2).map(|p| p.parts), Some(4));
        assert_eq!(parts_of(4, 1 << 20, 2), None);
    }
}
