//! The closed set of ops a graph is built from. Every op has a CPU reference kernel
//! (`backend/cpu`), a WGSL entry point (`shaders/`), and, when it is differentiable, a
//! gradient rule (`graph/autodiff.rs`); gradient rules emit ops of this same set, so the
//! parity tests cover forward and backward alike by iterating over it.

use crate::error::{Error, Result};
use crate::shape::Shape;

/// Element-wise activation functions, with PyTorch's definitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// x for x > 0, slope·x otherwise.
    LeakyRelu(f32),
    /// 1 / (1 + e^-x)
    Sigmoid,
    /// tanh(x)
    Tanh,
    /// x·Φ(x), the exact (erf) form that is `nn.GELU()`'s default.
    Gelu,
}

impl Activation {
    /// The numeric code the WGSL kernels switch on (an `override` constant).
    pub fn code(self) -> u32 {
        match self {
            Activation::Relu => 0,
            Activation::LeakyRelu(_) => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
            Activation::Gelu => 4,
        }
    }

    /// The slope parameter (0 for activations that have none).
    pub fn slope(self) -> f32 {
        match self {
            Activation::LeakyRelu(s) => s,
            _ => 0.0,
        }
    }

    /// The lower-case name used in model specs.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
        }
    }
}

/// One operation of the graph. Inputs are listed in each variant's doc; every op has one
/// output. Class labels travel as f32 holding exact small integers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `op(a) · op(b)` for 2-D `a`, `b`; a transpose flag reads the operand as its
    /// transpose in place, so no gradient needs a transpose copy.
    MatMul {
        /// Read `a` ([K, M] in memory) as [M, K].
        trans_a: bool,
        /// Read `b` ([N, K] in memory) as [K, N].
        trans_b: bool,
    },
    /// `x + b` with `x` [rows, cols] and `b` [cols] broadcast over the rows.
    BiasAdd,
    /// Column sums of `dy` [rows, cols] → [cols]: the gradient of [`Op::BiasAdd`] for `b`.
    BiasGrad,
    /// `a + b`, same shapes (gradient accumulation).
    Add,
    /// `factor · x`.
    Scale(f32),
    /// `f(x)` element-wise.
    Activation(Activation),
    /// `(x, dy) → dy · f'(x)`: the gradient of [`Op::Activation`].
    ActivationGrad(Activation),
    /// Softmax over the last dimension.
    Softmax,
    /// `(y, dy) → y · (dy − Σ dy·y)` per row: the gradient of [`Op::Softmax`] from its output.
    SoftmaxGrad,
    /// `(logits [B, C], labels [B]) → [1]`: mean cross-entropy of softmax(logits), with
    /// label smoothing ε as PyTorch's (target = (1−ε)·onehot + ε/C).
    SoftmaxCrossEntropy {
        /// Label smoothing ε in [0, 1).
        label_smoothing: f32,
    },
    /// `(logits, labels, dloss [1]) → dlogits`: the gradient of [`Op::SoftmaxCrossEntropy`].
    SoftmaxCrossEntropyGrad {
        /// Label smoothing ε in [0, 1).
        label_smoothing: f32,
    },
    /// `(pred, target) → [1]`: mean squared error.
    Mse,
    /// `(pred, target, dloss [1]) → dpred = 2 (pred − target) · dloss / n`.
    MseGrad,
    /// `x → [1]`: sum of all elements.
    Sum,
    /// `x → [1]`: mean of all elements.
    Mean,
    /// `dy [1] → factor · dy` broadcast to the node's shape: the gradient of Sum and Mean.
    Broadcast(f32),
    /// `logits [B, C] → [B]`: index of the row maximum (first on ties), as f32.
    Argmax,
    /// `(logits [B, C], labels [B]) → [1]`: how many rows have argmax == label.
    Correct,
}

/// How closely a backend must agree with the f64 reference (DESIGN.md's policy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Integers (indices, counts): bit-exact.
    Exact,
    /// Element-wise: |got − ref| ≤ rtol · max(|ref|, 1e-3·scale) where scale is the largest |ref|.
    Relative(f64),
    /// Reductions over K terms: |got − ref| ≤ 2·K·ε₃₂·m, m the same op on |inputs| in f64.
    Reduction,
}

