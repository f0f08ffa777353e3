//! Counter-based randomness (Philox4x32-10), identical on the CPU and in WGSL.

mod dropout;
mod philox;

pub use dropout::StepRng;
pub use philox::{philox4x32_10, uniform_from_bits, Philox};
