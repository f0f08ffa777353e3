//! The dropout mask: which elements a dropout layer keeps at a given step.

use super::philox::{philox4x32_10, uniform_from_bits};

/// The randomness of one training step: the run's seed and the step number. Dropout masks
/// are a pure function of (seed, layer, step, element), so backward regenerates them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepRng {
    /// The run's seed.
    pub seed: u64,
    /// The optimizer step (from 1 in training).
    pub step: u32,
}

impl StepRng {
    /// The Philox key: the seed's two words.
    pub fn key(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    /// The four uniforms of elements `4·block .. 4·block + 4` of dropout layer `layer`:
    /// counter (block, layer, step, 0) under the seed's key (`shaders/dropout.wgsl` forms
    /// the same counter).
    pub fn block(&self, layer: u32, block: u32) -> [f32; 4] {
        let bits = philox4x32_10([block, layer, self.step, 0], self.key());
        bits.map(uniform_from_bits)
    }

    /// Whether element `index` of layer `layer` is kept when dropping with probability `p`.
    pub fn keep(&self, layer: u32, index: u32, p: f32) -> bool {
        self.block(layer, index >> 2)[(index & 3) as usize] >= p
    }
}
