//! Parameter initialisers.

use crate::rng::Philox;

/// How a parameter tensor is filled before training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−bound, bound): PyTorch's `nn.Linear` default uses bound = 1/sqrt(fan_in) for
    /// the weight (kaiming_uniform with a = sqrt(5)) and for the bias.
    Uniform {
        /// Half-width of the interval.
        bound: f32,
    },
    /// N(0, std²).
    Normal {
        /// Standard deviation.
        std: f32,
    },
    /// Every element equal to this value (zeros, ones, constant).
    Constant(f32),
    /// Batch-norm running statistics [2, C]: means 0, variances 1.
    RunningStats,
}

impl Init {
    /// Fills `out` from the stream keyed by (`seed`, `stream`).
    pub fn fill(&self, out: &mut [f32], seed: u64, stream: u32) {
        let mut rng = Philox::new(seed, stream);
        match *self {
            Init::Uniform { bound } => out.iter_mut().for_each(|v| *v = rng.uniform(-bound, bound)),
            Init::Normal { std } => out.iter_mut().for_each(|v| *v = std * rng.normal()),
            Init::Constant(c) => out.iter_mut().for_each(|v| *v = c),
            Init::RunningStats => {
                let half = out.len() / 2;
                out[..half].iter_mut().for_each(|v| *v = 0.0);
                out[half..].iter_mut().for_each(|v| *v = 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_stays_in_bounds_and_spreads() {
        let mut v = vec![0.0; 10_000];
        Init::Uniform { bound: 0.25 }.fill(&mut v, 3, 0);
        assert!(v.iter().all(|x| x.abs() <= 0.25));
        let var: f32 = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
        // Var of U(-b, b) = b²/3 ≈ 0.0208; the sampling error for 10k draws is under 3%.
        assert!((var - 0.0625 / 3.0).abs() < 0.0208 * 0.05, "var {var}");
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut v = vec![0.0; 20_000];
        Init::Normal { std: 2.0 }.fill(&mut v, 1, 1);
        let mean: f32 = v.iter().sum::<f32>() / v.len() as f32;
        let var: f32 = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert!((var - 4.0).abs() < 0.2, "var {var}");
    }
}
