//! The WGSL sources of the compute kernels, embedded at build time from `shaders/`.
//!
//! Graph-op kernels share one interface, `shaders/graph_op.wgsl`, prepended to each of
//! them here (WGSL has no includes): `@binding(0)` the 96-byte `Dims` uniform,
//! `@binding(1)` the output, `@binding(2..=5)` the op's inputs in op order. Every storage
//! buffer is declared `read_write`, because arenas bind slices of one buffer as inputs and
//! outputs of the same dispatch. Pipelines have explicit layouts with exactly the bindings
//! an op uses (its arity).
//! 1-D kernels have 256 invocations per workgroup and take a 2-D grid when more than
//! 65535 workgroups are needed; "single workgroup" kernels are dispatched as (1, 1, 1).
//!
//! Kernels reach their storage bindings only through accessor functions (`ld_out`,
//! `st_out`, `ld0`..`ld3`, ...), so each graph-op module (and `anomaly.wgsl`) also exists
//! per binding dtype signature, with any binding holding f16: see [`module_source`]. The
//! constants below are the all-f32 modules.

// A private helper of this module, kept in its own file (it is the only generated WGSL).
#[path = "shader_gen.rs"]
mod shader_gen;

/// One module of `shaders/matmul.wgsl`: the graph-op interface, the constants of one tile
/// configuration (invocations `WX` x `WY`, outputs `TM` x `TN` per invocation, K tiles
/// `BK` deep), the activation functions (`activation_core.wgsl`, for the fused activation
/// epilogue), the implicit-GEMM gathers (`matmul_im2col.wgsl`), then the kernel. The same numbers are in
/// [`matmul::CONFIGS`](super::matmul::CONFIGS), and a test checks that they agree.
macro_rules! matmul_module {
    ($wx:literal, $wy:literal, $tm:literal, $tn:literal, $bk:literal) => {
        concat!(
            include_str!("../../../shaders/graph_op.wgsl"),
            "const WX: u32 = ",
            $wx,
            "u;\nconst WY: u32 = ",
            $wy,
            "u;\nconst TM: u32 = ",
            $tm,
            "u;\nconst TN: u32 = ",
            $tn,
            "u;\nconst BK: u32 = ",
            $bk,
            "u;\n",
            include_str!("../../../shaders/activation_core.wgsl"),
            include_str!("../../../shaders/matmul_im2col.wgsl"),
            include_str!("../../../shaders/matmul.wgsl")
        )
    };
}

/// `matmul`, `matmul_a4`, `matmul_b4`, `matmul_a4b4`: out[M, N] = op(in0) · op(in1) in
/// 32x32 tiles (8x8 invocations of 4x4 outputs, K tiles of 16), numbered row-major and
/// folded into x and y; `matmul_bias*` add in2 (a bias `[N]`) in the epilogue. Dims: d0 = M,
/// d1 = N, d2 = K, d3 = 1 to accumulate, e0 = tiles per row. Overrides `TRANS_A`,
/// `TRANS_B`, `HAS_BIAS` (bool, default false; `HAS_BIAS` with the bias entry points), and
/// `HAS_ACT` with `ACT_KIND` (an [`Activation::code`](crate::op::Activation::code)) to
/// apply an activation after the bias.
pub const MATMUL_32X32: &str = matmul_module!(8, 8, 4, 4, 16);

/// The matmul kernel in 64x64 tiles (16x16 invocations of 4x4 outputs, K tiles of 16): the
/// default configuration, used when tuning is off. Interface as [`MATMUL_32X32`].
pub const MATMUL: &str = matmul_module!(16, 16, 4, 4, 16);

/// The matmul kernel in 128x64 tiles (16x16 invocations of 8x4 outputs, K tiles of 16).
pub const MATMUL_128X64: &str = matmul_module!(16, 16, 8, 4, 16);

/// The matmul kernel in 128x128 tiles (16x16 invocations of 8x8 outputs, K tiles of 8).
pub const MATMUL_128X128: &str = matmul_module!(16, 16, 8, 8, 8);

