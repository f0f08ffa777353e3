// The activation functions and their derivatives, shared by activation.wgsl (the
// Op::Activation* kernels) and matmul.wgsl (Op::MatMulBiasAct's epilogue), and prepended to
// both when their modules are built (WGSL has no includes): one text, so a fused epilogue
// computes exactly what the separate kernel computes. Mirrors
// src/backend/cpu/activation.rs.
//
// `kind` is Activation::code: 0 relu, 1 leaky_relu, 2 sigmoid, 3 tanh, 4 gelu (exact erf
// form), 5 silu, 6 elu, 7 selu, 8 relu6, 9 hardtanh, 10 hardsigmoid, 11 hardswish,
// 12 softplus, 13 mish; callers pass an override constant, so the switch is resolved when
// the pipeline is built. `p` is Activation::params: leaky relu's slope or ELU's α in p.x,
// hardtanh's (min_val, max_val), softplus's (beta, threshold).

const FRAC_1_SQRT_2: f32 = 0.7071067811865476;
// 1/sqrt(2π)
const FRAC_1_SQRT_2PI: f32 = 0.3989422804014327;

// Taylor coefficients of erf(z)/z in powers of z²: 2/√π · (−1)ⁿ / (n! (2n+1)).
// Ten terms bound the truncation error by 5e-9 for |z| < 0.84375.
const ERF_T0: f32 = 1.1283791670955126;
const ERF_T1: f32 = -0.37612638903183754;
const ERF_T2: f32 = 0.11283791670955126;
const ERF_T3: f32 = -0.026866170645131252;
const ERF_T4: f32 = 0.005223977625442188;
const ERF_T5: f32 = -0.0008548327023450852;
const ERF_T6: f32 = 0.00012055332981789664;
const ERF_T7: f32 = -1.492565035840625e-05;
const ERF_T8: f32 = 1.6462114365889246e-06;
const ERF_T9: f32 = -1.6365844691234924e-07;

// Below this |z| the series is used; above it, erfc's fit. Both are below 1e-7 absolute
// error at the seam (measured in emulated f32 against f64 erf: at most 9.8e-8 overall).
const ERF_SERIES_LIMIT: f32 = 0.84375;

// erf(z) for |z| < ERF_SERIES_LIMIT, with relative accuracy (so tiny z stays exact).
fn erf_series(z: f32) -> f32 {
    let z2 = z * z;
    var p = ERF_T9;
    p = p * z2 + ERF_T8;
    p = p * z2 + ERF_T7;
    p = p * z2 + ERF_T6;
    p = p * z2 + ERF_T5;
    p = p * z2 + ERF_T4;
    p = p * z2 + ERF_T3;
    p = p * z2 + ERF_T2;
    p = p * z2 + ERF_T1;
    p = p * z2 + ERF_T0;
    return z * p;
}

// erfc(a) for a >= 0: the Chebyshev fit of Numerical Recipes (2nd ed., §6.2, `erfcc`),
// fractional error below 1.2e-7 for every a >= 0. Because the error is relative, the far
// tail (where erfc is tiny and 1 + erf(z) would cancel) keeps its accuracy.
fn erfc_nonneg(a: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * a);
    var p = 0.17087277;
    p = p * t - 0.82215223;
    p = p * t + 1.48851587;
    p = p * t - 1.13520398;
    p = p * t + 0.27886807;
    p = p * t - 0.18628806;
    p = p * t + 0.09678418;
    p = p * t + 0.37409196;
    p = p * t + 1.00002368;
    return t * exp(-a * a - 1.26551223 + t * p);
}

// erf(z), absolute error below 2e-7 (WGSL has no erf builtin).
fn erf(z: f32) -> f32 {
    let a = abs(z);
    if (a < ERF_SERIES_LIMIT) {
        return erf_series(z);
    }
    let r = 1.0 - erfc_nonneg(a);
    return select(r, -r, z < 0.0);
}

// erfc(z) = 1 − erf(z), with relative accuracy in the right tail.
fn erfc(z: f32) -> f32 {
    let a = abs(z);
    if (a < ERF_SERIES_LIMIT) {
        return 1.0 - erf_series(z);
    }
    let c = erfc_nonneg(a);
    return select(c, 2.0 - c, z < 0.0);
}

// 1 + erf(z), the factor of GELU's CDF. Written as erfc(−z) rather than 1 + erf(z): for
// negative z the sum cancels to a tiny number and would keep only erf's absolute accuracy.
fn one_plus_erf(z: f32) -> f32 {
    return erfc(-z);
}

