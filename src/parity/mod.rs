//! Parity checking: the shared op table (every op, several shapes including 1, odd sizes and
//! non-multiples of the tile sizes) run on a backend and compared against the f64
//! reference under DESIGN.md's tolerance policy.

mod cases;
mod compare;
mod half;

pub use cases::{cases, InputKind, OpCase, ACTIVATIONS};
pub use compare::{case_output, check, run_case, CaseResult, Mismatch};
pub use half::{half_bound, run_case_half};
