//! The implicit-GEMM convolution products ([`Op::ConvMatMul`](crate::op::Op::ConvMatMul),
//! [`Op::ConvWeightGrad`](crate::op::Op::ConvWeightGrad)) on the CPU: the im2col matrix
//! is built in a buffer and handed to the same GEMM the unfused ops use, so each output
//! takes exactly the arithmetic of `Im2Col` followed by the matmul. The GPU computes the
//! entries while staging its tiles; here the GEMM crate wants a matrix. `run_op` (the f64
//! reference, single ops) builds it per call; the executor keeps it per plan
//! (`cols_cache.rs`).

use super::conv::im2col;
use super::matmul::{matmul, matmul_bias};
use super::Real;
use crate::op::{Activation, ConvGeom};

/// `cols` resized to the im2col matrix of `x` and filled with it.
pub fn build_cols<T: Real>(x: &[T], cols: &mut Vec<T>, g: &ConvGeom) {
    cols.resize(g.n * g.oh() * g.ow() * g.patch(), T::zero());
    im2col(x, cols, g);
}

/// `out [N·OH·OW, OC] = cols · wᵀ [+ bias] [→ act]` for the im2col matrix `cols` of the
/// image ([`build_cols`]) and `w` `[OC, C·KH·KW]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_matmul<T: Real>(
    cols: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
    g: &ConvGeom,
    oc: usize,
    act: Option<Activation>,
) {
    let (m, k) = (g.n * g.oh() * g.ow(), g.patch());
    match bias {
        Some(b) => matmul_bias(cols, w, b, out, m, oc, k, false, true, act),
        None => matmul(cols, w, out, m, oc, k, false, true),
    }
}

/// `out [OC, C·KH·KW] = dyᵀ · cols` for `dy` `[N·OH·OW, OC]` and the im2col matrix `cols`
/// of the image ([`build_cols`]).
pub fn conv_weight_grad<T: Real>(dy: &[T], cols: &[T], out: &mut [T], g: &ConvGeom, oc: usize) {
    let (rows, k) = (g.n * g.oh() * g.ow(), g.patch());
    matmul(dy, cols, out, oc, k, rows, true, false);
}
