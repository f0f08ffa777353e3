//! The WGSL sources of the compute kernels, embedded at build time from `shaders/`.
//!
//! Graph-op kernels share one binding convention: `@binding(0)` the 32-byte `Dims`
//! uniform (`d0..d3: u32, f0..f3: f32`), `@binding(1)` the output, `@binding(2..=4)` the
//! op's inputs in op order. Every storage buffer is declared `read_write`, because arenas
//! bind slices of one buffer as inputs and outputs of the same dispatch. Pipelines use
//! auto layout, so a binding an entry point does not use is left out of its layout.
//! 1-D kernels have 256 invocations per workgroup and take a 2-D grid when more than
//! 65535 workgroups are needed; "single workgroup" kernels are dispatched as (1, 1, 1).

/// `matmul`: out[M, N] = op(in0) · op(in1), 64x64 tiles, workgroups (ceil(N/64), ceil(M/64), 1).
/// Dims: d0 = M, d1 = N, d2 = K. Overrides `TRANS_A`, `TRANS_B` (bool, default false).
pub const MATMUL: &str = include_str!("../../../shaders/matmul.wgsl");

/// `bias_add`, `bias_grad`, `add`, `scale`, `broadcast`.
pub const ELEMENTWISE: &str = include_str!("../../../shaders/elementwise.wgsl");

/// `activation` and `activation_grad`; override `KIND` (u32, required) is
/// [`Activation::code`](crate::op::Activation::code), Dims f0 the leaky slope.
pub const ACTIVATION: &str = include_str!("../../../shaders/activation.wgsl");

/// `softmax` and `softmax_grad`, one invocation per row.
pub const SOFTMAX: &str = include_str!("../../../shaders/softmax.wgsl");

/// `cross_entropy` and `mse` (single workgroup), `cross_entropy_grad` (per row) and
/// `mse_grad` (per element).
pub const LOSS: &str = include_str!("../../../shaders/loss.wgsl");

/// `sum`, `mean`, `correct` (single workgroup), `argmax` (per row) and `accumulate`
/// (one invocation, `out` bound to the metrics buffer).
pub const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");

/// `grad_norm_partial`, `grad_norm_final`, `sgd_step`, `adamw_step`. Not the Dims
/// convention: `@binding(0)` is [`StepScalars`](crate::optim::StepScalars), then params,
/// grads, state0, state1, partials, norm at bindings 1 to 6.
pub const OPTIM: &str = include_str!("../../../shaders/optim.wgsl");

/// `philox_fill` and the `philox4x32_10` / `uniform_from_bits` functions, mirroring
/// [`crate::rng::philox4x32_10`] and [`crate::rng::uniform_from_bits`]. `@binding(0)` the
/// Dims bytes (f0..f2 carry raw words), `@binding(1)` an `array<u32>`.
pub const PHILOX: &str = include_str!("../../../shaders/philox.wgsl");

/// Every shader file by name, for building all modules up front and for validation tests.
pub const ALL: &[(&str, &str)] = &[
    ("matmul.wgsl", MATMUL),
    ("elementwise.wgsl", ELEMENTWISE),
    ("activation.wgsl", ACTIVATION),
    ("softmax.wgsl", SOFTMAX),
    ("loss.wgsl", LOSS),
    ("reduce.wgsl", REDUCE),
    ("optim.wgsl", OPTIM),
    ("philox.wgsl", PHILOX),
];
