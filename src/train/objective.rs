//! What training minimises: the loss on the model's logits (cross-entropy on class
//! indices, or a regression-style loss on one-hot targets) plus optional L1/L2 penalties
//! on the weights, built into the graph so autodiff differentiates them like any op.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::graph::{Graph, ValueId};
use crate::nn::{Mode, Model};
use crate::op::Op;
use crate::shape::Shape;

/// The loss between logits [B, C] and the labels, with PyTorch's definitions and
/// `reduction='mean'`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// `cross_entropy` on class indices (with the config's label smoothing).
    CrossEntropy,
    /// `binary_cross_entropy_with_logits` against one-hot targets.
    BceWithLogits,
    /// `mse_loss` against one-hot targets.
    Mse,
    /// `l1_loss` against one-hot targets.
    L1,
    /// `smooth_l1_loss(beta)` against one-hot targets.
    SmoothL1 {
        /// Where the quadratic part ends.
        beta: f32,
    },
    /// `huber_loss(delta)` against one-hot targets.
    Huber {
        /// Where the quadratic part ends.
        delta: f32,
    },
}

impl Loss {
    /// Whether the loss reads one-hot targets rather than class indices.
    pub fn one_hot(&self) -> bool {
        !matches!(self, Loss::CrossEntropy)
    }
}

impl FromStr for Loss {
    type Err = Error;

    /// `cross_entropy`, `bce_with_logits`, `mse`, `l1`, `smooth_l1[:beta=1.0]`,
    /// `huber[:delta=1.0]`.
    fn from_str(text: &str) -> Result<Self> {
        let (name, args) = text.split_once(':').unwrap_or((text, ""));
        // At most one `key=value` argument, named `key`.
        let arg = |key: &str, default: f32| -> Result<f32> {
            let given: Vec<&str> = args.split(',').filter(|a| !a.trim().is_empty()).collect();
            match given.as_slice() {
                [] => Ok(default),
                [kv] => {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    if k.trim() != key {
                        return Err(Error::Config(format!(
                            "loss '{name}' has no argument '{}'",
                            k.trim()
                        )));
                    }
                    v.trim().parse().map_err(|_| {
                        Error::Config(format!("{key} must be a number, got '{}'", v.trim()))
                    })
                }
                _ => Err(Error::Config(format!(
                    "loss '{name}' takes one argument, {key}"
                ))),
            }
        };
        let loss = match name.trim() {
            "cross_entropy" | "ce" => Loss::CrossEntropy,
            "bce_with_logits" | "bce" => Loss::BceWithLogits,
            "mse" => Loss::Mse,
            "l1" => Loss::L1,
            "smooth_l1" => Loss::SmoothL1 { beta: arg("beta", 1.0)? },
            "huber" => Loss::Huber { delta: arg("delta", 1.0)? },
            other => {
                return Err(Error::Config(format!(
                    "unknown loss '{other}' (cross_entropy, bce_with_logits, mse, l1, smooth_l1, huber)"
                )))
            }
        };
        let takes_argument = matches!(loss, Loss::SmoothL1 { .. } | Loss::Huber { .. });
        if !takes_argument && !args.trim().is_empty() {
            return Err(Error::Config(format!("loss '{name}' takes no arguments")));
        }
        Ok(loss)
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::CrossEntropy => write!(f, "cross_entropy"),
            Loss::BceWithLogits => write!(f, "bce_with_logits"),
            Loss::Mse => write!(f, "mse"),
            Loss::L1 => write!(f, "l1"),
            Loss::SmoothL1 { beta } => write!(f, "smooth_l1:beta={beta}"),
            Loss::Huber { delta } => write!(f, "huber:delta={delta}"),
        }
    }
}

/// Penalties added to the training loss (not to the reported loss): `l1`·Σ|w| and
/// `l2`·Σw² over the parameters `penalised` selects.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Penalty {
    /// L1 coefficient.
    pub l1: f32,
    /// L2 coefficient.
    pub l2: f32,
}

/// The training or evaluation graph of a model: its inputs, loss, metric and state updates.
pub struct Objective {
    /// The graph.
    pub graph: Graph,
    /// The data loss (what is reported).
    pub loss: ValueId,
    /// What is differentiated: the loss plus penalties.
    pub total: ValueId,
    /// Correct predictions in the batch.
    pub correct: ValueId,
    /// The predicted class of each sample (argmax of the logits).
    pub predictions: ValueId,
    /// In-place state updates (batch-norm running statistics) to run in training.
    pub updates: Vec<ValueId>,
    /// The number of logits (classes).
    pub classes: usize,
}

