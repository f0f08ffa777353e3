//! Splitting a plan step whose tensors exceed the device's largest storage binding, or whose
//! dispatch exceeds its workgroup limits, into sub-steps over contiguous ranges of
//! independent units (rows, samples, elements). A reduction over the split dimension
//! (weight and bias gradients) becomes a sum: the first piece writes, the others add.
//!
//! Only the wgpu executor chunks: the CPU reference has no binding limits, so a chunked
//! GPU step is still compared with one unsplit CPU step.

use crate::error::{Error, Result};
use crate::graph::Step;
use crate::op::Op;
use crate::shape::Shape;

/// One dispatchable piece of a step.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The step restricted to a range of units.
    pub step: Step,
    /// Whether the piece adds to its output instead of overwriting it.
    pub accumulate: bool,
    /// The output shape of the whole step (mean losses' gradients divide by its count).
    pub whole: Shape,
}

/// How a step divides: `units` independent units; for each slot (output first, then the
/// inputs) the floats one unit occupies, or `None` for a tensor every piece reads whole.
struct Partition {
    units: usize,
    per_unit: Vec<Option<usize>>,
    /// The output is a sum over the units (it is bound whole and accumulated).
    sums: bool,
}

/// The partition of `step`, or `None` for ops that cannot be split (whole-tensor
/// reductions, batch statistics, dropout, whose mask is keyed by the element index).
fn partition(step: &Step) -> Option<Partition> {
    let n = step.shape.numel();
    let lens: Vec<usize> = std::iter::once(n)
        .chain(step.input_shapes.iter().map(Shape::numel))
        .collect();
    let in0 = step.input_shapes.first()?;
    let (rows, cols) = (in0.rows(), in0.last());
    let by_len = |units: usize, unit: usize| Partition {
        units,
        per_unit: lens
            .iter()
            .map(|&l| (l == units * unit).then_some(unit))
            .collect(),
        sums: false,
    };
    let fixed = |units: usize, per_unit: Vec<Option<usize>>, sums: bool| Partition {
        units,
        per_unit,
        sums,
    };
    Some(match step.op {
        // Element-wise: every tensor as long as the output splits; [1] scalars stay whole.
        Op::Add
        | Op::Scale(_)
        | Op::Broadcast(_)
        | Op::Activation(_)
        | Op::ActivationGrad(_)
        | Op::ActivationGradFromOutput(_)
        | Op::MseGrad
        | Op::BceWithLogitsGrad
        | Op::L1Grad
        | Op::SmoothL1Grad { .. }
        | Op::HuberGrad { .. }
        | Op::SumSquaresGrad
        | Op::SumAbsGrad => by_len(n, 1),
        // Row-wise over [rows, cols]; biases, gammas and betas ([cols]) stay whole.
        Op::BiasAdd
        | Op::Softmax
        | Op::SoftmaxGrad
        | Op::LogSoftmax
        | Op::LogSoftmaxGrad
        | Op::LayerNorm { .. }
        | Op::LayerNormGrad { .. } => by_len(rows, cols),
        Op::SoftmaxCrossEntropyGrad { .. } => {
            fixed(rows, vec![Some(cols), Some(cols), Some(1), None], false)
        }
        Op::Argmax => fixed(rows, vec![Some(1), Some(cols)], false),
        // Rows of the product; a fused bias ([N]) is bound whole by every piece.
        Op::MatMul {
            trans_a: false,
            trans_b: _,
        }
        | Op::MatMulBias {
            trans_a: false,
            trans_b: _,
        }
        | Op::MatMulBiasAct { trans_a: false, .. } => fixed(
            in0.0[0],
            vec![Some(step.shape.0[1]), Some(in0.0[1]), None, None],
            false,
        ),
        // op(a) = aᵀ with a [K, M]: rows of a (and of b, when it is not transposed) are
        // ranges of K, so the product is a sum of the pieces' products. With a fused bias
        // only the last piece adds it, after the sum (see `split`), and applies a fused
        // activation after that.
        Op::MatMul {
            trans_a: true,
            trans_b: false,
        }
        | Op::MatMulBias {
            trans_a: true,
            trans_b: false,
        }
        | Op::MatMulBiasAct {
            trans_a: true,
            trans_b: false,
            ..
        } => fixed(
            in0.0[0],
            vec![None, Some(in0.0[1]), Some(step.input_shapes[1].0[1]), None],
            true,
        ),
        // Images: each piece's rows of the product come from its range of images; the
        // weight and bias are bound whole.
        Op::ConvMatMul { geom: g, .. } => fixed(
            g.n,
            vec![
                Some(g.oh() * g.ow() * step.shape.last()),
                Some(g.c * g.h * g.w),
                None,
                None,
            ],
            false,
        ),
        // The weight gradient sums over the images, like a weight gradient over rows.
        Op::ConvWeightGrad(g) => fixed(
            g.n,
            vec![
                None,
                Some(g.oh() * g.ow() * in0.last()),
                Some(g.c * g.h * g.w),
            ],
            true,
        ),
        // Grouped convolutions as the dense ones: images of the output, or (the weight
        // gradient) a sum over images, continued piece after piece.
        Op::GroupedConv(gg) => {
            let g = gg.conv;
            let per_image = Some(g.oh() * g.ow() * step.shape.last());
            fixed(g.n, vec![per_image, Some(g.c * g.h * g.w), None], false)
        }
        Op::GroupedConvInputGrad(gg) => {
            let g = gg.conv;
            let dy = Some(g.oh() * g.ow() * in0.last());
            fixed(g.n, vec![Some(g.c * g.h * g.w), dy, None], false)
        }
        Op::GroupedConvWeightGrad(gg) => {
            let g = gg.conv;
            let dy = Some(g.oh() * g.ow() * in0.last());
            fixed(g.n, vec![None, dy, Some(g.c * g.h * g.w)], true)
        }
        Op::BiasGrad => fixed(rows, vec![None, Some(cols)], true),
        Op::Im2Col(g) => fixed(
            g.n,
            vec![
                Some(g.oh() * g.ow() * g.c * g.kh * g.kw),
                Some(g.c * g.h * g.w),
            ],
            false,
        ),
        Op::Col2Im(g) => fixed(
            g.n,
            vec![
                Some(g.c * g.h * g.w),
                Some(g.oh() * g.ow() * g.c * g.kh * g.kw),
            ],
            false,
        ),
        Op::RowsToNchw(d) | Op::NchwToRows(d) => by_len(d.n, d.c * d.h * d.w),
        Op::MaxPool(g) | Op::AvgPool(g) => fixed(
            g.n,
            vec![Some(g.c * g.oh() * g.ow()), Some(g.c * g.h * g.w)],
            false,
        ),
        Op::MaxPoolGrad(g) => fixed(
            g.n,
            vec![
                Some(g.c * g.h * g.w),
                Some(g.c * g.h * g.w),
                Some(g.c * g.oh() * g.ow()),
            ],
            false,
        ),
        Op::AvgPoolGrad(g) => fixed(
            g.n,
            vec![Some(g.c * g.h * g.w), Some(g.c * g.oh() * g.ow())],
            false,
        ),
        // Adaptive pooling reads within one (n, c) plane: samples split like pooling's.
        Op::AdaptiveAvgPool(g) | Op::AdaptiveMaxPool(g) => fixed(
            g.n,
            vec![Some(g.c * g.oh * g.ow), Some(g.c * g.h * g.w)],
            false,
        ),
        Op::AdaptiveAvgPoolGrad(g) => fixed(
            g.n,
            vec![Some(g.c * g.h * g.w), Some(g.c * g.oh * g.ow)],
            false,
        ),
        Op::AdaptiveMaxPoolGrad(g) => fixed(
            g.n,
            vec![
                Some(g.c * g.h * g.w),
                Some(g.c * g.h * g.w),
                Some(g.c * g.oh * g.ow),
            ],
            false,
        ),
        // Not `BatchNormGrad`, though it is element-wise: it takes M = N·S from its `x`,
        // which a piece of samples would shrink.
        Op::BatchNormApply(ch) => {
            let sample = ch.c * ch.s;
            fixed(
                n / sample.max(1),
                vec![Some(sample), Some(sample), None, None, None],
                false,
            )
        }
        // Per-channel element-wise ops: the output, x and dy split by samples; the
        // per-channel weights and shifts stay whole.
        Op::ChannelAffine(ch) | Op::PRelu(ch) | Op::PReluGrad(ch) | Op::PReluWeightTerms(ch) => {
            let sample = Some(ch.c * ch.s);
            let slots = match step.op {
                Op::ChannelAffine(_) => vec![sample, sample, None, None],
                Op::PRelu(_) => vec![sample, sample, None],
                Op::PReluGrad(_) => vec![sample, sample, None, sample],
                _ => vec![sample, sample, sample],
            };
            fixed(n / (ch.c * ch.s).max(1), slots, false)
        }
        _ => return None,
    })
}

