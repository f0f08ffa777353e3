//! Parameter initialisers: PyTorch's `torch.nn.init` family and the parser behind the
//! command line's choice of initialiser.
//!
//! Shape-free variants ([`Init::Uniform`], [`Init::Normal`], [`Init::Constant`],
//! [`Init::RunningStats`], [`Init::UniformRange`], [`Init::Gaussian`]) fill any flat slice.
//! The fan-based variants ([`Init::Kaiming`], [`Init::Xavier`]) and [`Init::Orthogonal`]
//! depend on the tensor's shape, so they go through [`Init::fill_shaped`] (or are turned
//! into a shape-free variant by [`Init::resolve`] once the shape is known).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::rng::Philox;

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
    /// `orthogonal_`: the tensor viewed as [shape[0], numel / shape[0]] has orthonormal
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

/// PyTorch's `orthogonal_`: a standard normal [rows, cols] matrix (cols = len / rows),
/// factored in its tall orientation so that Q has orthonormal columns, Q's columns signed
/// by R's diagonal, transposed back when rows < cols, times `gain`.
fn orthogonal(out: &mut [f32], rows: usize, gain: f32, rng: &mut Philox) {
    if out.is_empty() {
        return;
    }
    let cols = out.len() / rows;
    let flat: Vec<f64> = (0..rows * cols).map(|_| f64::from(rng.normal())).collect();
    let wide = rows < cols;
    let (m, n) = if wide { (cols, rows) } else { (rows, cols) };
    let mut a = if wide {
        transpose(&flat, rows, cols)
    } else {
        flat
    };
    let q = thin_q(&mut a, m, n);
    let q = if wide { transpose(&q, m, n) } else { q };
    let gain = f64::from(gain);
    out.iter_mut()
        .zip(&q)
        .for_each(|(o, &x)| *o = (gain * x) as f32);
}

/// The transpose of the row-major `rows × cols` matrix `a`.
fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// Q (m × n, row-major) of the thin Householder QR of the row-major m × n matrix `a`
/// (m ≥ n), with column j multiplied by sign(R[j][j]) as PyTorch's `orthogonal_` does, so
/// that the factorisation is the unique one whose R has a positive diagonal. `a` is left
/// holding R in its upper triangle.
fn thin_q(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    // Householder rather than Gram-Schmidt: Q stays orthogonal to rounding even when the
    // random matrix is badly conditioned, which a large square weight often is.
    let mut reflectors: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n);
    for k in 0..n {
        let norm = (k..m)
            .map(|i| a[i * n + k] * a[i * n + k])
            .sum::<f64>()
            .sqrt();
        // Reflecting onto −sign(x₀)·‖x‖·e₁ keeps x₀ − α free of cancellation.
        let alpha = if a[k * n + k] >= 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| a[i * n + k]).collect();
        v[0] -= alpha;
        let vv: f64 = v.iter().map(|x| x * x).sum();
        apply_reflector(a, n, k, &v, vv, k..n);
        reflectors.push((v, vv));
    }
    let mut q = vec![0.0; m * n];
    for i in 0..n {
        q[i * n + i] = 1.0;
    }
    // Q = H₀·H₁·…·Hₙ₋₁ applied to the first n columns of the identity, innermost first.
    for (k, (v, vv)) in reflectors.iter().enumerate().rev() {
        apply_reflector(&mut q, n, k, v, *vv, 0..n);
    }
    for j in 0..n {
        // PyTorch multiplies by sign(0) = 0 for an exactly singular column (probability
        // zero); keeping +1 there leaves Q orthonormal instead.
        if a[j * n + j] < 0.0 {
            (0..m).for_each(|i| q[i * n + j] = -q[i * n + j]);
        }
    }
    q
}

/// Applies the reflector I − 2·v·vᵀ/(vᵀv), acting on rows k.., to `columns` of the
/// row-major matrix `a` with `n` columns. A zero v (a column already zero) is the identity.
fn apply_reflector(
    a: &mut [f64],
    n: usize,
    k: usize,
    v: &[f64],
    vv: f64,
    columns: std::ops::Range<usize>,
) {
    if vv == 0.0 {
        return;
    }
    for j in columns {
        let dot: f64 = v
            .iter()
            .enumerate()
            .map(|(r, x)| x * a[(k + r) * n + j])
            .sum();
        let s = 2.0 * dot / vv;
        v.iter()
            .enumerate()
            .for_each(|(r, x)| a[(k + r) * n + j] -= s * x);
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

/// A user's choice of initialiser for the weights, as the command line gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitScheme {
    /// PyTorch's per-layer default (what the model builder picks for each layer).
    Default,
    /// This initialiser instead of the layer's default.
    Use(Init),
}

impl InitScheme {
    /// The initialiser for a parameter whose layer would use `layer_default`.
    pub fn or_layer_default(self, layer_default: Init) -> Init {
        match self {
            InitScheme::Default => layer_default,
            InitScheme::Use(init) => init,
        }
    }
}

impl fmt::Display for InitScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitScheme::Default => f.write_str("default"),
            InitScheme::Use(init) => init.fmt(f),
        }
    }
}