impl Op {
    /// Number of inputs.
    pub fn arity(&self) -> usize {
        match self {
            Op::MatMul { .. }
            | Op::BiasAdd
            | Op::Add
            | Op::ActivationGrad(_)
            | Op::SoftmaxGrad
            | Op::SoftmaxCrossEntropy { .. }
            | Op::Mse
            | Op::Correct => 2,
            Op::SoftmaxCrossEntropyGrad { .. } | Op::MseGrad => 3,
            Op::BiasGrad
            | Op::Scale(_)
            | Op::Activation(_)
            | Op::Softmax
            | Op::Sum
            | Op::Mean
            | Op::Broadcast(_)
            | Op::Argmax => 1,
        }
    }

    /// Short name, as printed by `kiln parity` and used for WGSL entry points.
    pub fn name(&self) -> String {
        match self {
            Op::MatMul { trans_a, trans_b } => format!(
                "matmul{}{}",
                if *trans_a { "_ta" } else { "" },
                if *trans_b { "_tb" } else { "" }
            ),
            Op::BiasAdd => "bias_add".into(),
            Op::BiasGrad => "bias_grad".into(),
            Op::Add => "add".into(),
            Op::Scale(_) => "scale".into(),
            Op::Activation(a) => a.name().into(),
            Op::ActivationGrad(a) => format!("{}_grad", a.name()),
            Op::Softmax => "softmax".into(),
            Op::SoftmaxGrad => "softmax_grad".into(),
            Op::SoftmaxCrossEntropy { .. } => "cross_entropy".into(),
            Op::SoftmaxCrossEntropyGrad { .. } => "cross_entropy_grad".into(),
            Op::Mse => "mse".into(),
            Op::MseGrad => "mse_grad".into(),
            Op::Sum => "sum".into(),
            Op::Mean => "mean".into(),
            Op::Broadcast(_) => "broadcast".into(),
            Op::Argmax => "argmax".into(),
            Op::Correct => "correct".into(),
        }
    }

