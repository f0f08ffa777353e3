//! The closed set of ops a graph is built from. Every op has a CPU reference kernel
//! (`backend/cpu`), a WGSL entry point (`shaders/`), and, when it is differentiable, a
//! gradient rule (`graph/autodiff.rs`); gradient rules emit ops of this same set, so the
//! parity tests cover forward and backward alike by iterating over it.

mod activation;
mod geom;
mod params;
mod shape_inference;

pub use activation::{Activation, SELU_ALPHA, SELU_SCALE};
pub use geom::{AdaptiveGeom, ConvGeom, GroupGeom, PoolGeom};
pub use params::{Channels, DropoutSpec, Nchw};

/// One operation of the graph. Inputs are listed in each variant's doc; every op has one
/// output. Class labels travel as f32 holding exact small integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `op(a) · op(b)` for 2-D `a`, `b`; a transpose flag reads the operand as its
    /// transpose in place, so no gradient needs a transpose copy.
    MatMul {
        /// Read `a` ([K, M] in memory) as [M, K].
        trans_a: bool,
        /// Read `b` ([N, K] in memory) as [K, N].
        trans_b: bool,
    },
    /// `(a, b, bias [N]) → op(a) · op(b) + bias`, the bias broadcast over the rows: a
    /// [`Op::MatMul`] followed by an [`Op::BiasAdd`] in one kernel, whose epilogue adds the
    /// bias to the f32 accumulator before the one store (`graph::fuse_bias` creates it
    /// after differentiation, so the product is not written and read back). In f32 it is
    /// bit-identical to the two ops: the same accumulator plus the same f32 addition.
    MatMulBias {
        /// Read `a` ([K, M] in memory) as [M, K].
        trans_a: bool,
        /// Read `b` ([N, K] in memory) as [K, N].
        trans_b: bool,
    },
    /// `(a, b, bias [N]) → f(op(a) · op(b) + bias)`: an [`Op::MatMulBias`] followed by an
    /// [`Op::Activation`] whose gradient reads its output (relu, sigmoid, tanh; see
    /// [`Activation::grad_from_output`]), in one kernel whose epilogue applies `f` to the
    /// f32 sum before the one store (`graph::fuse_activation` creates it after
    /// differentiation, when the pre-activation has no other reader). In f32 it is
    /// bit-identical to the two ops.
    MatMulBiasAct {
        /// Read `a` ([K, M] in memory) as [M, K].
        trans_a: bool,
        /// Read `b` ([N, K] in memory) as [K, N].
        trans_b: bool,
        /// The activation applied last.
        act: Activation,
    },
    /// `(x [N, C, H, W], w [OC, C·KH·KW][, bias [OC]]) → im2col(x) · wᵀ [+ bias] [→ f]`,
    /// `[N·OH·OW, OC]`: a conv layer's forward product as an implicit GEMM, reading the
    /// im2col matrix's entries straight from the image instead of materialising it
    /// (`graph::fuse_im2col` rewrites [`Op::Im2Col`] followed by a [`Op::MatMul`],
    /// [`Op::MatMulBias`] or [`Op::MatMulBiasAct`] into it after differentiation). The
    /// im2col entries are copies or zeros, so it is bit-identical to the ops it replaces.
    ConvMatMul {
        /// The convolution's geometry (the image is `[geom.n, geom.c, geom.h, geom.w]`).
        geom: ConvGeom,
        /// Whether a bias `[OC]` follows the weight and is added (as [`Op::MatMulBias`]).
        bias: bool,
        /// The activation applied last (as [`Op::MatMulBiasAct`]; only with a bias).
        act: Option<Activation>,
    },
    /// `(dy [N·OH·OW, OC], x [N, C, H, W]) → dyᵀ · im2col(x)`, `[OC, C·KH·KW]`: a conv
    /// layer's weight gradient as an implicit GEMM (the `MatMul { trans_a: true }` that
    /// autodiff emits on the im2col matrix, rewritten by `graph::fuse_im2col`).
    ConvWeightGrad(ConvGeom),
    /// `(x [N, C, H, W], w [OC, C/G·KH·KW]) → [N·OH·OW, OC]`: a grouped convolution's
    /// forward product, in the rows layout of [`Op::ConvMatMul`] (a bias and
    /// [`Op::RowsToNchw`] follow it as they follow the dense product), computed directly:
    /// output (r, o) sums its group's C/G·KH·KW taps, channel then kernel row then column.
    GroupedConv(GroupGeom),
    /// `(dy [N·OH·OW, OC], w [OC, C/G·KH·KW]) → dx [N, C, H, W]`: the input gradient of
    /// [`Op::GroupedConv`], gathered per pixel (its group's output channels ascending,
    /// then kernel rows and columns ascending), so no atomics.
    GroupedConvInputGrad(GroupGeom),
    /// `(dy [N·OH·OW, OC], x [N, C, H, W]) → dw [OC, C/G·KH·KW]`: the weight gradient of
    /// [`Op::GroupedConv`], each weight summing over the output rows in order.
    GroupedConvWeightGrad(GroupGeom),
    /// `x + b` with `x` `[rows, cols]` and `b` `[cols]` broadcast over the rows.
    BiasAdd,
    /// Column sums of `dy` `[rows, cols]` → `[cols]`: the gradient of [`Op::BiasAdd`] for `b`.
    BiasGrad,
    /// `a + b`, same shapes (gradient accumulation).
    Add,
    /// `factor · x`.
    Scale(f32),
    /// `f(x)` element-wise.
    Activation(Activation),
    /// `(x, dy) → dy · f'(x)`: the gradient of [`Op::Activation`] from its input (every
    /// kind but relu, sigmoid and tanh, for which autodiff emits
    /// [`Op::ActivationGradFromOutput`]).
    ActivationGrad(Activation),
    /// `(y, dy) → dy · f'(x)` computed from the output `y = f(x)`: relu dy·(y > 0), sigmoid
    /// dy·y·(1 − y), tanh dy·(1 − y²), as PyTorch's threshold_backward, sigmoid_backward
    /// and tanh_backward. Only for [`Activation::grad_from_output`] kinds. Why: the
    /// pre-activation is then dead after the forward activation, so a product's epilogue
    /// can apply the activation ([`Op::MatMulBiasAct`]) without storing it.
    ActivationGradFromOutput(Activation),
    /// Softmax over the last dimension.
    Softmax,
    /// Log-softmax of each row: `x − max − log Σ exp(x − max)`.
    LogSoftmax,
    /// `(y, dy) → dy − exp(y)·Σ dy` per row: the gradient of [`Op::LogSoftmax`] from its
    /// output, as PyTorch's log_softmax_backward.
    LogSoftmaxGrad,
    /// `(y, dy) → y · (dy − Σ dy·y)` per row: the gradient of [`Op::Softmax`] from its output.
    SoftmaxGrad,
    /// `(logits [B, C], labels [B]) → [1]`: mean cross-entropy of softmax(logits), with
    /// label smoothing ε as PyTorch's (target = (1−ε)·onehot + ε/C).
    SoftmaxCrossEntropy {
        /// Label smoothing ε in [0, 1] (PyTorch's range).
        label_smoothing: f32,
    },
    /// `(logits, labels, dloss [1]) → dlogits`: the gradient of [`Op::SoftmaxCrossEntropy`].
    SoftmaxCrossEntropyGrad {
        /// Label smoothing ε in [0, 1] (PyTorch's range).
        label_smoothing: f32,
    },
    /// `(pred, target) → [1]`: mean squared error.
    Mse,
    /// `(pred, target, dloss [1]) → dpred = 2 (pred − target) · dloss / n`.
    MseGrad,
    /// `(logits, targets) → [1]`: PyTorch's `binary_cross_entropy_with_logits`, mean of
    /// max(x, 0) − x·t + ln(1 + e^(−|x|)).
    BceWithLogits,
    /// `(logits, targets, dloss [1]) → (sigmoid(x) − t) · dloss / n`: the gradient of
    /// [`Op::BceWithLogits`].
    BceWithLogitsGrad,
    /// `(pred, target) → [1]`: mean |pred − target| (`l1_loss`).
    L1,
    /// `(pred, target, dloss [1]) → sign(pred − target) · dloss / n`, sign(0) = 0.
    L1Grad,
    /// `(pred, target) → [1]`: PyTorch's `smooth_l1_loss`, mean of 0.5·d²/β where |d| < β
    /// and |d| − 0.5·β elsewhere (β = 0 is the L1 loss).
    SmoothL1 {
        /// β ≥ 0, where the loss turns from quadratic to linear.
        beta: f32,
    },
    /// `(pred, target, dloss [1]) → dpred`: d/β inside, sign(d) outside, times dloss / n.
    SmoothL1Grad {
        /// β ≥ 0, where the loss turns from quadratic to linear.
        beta: f32,
    },
    /// `(pred, target) → [1]`: PyTorch's `huber_loss`, mean of 0.5·d² where |d| < δ and
    /// δ·(|d| − 0.5·δ) elsewhere.
    Huber {
        /// δ > 0, where the loss turns from quadratic to linear.
        delta: f32,
    },
    /// `(pred, target, dloss [1]) → dpred`: d inside, δ·sign(d) outside, times dloss / n.
    HuberGrad {
        /// δ > 0, where the loss turns from quadratic to linear.
        delta: f32,
    },
    /// `x → [1]`: sum of all elements.
    Sum,
    /// `x → [1]`: mean of all elements.
    Mean,
    /// `x → [1]`: Σ x², the L2 penalty.
    SumSquares,
    /// `(x, dy [1]) → 2·x·dy`: the gradient of [`Op::SumSquares`].
    SumSquaresGrad,
    /// `x → [1]`: Σ |x|, the L1 penalty.
    SumAbs,
    /// `(x, dy [1]) → sign(x)·dy` (sign(0) = 0): the gradient of [`Op::SumAbs`].
    SumAbsGrad,
    /// `dy [1] → factor · dy` broadcast to the node's shape: the gradient of Sum and Mean.
    Broadcast(f32),
    /// `logits [B, C] → [B]`: index of the row maximum (first on ties), as f32.
    Argmax,
    /// `(logits [B, C], labels [B]) → [1]`: how many rows have argmax == label.
    Correct,
    /// The same values under another shape (the node's); planned as an alias, no kernel.
    Reshape,
    /// `x [N, C, H, W] → [N·OH·OW, C·KH·KW]`: the patches a convolution multiplies.
    Im2Col(ConvGeom),
    /// The adjoint of [`Op::Im2Col`]: patch columns summed back onto `[N, C, H, W]`.
    Col2Im(ConvGeom),
    /// `[N·H·W, C] → [N, C, H, W]` (matmul rows to channels-first).
    RowsToNchw(Nchw),
    /// `[N, C, H, W] → [N·H·W, C]`.
    NchwToRows(Nchw),
    /// Max over each window, first maximum on ties.
    MaxPool(PoolGeom),
    /// `x [N, C, H, W] → [N, C, OH, OW]`: `AdaptiveAvgPool2d`'s mean over each window
    /// (windows of PyTorch's adaptive rule, which may differ in size; divided by the
    /// window's height, then by its width, as PyTorch's kernel does).
    AdaptiveAvgPool(AdaptiveGeom),
    /// `dy → dx`: each pixel gathers dy / kh / kw of the windows containing it, in output
    /// order.
    AdaptiveAvgPoolGrad(AdaptiveGeom),
    /// `x → [N, C, OH, OW]`: `AdaptiveMaxPool2d`, the first maximum of each window (NaN if
    /// the window holds one).
    AdaptiveMaxPool(AdaptiveGeom),
    /// `(x, dy) → dx`: each pixel gathers dy of the windows whose (recomputed) maximum it
    /// is, in output order.
    AdaptiveMaxPoolGrad(AdaptiveGeom),
    /// `(x, dy) → dx`: each window's gradient routed to its (recomputed) arg-max.
    MaxPoolGrad(PoolGeom),
    /// Mean over each window.
    AvgPool(PoolGeom),
    /// `dy → dx`: each window's gradient spread evenly over it.
    AvgPoolGrad(PoolGeom),
    /// `x [N, C, S] → [2, C]`: per-channel mean and biased variance.
    BatchNormStats(Channels),
    /// `(x, stats [2, C], gamma [C], beta [C]) → (x − mean)/sqrt(var + eps)·gamma + beta`.
    BatchNormApply(Channels),
    /// `(stats [2, C], gamma [C], Σdy·x̂ [C], Σdy [C]) → [5, C]`: per channel the mean,
    /// 1/sqrt(var + eps), gamma·invstd, Σdy and Σdy·x̂, what [`Op::BatchNormGrad`] needs.
    /// The sums are the outputs of [`Op::BatchNormGammaGrad`] and [`Op::ChannelSum`], so a
    /// layer's backward sums over its input twice, not three times.
    BatchNormGradCoeffs(Channels),
    /// `(x, coeffs [5, C], dy) → dx` through the batch statistics (training mode):
    /// `dx = gamma·invstd/M · (M·dy − Σdy − x̂·Σdy·x̂)`, one element-wise pass with the
    /// coefficients of [`Op::BatchNormGradCoeffs`].
    BatchNormGrad(Channels),
    /// `(x, stats, dy) → [C]`: Σ dy·x̂ per channel (gamma's gradient).
    BatchNormGammaGrad(Channels),
    /// `dy [N, C, S] → [C]`: Σ dy per channel (beta's gradient).
    ChannelSum(Channels),
    /// `(x [N, C, S], gamma [C], beta [C]) → x·gamma + beta` per channel: group norm's
    /// affine, after its normalisation (a [`Op::LayerNorm`] over each group).
    ChannelAffine(Channels),
    /// `(x [N, C, S], weight [C]) → x` where x > 0, else `weight·x` per channel
    /// (`nn.PReLU`; one weight for every channel is C = 1 over `[N, 1, rest]`).
    PRelu(Channels),
    /// `(x, weight, dy) → dy` where x > 0, else `weight·dy`: PReLU's input gradient.
    PReluGrad(Channels),
    /// `(x, dy) → 0` where x > 0, else `x·dy`: the terms of PReLU's weight gradient, which
    /// [`Op::ChannelSum`] adds per channel.
    PReluWeightTerms(Channels),
    /// `stats [2, C] →` running statistics updated in place with `momentum`, the variance
    /// made unbiased by `count / (count − 1)`: `(1 − m)·running + m·batch`.
    BatchNormRunning {
        /// Channels.
        c: usize,
        /// PyTorch's momentum (weight of the new batch).
        momentum: f32,
        /// Values per channel in the batch (N·S).
        count: usize,
    },
    /// `(x [rows, cols], gamma [cols], beta [cols]) →` each row normalised over its cols.
    LayerNorm {
        /// Added to the variance.
        eps: f32,
    },
    /// `(x, gamma, dy) → dx`.
    LayerNormGrad {
        /// Added to the variance.
        eps: f32,
    },
    /// `(x, dy) → [cols]`: Σ over rows of dy·x̂ (gamma's gradient).
    LayerNormGammaGrad {
        /// Added to the variance.
        eps: f32,
    },
    /// Inverted dropout: elements kept with probability 1 − p and scaled by 1/(1 − p); the
    /// mask comes from Philox keyed by (seed, layer, step) with the element index as counter.
    Dropout(DropoutSpec),
    /// `dy → dx` with the same mask, regenerated rather than stored.
    DropoutGrad(DropoutSpec),
}

