//! The command line's choice of initialiser (`--init`), parsed into an [`InitScheme`].

use std::fmt;
use std::str::FromStr;

use super::*;
use crate::error::{Error, Result};

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
