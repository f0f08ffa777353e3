//! A model as a layer list, built into graph nodes with PyTorch's parameter names.

use super::spec::{parse_spec, spec_error, LayerSpec, SpecArg};
use super::Init;
use crate::error::{Error, Result};
use crate::graph::{Graph, ValueId};
use crate::op::{Activation, Op};
use crate::shape::Shape;

/// One layer, with PyTorch's arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `nn.Linear(in_features, out_features, bias=True)`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether it has a bias.
        bias: bool,
    },
    /// An element-wise activation (`nn.ReLU`, `nn.LeakyReLU`, `nn.Sigmoid`, `nn.Tanh`, `nn.GELU`).
    Activation(Activation),
    /// `nn.Softmax(dim=-1)`.
    Softmax,
}

/// A parsed model: its layers and the spec they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The spec as given (presets expanded).
    pub spec: String,
    /// The layers in order; their index is their `nn.Sequential` index.
    pub layers: Vec<Layer>,
    /// Where each layer starts in `spec`.
    positions: Vec<usize>,
}

/// Layers that the CNN issue adds; named here so that specs using them get a clear error.
const PLANNED: &[&str] = &[
    "conv2d",
    "maxpool2d",
    "avgpool2d",
    "batchnorm1d",
    "batchnorm2d",
    "layernorm",
    "dropout",
    "flatten",
];

impl Model {
    /// Parses a layer list or a preset name (`mlp`, `cnn`).
    pub fn parse(spec: &str) -> Result<Model> {
        let spec = super::expand_preset(spec).to_string();
        let specs = parse_spec(&spec)?;
        let mut layers = Vec::new();
        for l in &specs {
            layers.push(layer_of(&spec, l)?);
        }
        Ok(Model {
            positions: specs.iter().map(|l| l.position).collect(),
            spec,
            layers,
        })
    }

    /// The number of input features (of the first linear layer).
    pub fn input_features(&self) -> Result<usize> {
        self.layers
            .iter()
            .find_map(|l| match l {
                Layer::Linear { in_features, .. } => Some(*in_features),
                _ => None,
            })
            .ok_or_else(|| Error::Config(format!("model '{}' has no linear layer", self.spec)))
    }

    /// The text of layer `i` as written in the spec.
    fn layer_text(&self, i: usize) -> &str {
        let start = self.positions[i];
        let end = self
            .positions
            .get(i + 1)
            .copied()
            .unwrap_or(self.spec.len());
        self.spec[start..end].trim().trim_end_matches(',').trim()
    }

    /// Appends the layers to `g` reading `x` ([B, features]); returns the output value.
    /// Parameters are named `{index}.weight` / `{index}.bias` as in `nn.Sequential`.
    pub fn build(&self, g: &mut Graph, x: ValueId) -> Result<ValueId> {
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let label = format!("layer {i} '{}'", self.layer_text(i));
            g.set_label(label.clone());
            h = match *layer {
                Layer::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    let s = g.shape(h).clone();
                    if s.rank() != 2 || s.last() != in_features {
                        return Err(Error::shape(
                            label,
                            format!(
                                "expects [batch, {in_features}] but the layer before gives {s}"
                            ),
                        ));
                    }
                    // nn.Linear's reset_parameters: kaiming_uniform(a=sqrt(5)) for the
                    // weight and U(±1/sqrt(fan_in)) for the bias both give this bound.
                    let bound = 1.0 / (in_features as f32).sqrt();
                    let w = g.param(
                        &format!("{i}.weight"),
                        Shape::new(&[out_features, in_features]),
                        Init::Uniform { bound },
                    );
                    let y = g.op(
                        Op::MatMul {
                            trans_a: false,
                            trans_b: true,
                        },
                        &[h, w],
                    )?;
                    if bias {
                        let b = g.param(
                            &format!("{i}.bias"),
                            Shape::new(&[out_features]),
                            Init::Uniform { bound },
                        );
                        g.op(Op::BiasAdd, &[y, b])?
                    } else {
                        y
                    }
                }
                Layer::Activation(a) => g.op(Op::Activation(a), &[h])?,
                Layer::Softmax => g.op(Op::Softmax, &[h])?,
            };
        }
        g.set_label("");
        Ok(h)
    }
}

fn layer_of(spec: &str, l: &LayerSpec) -> Result<Layer> {
    let args = Args { spec, layer: l };
    let layer = match l.name.as_str() {
        "linear" => {
            args.allow(&["in_features", "out_features", "bias"])?;
            Layer::Linear {
                in_features: args.usize(0, "in_features")?,
                out_features: args.usize(1, "out_features")?,
                bias: args.bool_or(2, "bias", true)?,
            }
        }
        "relu" => args.none(Layer::Activation(Activation::Relu))?,
        "sigmoid" => args.none(Layer::Activation(Activation::Sigmoid))?,
        "tanh" => args.none(Layer::Activation(Activation::Tanh))?,
        "gelu" => args.none(Layer::Activation(Activation::Gelu))?,
        "leaky_relu" | "leakyrelu" => {
            args.allow(&["negative_slope"])?;
            Layer::Activation(Activation::LeakyRelu(
                args.f32_or(0, "negative_slope", 0.01)?,
            ))
        }
        "softmax" => {
            args.allow(&["dim"])?;
            let dim = args.get(0, "dim").map(|a| a.value.as_str()).unwrap_or("-1");
            if dim != "-1" && dim != "1" {
                return Err(spec_error(spec, l.position, "softmax is over the last dimension (dim=-1)"));
            }
            Layer::Softmax
        }
        name if PLANNED.contains(&name) => {
            return Err(Error::Unsupported(format!(
                "layer '{name}' (at position {}) is not implemented yet: the CNN layers land with the CNN issue",
                l.position
            )))
        }
        name => {
            return Err(spec_error(
                spec,
                l.position,
                format!("unknown layer '{name}' (known: linear, relu, leaky_relu, sigmoid, tanh, gelu, softmax)"),
            ))
        }
    };
    Ok(layer)
}