/// How closely a backend must agree with the f64 reference (DESIGN.md's policy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Integers (indices, counts): bit-exact.
    Exact,
    /// Element-wise: |got − ref| ≤ rtol · max(|ref|, 0.01·scale) where scale is the largest
    /// |ref| of the output (so values that cancel to near zero are judged at the output's scale).
    Relative(f64),
    /// Reductions over K terms: |got − ref| ≤ 2·K·ε₃₂·m + ε₃₂·|ref|, m the same op on
    /// |inputs| in f64, or for the normalisations' gamma gradients Σ |dy|·(|x| + |mean|)·invstd
    /// (`parity::compare`).
    Reduction,
}

impl Op {
    /// Number of inputs.
    pub fn arity(&self) -> usize {
        match self {
            Op::ConvMatMul { bias, .. } => 2 + usize::from(*bias),
            Op::MatMul { .. }
            | Op::ConvWeightGrad(_)
            | Op::GroupedConv(_)
            | Op::GroupedConvInputGrad(_)
            | Op::GroupedConvWeightGrad(_)
            | Op::BiasAdd
            | Op::Add
            | Op::ActivationGrad(_)
            | Op::ActivationGradFromOutput(_)
            | Op::SoftmaxGrad
            | Op::LogSoftmaxGrad
            | Op::SoftmaxCrossEntropy { .. }
            | Op::Mse
            | Op::BceWithLogits
            | Op::L1
            | Op::SmoothL1 { .. }
            | Op::Huber { .. }
            | Op::Correct => 2,
            Op::MatMulBias { .. }
            | Op::MatMulBiasAct { .. }
            | Op::SoftmaxCrossEntropyGrad { .. }
            | Op::MseGrad
            | Op::BceWithLogitsGrad
            | Op::L1Grad
            | Op::SmoothL1Grad { .. }
            | Op::HuberGrad { .. }
            | Op::BatchNormGammaGrad(_)
            | Op::BatchNormGrad(_)
            | Op::LayerNorm { .. }
            | Op::LayerNormGrad { .. }
            | Op::ChannelAffine(_)
            | Op::PReluGrad(_) => 3,
            Op::BatchNormApply(_) | Op::BatchNormGradCoeffs(_) => 4,
            Op::MaxPoolGrad(_) | Op::AdaptiveMaxPoolGrad(_) | Op::LayerNormGammaGrad { .. } => 2,
            Op::AdaptiveAvgPool(_) | Op::AdaptiveAvgPoolGrad(_) | Op::AdaptiveMaxPool(_) => 1,
            Op::Reshape
            | Op::Im2Col(_)
            | Op::Col2Im(_)
            | Op::RowsToNchw(_)
            | Op::NchwToRows(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::AvgPoolGrad(_)
            | Op::BatchNormStats(_)
            | Op::ChannelSum(_)
            | Op::BatchNormRunning { .. }
            | Op::Dropout(_)
            | Op::DropoutGrad(_) => 1,
            Op::BiasGrad
            | Op::Scale(_)
            | Op::Activation(_)
            | Op::Softmax
            | Op::LogSoftmax
            | Op::Sum
            | Op::Mean
            | Op::SumSquares
            | Op::SumAbs
            | Op::Broadcast(_)
            | Op::Argmax => 1,
            Op::SumSquaresGrad | Op::SumAbsGrad | Op::PRelu(_) | Op::PReluWeightTerms(_) => 2,
        }
    }

    /// Short name, as printed by `kiln parity` and used for WGSL entry points.
    pub fn name(&self) -> String {
        match self {
            Op::MatMul { trans_a, trans_b } => format!(
                "matmul{}{}",
                if *trans_a { "_ta" } else { "" },
                if *trans_b { "_tb" } else { "" }
            ),
            Op::MatMulBias { trans_a, trans_b } => format!(
                "matmul_bias{}{}",
                if *trans_a { "_ta" } else { "" },
                if *trans_b { "_tb" } else { "" }
            ),
            Op::MatMulBiasAct {
                trans_a,
                trans_b,
                act,
            } => format!(
                "matmul_bias_{}{}{}",
                act.name(),
                if *trans_a { "_ta" } else { "" },
                if *trans_b { "_tb" } else { "" }
            ),
            Op::ConvMatMul { bias, act, .. } => match (bias, act) {
                (_, Some(a)) => format!("conv_matmul_bias_{}", a.name()),
                (true, None) => "conv_matmul_bias".into(),
                (false, None) => "conv_matmul".into(),
            },
            Op::ConvWeightGrad(_) => "conv_weight_grad".into(),
            Op::GroupedConv(_) => "grouped_conv".into(),
            Op::GroupedConvInputGrad(_) => "grouped_conv_input_grad".into(),
            Op::GroupedConvWeightGrad(_) => "grouped_conv_weight_grad".into(),
            Op::BiasAdd => "bias_add".into(),
            Op::BiasGrad => "bias_grad".into(),
            Op::Add => "add".into(),
            Op::Scale(_) => "scale".into(),
            Op::Activation(a) => a.name().into(),
            Op::ActivationGrad(a) => format!("{}_grad", a.name()),
            Op::ActivationGradFromOutput(a) => format!("{}_grad_from_output", a.name()),
            Op::Softmax => "softmax".into(),
            Op::SoftmaxGrad => "softmax_grad".into(),
            Op::LogSoftmax => "log_softmax".into(),
            Op::LogSoftmaxGrad => "log_softmax_grad".into(),
            Op::SoftmaxCrossEntropy { .. } => "cross_entropy".into(),
            Op::SoftmaxCrossEntropyGrad { .. } => "cross_entropy_grad".into(),
            Op::Mse => "mse".into(),
            Op::MseGrad => "mse_grad".into(),
            Op::BceWithLogits => "bce_with_logits".into(),
            Op::BceWithLogitsGrad => "bce_with_logits_grad".into(),
            Op::L1 => "l1".into(),
            Op::L1Grad => "l1_grad".into(),
            Op::SmoothL1 { .. } => "smooth_l1".into(),
            Op::SmoothL1Grad { .. } => "smooth_l1_grad".into(),
            Op::Huber { .. } => "huber".into(),
            Op::HuberGrad { .. } => "huber_grad".into(),
            Op::Sum => "sum".into(),
            Op::SumSquares => "sum_squares".into(),
            Op::SumSquaresGrad => "sum_squares_grad".into(),
            Op::SumAbs => "sum_abs".into(),
            Op::SumAbsGrad => "sum_abs_grad".into(),
            Op::Mean => "mean".into(),
            Op::Broadcast(_) => "broadcast".into(),
            Op::Argmax => "argmax".into(),
            Op::Correct => "correct".into(),
            Op::Reshape => "reshape".into(),
            Op::Im2Col(_) => "im2col".into(),
            Op::Col2Im(_) => "col2im".into(),
            Op::RowsToNchw(_) => "rows_to_nchw".into(),
            Op::NchwToRows(_) => "nchw_to_rows".into(),
            Op::MaxPool(_) => "max_pool".into(),
            Op::MaxPoolGrad(_) => "max_pool_grad".into(),
            Op::AdaptiveAvgPool(_) => "adaptive_avg_pool".into(),
            Op::AdaptiveAvgPoolGrad(_) => "adaptive_avg_pool_grad".into(),
            Op::AdaptiveMaxPool(_) => "adaptive_max_pool".into(),
            Op::AdaptiveMaxPoolGrad(_) => "adaptive_max_pool_grad".into(),
            Op::AvgPool(_) => "avg_pool".into(),
            Op::AvgPoolGrad(_) => "avg_pool_grad".into(),
            Op::BatchNormStats(_) => "batch_norm_stats".into(),
            Op::BatchNormApply(_) => "batch_norm_apply".into(),
            Op::BatchNormGradCoeffs(_) => "batch_norm_grad_coeffs".into(),
            Op::BatchNormGrad(_) => "batch_norm_grad".into(),
            Op::BatchNormGammaGrad(_) => "batch_norm_gamma_grad".into(),
            Op::ChannelSum(_) => "channel_sum".into(),
            Op::ChannelAffine(_) => "channel_affine".into(),
            Op::PRelu(_) => "prelu".into(),
            Op::PReluGrad(_) => "prelu_grad".into(),
            Op::PReluWeightTerms(_) => "prelu_weight_terms".into(),
            Op::BatchNormRunning { .. } => "batch_norm_running".into(),
            Op::LayerNorm { .. } => "layer_norm".into(),
            Op::LayerNormGrad { .. } => "layer_norm_grad".into(),
            Op::LayerNormGammaGrad { .. } => "layer_norm_gamma_grad".into(),
            Op::Dropout(_) => "dropout".into(),
            Op::DropoutGrad(_) => "dropout_grad".into(),
        }
    }

    /// Which inputs carry gradients (labels and targets do not).
    pub fn differentiable_inputs(&self) -> &'static [usize] {
        match self {
            Op::MatMul { .. } | Op::BiasAdd | Op::Add | Op::GroupedConv(_) => &[0, 1],
            Op::MatMulBias { .. }
            | Op::MatMulBiasAct { .. }
            | Op::ConvMatMul { bias: true, .. } => &[0, 1, 2],
            Op::ConvMatMul { bias: false, .. } => &[0, 1],
            Op::Scale(_)
            | Op::Activation(_)
            | Op::Softmax
            | Op::LogSoftmax
            | Op::Sum
            | Op::Mean
            | Op::SumSquares
            | Op::SumAbs => &[0],
            Op::SumSquaresGrad | Op::SumAbsGrad => &[],
            Op::SoftmaxCrossEntropy { .. }
            | Op::Mse
            | Op::BceWithLogits
            | Op::L1
            | Op::SmoothL1 { .. }
            | Op::Huber { .. } => &[0],
            Op::Reshape
            | Op::Im2Col(_)
            | Op::Col2Im(_)
            | Op::RowsToNchw(_)
            | Op::NchwToRows(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::AdaptiveAvgPool(_)
            | Op::AdaptiveMaxPool(_)
            | Op::Dropout(_) => &[0],
            // The statistics input is a function of x (training mode): its path is part
            // of BatchNormGrad, not a separate gradient.
            Op::BatchNormApply(_) => &[0, 2, 3],
            Op::LayerNorm { .. } | Op::ChannelAffine(_) => &[0, 1, 2],
            Op::PRelu(_) => &[0, 1],
            Op::PReluGrad(_) | Op::PReluWeightTerms(_) => &[],
            Op::MaxPoolGrad(_)
            | Op::AvgPoolGrad(_)
            | Op::AdaptiveAvgPoolGrad(_)
            | Op::AdaptiveMaxPoolGrad(_)
            | Op::BatchNormStats(_)
            | Op::BatchNormGradCoeffs(_)
            | Op::BatchNormGrad(_)
            | Op::BatchNormGammaGrad(_)
            | Op::ChannelSum(_)
            | Op::BatchNormRunning { .. }
            | Op::LayerNormGrad { .. }
            | Op::LayerNormGammaGrad { .. }
            | Op::DropoutGrad(_) => &[],
            Op::ConvWeightGrad(_)
            | Op::GroupedConvInputGrad(_)
            | Op::GroupedConvWeightGrad(_)
            | Op::BiasGrad
            | Op::ActivationGrad(_)
            | Op::ActivationGradFromOutput(_)
            | Op::SoftmaxGrad
            | Op::LogSoftmaxGrad
            | Op::SoftmaxCrossEntropyGrad { .. }
            | Op::MseGrad
            | Op::BceWithLogitsGrad
            | Op::L1Grad
            | Op::SmoothL1Grad { .. }
            | Op::HuberGrad { .. }
            | Op::Broadcast(_)
            | Op::Argmax
            | Op::Correct => &[],
        }
    }

    /// The tolerance policy for this op's output.
    pub fn tolerance(&self) -> Tolerance {
        match self {
            Op::Argmax
            | Op::Correct
            | Op::Reshape
            | Op::Im2Col(_)
            | Op::RowsToNchw(_)
            | Op::NchwToRows(_)
            | Op::MaxPool(_)
            | Op::AdaptiveMaxPool(_) => Tolerance::Exact,
            Op::Col2Im(_)
            | Op::MaxPoolGrad(_)
            | Op::AdaptiveAvgPool(_)
            | Op::AdaptiveAvgPoolGrad(_)
            | Op::AdaptiveMaxPoolGrad(_)
            | Op::AvgPool(_)
            | Op::AvgPoolGrad(_)
            | Op::BatchNormStats(_)
            | Op::BatchNormGammaGrad(_)
            | Op::ChannelSum(_)
            | Op::LayerNormGammaGrad { .. } => Tolerance::Reduction,
            Op::BatchNormRunning { .. }
            | Op::Dropout(_)
            | Op::DropoutGrad(_)
            | Op::ChannelAffine(_)
            | Op::PRelu(_)
            | Op::PReluGrad(_)
            | Op::PReluWeightTerms(_) => Tolerance::Relative(1e-5),
            // Normalised values pass through a subtraction of the mean and a reciprocal
            // square root: relative to the output's scale, 1e-4 as for exp/log.
            Op::BatchNormApply(_)
            | Op::BatchNormGradCoeffs(_)
            | Op::BatchNormGrad(_)
            | Op::LayerNorm { .. }
            | Op::LayerNormGrad { .. } => Tolerance::Relative(1e-4),
            Op::SumSquaresGrad | Op::SumAbsGrad => Tolerance::Relative(1e-5),
            Op::MatMul { .. }
            | Op::MatMulBias { .. }
            | Op::MatMulBiasAct { .. }
            | Op::ConvMatMul { .. }
            | Op::ConvWeightGrad(_)
            | Op::GroupedConv(_)
            | Op::GroupedConvInputGrad(_)
            | Op::GroupedConvWeightGrad(_)
            | Op::BiasGrad
            | Op::Sum
            | Op::SumSquares
            | Op::SumAbs
            | Op::Mean
            | Op::Mse
            | Op::L1
            | Op::SmoothL1 { .. }
            | Op::Huber { .. }
            | Op::SoftmaxGrad
            | Op::LogSoftmaxGrad
            | Op::SoftmaxCrossEntropy { .. } => Tolerance::Reduction,
            Op::Activation(Activation::Relu | Activation::LeakyRelu(_))
            | Op::ActivationGrad(Activation::Relu | Activation::LeakyRelu(_))
            | Op::ActivationGradFromOutput(Activation::Relu | Activation::LeakyRelu(_))
            | Op::BiasAdd
            | Op::Add
            | Op::Scale(_)
            | Op::Broadcast(_)
            | Op::MseGrad
            | Op::L1Grad
            | Op::SmoothL1Grad { .. }
            | Op::HuberGrad { .. } => Tolerance::Relative(1e-5),
            Op::Activation(_)
            | Op::ActivationGrad(_)
            | Op::ActivationGradFromOutput(_)
            | Op::Softmax
            | Op::LogSoftmax
            | Op::SoftmaxCrossEntropyGrad { .. }
            | Op::BceWithLogitsGrad => Tolerance::Relative(1e-4),
            // The reduction bound's magnitude (the op on |inputs|) misjudges this loss:
            // BCE(−a, t) = BCE(a, 1 − t), so for negative logits it can be far below the
            // terms actually summed (up to 3.3× the bound at n = 1). Every term is positive
            // for targets in [0, 1], so the mean has no cancellation and its error is
            // relative to its value: exp/log's 1e-4.
            Op::BceWithLogits => Tolerance::Relative(1e-4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::shape::Shape;

    #[test]
    fn matmul_shapes_follow_transpose_flags() {
        let a = Shape::new(&[3, 5]);
        let b = Shape::new(&[7, 5]);
        let op = Op::MatMul {
            trans_a: false,
            trans_b: true,
        };
        assert_eq!(
            op.output_shape(&[&a, &b], None).ok(),
            Some(Shape::new(&[3, 7]))
        );
        let op = Op::MatMul {
            trans_a: true,
            trans_b: false,
        };
        let err = op.output_shape(&[&a, &b], None);
        assert!(matches!(err, Err(Error::Shape { .. })));
    }

    #[test]
    fn matmul_bias_checks_the_bias_against_the_columns() {
        let a = Shape::new(&[3, 5]);
        let b = Shape::new(&[7, 5]);
        let op = Op::MatMulBias {
            trans_a: false,
            trans_b: true,
        };
        assert_eq!(op.name(), "matmul_bias_tb");
        assert_eq!(
            op.output_shape(&[&a, &b, &Shape::new(&[7])], None).ok(),
            Some(Shape::new(&[3, 7]))
        );
        for bad in [Shape::new(&[5]), Shape::new(&[1, 7])] {
            let err = op.output_shape(&[&a, &b, &bad], None);
            assert!(matches!(err, Err(Error::Shape { .. })), "{bad}");
        }
        assert!(matches!(
            op.output_shape(&[&a, &b], None),
            Err(Error::Graph(_))
        ));
    }

    #[test]
    fn regression_losses_reject_the_thresholds_pytorch_rejects() {
        let x = Shape::new(&[5]);
        let d = Shape::scalar();
        let shape = |op: Op| {
            let inputs: Vec<&Shape> = [&x, &x, &d][..op.arity()].to_vec();
            op.output_shape(&inputs, None)
        };
        assert_eq!(
            shape(Op::SmoothL1 { beta: 0.0 }).ok(),
            Some(Shape::scalar())
        );
        assert_eq!(shape(Op::HuberGrad { delta: 0.5 }).ok(), Some(x.clone()));
        for op in [
            Op::SmoothL1 { beta: -0.1 },
            Op::SmoothL1Grad { beta: f32::NAN },
            Op::Huber { delta: 0.0 },
            Op::HuberGrad { delta: -1.0 },
        ] {
            assert!(matches!(shape(op), Err(Error::Config(_))), "{op:?}");
        }
        let short = Shape::new(&[4]);
        assert!(matches!(
            Op::L1.output_shape(&[&x, &short], None),
            Err(Error::Shape { .. })
        ));
    }
}
