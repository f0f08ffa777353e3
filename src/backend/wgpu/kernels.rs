//! The pipeline table: for each op, its WGSL entry point, its `override` constants, the
//! dims uniform it reads and its dispatch size. The `match` is exhaustive, so an op added to
//! [`Op`] without a kernel here does not compile.

use super::chunk::Chunk;
use super::matmul::{self, MatmulProblem, Pick};
use crate::error::{Error, Result};
use crate::graph::Step;
use crate::op::{ConvGeom, GroupGeom, Op, PoolGeom};

/// Threads per workgroup of every 1-D kernel.
pub const WORKGROUP: u32 = 256;
/// Gradient elements summed by one workgroup of `grad_norm_partial`.
pub const NORM_CHUNK: u32 = 4096;
/// WebGPU's guaranteed maximum workgroups per dispatch dimension (adapters may allow more;
/// kiln uses the device's own `max_compute_workgroups_per_dimension`).
pub const MAX_GROUPS: u32 = 65_535;

/// The per-step uniform of graph-op kernels (`struct Dims` in the shaders: `d0..d3`,
/// `f0..f3`, then `e0..e15` for ops with more geometry, such as convolution).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Dims {
    /// Integer parameters (sizes, indices).
    pub d: [u32; 4],
    /// Float parameters (slopes, factors, smoothing).
    pub f: [f32; 4],
    /// More integer parameters.
    pub e: [u32; 16],
}

/// How one step is launched.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// Shader file (a key of `shaders::ALL`).
    pub shader: &'static str,
    /// Entry point.
    pub entry: &'static str,
    /// Pipeline-overridable constants.
    pub constants: Vec<(&'static str, f64)>,
    /// The uniform it reads.
    pub dims: Dims,
    /// Workgroups in x and y.
    pub groups: (u32, u32),
    /// Whether it also binds the step scalars (dropout's step and seed).
    pub needs_scalars: bool,
}

/// Workgroups for `n` invocations of a 1-D kernel, folded into y past `max` groups per
/// dimension (the kernels index `gid.x + gid.y * nwg.x * 256`).
pub fn groups_1d(n: usize, max: u32) -> Result<(u32, u32)> {
    fold(n.div_ceil(WORKGROUP as usize), max).map_err(|_| {
        Error::Unsupported(format!(
            "a 1-D dispatch of {n} invocations exceeds {max} x {max} workgroups"
        ))
    })
}

/// `groups` workgroups laid out as (x, y) with neither above `max`.
pub(super) fn fold(groups: usize, max: u32) -> Result<(u32, u32)> {
    let max = max.max(1) as usize;
    let y = groups.div_ceil(max).max(1);
    let x = groups.clamp(1, max);
    if y > max {
        return Err(Error::Unsupported(format!(
            "{groups} workgroups exceed {max} x {max}"
        )));
    }
    Ok((x as u32, y as u32))
}

fn u(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Unsupported(format!("dimension {v} exceeds u32")))
}

fn dims(d: [usize; 4], f: [f32; 4]) -> Result<Dims> {
    dims_e(d, f, [0; 8])
}

fn dims_e(d: [usize; 4], f: [f32; 4], e: [usize; 8]) -> Result<Dims> {
    let mut ee = [0u32; 16];
    for (o, v) in ee.iter_mut().zip(e) {
        *o = u(v)?;
    }
    Ok(Dims {
        d: [u(d[0])?, u(d[1])?, u(d[2])?, u(d[3])?],
        f,
        e: ee,
    })
}

/// A 1-D launch over `count` invocations.
fn plain(
    shader: &'static str,
    entry: &'static str,
    d: Dims,
    count: usize,
    max: u32,
) -> Result<Launch> {
    Ok(Launch {
        shader,
        entry,
        constants: vec![],
        dims: d,
        groups: groups_1d(count, max)?,
        needs_scalars: false,
    })
}

/// A launch of `groups` workgroups in x (folded into y past `max`).
fn per_group(
    shader: &'static str,
    entry: &'static str,
    d: Dims,
    groups: usize,
    max: u32,
) -> Result<Launch> {
    Ok(Launch {
        shader,
        entry,
        constants: vec![],
        dims: d,
        groups: fold(groups, max)?,
        needs_scalars: false,
    })
}

/// Conv geometry in the layout of `shaders/conv.wgsl`.
fn conv_dims(total: usize, g: &ConvGeom) -> Result<Dims> {
    let mut d = dims_e(
        [total, g.c, g.h, g.w],
        [0.0; 4],
        [g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh(), g.ow()],
    )?;
    d.e[8] = u(g.dh)?;
    d.e[9] = u(g.dw)?;
    Ok(d)
}