/// A grouped convolution's geometry over `count` of its images.
fn per_images(gg: crate::op::GroupGeom, count: usize) -> crate::op::GroupGeom {
    crate::op::GroupGeom {
        conv: crate::op::ConvGeom {
            n: count,
            ..gg.conv
        },
        ..gg
    }
}

/// The op of a piece of `count` units: geometry that counts samples is rescaled.
fn piece_op(op: Op, count: usize) -> Op {
    match op {
        Op::Im2Col(g) => Op::Im2Col(crate::op::ConvGeom { n: count, ..g }),
        Op::Col2Im(g) => Op::Col2Im(crate::op::ConvGeom { n: count, ..g }),
        Op::ConvMatMul { geom, bias, act } => Op::ConvMatMul {
            geom: crate::op::ConvGeom { n: count, ..geom },
            bias,
            act,
        },
        Op::ConvWeightGrad(g) => Op::ConvWeightGrad(crate::op::ConvGeom { n: count, ..g }),
        Op::GroupedConv(gg) => Op::GroupedConv(per_images(gg, count)),
        Op::GroupedConvInputGrad(gg) => Op::GroupedConvInputGrad(per_images(gg, count)),
        Op::GroupedConvWeightGrad(gg) => Op::GroupedConvWeightGrad(per_images(gg, count)),
        Op::RowsToNchw(d) => Op::RowsToNchw(crate::op::Nchw { n: count, ..d }),
        Op::NchwToRows(d) => Op::NchwToRows(crate::op::Nchw { n: count, ..d }),
        Op::MaxPool(g) => Op::MaxPool(crate::op::PoolGeom { n: count, ..g }),
        Op::MaxPoolGrad(g) => Op::MaxPoolGrad(crate::op::PoolGeom { n: count, ..g }),
        Op::AvgPool(g) => Op::AvgPool(crate::op::PoolGeom { n: count, ..g }),
        Op::AvgPoolGrad(g) => Op::AvgPoolGrad(crate::op::PoolGeom { n: count, ..g }),
        Op::AdaptiveAvgPool(g) => Op::AdaptiveAvgPool(crate::op::AdaptiveGeom { n: count, ..g }),
        Op::AdaptiveAvgPoolGrad(g) => {
            Op::AdaptiveAvgPoolGrad(crate::op::AdaptiveGeom { n: count, ..g })
        }
        Op::AdaptiveMaxPool(g) => Op::AdaptiveMaxPool(crate::op::AdaptiveGeom { n: count, ..g }),
        Op::AdaptiveMaxPoolGrad(g) => {
            Op::AdaptiveMaxPoolGrad(crate::op::AdaptiveGeom { n: count, ..g })
        }
        other => other,
    }
}