// tanh without the builtin: WGSL only promises tanh "inherited from sinh/cosh", i.e. the
// accuracy of (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ), which loses all relative accuracy near 0 and is NaN
// (∞/∞) once eˣ overflows. This is Cephes' tanhf: an odd polynomial (relative error about
// 1e-7) below 0.625, then 1 − 2/(e²ˣ + 1).
fn tanh_f32(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.625) {
        let z = x * x;
        var p = -5.70498872745e-3;
        p = p * z + 2.06390887954e-2;
        p = p * z - 5.37397155531e-2;
        p = p * z + 1.33314422036e-1;
        p = p * z - 3.33332819422e-1;
        return p * z * x + x;
    }
    // Past 10, tanh rounds to exactly 1 in f32; clamping keeps e^(2a) finite. (Clamps in
    // this file are selects on a comparison, which a NaN fails, so it propagates; WGSL's
    // min and max may return the other operand.)
    let e = exp(2.0 * select(a, 10.0, a > 10.0));
    let t = 1.0 - 2.0 / (e + 1.0);
    return select(t, -t, x < 0.0);
}

// 1 / (1 + e⁻ˣ). WGSL lets implementations assume no infinities, so e⁻ˣ is kept finite:
// for x < −88 the result is already below f32's normal range either way.
fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(select(-x, 88.0, -x > 88.0)));
}

// nn.SELU's α and λ (src/op/activation.rs SELU_ALPHA, SELU_SCALE).
const SELU_ALPHA: f32 = 1.6732632423543772;
const SELU_SCALE: f32 = 1.0507009873554805;

// eˣ − 1 with relative accuracy near 0, where exp(x) − 1 would cancel (WGSL has no
// expm1): (eˣ − 1)/x = Σ xⁿ/(n+1)! to x⁸/9! for |x| < 0.5 (truncation below 6e-10
// relative), exp(x) − 1 elsewhere (at least 0.39 in magnitude there, so no cancellation).
fn expm1_f32(x: f32) -> f32 {
    if (abs(x) < 0.5) {
        var p = 2.755731922398589e-06;
        p = p * x + 2.48015873015873e-05;
        p = p * x + 0.0001984126984126984;
        p = p * x + 0.001388888888888889;
        p = p * x + 0.008333333333333333;
        p = p * x + 0.041666666666666664;
        p = p * x + 0.16666666666666666;
        p = p * x + 0.5;
        p = p * x + 1.0;
        return x * p;
    }
    return exp(x) - 1.0;
}

// log(1 + x) for x ≥ 0 (the callers pass e^y), with relative accuracy for small x, where
// WGSL's log near 1 has only absolute accuracy (2^-21) and has no log1p: up to 1 it is
// 2·atanh(s) = 2·Σ s^(2n+1)/(2n+1) with s = x/(2 + x) ≤ 1/3, whose terms to s^17 leave a
// truncation below 5e-10 relative; above 1, log(1 + x) ≥ 0.69 keeps relative accuracy.
fn log1p_f32(x: f32) -> f32 {
    if (x > 1.0) {
        return log(1.0 + x);
    }
    let s = x / (2.0 + x);
    let s2 = s * s;
    var p = 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return 2.0 * s * p;
}

// min(max(x, lo), hi) with a NaN kept, as torch.clamp (WGSL's clamp leaves NaN unspecified).
fn clamp_keep_nan(x: f32, lo: f32, hi: f32) -> f32 {
    return select(select(x, hi, x > hi), lo, x < lo);
}

// 1 strictly inside (lo, hi), else 0; a NaN input passes (PyTorch's hardtanh_backward on
// CUDA; see the CPU's `inside`).
fn inside(x: f32, lo: f32, hi: f32) -> f32 {
    return select(1.0, 0.0, x <= lo || x >= hi);
}

// tanh(log(1 + eˣ)), mish's factor. Past x = 20 it is 1 in f32, so eˣ is kept finite there.
fn tanh_softplus(x: f32) -> f32 {
    return tanh_f32(log1p_f32(exp(select(x, 20.0, x > 20.0))));
}

