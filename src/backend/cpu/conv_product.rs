//! The implicit-GEMM convolution products ([`Op::ConvMatMul`](crate::op::Op::ConvMatMul),
//! [`Op::ConvWeightGrad`](crate::op::Op::ConvWeightGrad)) on the CPU: the im2col matrix
//! is built in a scratch buffer and handed to the same GEMM the unfused ops use, so each
//! output takes exactly the arithmetic of `Im2Col` followed by the matmul. (The GPU
//! computes the entries while staging its tiles; here the GEMM crate wants a matrix, and
//! the scratch is released after the call instead of living in the plan's arena until the
//! backward pass.)

use super::conv::im2col;
use super::matmul::{matmul, matmul_bias};
use super::Real;
use crate::op::{Activation, ConvGeom};

/// The im2col matrix of `x` in a fresh buffer.
fn cols_of<T: Real>(x: &[T], g: &ConvGeom) -> Vec<T> {
    let mut cols = vec![T::zero(); g.n * g.oh() * g.ow() * g.patch()];
    im2col(x, &mut cols, g);
    cols
}

/// `out [N·OH·OW, OC] = im2col(x) · wᵀ [+ bias] [→ act]` for `w` `[OC, C·KH·KW]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_matmul<T: Real>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
    g: &ConvGeom,
    oc: usize,
    act: Option<Activation>,
) {
    let cols = cols_of(x, g);
    let (m, k) = (g.n * g.oh() * g.ow(), g.patch());
    match bias {
        Some(b) => matmul_bias(&cols, w, b, out, m, oc, k, false, true, act),
        None => matmul(&cols, w, out, m, oc, k, false, true),
    }
}

/// `out [OC, C·KH·KW] = dyᵀ · im2col(x)` for `dy` `[N·OH·OW, OC]`.
pub fn conv_weight_grad<T: Real>(dy: &[T], x: &[T], out: &mut [T], g: &ConvGeom, oc: usize) {
    let cols = cols_of(x, g);
    let (rows, k) = (g.n * g.oh() * g.ow(), g.patch());
    matmul(dy, &cols, out, oc, k, rows, true, false);
}