/// The shape of `count` units of a tensor whose unit is `unit` floats: when a unit is a
/// row of the last dimension, [count, unit] (row-wise kernels read rows and columns from
/// the shape); anything else is flat.
fn piece_shape(shape: &Shape, count: usize, unit: usize) -> Shape {
    if shape.0.len() >= 2 && shape.last() == unit {
        Shape(vec![count, unit])
    } else {
        Shape(vec![count * unit])
    }
}

/// The piece of `step` covering units `first .. first + count`.
fn piece(step: &Step, p: &Partition, first: usize, count: usize) -> Step {
    let mut s = step.clone();
    s.op = piece_op(step.op, count);
    if let Some(unit) = p.per_unit[0] {
        s.output.offset += first * unit;
        s.output.len = count * unit;
        s.shape = piece_shape(&step.shape, count, unit);
    }
    for (k, unit) in p.per_unit[1..].iter().enumerate() {
        if let Some(unit) = *unit {
            s.inputs[k].offset += first * unit;
            s.inputs[k].len = count * unit;
            s.input_shapes[k] = piece_shape(&step.input_shapes[k], count, unit);
        }
    }
    s
}

/// A summed piece of a product with a fused bias (and activation), other than the last: a
/// plain product. Only the last piece adds the bias and applies the activation, to the sum
/// of all the pieces, so the result takes the roundings of the split `MatMul` followed by
/// `BiasAdd` (and `Activation`).
fn without_bias(mut step: Step) -> Step {
    if let Op::MatMulBias { trans_a, trans_b }
    | Op::MatMulBiasAct {
        trans_a, trans_b, ..
    } = step.op
    {
        step.op = Op::MatMul { trans_a, trans_b };
        step.inputs.truncate(2);
        step.input_shapes.truncate(2);
    }
    step
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The limits a piece must respect, in floats.
#[derive(Clone, Copy, Debug)]
pub struct BindingLimits {
    /// The most floats one storage binding may hold.
    pub max_floats: usize,
    /// What every binding offset must be a multiple of (the device's
    /// `min_storage_buffer_offset_alignment` in floats; slots are already aligned to it).
    pub align_floats: usize,
}

/// Splits `step` so that every binding holds at most `limits.max_floats` floats and
/// `fits` accepts every piece (the dispatch-size check); one piece when the step already
/// fits. Ops that cannot be split, and pieces that cannot be made small enough, are
/// [`Error::Unsupported`] naming the op and the sizes.
pub fn split(
    step: &Step,
    limits: BindingLimits,
    fits: impl Fn(&Step) -> bool,
) -> Result<Vec<Chunk>> {
    let max_floats = limits.max_floats;
    let offset_align = limits.align_floats.max(1);
    let largest = std::iter::once(step.output.len)
        .chain(step.inputs.iter().map(|s| s.len))
        .max()
        .unwrap_or(0);
    if largest <= max_floats && fits(step) {
        return Ok(vec![Chunk {
            step: step.clone(),
            accumulate: false,
            whole: step.shape.clone(),
        }]);
    }
    let unsupported = |why: &str| {
        Error::Unsupported(format!(
            "{} over {} values {why} (largest binding {} floats on this device)",
            step.op.name(),
            largest,
            max_floats
        ))
    };
    if std::iter::once(&step.output)
        .chain(&step.inputs)
        .any(|s| s.arena.is_half())
    {
        // Piece offsets are aligned in f32 units; f16 bindings would need their own rule.
        return Err(unsupported("holds f16 values, which are not split yet"));
    }
    let p = partition(step).ok_or_else(|| unsupported("cannot be split to fit"))?;
    let slots = std::iter::once(&step.output).chain(&step.inputs);
    if slots
        .zip(&p.per_unit)
        .any(|(s, unit)| unit.is_none() && s.len > max_floats)
    {
        return Err(unsupported(
            "reads a tensor that is bound whole and too large",
        ));
    }
    let units_of = p.per_unit.iter().flatten().copied();
    let widest = units_of.clone().max().unwrap_or(1).max(1);
    // Pieces start on multiples of this many units so that every binding offset stays
    // aligned.
    let align = units_of.fold(1, |a, u| {
        let need = offset_align / gcd(u, offset_align);
        a / gcd(a, need) * need
    });
    let pieces = |per: usize| -> Vec<Chunk> {
        (0..p.units)
            .step_by(per)
            .enumerate()
            .map(|(i, first)| {
                let count = per.min(p.units - first);
                let mut s = piece(step, &p, first, count);
                if p.sums && first + count < p.units {
                    s = without_bias(s);
                }
                Chunk {
                    step: s,
                    accumulate: p.sums && i > 0,
                    whole: step.shape.clone(),
                }
            })
            .collect()
    };
    let fit = |per: usize| per > 0 && pieces(per).iter().all(|c| fits(&c.step));
    // The largest aligned piece size whose pieces all fit (smaller pieces fit whenever
    // larger ones do): binary search between 0 and what the binding limit allows.
    let mut hi = (max_floats / widest).min(p.units);
    if hi < p.units {
        hi = hi / align * align;
    }
    if fit(hi) {
        return Ok(pieces(hi));
    }
    let mut lo = 0;
    while hi - lo > align {
        let mid = (lo + hi) / 2 / align * align;
        if mid <= lo {
            break;
        }
        if fit(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if lo > 0 {
        return Ok(pieces(lo));
    }
    Err(unsupported("cannot be split finely enough"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ArenaKind, Slot};

    fn slot(offset: usize, len: usize) -> Slot {
        Slot {
            arena: ArenaKind::Activations,
            offset,
            len,
        }
    }

    /// 256-byte offsets, the strictest alignment WebGPU allows.
    fn limits(max_floats: usize) -> BindingLimits {
        BindingLimits {
            max_floats,
            align_floats: 64,
        }
    }

    fn matmul(trans_a: bool, a: [usize; 2], b: [usize; 2], out: [usize; 2]) -> Step {
        let (la, lb) = (a[0] * a[1], b[0] * b[1]);
        Step {
            op: Op::MatMul {
                trans_a,
                trans_b: false,
            },
            inputs: vec![slot(0, la), slot(la, lb)],
            input_shapes: vec![Shape(a.to_vec()), Shape(b.to_vec())],
            output: slot(la + lb, out[0] * out[1]),
            shape: Shape(out.to_vec()),
            node: 0,
        }
    }

    #[test]
    fn a_step_that_fits_is_one_piece() {
        let s = matmul(false, [4, 3], [3, 2], [4, 2]);
        let c = split(&s, limits(100), |_| true).unwrap();
        assert_eq!(c.len(), 1);
        assert!(!c[0].accumulate);
    }

    #[test]
    fn rows_of_a_product_split_on_aligned_offsets() {
        // a [300, 10]: 3000 floats; with 1024 per binding, pieces of 96 rows (960 floats,
        // a multiple of 32 rows so each offset is a multiple of 64 floats).
        let s = matmul(false, [300, 10], [10, 2], [300, 2]);
        let c = split(&s, limits(1024), |_| true).unwrap();
        let rows: Vec<usize> = c.iter().map(|c| c.step.input_shapes[0].0[0]).collect();
        assert_eq!(rows, vec![96, 96, 96, 12]);
        for (i, piece) in c.iter().enumerate() {
            assert_eq!(piece.step.inputs[0].offset, i * 960);
            assert_eq!(piece.step.inputs[0].offset % 64, 0);
            assert_eq!(piece.step.inputs[1], s.inputs[1], "b is bound whole");
            assert_eq!(piece.step.output.offset, s.output.offset + i * 192);
            assert_eq!(piece.step.shape.0, vec![rows[i], 2]);
            assert!(!piece.accumulate);
        }
    }

    #[test]
    fn a_weight_gradient_splits_along_k_and_sums() {
        // aᵀ·b with a [500, 4], b [500, 3]: out [4, 3] is a sum over the 500 rows.
        let s = matmul(true, [500, 4], [500, 3], [4, 3]);
        let c = split(&s, limits(1000), |_| true).unwrap();
        assert!(c.len() > 1);
        assert!(!c[0].accumulate && c[1..].iter().all(|c| c.accumulate));
        assert_eq!(
            c.iter().map(|c| c.step.inputs[0].len / 4).sum::<usize>(),
            500
        );
        assert!(c.iter().all(|c| c.step.output == s.output));
    }

    /// `matmul` with a fused bias [N] after its operands.
    fn with_bias(mut s: Step) -> Step {
        let Op::MatMul { trans_a, trans_b } = s.op else {
            unreachable!()
        };
        s.op = Op::MatMulBias { trans_a, trans_b };
        let n = s.shape.0[1];
        s.inputs.push(slot(s.output.offset + s.output.len, n));
        s.input_shapes.push(Shape(vec![n]));
        s
    }

    #[test]
    fn a_fused_bias_stays_whole_across_row_pieces() {
        let s = with_bias(matmul(false, [300, 10], [10, 2], [300, 2]));
        let c = split(&s, limits(1024), |_| true).unwrap();
        assert_eq!(c.len(), 4);
        for piece in &c {
            assert_eq!(piece.step.op, s.op);
            assert_eq!(piece.step.inputs[2], s.inputs[2], "the bias is bound whole");
            assert_eq!(piece.step.input_shapes[2], s.input_shapes[2]);
            assert!(!piece.accumulate);
        }
    }

    #[test]
    fn a_fused_bias_is_added_by_the_last_summed_piece_only() {
        let s = with_bias(matmul(true, [500, 4], [500, 3], [4, 3]));
        let c = split(&s, limits(1000), |_| true).unwrap();
        assert!(c.len() > 1);
        let (last, rest) = c.split_last().unwrap();
        assert_eq!(last.step.op, s.op);
        assert_eq!(last.step.inputs[2], s.inputs[2]);
        assert!(last.accumulate);
        for piece in rest {
            assert!(matches!(piece.step.op, Op::MatMul { trans_a: true, .. }));
            assert_eq!(piece.step.inputs.len(), 2);
        }
        assert_eq!(
            c.iter().map(|c| c.step.inputs[0].len / 4).sum::<usize>(),
            500
        );
    }

    #[test]
    fn a_fused_activation_is_applied_by_the_last_summed_piece_only() {
        let mut s = with_bias(matmul(true, [500, 4], [500, 3], [4, 3]));
        s.op = Op::MatMulBiasAct {
            trans_a: true,
            trans_b: false,
            act: crate::op::Activation::Sigmoid,
        };
        let c = split(&s, limits(1000), |_| true).unwrap();
        let (last, rest) = c.split_last().unwrap();
        assert!(!rest.is_empty());
        assert_eq!(last.step.op, s.op);
        assert!(last.accumulate);
        assert!(rest
            .iter()
            .all(|p| matches!(p.step.op, Op::MatMul { trans_a: true, .. })));
        // Rows: every piece applies it, with the bias bound whole.
        let mut r = with_bias(matmul(false, [300, 10], [10, 2], [300, 2]));
        r.op = Op::MatMulBiasAct {
            trans_a: false,
            trans_b: false,
            act: crate::op::Activation::Relu,
        };
        let c = split(&r, limits(1024), |_| true).unwrap();
        assert!(c.len() > 1);
        assert!(c
            .iter()
            .all(|p| p.step.op == r.op && p.step.inputs[2] == r.inputs[2]));
    }

    #[test]
    fn dispatch_limits_shrink_the_pieces_further() {
        let s = matmul(false, [640, 1], [1, 1], [640, 1]);
        let c = split(&s, limits(usize::MAX), |p| p.input_shapes[0].0[0] <= 128).unwrap();
        assert_eq!(c.len(), 5);
        assert!(c.iter().all(|c| c.step.input_shapes[0].0[0] == 128));
    }

    #[test]
    fn ops_that_cannot_split_are_unsupported_and_named() {
        let mut s = matmul(false, [300, 10], [10, 2], [300, 2]);
        s.op = Op::Sum;
        s.input_shapes.truncate(1);
        s.inputs.truncate(1);
        s.shape = Shape(vec![1]);
        s.output.len = 1;
        let err = split(&s, limits(1024), |_| true).unwrap_err().to_string();
        assert!(err.contains("sum") && err.contains("3000"), "{err}");
        // A whole-bound operand larger than a binding cannot be split around.
        let s = matmul(false, [4, 3000], [3000, 2], [4, 2]);
        assert!(split(&s, limits(1024), |_| true).is_err());
    }

    #[test]
    fn conv_products_split_by_images_with_their_geometry() {
        let g = crate::op::ConvGeom {
            n: 10,
            c: 2,
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
        // x [10, 2, 8, 8] (128 floats an image), w [16, 18], out [640, 16] (1024 an image).
        let (lx, lw, lo) = (1280, 288, 10 * 1024);
        let forward = Step {
            op: Op::ConvMatMul {
                geom: g,
                bias: false,
                act: None,
            },
            inputs: vec![slot(0, lx), slot(lx, lw)],
            input_shapes: vec![Shape(vec![10, 2, 8, 8]), Shape(vec![16, 18])],
            output: slot(2048, lo),
            shape: Shape(vec![640, 16]),
            node: 0,
        };
        let c = split(&forward, limits(4096), |_| true).unwrap();
        let images: Vec<usize> = c
            .iter()
            .map(|p| match p.step.op {
                Op::ConvMatMul { geom, .. } => geom.n,
                _ => 0,
            })
            .collect();
        assert_eq!(images, vec![4, 4, 2]);
        for (i, p) in c.iter().enumerate() {
            assert_eq!(p.step.inputs[0].offset, i * 4 * 128);
            assert_eq!(
                p.step.inputs[1], forward.inputs[1],
                "the weight is bound whole"
            );
            assert_eq!(p.step.output.offset, 2048 + i * 4 * 1024);
            assert!(!p.accumulate);
        }
        // The weight gradient: dy [640, 16] and x split alike, the [16, 18] output summed.
        let grad = Step {
            op: Op::ConvWeightGrad(g),
            inputs: vec![slot(0, lo), slot(lo, lx)],
            input_shapes: vec![Shape(vec![640, 16]), Shape(vec![10, 2, 8, 8])],
            output: slot(lo + lx, 288),
            shape: Shape(vec![16, 18]),
            node: 0,
        };
        let c = split(&grad, limits(4096), |_| true).unwrap();
        assert_eq!(c.len(), 3);
        assert!(!c[0].accumulate && c[1..].iter().all(|p| p.accumulate));
        for (i, p) in c.iter().enumerate() {
            assert_eq!(
                p.step.op,
                Op::ConvWeightGrad(crate::op::ConvGeom {
                    n: [4, 4, 2][i],
                    ..g
                })
            );
            assert_eq!(p.step.inputs[1].offset, lo + i * 4 * 128);
            assert_eq!(p.step.output, grad.output);
        }
    }
}