/// Grouped-conv geometry in the layout of `shaders/grouped_conv.wgsl`: conv.wgsl's, then
/// the groups, the output channels and the batch.
fn grouped_dims(total: usize, g: &GroupGeom, oc: usize) -> Result<Dims> {
    let mut d = conv_dims(total, &g.conv)?;
    d.e[10] = u(g.groups)?;
    d.e[11] = u(oc)?;
    d.e[12] = u(g.conv.n)?;
    Ok(d)
}

/// Pool geometry in the layout of `shaders/pool.wgsl`.
fn pool_dims(total: usize, g: &PoolGeom) -> Result<Dims> {
    // kh·kw as the f32 the CPU divides by (its usize product, checked at shape inference).
    let area = (g.kh * g.kw) as f32;
    let mut d = dims_e(
        [total, g.n * g.c, g.ph, g.pw],
        [area, 0.0, 0.0, 0.0],
        [g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.oh(), g.ow()],
    )?;
    // The average's divisor (shaders/pool.wgsl `divisor`): 0 kh·kw for every window,
    // 1 each window's own with padding counted, 2 without.
    d.e[8] = match (g.uniform_divisor(), g.count_include_pad) {
        (true, _) => 0,
        (false, true) => 1,
        (false, false) => 2,
    };
    Ok(d)
}

/// The launch of one plan step on a device with at most `max` workgroups per dimension,
/// products in the default tile configuration ([`matmul::DEFAULT`]).
pub fn launch(step: &Step, max: u32) -> Result<Launch> {
    launch_with(step, max, &|_: &MatmulProblem| matmul::DEFAULT)
}

