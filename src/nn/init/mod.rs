//! Parameter initialisers: PyTorch's `torch.nn.init` family and the parser behind the
//! command line's choice of initialiser.
//!
//! Shape-free variants ([`Init::Uniform`], [`Init::Normal`], [`Init::Constant`],
//! [`Init::RunningStats`], [`Init::UniformRange`], [`Init::Gaussian`]) fill any flat slice.
//! The fan-based variants ([`Init::Kaiming`], [`Init::Xavier`]) and [`Init::Orthogonal`]
//! depend on the tensor's shape, so they go through [`Init::fill_shaped`] (or are turned
//! into a shape-free variant by [`Init::resolve`] once the shape is known).

use std::fmt;

use crate::error::{Error, Result};
use crate::rng::Philox;

mod orthogonal;
mod parse;

use orthogonal::orthogonal;
pub use parse::{parse_init, InitScheme};

/// Whether a fan-based scheme draws from a uniform or a normal distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// U(−bound, bound) with bound = sqrt(3)·std, which has the scheme's variance.
    Uniform,
    /// N(0, std²).
    Normal,
}

/// Which fan a Kaiming scheme scales by: `fan_in` preserves the variance of activations in
/// the forward pass, `fan_out` that of gradients in the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Scale by the number of inputs feeding each output.
    FanIn,
    /// Scale by the number of outputs each input feeds.
    FanOut,
}

/// The nonlinearity that follows a layer, which sets the gain of its initialiser
/// (`torch.nn.init.calculate_gain`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity, and PyTorch's conv/linear names, gain 1.
    Linear,
    /// Logistic sigmoid, gain 1.
    Sigmoid,
    /// tanh, gain 5/3.
    Tanh,
    /// ReLU, gain sqrt(2).
    Relu,
    /// Leaky ReLU, gain sqrt(2 / (1 + slope²)).
    LeakyRelu {
        /// Slope for negative inputs (PyTorch's `a` / `negative_slope`).
        negative_slope: f32,
    },
    /// SELU, gain 3/4 (PyTorch's choice for self-normalising networks).
    Selu,
}

impl Nonlinearity {
    /// The recommended gain, as `torch.nn.init.calculate_gain` gives it.
    pub fn gain(&self) -> f64 {
        match *self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => std::f64::consts::SQRT_2,
            Nonlinearity::LeakyRelu { negative_slope } => {
                let s = f64::from(negative_slope);
                (2.0 / (1.0 + s * s)).sqrt()
            }
            Nonlinearity::Selu => 0.75,
        }
    }
}

/// `(fan_in, fan_out)` of a weight of shape `[out, in, k...]`, as
/// `torch.nn.init._calculate_fan_in_and_fan_out` computes them: `in · receptive` and
/// `out · receptive`, where `receptive` is the product of the kernel dimensions.
///
/// Fewer than two dimensions is an error, as in PyTorch: a bias has no fan to speak of.
pub fn fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [out, inp, kernel @ ..] => {
            let receptive: usize = kernel.iter().product();
            Ok((inp * receptive, out * receptive))
        }
        _ => Err(Error::Config(format!(
            "fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions \
             (shape {shape:?})"
        ))),
    }
}

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
    /// U(low, high), PyTorch's `uniform_(a, b)`; needs low ≤ high.
    UniformRange {
        /// Lower end (`a`).
        low: f32,
        /// Upper end (`b`).
        high: f32,
    },
    /// N(mean, std²), PyTorch's `normal_(mean, std)`; needs std ≥ 0.
    Gaussian {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// `kaiming_uniform_` / `kaiming_normal_`: std = gain / sqrt(fan). Needs the shape.
    Kaiming {
        /// Uniform or normal draws.
        distribution: Distribution,
        /// Which fan to scale by.
        mode: FanMode,
        /// The nonlinearity whose gain applies.
        nonlinearity: Nonlinearity,
    },
    /// `xavier_uniform_` / `xavier_normal_`: std = gain · sqrt(2 / (fan_in + fan_out)).
    /// Needs the shape.
    Xavier {
        /// Uniform or normal draws.
        distribution: Distribution,
        /// Scale factor.
        gain: f32,
    },
    /// `orthogonal_`: the tensor viewed as `[shape[0], numel / shape[0]]` has orthonormal
    /// rows or columns (whichever are fewer), times `gain`. Needs the shape.
    Orthogonal {
        /// Scale factor.
        gain: f32,
    },
}