impl FromStr for InitScheme {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        parse_init(text)
    }
}

/// The scheme names [`parse_init`] knows, for its error message.
const SCHEMES: &str = "default, zeros, ones, constant, uniform, normal, xavier_uniform, \
                       xavier_normal, kaiming_uniform, kaiming_normal, orthogonal";

/// Parses an initialiser in `torch.nn.init`'s words: `NAME` or `NAME:KEY=VALUE,...`.
///
/// | name | keys (PyTorch's defaults) |
/// |---|---|
/// | `default` | none: each layer's PyTorch default |
/// | `zeros`, `ones` | none |
/// | `constant` | `value` (required) |
/// | `uniform` | `a` (0), `b` (1), with a ≤ b |
/// | `normal` | `mean` (0), `std` (1), with std ≥ 0 |
/// | `xavier_uniform`, `xavier_normal` | `gain` (1) |
/// | `kaiming_uniform`, `kaiming_normal` | `a` (0), `mode` (`fan_in` / `fan_out`), `nonlinearity` (`leaky_relu`) |
/// | `orthogonal` | `gain` (1) |
///
/// `nonlinearity` is one of `linear` (or PyTorch's `conv1d`, `conv2d`, `conv3d`,
/// `conv_transpose1d`, ... names for it), `sigmoid`, `tanh`, `relu`, `selu`, `leaky_relu`
/// (slope `a`) or `leaky_relu(SLOPE)`. `uniform` with a = −b and `normal` with mean 0 come
/// back as [`Init::Uniform`] and [`Init::Normal`], which draw the same numbers as the
/// general forms. Errors name the offending key or value.
pub fn parse_init(text: &str) -> Result<InitScheme> {
    let (name, options) = match text.split_once(':') {
        Some((name, options)) => (name.trim(), Some(options)),
        None => (text.trim(), None),
    };
    let mut opts = Options::parse(text, options)?;
    let init = match name {
        "default" => {
            opts.finish(name)?;
            return Ok(InitScheme::Default);
        }
        "zeros" => Init::Constant(0.0),
        "ones" => Init::Constant(1.0),
        "constant" => match opts.number("value")? {
            Some(v) => Init::Constant(v),
            None => return Err(opts.error("constant needs `value`, e.g. constant:value=0.5")),
        },
        "uniform" => {
            let a = opts.number("a")?.unwrap_or(0.0);
            let b = opts.number("b")?.unwrap_or(1.0);
            if a > b {
                return Err(opts.error(&format!("uniform needs a <= b, got a={a}, b={b}")));
            }
            if a == -b {
                Init::Uniform { bound: b }
            } else {
                Init::UniformRange { low: a, high: b }
            }
        }
        "normal" => {
            let mean = opts.number("mean")?.unwrap_or(0.0);
            let std = opts.number("std")?.unwrap_or(1.0);
            if std < 0.0 {
                return Err(opts.error(&format!("std={std} must be >= 0")));
            }
            if mean == 0.0 {
                Init::Normal { std }
            } else {
                Init::Gaussian { mean, std }
            }
        }
        "xavier_uniform" | "xavier_normal" => Init::Xavier {
            distribution: distribution_of(name),
            gain: opts.number("gain")?.unwrap_or(1.0),
        },
        "kaiming_uniform" | "kaiming_normal" => {
            let slope = opts.number("a")?;
            let mode = match opts.take("mode") {
                None | Some("fan_in") => FanMode::FanIn,
                Some("fan_out") => FanMode::FanOut,
                Some(other) => {
                    return Err(opts.error(&format!("mode={other} is not fan_in or fan_out")))
                }
            };
            let nonlinearity = match opts.take("nonlinearity") {
                None => Nonlinearity::LeakyRelu {
                    negative_slope: slope.unwrap_or(0.0),
                },
                Some(word) => {
                    let (nonlinearity, own_slope) = nonlinearity_of(word)
                        .ok_or_else(|| opts.error(&format!("unknown nonlinearity={word}")))?;
                    match (nonlinearity, own_slope, slope) {
                        (Nonlinearity::LeakyRelu { .. }, false, a) => Nonlinearity::LeakyRelu {
                            negative_slope: a.unwrap_or(0.0),
                        },
                        (_, _, None) => nonlinearity,
                        (_, true, Some(_)) => {
                            return Err(opts.error(&format!(
                                "a= and nonlinearity={word} both give the slope; give it once"
                            )))
                        }
                        (_, false, Some(a)) => {
                            return Err(opts.error(&format!(
                                "a={a} (the negative slope) applies only to \
                                 nonlinearity=leaky_relu, not {word}"
                            )))
                        }
                    }
                }
            };
            Init::Kaiming {
                distribution: distribution_of(name),
                mode,
                nonlinearity,
            }
        }
        "orthogonal" => Init::Orthogonal {
            gain: opts.number("gain")?.unwrap_or(1.0),
        },
        other => {
            return Err(opts.error(&format!("unknown init `{other}` (known: {SCHEMES})")));
        }
    };
    opts.finish(name)?;
    Ok(InitScheme::Use(init))
}