/// Builds the graph of `model` on a batch of `batch` samples of shape `sample`. Inputs, in
/// order: `x` `[B, features]`, `labels` `[B]`, and `targets` `[B, C]` one-hot when the
/// loss needs it.
#[allow(clippy::too_many_arguments)]
pub fn objective(
    model: &Model,
    batch: usize,
    sample: [usize; 3],
    mode: Mode,
    loss: Loss,
    label_smoothing: f32,
    penalty: Penalty,
    penalised: &dyn Fn(&str) -> bool,
) -> Result<Objective> {
    let mut g = Graph::new();
    let features = sample.iter().product();
    let x = g.input("x", Shape::new(&[batch, features]));
    let labels = g.input("labels", Shape::new(&[batch]));
    let built = model.build(&mut g, x, sample, mode)?;
    let logits = built.output;
    let shape = g.shape(logits).clone();
    if shape.rank() != 2 {
        return Err(Error::shape(
            "model output",
            format!("logits must be [batch, classes], got {shape}"),
        ));
    }
    let data_loss = if loss.one_hot() {
        let targets = g.input("targets", shape.clone());
        let op = match loss {
            Loss::BceWithLogits => Op::BceWithLogits,
            Loss::Mse => Op::Mse,
            Loss::L1 => Op::L1,
            Loss::SmoothL1 { beta } => Op::SmoothL1 { beta },
            Loss::Huber { delta } => Op::Huber { delta },
            Loss::CrossEntropy => Op::SoftmaxCrossEntropy { label_smoothing },
        };
        g.op(op, &[logits, targets])?
    } else {
        g.op(
            Op::SoftmaxCrossEntropy { label_smoothing },
            &[logits, labels],
        )?
    };
    let correct = g.op(Op::Correct, &[logits, labels])?;
    let predictions = g.op(Op::Argmax, &[logits])?;
    let mut total = data_loss;
    if mode == Mode::Train && (penalty.l1 != 0.0 || penalty.l2 != 0.0) {
        g.set_label("penalty");
        let weights: Vec<ValueId> = g
            .params()
            .iter()
            .filter(|p| penalised(p.1))
            .map(|p| p.0)
            .collect();
        for w in weights {
            for (coef, op) in [(penalty.l2, Op::SumSquares), (penalty.l1, Op::SumAbs)] {
                if coef != 0.0 {
                    let term = g.op(op, &[w])?;
                    let scaled = g.op(Op::Scale(coef), &[term])?;
                    total = g.op(Op::Add, &[total, scaled])?;
                }
            }
        }
    }
    Ok(Objective {
        classes: shape.last(),
        graph: g,
        loss: data_loss,
        total,
        correct,
        predictions,
        updates: built.updates,
    })
}

/// Writes one-hot rows for `labels` into `out` ([labels.len(), classes]).
pub fn one_hot(labels: &[f32], classes: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(labels.len() * classes, 0.0);
    for (row, &l) in out.chunks_mut(classes).zip(labels) {
        if let Some(v) = row.get_mut(l as usize) {
            *v = 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_parse_with_arguments() {
        assert_eq!("mse".parse::<Loss>().unwrap(), Loss::Mse);
        assert_eq!(
            "smooth_l1:beta=0.5".parse::<Loss>().unwrap(),
            Loss::SmoothL1 { beta: 0.5 }
        );
        assert_eq!("huber".parse::<Loss>().unwrap(), Loss::Huber { delta: 1.0 });
        assert!("huber:beta=2".parse::<Loss>().is_err());
        assert!("mse:delta=2".parse::<Loss>().is_err());
        assert!("hinge".parse::<Loss>().is_err());
        for l in [
            Loss::CrossEntropy,
            Loss::BceWithLogits,
            Loss::SmoothL1 { beta: 0.25 },
        ] {
            assert_eq!(l.to_string().parse::<Loss>().unwrap(), l);
        }
    }

    #[test]
    fn one_hot_rows() {
        let mut out = Vec::new();
        one_hot(&[2.0, 0.0], 3, &mut out);
        assert_eq!(out, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn l2_penalty_adds_its_gradient() {
        // loss = mse + 0.5·Σw²: the penalty's gradient w.r.t. each weight is w.
        use crate::graph::{gradients, interpret};
        use crate::rng::StepRng;
        let model = Model::parse("linear(2,2,bias=false)").unwrap();
        let with = |l2: f32| {
            let o = objective(
                &model,
                1,
                [1, 1, 2],
                Mode::Train,
                Loss::Mse,
                0.0,
                Penalty { l1: 0.0, l2 },
                &|_| true,
            )
            .unwrap();
            let mut g = o.graph;
            let grads = gradients(&mut g, o.total).unwrap();
            let w = g.params()[0].0;
            let feed = |id: usize| -> Option<Vec<f64>> {
                match id {
                    0 => Some(vec![1.0, 2.0]),
                    1 => Some(vec![0.0]),
                    _ if id == w => Some(vec![0.1, 0.2, 0.3, 0.4]),
                    _ => Some(vec![1.0, 0.0]),
                }
            };
            let v = interpret::<f64>(&g, &feed, &StepRng::default()).unwrap();
            v[grads[0].1].clone()
        };
        let base = with(0.0);
        let pen = with(0.5);
        for (k, w) in [0.1, 0.2, 0.3, 0.4].iter().enumerate() {
            assert!(
                (pen[k] - base[k] - w).abs() < 1e-6,
                "{k}: {} vs {}",
                pen[k],
                base[k]
            );
        }
    }
}