impl Init {
    /// Whether this initialiser depends on the tensor's shape and not just its length, so
    /// that only [`Init::fill_shaped`] can apply it.
    pub fn needs_shape(&self) -> bool {
        matches!(
            self,
            Init::Kaiming { .. } | Init::Xavier { .. } | Init::Orthogonal { .. }
        )
    }

    /// This initialiser with the shape-dependent scale worked out for `shape`: Kaiming and
    /// Xavier become the [`Init::Uniform`] or [`Init::Normal`] they amount to (and draw the
    /// same numbers); Orthogonal is only checked, since it stays shape-dependent; the rest
    /// are returned as they are. Lets a model builder report a bad shape when it creates
    /// the parameter rather than when the parameter is first filled.
    pub fn resolve(&self, shape: &[usize]) -> Result<Init> {
        match *self {
            Init::Kaiming {
                distribution,
                mode,
                nonlinearity,
            } => {
                let (fan_in, fan_out) = fan_in_and_fan_out(shape)?;
                let fan = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                };
                Ok(scaled(
                    distribution,
                    nonlinearity.gain() / (fan.max(1) as f64).sqrt(),
                ))
            }
            Init::Xavier { distribution, gain } => {
                finite_gain(gain)?;
                let (fan_in, fan_out) = fan_in_and_fan_out(shape)?;
                let std = f64::from(gain) * (2.0 / ((fan_in + fan_out).max(1) as f64)).sqrt();
                Ok(scaled(distribution, std))
            }
            Init::Orthogonal { gain } => {
                finite_gain(gain)?;
                if shape.len() < 2 {
                    return Err(Error::Config(format!(
                        "orthogonal init needs a tensor with at least 2 dimensions (shape \
                         {shape:?})"
                    )));
                }
                Ok(*self)
            }
            _ => Ok(*self),
        }
    }

    /// Fills `out`, a tensor of shape `shape`, from the stream keyed by (`seed`, `stream`).
    /// Every variant works here; the fan-based ones and Orthogonal need `shape` to have at
    /// least two dimensions. An empty tensor is left as it is, as PyTorch does.
    pub fn fill_shaped(
        &self,
        out: &mut [f32],
        shape: &[usize],
        seed: u64,
        stream: u32,
    ) -> Result<()> {
        let numel: usize = shape.iter().product();
        if numel != out.len() {
            return Err(Error::shape(
                "parameter init",
                format!(
                    "shape {shape:?} has {numel} elements but the buffer has {}",
                    out.len()
                ),
            ));
        }
        let concrete = self.resolve(shape)?;
        let mut rng = Philox::new(seed, stream);
        match concrete {
            Init::Uniform { bound } => out.iter_mut().for_each(|v| *v = rng.uniform(-bound, bound)),
            Init::Normal { std } => out.iter_mut().for_each(|v| *v = std * rng.normal()),
            Init::Constant(c) => out.iter_mut().for_each(|v| *v = c),
            Init::RunningStats => {
                let half = out.len() / 2;
                out[..half].iter_mut().for_each(|v| *v = 0.0);
                out[half..].iter_mut().for_each(|v| *v = 1.0);
            }
            Init::UniformRange { low, high } => {
                // PyTorch's uniform_ rejects from > to; NaN ends fail the same test.
                if !(low.is_finite() && high.is_finite() && low <= high) {
                    return Err(Error::Config(format!(
                        "uniform init needs finite a <= b, got a = {low}, b = {high}"
                    )));
                }
                out.iter_mut().for_each(|v| *v = rng.uniform(low, high));
            }
            Init::Gaussian { mean, std } => {
                if !(std.is_finite() && mean.is_finite() && std >= 0.0) {
                    return Err(Error::Config(format!(
                        "normal init needs a finite mean and a finite std >= 0, got mean = \
                         {mean}, std = {std}"
                    )));
                }
                out.iter_mut().for_each(|v| *v = mean + std * rng.normal());
            }
            Init::Orthogonal { gain } => orthogonal(out, shape[0], gain, &mut rng),
            // resolve() has already turned these into Uniform or Normal.
            Init::Kaiming { .. } | Init::Xavier { .. } => {}
        }
        Ok(())
    }

    /// [`Init::fill_shaped`] with `out` read as a 1-D tensor, so the shape-dependent
    /// variants return the error that PyTorch raises for a 1-D tensor.
    pub fn try_fill(&self, out: &mut [f32], seed: u64, stream: u32) -> Result<()> {
        self.fill_shaped(out, &[out.len()], seed, stream)
    }

    /// Fills `out` from the stream keyed by (`seed`, `stream`), for the shape-free variants
    /// (see [`Init::needs_shape`]). Where [`Init::try_fill`] would fail (a shape-dependent
    /// variant, or an invalid range), `out` is set to NaN so that the mistake shows up as a
    /// NaN loss at the first step instead of training quietly from a wrong start; use
    /// [`Init::fill_shaped`] to get the error itself.
    pub fn fill(&self, out: &mut [f32], seed: u64, stream: u32) {
        if self.try_fill(out, seed, stream).is_err() {
            out.iter_mut().for_each(|v| *v = f32::NAN);
        }
    }
}

