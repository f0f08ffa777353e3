// Known-answer entry point for the Philox functions of philox_core.wgsl, which the
// executor prepends to this file (WGSL has no includes).

// The 32 bytes of the Dims uniform, with the f0..f3 slots read as their raw bits:
// the host stores key and counter words there with f32::from_bits, and a float load
// could canonicalise a word that happens to spell a NaN.
struct PhiloxDims {
    // Number of 4-word blocks to write.
    d0: u32,
    // Counter word 0 of block 0 (block i uses d1 + i).
    d1: u32,
    // Counter words 1 and 2.
    d2: u32,
    d3: u32,
    // Key words 0 and 1 (Dims.f0, Dims.f1).
    f0_bits: u32,
    f1_bits: u32,
    // Counter word 3 (Dims.f2).
    f2_bits: u32,
    f3_bits: u32,
}

@group(0) @binding(0) var<uniform> dims: PhiloxDims;
@group(0) @binding(1) var<storage, read_write> bits: array<u32>;

// bits[4i .. 4i+4] = philox4x32_10((d1 + i, d2, d3, f2), (f0, f1)) for i < d0: the raw
// stream, for known-answer tests against the host generator.
@compute @workgroup_size(256)
fn philox_fill(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dims.d0) {
        return;
    }
    let ctr = vec4<u32>(dims.d1 + i, dims.d2, dims.d3, dims.f2_bits);
    let key = vec2<u32>(dims.f0_bits, dims.f1_bits);
    let r = philox4x32_10(ctr, key);
    bits[4u * i] = r.x;
    bits[4u * i + 1u] = r.y;
    bits[4u * i + 2u] = r.z;
    bits[4u * i + 3u] = r.w;
}