    /// Which inputs carry gradients (labels and targets do not).
    pub fn differentiable_inputs(&self) -> &'static [usize] {
        match self {
            Op::MatMul { .. } | Op::BiasAdd | Op::Add => &[0, 1],
            Op::Scale(_) | Op::Activation(_) | Op::Softmax | Op::Sum | Op::Mean => &[0],
            Op::SoftmaxCrossEntropy { .. } | Op::Mse => &[0],
            Op::BiasGrad
            | Op::ActivationGrad(_)
            | Op::SoftmaxGrad
            | Op::SoftmaxCrossEntropyGrad { .. }
            | Op::MseGrad
            | Op::Broadcast(_)
            | Op::Argmax
            | Op::Correct => &[],
        }
    }

    /// The tolerance policy for this op's output.
    pub fn tolerance(&self) -> Tolerance {
        match self {
            Op::Argmax | Op::Correct => Tolerance::Exact,
            Op::MatMul { .. }
            | Op::BiasGrad
            | Op::Sum
            | Op::Mean
            | Op::Mse
            | Op::SoftmaxGrad
            | Op::SoftmaxCrossEntropy { .. } => Tolerance::Reduction,
            Op::Activation(Activation::Relu | Activation::LeakyRelu(_))
            | Op::ActivationGrad(Activation::Relu | Activation::LeakyRelu(_))
            | Op::BiasAdd
            | Op::Add
            | Op::Scale(_)
            | Op::Broadcast(_)
            | Op::MseGrad => Tolerance::Relative(1e-5),
            Op::Activation(_)
            | Op::ActivationGrad(_)
            | Op::Softmax
            | Op::SoftmaxCrossEntropyGrad { .. } => Tolerance::Relative(1e-4),
        }
    }

    /// The output shape for the given input shapes, or an error naming the mismatch.
    /// `Broadcast` takes its output shape from the caller (`target`).
    pub fn output_shape(&self, inputs: &[&Shape], target: Option<&Shape>) -> Result<Shape> {
        if inputs.len() != self.arity() {
            return Err(Error::Graph(format!(
                "{} takes {} inputs, got {}",
                self.name(),
                self.arity(),
                inputs.len()
            )));
        }
        let mismatch = |detail: String| Err(Error::shape(self.name(), detail));
        match self {
            Op::MatMul { trans_a, trans_b } => {
                let (a, b) = (inputs[0], inputs[1]);
                if a.rank() != 2 || b.rank() != 2 {
                    return mismatch(format!("operands must be 2-D, got {a} and {b}"));
                }
                let (m, ka) = if *trans_a {
                    (a.0[1], a.0[0])
                } else {
                    (a.0[0], a.0[1])
                };
                let (kb, n) = if *trans_b {
                    (b.0[1], b.0[0])
                } else {
                    (b.0[0], b.0[1])
                };
                if ka != kb {
                    return mismatch(format!(
                        "inner dimensions differ: {a} (K={ka}) and {b} (K={kb})"
                    ));
                }
                Ok(Shape::new(&[m, n]))
            }
            Op::BiasAdd => {
                let (x, b) = (inputs[0], inputs[1]);
                if b.rank() != 1 || x.last() != b.0[0] {
                    return mismatch(format!("bias {b} does not match the last dimension of {x}"));
                }
                Ok(x.clone())
            }
            Op::BiasGrad => Ok(Shape::new(&[inputs[0].last()])),
            Op::Add => {
                if inputs[0] != inputs[1] {
                    return mismatch(format!("{} vs {}", inputs[0], inputs[1]));
                }
                Ok(inputs[0].clone())
            }
            Op::Scale(_) | Op::Activation(_) | Op::Softmax => Ok(inputs[0].clone()),
            Op::ActivationGrad(_) | Op::SoftmaxGrad => {
                if inputs[0] != inputs[1] {
                    return mismatch(format!("{} vs {}", inputs[0], inputs[1]));
                }
                Ok(inputs[0].clone())
            }
            Op::SoftmaxCrossEntropy { .. } | Op::Correct => {
                check_labels(self, inputs[0], inputs[1])?;
                Ok(Shape::scalar())
            }
            Op::SoftmaxCrossEntropyGrad { .. } => {
                check_labels(self, inputs[0], inputs[1])?;
                Ok(inputs[0].clone())
            }
            Op::Mse | Op::MseGrad => {
                if inputs[0].numel() != inputs[1].numel() {
                    return mismatch(format!("prediction {} vs target {}", inputs[0], inputs[1]));
                }
                Ok(if *self == Op::Mse {
                    Shape::scalar()
                } else {
                    inputs[0].clone()
                })
            }
            Op::Sum | Op::Mean => Ok(Shape::scalar()),
            Op::Broadcast(_) => target
                .cloned()
                .ok_or_else(|| Error::Graph("broadcast needs a target shape".into())),
            Op::Argmax => {
                if inputs[0].rank() != 2 {
                    return mismatch(format!("argmax takes [B, C], got {}", inputs[0]));
                }
                Ok(Shape::new(&[inputs[0].0[0]]))
            }
        }
    }
}

fn check_labels(op: &Op, logits: &Shape, labels: &Shape) -> Result<()> {
    if logits.rank() != 2 || labels.numel() != logits.0[0] {
        return Err(Error::shape(
            op.name(),
            format!("logits must be [B, C] and labels [B]; got {logits} and {labels}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_shapes_follow_transpose_flags() {
        let a = Shape::new(&[3, 5]);
        let b = Shape::new(&[7, 5]);
        let op = Op::MatMul {
            trans_a: false,
            trans_b: true,
        };
        assert_eq!(
            op.output_shape(&[&a, &b], None).ok(),
            Some(Shape::new(&[3, 7]))
        );
        let op = Op::MatMul {
            trans_a: true,
            trans_b: false,
        };
        let err = op.output_shape(&[&a, &b], None);
        assert!(matches!(err, Err(Error::Shape { .. })));
    }
}