/// The uniform or normal initialiser with standard deviation `std`.
fn scaled(distribution: Distribution, std: f64) -> Init {
    match distribution {
        // U(−b, b) has variance b²/3.
        Distribution::Uniform => Init::Uniform {
            bound: (3.0f64.sqrt() * std) as f32,
        },
        Distribution::Normal => Init::Normal { std: std as f32 },
    }
}

fn finite_gain(gain: f32) -> Result<()> {
    if gain.is_finite() {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "init gain must be finite, got {gain}"
        )))
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
        })
    }
}

impl fmt::Display for FanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
        })
    }
}

impl fmt::Display for Nonlinearity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nonlinearity::Linear => f.write_str("linear"),
            Nonlinearity::Sigmoid => f.write_str("sigmoid"),
            Nonlinearity::Tanh => f.write_str("tanh"),
            Nonlinearity::Relu => f.write_str("relu"),
            Nonlinearity::LeakyRelu { negative_slope } => write!(f, "leaky_relu({negative_slope})"),
            Nonlinearity::Selu => f.write_str("selu"),
        }
    }
}

/// The text [`parse_init`] reads back to an equal value (the running-statistics buffer
/// initialiser, which is no choice for a user, prints as `running_stats` but does not
/// parse).
impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Init::Uniform { bound } => write!(f, "uniform:a={},b={bound}", -bound),
            Init::Normal { std } => write!(f, "normal:std={std}"),
            Init::Constant(0.0) => f.write_str("zeros"),
            Init::Constant(1.0) => f.write_str("ones"),
            Init::Constant(v) => write!(f, "constant:value={v}"),
            Init::RunningStats => f.write_str("running_stats"),
            Init::UniformRange { low, high } => write!(f, "uniform:a={low},b={high}"),
            Init::Gaussian { mean, std } => write!(f, "normal:mean={mean},std={std}"),
            Init::Kaiming {
                distribution,
                mode,
                nonlinearity,
            } => write!(
                f,
                "kaiming_{distribution}:mode={mode},nonlinearity={nonlinearity}"
            ),
            Init::Xavier { distribution, gain } => write!(f, "xavier_{distribution}:gain={gain}"),
            Init::Orthogonal { gain } => write!(f, "orthogonal:gain={gain}"),
        }
    }
}

#[cfg(test)]
mod tests;
