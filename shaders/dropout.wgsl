// Inverted dropout, mirroring src/backend/cpu/dropout.rs. The executor prepends
// philox_core.wgsl (WGSL has no includes). The mask is regenerated from (seed, layer, step,
// element) in forward and backward alike, so it is never stored, and it is bit-identical to
// the CPU's: the same Philox block, the same 24-bit uniform, the same f32 comparison.

// The first sixteen words of the step's scalars (src/optim/scalars.rs StepScalars);
// dropout reads the step and the seed.
struct StepScalars {
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
    max_norm: f32,
    nesterov: u32,
    step: u32,
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    one_minus_dampening: f32,
}

@group(0) @binding(7) var<uniform> scalars: StepScalars;

// d0 = n, d1 = layer, d2 = per (elements per draw: 1, or H·W for Dropout2d), f0 = p,
// f1 = scale = 1/(1-p) rounded once on the host. One invocation per block of four elements
// (one Philox call gives four words); dispatch ceil(n/4) invocations. Used for the forward
// pass and, on dy, for the backward pass. With per > 1, element i takes draw i / per: word
// (i / per) % 4 of block (i / per) / 4, computed once per distinct draw of the four.
@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let block = gid.x + gid.y * nwg.x * 256u;
    let n = dims.d0;
    if (block >= (n + 3u) / 4u) {
        return;
    }
    let key = vec2<u32>(scalars.seed_lo, scalars.seed_hi);
    let per = dims.d2;
    if (per > 1u) {
        var draw = 0xffffffffu;
        var keep = false;
        for (var k = 0u; k < 4u; k = k + 1u) {
            let i = block * 4u + k;
            if (i < n) {
                if (i / per != draw) {
                    draw = i / per;
                    let words = philox4x32_10(vec4<u32>(draw / 4u, dims.d1, scalars.step, 0u), key);
                    keep = uniform_from_bits(words[draw % 4u]) >= dims.f0;
                }
                st_out(i, select(0.0, ld0(i) * dims.f1, keep));
            }
        }
        return;
    }
    let words = philox4x32_10(vec4<u32>(block, dims.d1, scalars.step, 0u), key);
    for (var k = 0u; k < 4u; k = k + 1u) {
        let i = block * 4u + k;
        if (i < n) {
            let keep = uniform_from_bits(words[k]) >= dims.f0;
            st_out(i, select(0.0, ld0(i) * dims.f1, keep));
        }
    }
}