/// `split_sum` and `split_sum_bias`: the second pass of a split-K product, adding its
/// parts (in0 [P, M, N]) in order with the product's epilogue (accumulate, bias in1,
/// activation). Dims: d0 = M·N, d1 = N, d2 = P, d3 = 1 to accumulate; overrides
/// `HAS_BIAS`, `HAS_ACT`, `ACT_KIND` as the matmul's.
pub const MATMUL_SPLIT: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/activation_core.wgsl"),
    include_str!("../../../shaders/matmul_split.wgsl")
);

/// `bias_add`, `bias_grad`, `add`, `scale`, `broadcast`.
pub const ELEMENTWISE: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/elementwise.wgsl")
);

/// `activation`, `activation_grad` and `activation_grad_from_output` (the functions are
/// `activation_core.wgsl`'s, which the matmul modules share); override `KIND` (u32,
/// required) is [`Activation::code`](crate::op::Activation::code), Dims f0 and f1
/// [`Activation::params`](crate::op::Activation::params).
pub const ACTIVATION: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/activation_core.wgsl"),
    include_str!("../../../shaders/activation.wgsl")
);

/// `softmax` and `softmax_grad`, one invocation per row.
pub const SOFTMAX: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/softmax.wgsl")
);

/// `cross_entropy` and `mse` (single workgroup), `cross_entropy_grad` (per row) and
/// `mse_grad` (per element).
pub const LOSS: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/loss.wgsl")
);

/// `sum`, `mean`, `correct` (single workgroup), `argmax` (per row) and `accumulate`
/// (one invocation: metric `d0` += `f0` · `in0[0]`, `out` bound to the metrics buffer).
pub const REDUCE: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/reduce.wgsl")
);

/// `grad_norm_partial`, `grad_norm_final` and the `*_step` updates. Not the Dims
/// convention: `@binding(0)` is [`StepScalars`](crate::optim::StepScalars), then params,
/// grads, state0..state2, partials and norm at bindings 1 to 7, and at 9 the piece of the
/// arenas a dispatch covers (8 is [`OPTIM_HALF`]'s f16 weight copy).
pub const OPTIM: &str = include_str!("../../../shaders/optim.wgsl");

/// The optimizer of f16 models: `enable f16;`, [`OPTIM`], then `optim_half.wgsl`'s entry
/// points (`grad_norm_partial_half`, `*_step_half`), which unscale the gradients by the
/// loss scale, skip steps with non-finite gradients and write the f16 weight copy at
/// `@binding(8)`. Needs `wgpu::Features::SHADER_F16`.
pub const OPTIM_HALF: &str = concat!(
    "enable f16;\n",
    include_str!("../../../shaders/optim.wgsl"),
    include_str!("../../../shaders/optim_half.wgsl")
);

/// `write_loss_seed` and `update_loss_scale`: GradScaler's state on the device (one
/// invocation each). `@binding(1)` the scaler's words, `@binding(2)` the loss-seed slot.
pub const SCALER: &str = include_str!("../../../shaders/scaler.wgsl");

/// `check_finite`: `--detect-anomaly`'s test of a step's output, with an atomic flag of its
/// own (not the graph-op interface).
pub const ANOMALY: &str = include_str!("../../../shaders/anomaly.wgsl");

/// `philox_fill` and the `philox4x32_10` / `uniform_from_bits` functions, mirroring
/// [`crate::rng::philox4x32_10`] and [`crate::rng::uniform_from_bits`]. `@binding(0)` the
/// Dims bytes (f0..f2 carry raw words), `@binding(1)` an `array<u32>`.
pub const PHILOX: &str = concat!(
    include_str!("../../../shaders/philox_core.wgsl"),
    include_str!("../../../shaders/philox.wgsl")
);

/// `dropout` (forward and backward), with the Philox functions prepended. Graph-op
/// convention plus [`StepScalars`](crate::optim::StepScalars) at `@binding(7)` for the
/// step and seed. Dims: d0 = n, d1 = layer, f0 = p, f1 = 1/(1−p); ceil(n/4) invocations.
pub const DROPOUT: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/philox_core.wgsl"),
    include_str!("../../../shaders/dropout.wgsl")
);

/// `im2col`, `col2im`, `rows_to_nchw`, `nchw_to_rows`: the data movement around the
/// matmul that makes a convolution. Dims: d0 = invocations, then the geometry (see the file).
pub const CONV: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/conv.wgsl")
);

