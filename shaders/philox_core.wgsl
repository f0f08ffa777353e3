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
