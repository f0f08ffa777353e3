//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
//!
//! Written with u32 arithmetic only so that `shaders/dropout.wgsl` can mirror it line for
//! line (WGSL has no 64-bit integers; there the high half of the product is emulated).

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// High and low 32 bits of the 64-bit product `a * b`.
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(M0, c[0]);
    let (hi1, lo1) = mulhilo(M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// One Philox4x32-10 block: four random words for a counter and a key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        c = round(c, k);
    }
    c
}

/// A uniform f32 in [0, 1) from a random word: its top 24 bits times 2^-24, which is exact
/// in f32 and so identical on every device.
pub fn uniform_from_bits(bits: u32) -> f32 {
    (bits >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A sequential stream of random numbers keyed by (seed, stream id), for host-side work
/// such as parameter initialisation and data shuffling.
#[derive(Clone, Debug)]
pub struct Philox {
    key: [u32; 2],
    block: u64,
    buffer: [u32; 4],
    used: usize,
}

impl Philox {
    /// A stream for a 64-bit seed and a stream id; distinct ids give independent streams.
    pub fn new(seed: u64, stream: u32) -> Self {
        let mixed = seed ^ (u64::from(stream) << 32 | u64::from(stream)).rotate_left(17);
        Philox {
            key: [mixed as u32, (mixed >> 32) as u32 ^ stream],
            block: 0,
            buffer: [0; 4],
            used: 4,
        }
    }

    /// The next random word.
    pub fn next_u32(&mut self) -> u32 {
        if self.used == 4 {
            let ctr = [self.block as u32, (self.block >> 32) as u32, 0, 0];
            self.buffer = philox4x32_10(ctr, self.key);
            self.block += 1;
            self.used = 0;
        }
        let v = self.buffer[self.used];
        self.used += 1;
        v
    }

    /// A uniform f32 in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        uniform_from_bits(self.next_u32())
    }

    /// A uniform f32 in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// A standard normal f32 (Box-Muller on two uniforms).
    pub fn normal(&mut self) -> f32 {
        let u1 = (f64::from(self.next_u32()) + 1.0) / 4_294_967_297.0;
        let u2 = f64::from(self.next_u32()) / 4_294_967_296.0;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    /// A uniform integer in [0, n) (n > 0), by rejection so that it carries no modulo bias.
    pub fn below(&mut self, n: u32) -> u32 {
        let n = n.max(1);
        let zone = u32::MAX - (u32::MAX % n);
        loop {
            let v = self.next_u32();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u32 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors for philox4x32_10.
    #[test]
    fn known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniform_mean_and_range() {
        let mut r = Philox::new(7, 3);
        let n = 100_000;
        let mut sum = 0.0f64;
        for _ in 0..n {
            let u = r.next_f32();
            assert!((0.0..1.0).contains(&u));
            sum += f64::from(u);
        }
        // Mean of U[0,1) has sd 1/sqrt(12 n); 5 sd is about 0.0046.
        assert!((sum / n as f64 - 0.5).abs() < 0.0046);
    }

    #[test]
    fn shuffle_is_a_permutation_and_seeded() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        Philox::new(1, 0).shuffle(&mut a);
        Philox::new(1, 0).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }
}