/// `grouped_conv`, `grouped_conv_input_grad`, `grouped_conv_weight_grad`: grouped
/// convolution computed directly, one invocation per output, pixel or weight. Dims: d0 =
/// invocations, then conv.wgsl's geometry with e10 = groups, e11 = OC, e12 = N.
pub const GROUPED_CONV: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/grouped_conv.wgsl")
);

/// `max_pool`, `max_pool_grad`, `avg_pool`, `avg_pool_grad`, one invocation per output
/// element. Dims: d0 = invocations, d1 = n·c, d2, d3 = the padding ph, pw, f0 = kh·kw (the
/// average's divisor, as a float so a large window cannot wrap), e0..e7 = h, w, kh, kw,
/// sh, sw, oh, ow.
pub const POOL: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/pool.wgsl")
);

/// `adaptive_avg_pool`, `adaptive_avg_pool_grad`, `adaptive_max_pool`,
/// `adaptive_max_pool_grad`: PyTorch's adaptive windows, one invocation per output or
/// pixel. Dims: d0 = invocations, e0..e3 = h, w, oh, ow.
pub const ADAPTIVE_POOL: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/adaptive_pool.wgsl")
);

/// Batch norm (`batch_norm_stats`, `_apply`, `_grad_coeffs`, `_grad`, `_gamma_grad`,
/// `channel_sum`, `batch_norm_running`) and layer norm (`layer_norm`, `_grad`,
/// `_gamma_grad`). Dims: d0..d2 = N, C, S (or rows, cols), f0 = eps or momentum; see the
/// file for dispatches.
pub const NORM: &str = concat!(
    include_str!("../../../shaders/graph_op.wgsl"),
    include_str!("../../../shaders/norm.wgsl")
);

/// Every shader file by name, for building all modules up front and for validation tests.
pub const ALL: &[(&str, &str)] = &[
    ("matmul_32x32.wgsl", MATMUL_32X32),
    ("matmul_64x64.wgsl", MATMUL),
    ("matmul_128x64.wgsl", MATMUL_128X64),
    ("matmul_128x128.wgsl", MATMUL_128X128),
    ("matmul_split.wgsl", MATMUL_SPLIT),
    ("elementwise.wgsl", ELEMENTWISE),
    ("activation.wgsl", ACTIVATION),
    ("softmax.wgsl", SOFTMAX),
    ("loss.wgsl", LOSS),
    ("reduce.wgsl", REDUCE),
    ("dropout.wgsl", DROPOUT),
    ("conv.wgsl", CONV),
    ("grouped_conv.wgsl", GROUPED_CONV),
    ("pool.wgsl", POOL),
    ("adaptive_pool.wgsl", ADAPTIVE_POOL),
    ("norm.wgsl", NORM),
    ("anomaly.wgsl", ANOMALY),
    ("optim.wgsl", OPTIM),
    ("optim_half.wgsl", OPTIM_HALF),
    ("scaler.wgsl", SCALER),
    ("philox.wgsl", PHILOX),
];

/// The WGSL of `shader` (a key of [`ALL`]) with its storage bindings stored as `half` says,
/// for mixed precision: `half[k]` makes storage binding k + 1 hold f16 instead of f32, so
/// k = 0 is `out` and k = 1..=4 are `in0`..`in3` (the matmul's vec4 views follow `in0` and
/// `in1`); for `anomaly.wgsl`, whose binding 1 is its atomic flag, only k = 1 (the tested
/// values) may be f16. Missing entries are f32. Kernels still compute in f32: an f16 binding
/// is widened on every load and rounded to nearest f16 on every store.
///
/// An all-f32 signature returns exactly the module in [`ALL`]; otherwise the module starts
/// with `enable f16;` and needs a device with `wgpu::Features::SHADER_F16`. Errors with
/// [`Error::Unsupported`](crate::error::Error::Unsupported) for an unknown shader, for f16
/// asked of a file that is not a graph-op module or anomaly (`optim.wgsl`, `philox.wgsl`),
/// or for a binding that cannot be f16.
pub fn module_source(shader: &str, half: &[bool]) -> crate::error::Result<String> {
    let template = ALL
        .iter()
        .find(|(name, _)| *name == shader)
        .map(|(_, src)| *src)
        .ok_or_else(|| crate::error::Error::Unsupported(format!("no shader named {shader}")))?;
    shader_gen::generate(shader, template, half)
}