fn act_apply(kind: u32, x: f32, p: vec2<f32>) -> f32 {
    let slope = p.x;
    switch kind {
        // relu. NaN propagates, as torch.relu does; tested by its bits because WGSL
        // leaves max() with a NaN operand unspecified and compilers may fold x != x.
        case 0u: {
            let nan = (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
            return select(0.0, x, x > 0.0 || nan);
        }
        case 1u: {
            return select(x * slope, x, x > 0.0);
        }
        case 2u: {
            return sigmoid(x);
        }
        case 3u: {
            return tanh_f32(x);
        }
        case 4u: {
            return x * 0.5 * one_plus_erf(x * FRAC_1_SQRT_2);
        }
        // silu: x / (1 + e^−x), PyTorch's form. Past −88.72 e^−x overflows and PyTorch
        // gives x / ∞ = −0 (NaN at −∞): x·0 is both, where a clamped exponent would not be.
        case 5u: {
            return select(x / (1.0 + exp(-x)), x * 0.0, -x > 88.72);
        }
        case 6u: {
            return select(slope * expm1_f32(x), x, x > 0.0);
        }
        case 7u: {
            return select(SELU_SCALE * SELU_ALPHA * expm1_f32(x), SELU_SCALE * x, x > 0.0);
        }
        case 8u: {
            return clamp_keep_nan(x, 0.0, 6.0);
        }
        case 9u: {
            return clamp_keep_nan(x, p.x, p.y);
        }
        case 10u: {
            return clamp_keep_nan(x + 3.0, 0.0, 6.0) / 6.0;
        }
        // x·c/6 in that order, as PyTorch's hardswish.
        case 11u: {
            return x * clamp_keep_nan(x + 3.0, 0.0, 6.0) / 6.0;
        }
        // softplus: x past the threshold, or past 88 (where e^(βx) would overflow; the
        // CPU's softplus_switch). The exponent is kept finite in the branch select drops.
        case 12u: {
            let bx = x * p.x;
            let cut = min(p.y, 88.0);
            return select(log1p_f32(exp(select(bx, 88.0, bx > 88.0))) / p.x, x, bx > cut);
        }
        case 13u: {
            return x * tanh_softplus(x);
        }
        default: {
            return bitcast<f32>(0x7fc00000u);
        }
    }
}

// f'(x). The subgradient at the kinks is 0 (relu) or the slope (leaky relu), as PyTorch.
fn act_derivative(kind: u32, x: f32, p: vec2<f32>) -> f32 {
    let slope = p.x;
    switch kind {
        case 0u: {
            return select(0.0, 1.0, x > 0.0);
        }
        case 1u: {
            return select(slope, 1.0, x > 0.0);
        }
        case 2u: {
            let s = sigmoid(x);
            return s * (1.0 - s);
        }
        case 3u: {
            let t = tanh_f32(x);
            return 1.0 - t * t;
        }
        // gelu: Φ(x) + x·φ(x)
        case 4u: {
            let cdf = 0.5 * one_plus_erf(x * FRAC_1_SQRT_2);
            let pdf = FRAC_1_SQRT_2PI * exp(-(x * x) * 0.5);
            return cdf + x * pdf;
        }
        // silu: σ(x)·(1 + x·(1 − σ(x))), PyTorch's silu_backward.
        case 5u: {
            let s = sigmoid(x);
            return select(s * (1.0 + x * (1.0 - s)), x * 0.0, -x > 88.72);
        }
        case 6u: {
            return select(slope * exp(x), 1.0, x > 0.0);
        }
        case 7u: {
            return select(SELU_SCALE * SELU_ALPHA * exp(x), SELU_SCALE, x > 0.0);
        }
        case 8u: {
            return inside(x, 0.0, 6.0);
        }
        case 9u: {
            return inside(x, p.x, p.y);
        }
        // 1/6 inside (−3, 3), else 0, a NaN included (PyTorch's hardsigmoid_backward).
        case 10u: {
            return select(0.0, 1.0 / 6.0, x > -3.0 && x < 3.0);
        }
        // 0 up to −3, x/3 + 1/2 inside (−3, 3), else 1 (a NaN too: PyTorch's
        // hardswish_backward passes its gradient).
        case 11u: {
            if (x <= -3.0) {
                return 0.0;
            }
            return select(1.0, x / 3.0 + 0.5, x < 3.0);
        }
        // softplus: z/(z + 1) with z = e^(βx), 1 past the threshold.
        case 12u: {
            let bx = x * p.x;
            let z = exp(select(bx, 88.0, bx > 88.0));
            return select(z / (z + 1.0), 1.0, bx > min(p.y, 88.0));
        }
        // mish: tanh(sp) + x·σ(x)·(1 − tanh(sp)²), PyTorch's mish_backward.
        case 13u: {
            let t = tanh_softplus(x);
            return t + x * sigmoid(x) * (1.0 - t * t);
        }
        default: {
            return bitcast<f32>(0x7fc00000u);
        }
    }
}

// f'(x) from the output y = f(x), for relu, sigmoid and tanh (the kinds whose derivative
// is a function of it): the arithmetic act_derivative does on the value it recomputes.
// The host never asks it of another kind; those get NaN, so a mistake shows.
fn act_derivative_from_output(kind: u32, y: f32) -> f32 {
    switch kind {
        case 0u: {
            return select(0.0, 1.0, y > 0.0);
        }
        case 2u: {
            return y * (1.0 - y);
        }
        case 3u: {
            return 1.0 - y * y;
        }
        default: {
            return bitcast<f32>(0x7fc00000u);
        }
    }
}
