//! The implicit-GEMM convolution products ([`Op::ConvMatMul`](crate::op::Op::ConvMatMul),
//! [`Op::ConvWeightGrad`](crate::op::Op::ConvWeightGrad)) on the CPU: the im2col matrix
//! is built in a buffer and handed to the same GEMM the unfused ops use, so each output
//! takes exactly the arithmetic of `Im2Col` followed by the matmul. The GPU computes the
//! entries while staging its tiles; here the GEMM crate wants a matrix. `run_op` (the f64
//! reference, single ops) builds it per call; the executor keeps it per plan
//! (`cols_cache.rs`) and calls the `*_from_cols` forms.

use super::conv::im2col;
use super::matmul::{matmul, matmul_bias};
use super::Real;
use crate::op::{Activation, ConvGeom};

/// `cols` resized to the im2col matrix of `x` and filled with it.
pub fn build_cols<T: Real>(x: &[T], cols: &mut Vec<T>, g: &ConvGeom) {
    cols.resize(g.n * g.oh() * g.ow() * g.patch(), T::zero());
    im2col(x, cols, g);
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
    let mut cols = Vec::new();
    build_cols(x, &mut cols, g);
    conv_matmul_from_cols(&cols, w, bias, out, g, oc, act);
}

/// [`conv_matmul`] with the im2col matrix already built.
#[allow(clippy::too_many_arguments)]
pub fn conv_matmul_from_cols<T: Real>(
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

/// `out [OC, C·KH·KW] = dyᵀ · im2col(x)` for `dy` `[N·OH·OW, OC]`.
pub fn conv_weight_grad<T: Real>(dy: &[T], x: &[T], out: &mut [T], g: &ConvGeom, oc: usize) {
    let mut cols = Vec::new();
    build_cols(x, &mut cols, g);
    conv_weight_grad_from_cols(dy, &cols, out, g, oc);
}

/// [`conv_weight_grad`] with the im2col matrix already built.
pub fn conv_weight_grad_from_cols<T: Real>(
    dy: &[T],
    cols: &[T],
    out: &mut [T],
    g: &ConvGeom,
    oc: usize,
) {
    let (rows, k) = (g.n * g.oh() * g.ow(), g.patch());
    matmul(dy, cols, out, oc, k, rows, true, false);
}
