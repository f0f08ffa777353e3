//! Activation functions and their derivatives (mirrored by `shaders/activation.wgsl`).

use super::{for_each_piece, Real};
use crate::op::{Activation, SELU_ALPHA, SELU_SCALE};

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
        // x / (1 + e^−x), PyTorch's form: e^−x overflowing for x < −88 gives −0, not NaN.
        Activation::Silu => x / (T::one() + (-x).exp()),
        Activation::Elu(alpha) => {
            if x > T::zero() {
                x
            } else {
                T::of(f64::from(alpha)) * x.exp_m1()
            }
        }
        Activation::Selu => {
            if x > T::zero() {
                T::of(SELU_SCALE) * x
            } else {
                T::of(SELU_SCALE * SELU_ALPHA) * x.exp_m1()
            }
        }
        Activation::Relu6 => clamp(x, T::zero(), T::of(6.0)),
        Activation::Hardtanh(lo, hi) => clamp(x, T::of(f64::from(lo)), T::of(f64::from(hi))),
        Activation::Hardsigmoid => clamp(x + T::of(3.0), T::zero(), T::of(6.0)) / T::of(6.0),
        // x·c/6 in that order, as PyTorch's hardswish.
        Activation::Hardswish => x * clamp(x + T::of(3.0), T::zero(), T::of(6.0)) / T::of(6.0),
        Activation::Softplus(beta, threshold) => {
            let beta = T::of(f64::from(beta));
            if x * beta > softplus_switch(threshold) {
                x
            } else {
                (x * beta).exp().ln_1p() / beta
            }
        }
        // x·tanh(log(1 + eˣ)); eˣ overflowing (x > 88) gives tanh(∞) = 1, as in PyTorch.
        Activation::Mish => x * x.exp().ln_1p().tanh(),
    }
}

/// Where softplus becomes x: β·x past `threshold`, or past 88 when the threshold is
/// higher, where e^(β·x) would overflow f32 and PyTorch's f32 gives ∞ (and a NaN
/// gradient). log(1 + e^(βx))/β is x to f32's and f64's precision from β·x = 40 on, so
/// the cap changes only results PyTorch gets wrong.
fn softplus_switch<T: Real>(threshold: f32) -> T {
    T::of(f64::from(threshold.min(SOFTPLUS_OVERFLOW)))
}

/// The largest β·x whose e^(β·x) is comfortably finite in f32 (e^88.7 overflows).
const SOFTPLUS_OVERFLOW: f32 = 88.0;