/// As [`launch`], with `pick` choosing each product's tile configuration (the executor
/// passes the autotuner's choice).
pub fn launch_with(step: &Step, max: u32, pick: Pick<'_>) -> Result<Launch> {
    let n = step.shape.numel();
    let in0 = &step.input_shapes[0];
    let (rows, cols) = (in0.rows(), in0.last());
    let n0 = in0.numel();
    let simple = |shader, entry, d, count| plain(shader, entry, d, count, max);
    let single = |shader, entry, d: Dims| Launch {
        shader,
        entry,
        constants: vec![],
        dims: d,
        groups: (1, 1),
        needs_scalars: false,
    };
    let zf = [0.0; 4];
    Ok(match step.op {
        Op::MatMul { .. }
        | Op::MatMulBias { .. }
        | Op::MatMulBiasAct { .. }
        | Op::ConvMatMul { .. }
        | Op::ConvWeightGrad(_) => match matmul::problem(step)? {
            Some(p) => matmul::launch(step, &pick(&p), max)?,
            None => return Err(Error::Graph("a matmul without sizes".into())),
        },
        Op::BiasAdd => simple(
            "elementwise.wgsl",
            "bias_add",
            dims([n, cols, 0, 0], zf)?,
            n,
        )?,
        Op::BiasGrad => simple(
            "elementwise.wgsl",
            "bias_grad",
            dims([rows, cols, 0, 0], zf)?,
            cols,
        )?,
        Op::Add => simple("elementwise.wgsl", "add", dims([n, 0, 0, 0], zf)?, n)?,
        Op::Scale(f) => simple(
            "elementwise.wgsl",
            "scale",
            dims([n, 0, 0, 0], [f, 0.0, 0.0, 0.0])?,
            n,
        )?,
        Op::Broadcast(f) => simple(
            "elementwise.wgsl",
            "broadcast",
            dims([n, 0, 0, 0], [f, 0.0, 0.0, 0.0])?,
            n,
        )?,
        Op::Activation(a) | Op::ActivationGrad(a) | Op::ActivationGradFromOutput(a) => Launch {
            shader: "activation.wgsl",
            entry: match step.op {
                Op::Activation(_) => "activation",
                Op::ActivationGrad(_) => "activation_grad",
                _ => "activation_grad_from_output",
            },
            constants: vec![("KIND", f64::from(a.code()))],
            dims: dims([n, 0, 0, 0], [a.params()[0], a.params()[1], 0.0, 0.0])?,
            groups: groups_1d(n, max)?,
            needs_scalars: false,
        },
        Op::Softmax | Op::SoftmaxGrad | Op::LogSoftmax | Op::LogSoftmaxGrad => {
            let entry = match step.op {
                Op::Softmax => "softmax",
                Op::SoftmaxGrad => "softmax_grad",
                Op::LogSoftmax => "log_softmax",
                _ => "log_softmax_grad",
            };
            simple("softmax.wgsl", entry, dims([rows, cols, 0, 0], zf)?, rows)?
        }
        Op::SoftmaxCrossEntropy { label_smoothing } => single(
            "loss.wgsl",
            "cross_entropy",
            dims([rows, cols, 0, 0], [label_smoothing, 0.0, 0.0, 0.0])?,
        ),
        Op::SoftmaxCrossEntropyGrad { label_smoothing } => simple(
            "loss.wgsl",
            "cross_entropy_grad",
            dims([rows, cols, 0, rows], [label_smoothing, 0.0, 0.0, 0.0])?,
            rows,
        )?,
        Op::Mse => single("loss.wgsl", "mse", dims([in0.numel(), 0, 0, 0], zf)?),
        Op::MseGrad => simple("loss.wgsl", "mse_grad", dims([n, 0, 0, n], zf)?, n)?,
        Op::BceWithLogits => single(
            "loss.wgsl",
            "bce_with_logits",
            dims([in0.numel(), 0, 0, 0], zf)?,
        ),
        Op::BceWithLogitsGrad => simple(
            "loss.wgsl",
            "bce_with_logits_grad",
            dims([n, 0, 0, n], zf)?,
            n,
        )?,
        Op::L1 => single("loss.wgsl", "l1", dims([in0.numel(), 0, 0, 0], zf)?),
        Op::L1Grad => simple("loss.wgsl", "l1_grad", dims([n, 0, 0, n], zf)?, n)?,
        Op::SmoothL1 { beta } => single(
            "loss.wgsl",
            "smooth_l1",
            dims([in0.numel(), 0, 0, 0], [beta, 0.0, 0.0, 0.0])?,
        ),
        Op::SmoothL1Grad { beta } => simple(
            "loss.wgsl",
            "smooth_l1_grad",
            dims([n, 0, 0, n], [beta, 0.0, 0.0, 0.0])?,
            n,
        )?,
        Op::Huber { delta } => single(
            "loss.wgsl",
            "huber",
            dims([in0.numel(), 0, 0, 0], [delta, 0.0, 0.0, 0.0])?,
        ),
        Op::HuberGrad { delta } => simple(
            "loss.wgsl",
            "huber_grad",
            dims([n, 0, 0, n], [delta, 0.0, 0.0, 0.0])?,
            n,
        )?,
        Op::Sum => single("reduce.wgsl", "sum", dims([in0.numel(), 0, 0, 0], zf)?),
        Op::SumSquares => single("reduce.wgsl", "sum_squares", dims([n0, 0, 0, 0], zf)?),
        Op::SumAbs => single("reduce.wgsl", "sum_abs", dims([n0, 0, 0, 0], zf)?),
        Op::SumSquaresGrad => simple(
            "reduce.wgsl",
            "sum_squares_grad",
            dims([n, 0, 0, 0], zf)?,
            n,
        )?,
        Op::SumAbsGrad => simple("reduce.wgsl", "sum_abs_grad", dims([n, 0, 0, 0], zf)?, n)?,
        Op::Mean => single("reduce.wgsl", "mean", dims([in0.numel(), 0, 0, 0], zf)?),
        Op::Argmax => simple("reduce.wgsl", "argmax", dims([rows, cols, 0, 0], zf)?, rows)?,
        Op::Correct => single("reduce.wgsl", "correct", dims([rows, cols, 0, 0], zf)?),
        Op::Reshape => {
            return Err(Error::Graph(
                "reshape is planned as a view and has no kernel".into(),
            ))
        }
        Op::Im2Col(g) => simple("conv.wgsl", "im2col", conv_dims(n, &g)?, n)?,
        Op::Col2Im(g) => simple("conv.wgsl", "col2im", conv_dims(n, &g)?, n)?,
        Op::GroupedConv(g) => {
            let oc = step.input_shapes[1].0[0];
            simple(
                "grouped_conv.wgsl",
                "grouped_conv",
                grouped_dims(n, &g, oc)?,
                n,
            )?
        }
        // The channel count from the tensors a split step binds whole (the weight, the
        // weight gradient): a piece's sample-split operands have flat shapes.
        Op::GroupedConvInputGrad(g) => {
            let oc = step.input_shapes[1].0[0];
            let d = grouped_dims(n, &g, oc)?;
            simple("grouped_conv.wgsl", "grouped_conv_input_grad", d, n)?
        }
        Op::GroupedConvWeightGrad(g) => {
            let oc = step.shape.0[0];
            let d = grouped_dims(n, &g, oc)?;
            simple("grouped_conv.wgsl", "grouped_conv_weight_grad", d, n)?
        }
        Op::RowsToNchw(d) => simple(
            "conv.wgsl",
            "rows_to_nchw",
            dims([n, d.c, d.h * d.w, 0], zf)?,
            n,
        )?,
        Op::NchwToRows(d) => simple(
            "conv.wgsl",
            "nchw_to_rows",
            dims([n, d.c, d.h * d.w, 0], zf)?,
            n,
        )?,
        Op::MaxPool(g) => simple("pool.wgsl", "max_pool", pool_dims(n, &g)?, n)?,
        Op::MaxPoolGrad(g) => simple("pool.wgsl", "max_pool_grad", pool_dims(n, &g)?, n)?,
        Op::AvgPool(g) => simple("pool.wgsl", "avg_pool", pool_dims(n, &g)?, n)?,
        Op::AvgPoolGrad(g) => simple("pool.wgsl", "avg_pool_grad", pool_dims(n, &g)?, n)?,
        Op::AdaptiveAvgPool(g)
        | Op::AdaptiveAvgPoolGrad(g)
        | Op::AdaptiveMaxPool(g)
        | Op::AdaptiveMaxPoolGrad(g) => {
            let entry = match step.op {
                Op::AdaptiveAvgPool(_) => "adaptive_avg_pool",
                Op::AdaptiveAvgPoolGrad(_) => "adaptive_avg_pool_grad",
                Op::AdaptiveMaxPool(_) => "adaptive_max_pool",
                _ => "adaptive_max_pool_grad",
            };
            let d = dims_e([n, g.n * g.c, 0, 0], zf, [g.h, g.w, g.oh, g.ow, 0, 0, 0, 0])?;
            simple("adaptive_pool.wgsl", entry, d, n)?
        }
        Op::Dropout(spec) | Op::DropoutGrad(spec) => Launch {
            shader: "dropout.wgsl",
            entry: "dropout",
            constants: vec![],
            dims: dims(
                [n, spec.layer as usize, spec.per as usize, 0],
                [spec.p, spec.scale(), 0.0, 0.0],
            )?,
            groups: groups_1d(n.div_ceil(4), max)?,
            needs_scalars: true,
        },
        Op::BatchNormStats(_)
        | Op::BatchNormApply(_)
        | Op::BatchNormGradCoeffs(_)
        | Op::BatchNormGrad(_)
        | Op::BatchNormGammaGrad(_)
        | Op::ChannelSum(_)
        | Op::ChannelAffine(_)
        | Op::PRelu(_)
        | Op::PReluGrad(_)
        | Op::PReluWeightTerms(_)
        | Op::BatchNormRunning { .. }
        | Op::LayerNorm { .. }
        | Op::LayerNormGrad { .. }
        | Op::LayerNormGammaGrad { .. } => norm_launch(step, max)?,
    })
}