/// `Uniform` for a `*_uniform` scheme name, else `Normal`.
fn distribution_of(name: &str) -> Distribution {
    if name.ends_with("uniform") {
        Distribution::Uniform
    } else {
        Distribution::Normal
    }
}

/// The nonlinearity a word names, and whether the word carried its own slope
/// (`leaky_relu(0.2)`).
fn nonlinearity_of(word: &str) -> Option<(Nonlinearity, bool)> {
    let plain = match word {
        "linear" | "identity" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d"
        | "conv_transpose2d" | "conv_transpose3d" => Some(Nonlinearity::Linear),
        "sigmoid" => Some(Nonlinearity::Sigmoid),
        "tanh" => Some(Nonlinearity::Tanh),
        "relu" => Some(Nonlinearity::Relu),
        "selu" => Some(Nonlinearity::Selu),
        "leaky_relu" => Some(Nonlinearity::LeakyRelu {
            negative_slope: 0.0,
        }),
        _ => None,
    };
    if let Some(n) = plain {
        return Some((n, false));
    }
    let slope = word.strip_prefix("leaky_relu(")?.strip_suffix(')')?;
    let negative_slope: f32 = slope.trim().parse().ok()?;
    negative_slope
        .is_finite()
        .then_some((Nonlinearity::LeakyRelu { negative_slope }, true))
}

/// The `KEY=VALUE` options of one init text, each to be taken exactly once.
struct Options<'a> {
    text: &'a str,
    entries: Vec<(&'a str, &'a str, bool)>,
    asked: Vec<&'static str>,
}

impl<'a> Options<'a> {
    fn parse(text: &'a str, options: Option<&'a str>) -> Result<Self> {
        let mut opts = Options {
            text,
            entries: Vec::new(),
            asked: Vec::new(),
        };
        let Some(options) = options else {
            return Ok(opts);
        };
        for item in options.split(',') {
            let Some((key, value)) = item.split_once('=') else {
                return Err(opts.error(&format!("option `{}` is not KEY=VALUE", item.trim())));
            };
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(opts.error(&format!("option `{}` is not KEY=VALUE", item.trim())));
            }
            if opts.entries.iter().any(|e| e.0 == key) {
                return Err(opts.error(&format!("key `{key}` is given twice")));
            }
            opts.entries.push((key, value, false));
        }
        Ok(opts)
    }

    /// The value of `key`, if given, marking it as used.
    fn take(&mut self, key: &'static str) -> Option<&'a str> {
        self.asked.push(key);
        let entry = self.entries.iter_mut().find(|e| e.0 == key)?;
        entry.2 = true;
        Some(entry.1)
    }

    /// The finite number `key` gives, if given.
    fn number(&mut self, key: &'static str) -> Result<Option<f32>> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        match value.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(self.error(&format!("{key}={value} is not a finite number"))),
        }
    }

    /// An error for any key that the scheme did not ask for.
    fn finish(&self, name: &str) -> Result<()> {
        let Some((key, _, _)) = self.entries.iter().find(|e| !e.2) else {
            return Ok(());
        };
        let accepted = if self.asked.is_empty() {
            "none".to_string()
        } else {
            self.asked.join(", ")
        };
        Err(self.error(&format!(
            "unknown key `{key}` for {name} (accepted keys: {accepted})"
        )))
    }

    fn error(&self, message: &str) -> Error {
        Error::Config(format!("init `{}`: {message}", self.text))
    }
}

#[cfg(test)]
mod tests;
