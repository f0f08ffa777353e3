// Philox4x32-10 (Salmon et al., SC'11), mirroring src/rng/philox.rs word for word, so a
// device-side stream equals the host's for the same counter and key. WGSL has no 64-bit
// integers: the high half of each 32x32 product is rebuilt from 16-bit halves.

const M0: u32 = 0xD2511F53u;
const M1: u32 = 0xCD9E8D57u;
const W0: u32 = 0x9E3779B9u;
const W1: u32 = 0xBB67AE85u;

// (high, low) 32 bits of the 64-bit product a·b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    // Each partial product fits in 32 bits; a·b = hh·2³² + (lh + hl)·2¹⁶ + ll.
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    // Bits 16..47 of the product; at most 3·(2¹⁶ − 1), so it cannot wrap, and its own
    // bits 16.. are the carry into the high word.
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    // u32 multiplication wraps, which is exactly the low word.
    return vec2<u32>(hi, a * b);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let p0 = mulhilo(M0, c.x);
    let p1 = mulhilo(M1, c.z);
    return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

// One Philox4x32-10 block: four random words for a counter and a key.
fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        if (r > 0u) {
            // The key schedule's additions wrap mod 2³², as the host's wrapping_add.
            k = k + vec2<u32>(W0, W1);
        }
        c = philox_round(c, k);
    }
    return c;
}

// A uniform f32 in [0, 1) from a random word: its top 24 bits times 2⁻²⁴, exact in f32
// and so identical on every device and on the host.
fn uniform_from_bits(b: u32) -> f32 {
    return f32(b >> 8u) * (1.0 / 16777216.0);
}

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
fn philox_fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