/// The launch of one piece of a split step: a piece that sums into its output sets the
/// kernel's accumulate flag (matmul's `d3`, bias_grad's `d2`, grouped_conv_weight_grad's
/// `e13`). Products in the default
/// tile configuration.
pub fn launch_chunk(chunk: &Chunk, max: u32) -> Result<Launch> {
    launch_chunk_with(chunk, max, &|_: &MatmulProblem| matmul::DEFAULT)
}

/// As [`launch_chunk`], with `pick` choosing each product's tile configuration.
pub fn launch_chunk_with(chunk: &Chunk, max: u32, pick: Pick<'_>) -> Result<Launch> {
    let mut l = launch_with(&chunk.step, max, pick)?;
    // Mean losses' gradients divide by the whole tensor's count (d3), not the piece's.
    match chunk.step.op {
        Op::SoftmaxCrossEntropyGrad { .. } => l.dims.d[3] = u(chunk.whole.rows())?,
        Op::MseGrad
        | Op::BceWithLogitsGrad
        | Op::L1Grad
        | Op::SmoothL1Grad { .. }
        | Op::HuberGrad { .. } => l.dims.d[3] = u(chunk.whole.numel())?,
        _ => {}
    }
    if chunk.accumulate {
        match chunk.step.op {
            // The chunker leaves the bias to the last piece, after the sum (chunk.rs).
            Op::MatMul { .. }
            | Op::MatMulBias { .. }
            | Op::MatMulBiasAct { .. }
            | Op::ConvWeightGrad(_) => l.dims.d[3] = 1,
            Op::BiasGrad => l.dims.d[2] = 1,
            Op::GroupedConvWeightGrad(_) => l.dims.e[13] = 1,
            other => {
                return Err(Error::Graph(format!(
                    "{} has no accumulating kernel",
                    other.name()
                )))
            }
        }
    }
    Ok(l)
}