/// Typed access to a layer's positional-or-keyword arguments.
struct Args<'a> {
    spec: &'a str,
    layer: &'a LayerSpec,
}

impl Args<'_> {
    fn err(&self, position: usize, message: String) -> Error {
        spec_error(self.spec, position, message)
    }

    fn allow(&self, names: &[&str]) -> Result<()> {
        let positional = self.layer.args.iter().filter(|a| a.name.is_none()).count();
        if positional > names.len() {
            return Err(self.err(
                self.layer.position,
                format!(
                    "'{}' takes at most {} arguments",
                    self.layer.name,
                    names.len()
                ),
            ));
        }
        for a in &self.layer.args {
            if let Some(n) = &a.name {
                if !names.contains(&n.as_str()) {
                    return Err(self.err(
                        a.position,
                        format!(
                            "'{}' has no argument '{n}' (it takes {names:?})",
                            self.layer.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn none(&self, layer: Layer) -> Result<Layer> {
        self.allow(&[])?;
        Ok(layer)
    }

    fn get(&self, index: usize, name: &str) -> Option<&SpecArg> {
        self.layer
            .args
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
            .or_else(|| {
                self.layer
                    .args
                    .iter()
                    .filter(|a| a.name.is_none())
                    .nth(index)
            })
    }

    fn usize(&self, index: usize, name: &str) -> Result<usize> {
        let a = self.get(index, name).ok_or_else(|| {
            self.err(
                self.layer.position,
                format!("'{}' needs '{name}'", self.layer.name),
            )
        })?;
        match a.value.parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(self.err(
                a.position,
                format!("'{name}' must be a positive integer, got '{}'", a.value),
            )),
        }
    }

    fn f32_or(&self, index: usize, name: &str, default: f32) -> Result<f32> {
        match self.get(index, name) {
            None => Ok(default),
            Some(a) => a
                .value
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    self.err(
                        a.position,
                        format!("'{name}' must be a number, got '{}'", a.value),
                    )
                }),
        }
    }

    fn bool_or(&self, index: usize, name: &str, default: bool) -> Result<bool> {
        match self.get(index, name) {
            None => Ok(default),
            Some(a) => match a.value.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                v => Err(self.err(
                    a.position,
                    format!("'{name}' must be true or false, got '{v}'"),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_preset_has_pytorch_names_and_layouts() {
        let m = Model::parse("mlp").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[4, 784]));
        let y = m.build(&mut g, x).unwrap();
        assert_eq!(g.shape(y), &Shape::new(&[4, 10]));
        let names: Vec<(String, Shape)> = g
            .params()
            .iter()
            .map(|(_, n, s, _)| (n.to_string(), (*s).clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("0.weight".into(), Shape::new(&[256, 784])),
                ("0.bias".into(), Shape::new(&[256])),
                ("2.weight".into(), Shape::new(&[128, 256])),
                ("2.bias".into(), Shape::new(&[128])),
                ("4.weight".into(), Shape::new(&[10, 128])),
                ("4.bias".into(), Shape::new(&[10])),
            ]
        );
    }

    #[test]
    fn mismatched_layers_name_the_layer_and_shapes() {
        let m = Model::parse("linear(784,64),relu,linear(60,10)").unwrap();
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[8, 784]));
        let err = m.build(&mut g, x).unwrap_err().to_string();
        assert!(err.contains("layer 2 'linear(60,10)'"), "{err}");
        assert!(err.contains("[8, 64]"), "{err}");
    }

    #[test]
    fn bad_arguments_are_spec_errors() {
        assert!(matches!(
            Model::parse("linear(784)"),
            Err(Error::Spec { .. })
        ));
        assert!(matches!(
            Model::parse("linear(784,0)"),
            Err(Error::Spec { .. })
        ));
        assert!(matches!(
            Model::parse("linear(784,10,bias=maybe)"),
            Err(Error::Spec { .. })
        ));
        assert!(matches!(Model::parse("relu(3)"), Err(Error::Spec { .. })));
        assert!(matches!(Model::parse("swish"), Err(Error::Spec { .. })));
        assert!(matches!(Model::parse("cnn"), Err(Error::Unsupported(_))));
        let m = Model::parse("linear(4,3,bias=False),leaky_relu(negative_slope=0.2)").unwrap();
        assert_eq!(
            m.layers,
            vec![
                Layer::Linear {
                    in_features: 4,
                    out_features: 3,
                    bias: false
                },
                Layer::Activation(Activation::LeakyRelu(0.2))
            ]
        );
    }
}
