// --detect-anomaly: after each plan step the host dispatches check_finite over the step's
// output; the first non-finite value found keeps the smallest step index in flag[0]
// (the host resets it to 0xffffffff before each run and reads it back after).
//
// Not the graph-op interface: the flag is atomic. d0 = elements to test, d1 = the index
// of the step that produced them.

struct Dims {
    d0: u32,
    d1: u32,
    d2: u32,
    d3: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read_write> flag: array<atomic<u32>>;
// The tested values, read as f32 through their accessor (all-f32 rendition; shader_gen.rs
// generates the f16 one, and f16 infinities and NaNs stay non-finite when widened).
@group(0) @binding(2) var<storage, read_write> values: array<f32>;
fn ld_values(i: u32) -> f32 { return values[i]; }

@compute @workgroup_size(256)
fn check_finite(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    // NaN/Inf by their exponent bits: compilers may assume no NaN in float compares.
    if ((bitcast<u32>(ld_values(i)) & 0x7f800000u) == 0x7f800000u) {
        atomicMin(&flag[0], dims.d1);
    }
}
