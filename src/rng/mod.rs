//! Counter-based randomness (Philox4x32-10), identical on the CPU and in WGSL.

mod philox;

pub use philox::{philox4x32_10, uniform_from_bits, Philox};
