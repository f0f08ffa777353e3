//! NAdam's momentum schedule, computed on the host in f64 as PyTorch computes it in Python
//! floats; the kernels receive only the two step coefficients.

/// μ_t = β1·(1 − ½·0.96^(t·ψ)), the momentum of step `t`.
pub(crate) fn momentum(beta1: f64, psi: f64, t: f64) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(t * psi))
}

/// Π_{k=1..t} μ_k, which PyTorch keeps as state and multiplies by μ_t once per step.
///
/// Summed in closed form, so that step t costs the same at t = 10⁶ as at t = 1 and a run
/// resumed from a checkpoint needs nothing but the step: with r = 0.96^ψ,
/// ln Π = t·ln β1 + Σ_k ln(1 − ½r^k), and ln(1 − x) = −Σ_j x^j / j turns the sum over k
/// into geometric series, Σ_k ln(1 − ½r^k) = −Σ_j (½^j / j)·r^j·(1 − r^(jt)) / (1 − r^j).
/// The series in j converges as 2^−j; 64 terms reach f64 rounding for every ψ ≥ 0.
pub(crate) fn momentum_product(beta1: f64, psi: f64, t: u32) -> f64 {
    if t == 0 {
        return 1.0;
    }
    let t = f64::from(t);
    let ln_r = psi * 0.96f64.ln();
    let mut sum = 0.0;
    for j in (1..=64).rev() {
        let j = f64::from(j);
        // (1 − r^(jt)) / (1 − r^j) by expm1, exact where 1 − r^j cancels; its limit t
        // when ψ = 0 (every μ_k is β1/2).
        let ratio = if ln_r == 0.0 {
            t
        } else {
            (j * t * ln_r).exp_m1() / (j * ln_r).exp_m1()
        };
        sum += 0.5f64.powf(j) / j * (j * ln_r).exp() * ratio;
    }
    (t * beta1.ln() - sum).exp()
}

/// The coefficients of NAdam's two terms at step `t` (from 1), without the learning rate:
/// the gradient's (1 − μ_t) / (1 − Π_t) and the first moment's μ_(t+1) / (1 − Π_t·μ_(t+1)),
/// Π_t the product of μ_1..μ_t. The update is p − lr·(c_g·g + c_m·m) / (√(v / (1 − β2^t)) + ε).
pub(crate) fn coefficients(beta1: f64, psi: f64, t: u32) -> (f64, f64) {
    let mu = momentum(beta1, psi, f64::from(t));
    let mu_next = momentum(beta1, psi, f64::from(t) + 1.0);
    let product = momentum_product(beta1, psi, t);
    (
        (1.0 - mu) / (1.0 - product),
        mu_next / (1.0 - product * mu_next),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product as PyTorch accumulates it, one factor per step (in f64).
    fn stepwise(beta1: f64, psi: f64, t: u32) -> f64 {
        (1..=t).fold(1.0, |p, k| p * momentum(beta1, psi, f64::from(k)))
    }

    #[test]
    fn closed_form_product_equals_the_stepwise_product() {
        for (beta1, psi) in [
            (0.9, 4e-3),
            (0.9, 0.0),
            (0.5, 0.1),
            (0.99, 1.0),
            (0.9, 1e-6),
        ] {
            for t in [1, 2, 3, 10, 100, 1000, 20_000] {
                let (want, got) = (stepwise(beta1, psi, t), momentum_product(beta1, psi, t));
                // Relative, down to where the product leaves f64's normal range.
                let err = (got - want).abs() / want.max(1e-290);
                assert!(err < 1e-12, "β1 {beta1} ψ {psi} t {t}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn first_step_coefficients_hand_derived() {
        // t = 1, β1 = 0.9, ψ = 0.004: μ1 = 0.9·(1 − ½·0.96^0.004), μ2 likewise with 0.008;
        // Π1 = μ1.
        let mu1 = 0.9 * (1.0 - 0.5 * 0.96f64.powf(0.004));
        let mu2 = 0.9 * (1.0 - 0.5 * 0.96f64.powf(0.008));
        let (g, m) = coefficients(0.9, 0.004, 1);
        assert!((g - (1.0 - mu1) / (1.0 - mu1)).abs() < 1e-15);
        assert!((m - mu2 / (1.0 - mu1 * mu2)).abs() < 1e-15);
        assert!((g - 1.0).abs() < 1e-15);
    }
}