/// Launches of the normalisation kernels (`shaders/norm.wgsl`): per-channel and per-row
/// reductions run one workgroup per channel (row), element-wise ones one invocation each
/// (long per-channel reductions run in parts instead: channel_parts.rs).
fn norm_launch(step: &Step, max: u32) -> Result<Launch> {
    let x = &step.input_shapes[0];
    // Per-channel kernels sum a channel in one part (e0 = 1 part of e1 = N·S values);
    // channel_parts.rs splits the long ones.
    let bn = |ch: &crate::op::Channels| -> Result<Dims> {
        let n = x.numel() / (ch.c * ch.s).max(1);
        let e = [1, n * ch.s, 0, 0, 0, 0, 0, 0];
        dims_e([n, ch.c, ch.s, 0], [ch.eps, 0.0, 0.0, 0.0], e)
    };
    let (rows, cols) = (x.rows(), x.last());
    let f = "norm.wgsl";
    match step.op {
        Op::BatchNormStats(ch) => per_group(f, "batch_norm_stats", bn(&ch)?, ch.c, max),
        Op::BatchNormApply(ch) => plain(f, "batch_norm_apply", bn(&ch)?, x.numel(), max),
        Op::BatchNormGradCoeffs(ch) => plain(
            f,
            "batch_norm_grad_coeffs",
            dims([0, ch.c, 0, 0], [ch.eps, 0.0, 0.0, 0.0])?,
            ch.c,
            max,
        ),
        Op::BatchNormGrad(ch) => plain(f, "batch_norm_grad", bn(&ch)?, x.numel(), max),
        Op::BatchNormGammaGrad(ch) => per_group(f, "batch_norm_gamma_grad", bn(&ch)?, ch.c, max),
        Op::ChannelSum(ch) => per_group(f, "channel_sum", bn(&ch)?, ch.c, max),
        Op::ChannelAffine(ch) => plain(f, "channel_affine", bn(&ch)?, x.numel(), max),
        Op::PRelu(ch) => plain(f, "prelu", bn(&ch)?, x.numel(), max),
        Op::PReluGrad(ch) => plain(f, "prelu_grad", bn(&ch)?, x.numel(), max),
        Op::PReluWeightTerms(ch) => plain(f, "prelu_weight_terms", bn(&ch)?, x.numel(), max),
        Op::BatchNormRunning { c, momentum, count } => plain(
            f,
            "batch_norm_running",
            dims([c, count, 0, 0], [momentum, 0.0, 0.0, 0.0])?,
            c,
            max,
        ),
        Op::LayerNorm { eps } => per_group(
            f,
            "layer_norm",
            dims([rows, cols, 0, 0], [eps, 0.0, 0.0, 0.0])?,
            rows,
            max,
        ),
        Op::LayerNormGrad { eps } => per_group(
            f,
            "layer_norm_grad",
            dims([rows, cols, 0, 0], [eps, 0.0, 0.0, 0.0])?,
            rows,
            max,
        ),
        Op::LayerNormGammaGrad { eps } => plain(
            f,
            "layer_norm_gamma_grad",
            dims([rows, cols, 0, 0], [eps, 0.0, 0.0, 0.0])?,
            cols,
            max,
        ),
        other => Err(Error::Graph(format!(
            "{} is not a normalisation op",
            other.name()
        ))),
    }
}

/// `--detect-anomaly`'s test of `len` output values of plan step `step`
/// (`shaders/anomaly.wgsl`).
pub fn check_finite(len: usize, step: usize, max: u32) -> Result<Launch> {
    plain(
        "anomaly.wgsl",
        "check_finite",
        dims([len, step, 0, 0], [0.0; 4])?,
        len,
        max,
    )
}

/// The launch that adds `weight · src[0]` to metric accumulator `index`.
pub fn accumulate(index: usize, weight: f32) -> Result<Launch> {
    Ok(Launch {
        shader: "reduce.wgsl",
        entry: "accumulate",
        constants: vec![],
        dims: dims([index, 0, 0, 0], [weight, 0.0, 0.0, 0.0])?,
        groups: (1, 1),
        needs_scalars: false,
    })
}
