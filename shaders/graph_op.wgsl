// The interface every graph-op kernel shares, prepended to each graph-op shader when its
// module is built (WGSL has no includes): the per-step uniform `dims`, the output, and up
// to four inputs in the op's order. Every storage buffer is read_write because the
// executor binds slices of one arena buffer as inputs and outputs of the same dispatch
// (wgpu forbids one buffer bound read-only and read-write at once). A kernel uses the
// bindings it needs; pipelines have explicit layouts with exactly those.

// The host writes 96 bytes for every dispatch: d0..d3 sizes, f0..f3 scalars, e0..e15 more
// geometry (convolution, pooling, split-K); each kernel documents the fields it reads.
struct Dims {
    d0: u32,
    d1: u32,
    d2: u32,
    d3: u32,
    f0: f32,
    f1: f32,
    f2: f32,
    f3: f32,
    e0: u32,
    e1: u32,
    e2: u32,
    e3: u32,
    e4: u32,
    e5: u32,
    e6: u32,
    e7: u32,
    e8: u32,
    e9: u32,
    e10: u32,
    e11: u32,
    e12: u32,
    e13: u32,
    e14: u32,
    e15: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;

// The storage bindings and their accessors. Kernels never index `out` or `in0`..`in3`
// directly: they load and store f32 through these functions, so that the same kernel runs
// with any binding holding f16 (mixed precision stores activations as f16 and computes in
// f32). This block is the all-f32 rendition; src/backend/wgpu/shader_gen.rs generates it
// per binding dtype signature and swaps it in (a test checks that its f32 output is
// exactly this text).
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> in0: array<f32>;
@group(0) @binding(3) var<storage, read_write> in1: array<f32>;
@group(0) @binding(4) var<storage, read_write> in2: array<f32>;
@group(0) @binding(5) var<storage, read_write> in3: array<f32>;
fn ld_out(i: u32) -> f32 { return out[i]; }
fn st_out(i: u32, v: f32) { out[i] = v; }
fn ld0(i: u32) -> f32 { return in0[i]; }
fn ld1(i: u32) -> f32 { return in1[i]; }
fn ld2(i: u32) -> f32 { return in2[i]; }
fn ld3(i: u32) -> f32 { return in3[i]; }