/// min(max(x, lo), hi), keeping a NaN, as `torch.clamp` does.
fn clamp<T: Real>(x: T, lo: T, hi: T) -> T {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// 1 strictly inside (lo, hi), else 0: PyTorch's hardtanh_backward, whose comparisons a
/// NaN fails, so its gradient passes through (on CUDA and in the CPU's scalar loop;
/// PyTorch's vectorised CPU loop, which runs for all but the shortest tensors, gives 0).
fn inside<T: Real>(x: T, lo: T, hi: T) -> T {
    if x <= lo || x >= hi {
        T::zero()
    } else {
        T::one()
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
        // σ(x)·(1 + x·(1 − σ(x))), PyTorch's silu_backward (0, or NaN at −∞, once e^−x
        // overflows).
        Activation::Silu => {
            let s = apply(Activation::Sigmoid, x);
            s * (T::one() + x * (T::one() - s))
        }
        Activation::Elu(alpha) => {
            if x > T::zero() {
                T::one()
            } else {
                T::of(f64::from(alpha)) * x.exp()
            }
        }
        Activation::Selu => {
            if x > T::zero() {
                T::of(SELU_SCALE)
            } else {
                T::of(SELU_SCALE * SELU_ALPHA) * x.exp()
            }
        }
        Activation::Relu6 => inside(x, T::zero(), T::of(6.0)),
        Activation::Hardtanh(lo, hi) => inside(x, T::of(f64::from(lo)), T::of(f64::from(hi))),
        // 1/6 inside (−3, 3), else 0, a NaN included (PyTorch's hardsigmoid_backward, whose
        // test is the other way round from hardtanh's).
        Activation::Hardsigmoid => {
            if x > T::of(-3.0) && x < T::of(3.0) {
                T::one() / T::of(6.0)
            } else {
                T::zero()
            }
        }
        // PyTorch's hardswish_backward: 0 up to −3, x/3 + 1/2 inside (−3, 3), else 1 (a NaN
        // too, as on CUDA; PyTorch's vectorised CPU loop gives NaN).
        Activation::Hardswish => {
            if x <= T::of(-3.0) {
                T::zero()
            } else if x < T::of(3.0) {
                x / T::of(3.0) + T::of(0.5)
            } else {
                T::one()
            }
        }
        // z/(z + 1) with z = e^(β·x): PyTorch's softplus_backward.
        Activation::Softplus(beta, threshold) => {
            let bx = x * T::of(f64::from(beta));
            if bx > softplus_switch(threshold) {
                T::one()
            } else {
                let z = bx.exp();
                z / (z + T::one())
            }
        }
        // tanh(sp) + x·σ(x)·(1 − tanh(sp)²) with sp = softplus(x): PyTorch's mish_backward.
        Activation::Mish => {
            let sigmoid = T::one() / (T::one() + (-x).exp());
            let t = x.exp().ln_1p().tanh();
            t + x * sigmoid * (T::one() - t * t)
        }
    }
}

/// `f'(x)` from the output `y = f(x)`, for the kinds whose derivative is a function of it
/// ([`Activation::grad_from_output`]): relu (y > 0), sigmoid y·(1 − y), tanh 1 − y². The
/// same arithmetic as [`derivative`] on the value it recomputes, so from an f32 output the
/// gradient has the same bits. `None` for the kinds that need their input.
pub fn derivative_from_output<T: Real>(a: Activation, y: T) -> Option<T> {
    match a {
        Activation::Relu => Some(if y > T::zero() { T::one() } else { T::zero() }),
        Activation::Sigmoid => Some(y * (T::one() - y)),
        Activation::Tanh => Some(T::one() - y * y),
        Activation::LeakyRelu(_)
        | Activation::Gelu
        | Activation::Silu
        | Activation::Elu(_)
        | Activation::Selu
        | Activation::Relu6
        | Activation::Hardtanh(..)
        | Activation::Hardsigmoid
        | Activation::Hardswish
        | Activation::Softplus(..)
        | Activation::Mish => None,
    }
}

/// Runs `body` with `a` as a constant of each kind, so that the loop inside is compiled
/// once per kind with [`apply`]'s match resolved (and vectorised), instead of branching on
/// the kind per element.
macro_rules! per_kind {
    ($a:expr, |$k:ident| $body:expr) => {
        match $a {
            Activation::Relu => {
                let $k = Activation::Relu;
                $body
            }
            Activation::Sigmoid => {
                let $k = Activation::Sigmoid;
                $body
            }
            Activation::Tanh => {
                let $k = Activation::Tanh;
                $body
            }
            Activation::Gelu => {
                let $k = Activation::Gelu;
                $body
            }
            Activation::Silu => {
                let $k = Activation::Silu;
                $body
            }
            Activation::Selu => {
                let $k = Activation::Selu;
                $body
            }
            Activation::Relu6 => {
                let $k = Activation::Relu6;
                $body
            }
            Activation::Hardsigmoid => {
                let $k = Activation::Hardsigmoid;
                $body
            }
            Activation::Hardswish => {
                let $k = Activation::Hardswish;
                $body
            }
            Activation::Mish => {
                let $k = Activation::Mish;
                $body
            }
            $k @ (Activation::LeakyRelu(_)
            | Activation::Elu(_)
            | Activation::Hardtanh(..)
            | Activation::Softplus(..)) => $body,
        }
    };
}

/// `out = f(x)`.
pub fn forward<T: Real>(a: Activation, x: &[T], out: &mut [T]) {
    // The kind is matched per piece, in the loop's function: a kind captured by the
    // closure would be a run-time value there, and the loop would not vectorise.
    for_each_piece(out, |at, out| {
        per_kind!(a, |k| for (o, &v) in out.iter_mut().zip(&x[at..]) {
            *o = apply(k, v);
        })
    })
}

/// `xs = f(xs)` in place: the fused activation epilogue of `MatMulBiasAct` on the CPU (the
/// arithmetic of [`forward`]).
pub fn forward_in_place<T: Real>(a: Activation, xs: &mut [T]) {
    per_kind!(a, |k| for v in xs.iter_mut() {
        *v = apply(k, *v);
    })
}

/// `out = dy · f'(x)`.
pub fn backward<T: Real>(a: Activation, x: &[T], dy: &[T], out: &mut [T]) {
    for_each_piece(out, |at, out| {
        per_kind!(
            a,
            |k| for ((o, &v), &g) in out.iter_mut().zip(&x[at..]).zip(&dy[at..]) {
                *o = g * derivative(k, v);
            }
        )
    })
}

/// `out = dy · f'(x)` from the output `y` (see [`derivative_from_output`]); `false` (and
/// `out` untouched) for a kind whose derivative needs the input.
pub fn backward_from_output<T: Real>(a: Activation, y: &[T], dy: &[T], out: &mut [T]) -> bool {
    if !a.grad_from_output() {
        return false;
    }
    for_each_piece(out, |at, out| {
        per_kind!(
            a,
            |k| for ((o, &v), &g) in out.iter_mut().zip(&y[at..]).zip(&dy[at..]) {
                *o = g * derivative_from_output(k, v).unwrap_or_else(T::nan);
            }
        )
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_in_pieces_give_every_element_its_own_value() {
        // One piece, several in sequence, and enough to run in parallel, split unevenly.
        let piece = super::super::PIECE;
        for n in [
            piece + 1,
            2 * piece + 37,
            4 * piece - 1,
            4 * piece,
            4 * piece + 37,
        ] {
            let x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.013).sin() * 3.0).collect();
            let dy: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.029).cos()).collect();
            for a in [
                Activation::Relu,
                Activation::Sigmoid,
                Activation::Tanh,
                Activation::Gelu,
                Activation::LeakyRelu(0.1),
            ] {
                let mut y = vec![f32::NAN; n];
                forward(a, &x, &mut y);
                let mut dx = vec![f32::NAN; n];
                backward(a, &x, &dy, &mut dx);
                let mut dx_from_y = vec![f32::NAN; n];
                let from_output = backward_from_output(a, &y, &dy, &mut dx_from_y);
                for i in 0..n {
                    assert_eq!(
                        y[i].to_bits(),
                        apply(a, x[i]).to_bits(),
                        "{a:?} n {n} y[{i}]"
                    );
                    let want = dy[i] * derivative(a, x[i]);
                    assert_eq!(dx[i].to_bits(), want.to_bits(), "{a:?} n {n} dx[{i}]");
                    if from_output {
                        let got = dx_from_y[i].to_bits();
                        assert_eq!(got, want.to_bits(), "{a:?} n {n} from y [{i}]");
                    }
                }
            }
        }
    }

    #[test]
    fn gradients_from_the_output_have_the_bits_of_those_from_the_input() {
        for a in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
            for i in -400..400 {
                let x = i as f32 * 0.037 + 0.001;
                let from_x = derivative(a, x);
                let from_y = derivative_from_output(a, apply(a, x));
                assert_eq!(
                    from_y.map(f32::to_bits),
                    Some(from_x.to_bits()),
                    "{a:?} {x}"
                );
            }
        }
        assert!(derivative_from_output(Activation::Gelu, 1.0f32).is_none());
        let mut out = [7.0f32];
        assert!(!backward_from_output(
            Activation::LeakyRelu(0.1),
            &[1.0],
            &[1.0],
            &mut out
        ));
        assert_eq!(out, [7.0]);
    }

    #[test]
    fn relu_propagates_nan_like_torch() {
        assert!(apply(Activation::Relu, f32::NAN).is_nan());
        assert_eq!(apply(Activation::Relu, -1.0f32), 0.0);
        assert_eq!(apply(Activation::Relu, 2.5f32), 2.5);
        // The gradient at a NaN input is 0, as torch's threshold_backward gives.
        assert_eq!(derivative(Activation::Relu, f32::NAN), 0.0);
    }

    /// relu6, hardtanh, hardsigmoid, hardswish, softplus and mish and their gradients
    /// against PyTorch 2.15 in float64 (`nn.ReLU6()`, `nn.Hardtanh(-0.5, 2.0)`, ...,
    /// autograd), printed by `repr`. The points include every kink (0 and 6, −0.5 and 2,
    /// ±3) and softplus's threshold (β·x = 3 at x = 1.5 lies between 0.5 and 3).
    #[test]
    #[allow(clippy::approx_constant)] // softplus(0) is PyTorch's printed log 2
    fn hard_and_soft_activations_match_torch() {
        let xs = [-20.0, -3.0, -2.0, -1e-4, 0.0, 1e-4, 0.5, 3.0, 6.0, 7.5];
        #[rustfmt::skip]
        let table: [(Activation, [f64; 10], [f64; 10]); 7] = [
            (
                Activation::Relu6,
                [0.0, 0.0, 0.0, 0.0, 0.0, 0.0001, 0.5, 3.0, 6.0, 6.0],
                [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
            ),
            (
                Activation::Hardtanh(-0.5, 2.0),
                [-0.5, -0.5, -0.5, -0.0001, 0.0, 0.0001, 0.5, 2.0, 2.0, 2.0],
                [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            ),
            (
                Activation::Hardsigmoid,
                [0.0, 0.0, 0.16666666666666666, 0.4999833333333333, 0.5, 0.5000166666666667,
                 0.5833333333333334, 1.0, 1.0, 1.0],
                [0.0, 0.0, 0.1666666716337204, 0.1666666716337204, 0.1666666716337204,
                 0.1666666716337204, 0.1666666716337204, 0.0, 0.0, 0.0],
            ),
            (
                Activation::Hardswish,
                [-0.0, -0.0, -0.3333333333333333, -4.999833333333333e-05, 0.0,
                 5.000166666666667e-05, 0.2916666666666667, 3.0, 6.0, 7.5],
                [0.0, 0.0, -0.16666666666666663, 0.49996666666666667, 0.5, 0.5000333333333333,
                 0.6666666666666666, 1.0, 1.0, 1.0],
            ),
            (
                Activation::Softplus(2.0, 3.0),
                [2.1241771276457944e-18, 0.0012378425688652247, 0.009074963958904869,
                 0.34652359277997263, 0.34657359027997264, 0.3466235927799727,
                 0.6566308437591114, 3.0, 6.0, 7.5],
                [4.248354255291589e-18, 0.0024726231566347748, 0.017986209962091555,
                 0.49995000000016665, 0.5, 0.5000499999998334, 0.7310585786300049, 1.0, 1.0,
                 1.0],
            ),
            (
                Activation::Softplus(1.0, 20.0),
                [2.061153620314381e-09, 0.04858735157374206, 0.1269280110429725,
                 0.6930971818099453, 0.6931471805599453, 0.6931971818099454,
                 0.9740769841801067, 3.048587351573742, 6.00247568513773, 7.500552931475361],
                [2.0611536181902033e-09, 0.04742587317756679, 0.11920292202211755,
                 0.4999750000000209, 0.5, 0.5000249999999792, 0.6224593312018546,
                 0.9525741268224333, 0.9975273768433652, 0.9994472213630764],
            ),
            (
                Activation::Mish,
                [-4.122307240628762e-08, -0.1456474612756246, -0.2525014826957089,
                 -5.999679998400459e-05, 0.0, 6.000319998399543e-05, 0.3752452113048951,
                 2.9865350049679575, 5.999926634065252, 7.499995416538079],
                [-3.916191874348969e-08, -0.09339311453232084, -0.1083550924203939,
                 0.5999359995201835, 0.6, 0.6000639995198167, 0.8864243753577272,
                 1.0211069109294435, 1.00013414050621, 1.0000085507255063],
            ),
        ];
        let close = |got: f64, want: f64, tol: f64| (got - want).abs() <= tol * want.abs();
        for (a, values, grads) in table {
            for ((&x, &want), &dwant) in xs.iter().zip(&values).zip(&grads) {
                // PyTorch's hardsigmoid gradient is its f32 constant 1/6, even in float64
                // (2.98e-8 from 1/6, relatively).
                let dtol = if a == Activation::Hardsigmoid {
                    5e-8
                } else {
                    1e-14
                };
                assert!(close(apply(a, x), want, 1e-14), "{a:?}({x})");
                assert!(close(derivative(a, x), dwant, dtol), "{a:?}'({x})");
                let x32 = x as f32;
                let (y32, d32) = (apply(a, x32), derivative(a, x32));
                assert!(close(f64::from(y32), want, 1e-6), "f32 {a:?}({x})");
                assert!(close(f64::from(d32), dwant, 1e-6), "f32 {a:?}'({x})");
            }
            // A NaN input: every output is NaN; the gradient passes through hardtanh's,
            // hardswish's and relu6's tests, is 0 from hardsigmoid's, NaN from the others
            // (PyTorch 2.15's CUDA kernels and its scalar CPU loop; its vectorised CPU loop,
            // for longer tensors, gives 0 for relu6 and hardtanh and NaN for hardswish;
            // f32).
            assert!(apply(a, f32::NAN).is_nan(), "{a:?}(NaN)");
            let d = derivative(a, f32::NAN);
            match a {
                Activation::Relu6 | Activation::Hardtanh(..) | Activation::Hardswish => {
                    assert_eq!(d, 1.0, "{a:?}'(NaN)")
                }
                Activation::Hardsigmoid => assert_eq!(d, 0.0, "{a:?}'(NaN)"),
                _ => assert!(d.is_nan(), "{a:?}'(NaN)"),
            }
        }
    }

    /// Past β·x = 88 softplus is x with gradient 1 whatever its threshold, where PyTorch's
    /// f32 overflows to ∞ (and a NaN gradient); below, the threshold decides.
    #[test]
    fn softplus_becomes_x_before_its_exponential_overflows() {
        let a = Activation::Softplus(1.0, 100.0);
        for x in [88.5f32, 95.0, 1000.0] {
            assert_eq!((apply(a, x), derivative(a, x)), (x, 1.0), "{x}");
            assert_eq!(apply(a, f64::from(x)), f64::from(x), "{x}");
        }
        // Below 88 the formula runs: log(1 + e^50) is 50 in f32, its slope 1 − e^−50.
        assert_eq!(apply(a, 50.0f32), 50.0);
        assert!((apply(Activation::Softplus(2.0, 100.0), 25.0f64) - 25.0).abs() < 1e-14);
        assert!(apply(Activation::Softplus(1.0, 100.0), 80.0f32).is_finite());
    }

    /// silu, elu(α = 0.7) and selu and their gradients against PyTorch 2.15 in float64
    /// (`F.silu`, `F.elu`, `F.selu` and autograd), printed to 16 digits.
    #[test]
    fn silu_elu_selu_match_torch() {
        let xs = [-20.0, -2.0, -1.0, -1e-4, 0.0, 1e-4, 0.5, 3.0];
        #[rustfmt::skip]
        let table: [(Activation, [f64; 8], [f64; 8]); 3] = [
            (
                Activation::Silu,
                [-4.122307236380407e-08, -0.2384058440442351, -0.2689414213699951,
                 -4.9997500000002084e-05, 0.0, 5.000249999999792e-05, 0.3112296656009273,
                 2.8577223804672998],
                [-3.9161918660646786e-08, -0.09078424878489547, 0.07232948812851325,
                 0.4999500000000833, 0.5, 0.5000499999999166, 0.7399611873026519,
                 1.0881041060151693],
            ),
            (
                Activation::Elu(0.7),
                [-0.6999999985571924, -0.6052653017343711, -0.44248439117999033,
                 -6.999650011666375e-05, 0.0, 0.0001, 0.5, 3.0],
                [1.4428075357069904e-09, 0.09473469826562889, 0.2575156088200096,
                 0.6999300034998833, 0.7, 1.0, 1.0, 1.0],
            ),
            (
                Activation::Selu,
                [-1.758099337223664, -1.5201664685956948, -1.1113307378125625,
                 -0.00017580114388104267, 0.0, 0.00010507009873554805, 0.5253504936777402,
                 3.1521029620664414],
                [3.6237128249944113e-09, 0.2379328722516818, 0.646768603034814,
                 1.7579235397034956, 1.7580993408473766, 1.0507009873554805,
                 1.0507009873554805, 1.0507009873554805],
            ),
        ];
        for (a, values, grads) in table {
            for ((&x, &want), &dwant) in xs.iter().zip(&values).zip(&grads) {
                let close = |got: f64, want: f64, tol: f64| {
                    (got - want).abs() <= tol * want.abs().max(1e-30)
                };
                // The constants of ELU's α are f32 (0.7f32 ≠ 0.7): relative 2e-8 at most.
                let tol = if matches!(a, Activation::Elu(_)) {
                    3e-8
                } else {
                    1e-14
                };
                assert!(close(apply(a, x), want, tol), "{a:?}({x})");
                assert!(close(derivative(a, x), dwant, tol), "{a:?}'({x})");
                let x32 = x as f32;
                assert!(
                    close(f64::from(apply(a, x32)), want, 1e-6),
                    "f32 {a:?}({x})"
                );
                assert!(
                    close(f64::from(derivative(a, x32)), dwant, 1e-6),
                    "f32 {a:?}'({x})"
                );
            }
        }
    }
}
