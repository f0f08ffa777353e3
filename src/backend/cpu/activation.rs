//! Activation functions and their derivatives (mirrored by `shaders/activation.wgsl`).

use super::Real;
use crate::op::Activation;

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// 1/sqrt(2π)
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn erf<T: Real>(x: T) -> T {
    T::of(libm::erf(x.f64()))
}

/// `f(x)` for one element.
pub fn apply<T: Real>(a: Activation, x: T) -> T {
    match a {
        // NaN propagates, as torch.relu does (f32::max would turn it into 0).
        Activation::Relu => {
            if x.is_nan() || x > T::zero() {
                x
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu(s) => {
            if x > T::zero() {
                x
            } else {
                x * T::of(f64::from(s))
            }
        }
        Activation::Sigmoid => T::one() / (T::one() + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => x * T::of(0.5) * (T::one() + erf(x * T::of(FRAC_1_SQRT_2))),
    }
}

/// `f'(x)` for one element (the subgradient 0 at the kinks, as PyTorch).
pub fn derivative<T: Real>(a: Activation, x: T) -> T {
    match a {
        Activation::Relu => {
            if x > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu(s) => {
            if x > T::zero() {
                T::one()
            } else {
                T::of(f64::from(s))
            }
        }
        Activation::Sigmoid => {
            let s = apply(a, x);
            s * (T::one() - s)
        }
        Activation::Tanh => {
            let t = x.tanh();
            T::one() - t * t
        }
        Activation::Gelu => {
            let cdf = T::of(0.5) * (T::one() + erf(x * T::of(FRAC_1_SQRT_2)));
            let pdf = T::of(FRAC_1_SQRT_2PI) * (-(x * x) * T::of(0.5)).exp();
            cdf + x * pdf
        }
    }
}

/// `out = f(x)`.
pub fn forward<T: Real>(a: Activation, x: &[T], out: &mut [T]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = apply(a, v);
    }
}

/// `out = dy · f'(x)`.
pub fn backward<T: Real>(a: Activation, x: &[T], dy: &[T], out: &mut [T]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(dy) {
        *o = g * derivative(a, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_propagates_nan_like_torch() {
        assert!(apply(Activation::Relu, f32::NAN).is_nan());
        assert_eq!(apply(Activation::Relu, -1.0f32), 0.0);
        assert_eq!(apply(Activation::Relu, 2.5f32), 2.5);
        // The gradient at a NaN input is 0, as torch's threshold_backward gives.
        assert_eq!(derivative(Activation::Relu, f32::NAN), 0.0);
    }
}
