//! Reverse-mode differentiation: one gradient rule per op, each emitting ops of the same
//! closed set, so backward passes are planned and executed like forward ones.

use std::collections::HashMap;

use super::{Graph, NodeKind, ValueId};
use crate::error::{Error, Result};
use crate::op::{Channels, Op};
use crate::shape::Shape;

/// A node's layer label for messages ("the objective" for the loss and penalties).
fn describe(label: &str) -> &str {
    if label.is_empty() {
        "the objective"
    } else {
        label
    }
}

/// Appends to `graph` the nodes computing d`loss`/d`p` for every parameter `p`, and returns
/// `(param, gradient)` pairs in parameter order. Parameters that do not reach the loss are
/// left out. Each returned gradient is a node of its own (never shared with another
/// parameter or another value), so the planner can place it in the gradient arena.
pub fn gradients(graph: &mut Graph, loss: ValueId) -> Result<Vec<(ValueId, ValueId)>> {
    if graph.shape(loss).numel() != 1 {
        return Err(Error::Graph(format!(
            "the loss must be a scalar, got shape {}",
            graph.shape(loss)
        )));
    }
    graph.set_label("backward");
    let seed = graph.constant(1.0, graph.shape(loss).clone());
    graph.loss_seed = Some(seed);
    let mut grads: HashMap<ValueId, ValueId> = HashMap::new();
    grads.insert(loss, seed);

    for id in (0..=loss).rev() {
        let Some(&dy) = grads.get(&id) else { continue };
        let node = graph.node(id).clone();
        let NodeKind::Op(op) = node.kind else {
            continue;
        };
        graph.set_label(format!("the backward pass of {}", describe(&node.label)));
        let contributions = rule(graph, op, &node.inputs, id, dy)?;
        for (input, g) in contributions {
            let total = match grads.get(&input) {
                Some(&prev) => graph.op(Op::Add, &[prev, g])?,
                None => g,
            };
            grads.insert(input, total);
        }
    }

    let mut out = Vec::new();
    let mut owned: HashMap<ValueId, ValueId> = HashMap::new();
    let params: Vec<ValueId> = graph.params().iter().map(|p| p.0).collect();
    for p in params {
        let Some(&g) = grads.get(&p) else { continue };
        // A gradient that is another value's too (a pass-through) gets a copy of its own.
        let shared = !matches!(graph.node(g).kind, NodeKind::Op(op) if op != Op::Reshape)
            || owned.contains_key(&g)
            || grads.iter().any(|(&v, &gv)| gv == g && v != p);
        let g = if shared {
            graph.op(Op::Scale(1.0), &[g])?
        } else {
            g
        };
        owned.insert(g, p);
        out.push((p, g));
    }
    Ok(out)
}

/// The gradient rule of one op: given the output gradient `dy`, the contributions to the
/// gradients of its differentiable inputs.
fn rule(
    g: &mut Graph,
    op: Op,
    inputs: &[ValueId],
    out: ValueId,
    dy: ValueId,
) -> Result<Vec<(ValueId, ValueId)>> {
    let x = inputs.first().copied().unwrap_or(out);
    Ok(match op {
        Op::MatMul { trans_a, trans_b } => {
            matmul_rule(g, trans_a, trans_b, inputs[0], inputs[1], dy)?
        }
        // Created after differentiation (`graph::fuse_bias`), but its rule is the two it
        // fuses: the product's and the bias add's.
        Op::MatMulBias { trans_a, trans_b } => {
            let mut v = matmul_rule(g, trans_a, trans_b, inputs[0], inputs[1], dy)?;
            v.push((inputs[2], g.op(Op::BiasGrad, &[dy])?));
            v
        }
        // Created by `graph::fuse_activation`; the activation's gradient reads the output,
        // then the rule is MatMulBias's on it.
        Op::MatMulBiasAct {
            trans_a,
            trans_b,
            act,
        } => {
            let dpre = g.op(Op::ActivationGradFromOutput(act), &[out, dy])?;
            let mut v = matmul_rule(g, trans_a, trans_b, inputs[0], inputs[1], dpre)?;
            v.push((inputs[2], g.op(Op::BiasGrad, &[dpre])?));
            v
        }
        // Created by `graph::fuse_im2col`; its rule is the rules of the ops it fuses, with
        // the weight gradient read from the image as well.
        Op::ConvMatMul { geom, bias, act } => {
            let dpre = match act {
                Some(a) => g.op(Op::ActivationGradFromOutput(a), &[out, dy])?,
                None => dy,
            };
            let product = Op::MatMul {
                trans_a: false,
                trans_b: false,
            };
            let dcols = g.op(product, &[dpre, inputs[1]])?;
            let mut v = vec![
                (x, g.op(Op::Col2Im(geom), &[dcols])?),
                (inputs[1], g.op(Op::ConvWeightGrad(geom), &[dpre, x])?),
            ];
            if bias {
                v.push((inputs[2], g.op(Op::BiasGrad, &[dpre])?));
            }
            v
        }
        Op::GroupedConv(geom) => vec![
            (x, g.op(Op::GroupedConvInputGrad(geom), &[dy, inputs[1]])?),
            (inputs[1], g.op(Op::GroupedConvWeightGrad(geom), &[dy, x])?),
        ],
        Op::BiasAdd => {
            let db = g.op(Op::BiasGrad, &[dy])?;
            vec![(x, dy), (inputs[1], db)]
        }
        Op::Add => vec![(inputs[0], dy), (inputs[1], dy)],
        Op::Scale(f) => vec![(x, g.op(Op::Scale(f), &[dy])?)],
        // From the output where the derivative is a function of it (relu, sigmoid, tanh),
        // as PyTorch's backward does: the pre-activation then has no reader after the
        // forward pass, so fusion can leave it unstored (and f16 gradients round as
        // PyTorch's do). The other kinds (leaky relu, gelu, silu, elu, selu, relu6,
        // hardtanh, hardsigmoid, hardswish, softplus, mish) read their input.
        Op::Activation(a) if a.grad_from_output() => {
            vec![(x, g.op(Op::ActivationGradFromOutput(a), &[out, dy])?)]
        }
        Op::Activation(a) => vec![(x, g.op(Op::ActivationGrad(a), &[x, dy])?)],
        Op::Softmax => vec![(x, g.op(Op::SoftmaxGrad, &[out, dy])?)],
        Op::LogSoftmax => vec![(x, g.op(Op::LogSoftmaxGrad, &[out, dy])?)],
        Op::SoftmaxCrossEntropy { label_smoothing } => {
            let d = g.op(
                Op::SoftmaxCrossEntropyGrad { label_smoothing },
                &[x, inputs[1], dy],
            )?;
            vec![(x, d)]
        }
        Op::Mse => vec![(x, g.op(Op::MseGrad, &[x, inputs[1], dy])?)],
        Op::BceWithLogits => vec![(x, g.op(Op::BceWithLogitsGrad, &[x, inputs[1], dy])?)],
        Op::L1 => vec![(x, g.op(Op::L1Grad, &[x, inputs[1], dy])?)],
        Op::SmoothL1 { beta } => vec![(x, g.op(Op::SmoothL1Grad { beta }, &[x, inputs[1], dy])?)],
        Op::Huber { delta } => vec![(x, g.op(Op::HuberGrad { delta }, &[x, inputs[1], dy])?)],
        Op::SumSquares => vec![(x, g.op(Op::SumSquaresGrad, &[x, dy])?)],
        Op::SumAbs => vec![(x, g.op(Op::SumAbsGrad, &[x, dy])?)],
        Op::Sum | Op::Mean => {
            let shape = g.shape(x).clone();
            let factor = if op == Op::Mean {
                1.0 / shape.numel() as f32
            } else {
                1.0
            };
            vec![(
                x,
                g.op_with_shape(Op::Broadcast(factor), &[dy], Some(&shape))?,
            )]
        }
        Op::Reshape => {
            let shape = g.shape(x).clone();
            vec![(x, g.reshape(dy, shape)?)]
        }
        Op::Im2Col(geom) => vec![(x, g.op(Op::Col2Im(geom), &[dy])?)],
        Op::Col2Im(geom) => vec![(x, g.op(Op::Im2Col(geom), &[dy])?)],
        Op::RowsToNchw(d) => vec![(x, g.op(Op::NchwToRows(d), &[dy])?)],
        Op::NchwToRows(d) => vec![(x, g.op(Op::RowsToNchw(d), &[dy])?)],
        Op::MaxPool(geom) => vec![(x, g.op(Op::MaxPoolGrad(geom), &[x, dy])?)],
        Op::AvgPool(geom) => vec![(x, g.op(Op::AvgPoolGrad(geom), &[dy])?)],
        Op::AdaptiveAvgPool(geom) => vec![(x, g.op(Op::AdaptiveAvgPoolGrad(geom), &[dy])?)],
        Op::AdaptiveMaxPool(geom) => {
            vec![(x, g.op(Op::AdaptiveMaxPoolGrad(geom), &[x, dy])?)]
        }
        Op::BatchNormApply(ch) => {
            let (stats, gamma, beta) = (inputs[1], inputs[2], inputs[3]);
            // The rule differentiates through the batch statistics, so they must be this
            // input's own (training mode); eval-mode graphs are not differentiated.
            let own = g.node(stats).kind == NodeKind::Op(Op::BatchNormStats(ch))
                && g.node(stats).inputs == [x];
            if !own {
                return Err(Error::Unsupported(
                    "gradient of batch norm with statistics other than its input's (eval mode)"
                        .into(),
                ));
            }
            // The input gradient takes its two per-channel sums from gamma's and beta's
            // gradients rather than summing again.
            let dgamma = g.op(Op::BatchNormGammaGrad(ch), &[x, stats, dy])?;
            let dbeta = g.op(Op::ChannelSum(ch), &[dy])?;
            let coeffs = g.op(Op::BatchNormGradCoeffs(ch), &[stats, gamma, dgamma, dbeta])?;
            let dx = g.op(Op::BatchNormGrad(ch), &[x, coeffs, dy])?;
            vec![(x, dx), (gamma, dgamma), (beta, dbeta)]
        }
        Op::PRelu(ch) => {
            let weight = inputs[1];
            let dx = g.op(Op::PReluGrad(ch), &[x, weight, dy])?;
            let terms = g.op(Op::PReluWeightTerms(ch), &[x, dy])?;
            let dweight = g.op(Op::ChannelSum(ch), &[terms])?;
            vec![(x, dx), (weight, dweight)]
        }
        Op::ChannelAffine(ch) => {
            let gamma = inputs[1];
            let zeros = g.constant(0.0, Shape::new(&[ch.c]));
            let dx = g.op(Op::ChannelAffine(ch), &[dy, gamma, zeros])?;
            // Σ dy·x per channel: batch norm's Σ dy·x̂ with x̂ = (x − 0)·1, its statistics
            // a mean and a variance of 0 and eps 1 (1/sqrt(0 + 1) = 1), so the same
            // reduction (in parts on a GPU, f16-aware) serves both norms.
            let unit = Channels { eps: 1.0, ..ch };
            let stats = g.constant(0.0, Shape::new(&[2, ch.c]));
            let dgamma = g.op(Op::BatchNormGammaGrad(unit), &[x, stats, dy])?;
            let dbeta = g.op(Op::ChannelSum(ch), &[dy])?;
            vec![(x, dx), (gamma, dgamma), (inputs[2], dbeta)]
        }
        Op::LayerNorm { eps } => {
            let (gamma, beta) = (inputs[1], inputs[2]);
            let dx = g.op(Op::LayerNormGrad { eps }, &[x, gamma, dy])?;
            let dgamma = g.op(Op::LayerNormGammaGrad { eps }, &[x, dy])?;
            let dbeta = g.op(Op::BiasGrad, &[dy])?;
            vec![(x, dx), (gamma, dgamma), (beta, dbeta)]
        }
        Op::Dropout(spec) => vec![(x, g.op(Op::DropoutGrad(spec), &[dy])?)],
        Op::MaxPoolGrad(_)
        | Op::AdaptiveAvgPoolGrad(_)
        | Op::AdaptiveMaxPoolGrad(_)
        | Op::ConvWeightGrad(_)
        | Op::GroupedConvInputGrad(_)
        | Op::GroupedConvWeightGrad(_)
        | Op::AvgPoolGrad(_)
        | Op::BatchNormStats(_)
        | Op::BatchNormGradCoeffs(_)
        | Op::BatchNormGrad(_)
        | Op::BatchNormGammaGrad(_)
        | Op::ChannelSum(_)
        | Op::PReluGrad(_)
        | Op::PReluWeightTerms(_)
        | Op::BatchNormRunning { .. }
        | Op::LayerNormGrad { .. }
        | Op::LayerNormGammaGrad { .. }
        | Op::DropoutGrad(_)
        | Op::SumSquaresGrad
        | Op::SumAbsGrad
        | Op::BiasGrad
        | Op::ActivationGrad(_)
        | Op::ActivationGradFromOutput(_)
        | Op::SoftmaxGrad
        | Op::LogSoftmaxGrad
        | Op::SoftmaxCrossEntropyGrad { .. }
        | Op::MseGrad
        | Op::BceWithLogitsGrad
        | Op::L1Grad
        | Op::SmoothL1Grad { .. }
        | Op::HuberGrad { .. }
        | Op::Broadcast(_)
        | Op::Argmax
        | Op::Correct => {
            return Err(Error::Unsupported(format!(
                "second-order gradients: {} has no gradient rule",
                op.name()
            )))
        }
    })
}

/// The gradient rule of `op(a) · op(b)`: each operand's gradient is a product of the
/// output gradient with the other operand, read transposed in place where needed.
fn matmul_rule(
    g: &mut Graph,
    trans_a: bool,
    trans_b: bool,
    a: ValueId,
    b: ValueId,
    dy: ValueId,
) -> Result<Vec<(ValueId, ValueId)>> {
    let da = if trans_a {
        g.op(
            Op::MatMul {
                trans_a: trans_b,
                trans_b: true,
            },
            &[b, dy],
        )?
    } else {
        g.op(
            Op::MatMul {
                trans_a: false,
                trans_b: !trans_b,
            },
            &[dy, b],
        )?
    };
    let db = if trans_b {
        g.op(
            Op::MatMul {
                trans_a: true,
                trans_b: trans_a,
            },
            &[dy, a],
        )?
    } else {
        g.op(
            Op::MatMul {
                trans_a: !trans_a,
                trans_b: false,
            },
            &[a, dy],
        )?
    };
    Ok(vec![(a, da), (b, db)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Init, Shape};
    use crate::op::Channels;

    #[test]
    fn batch_norm_input_gradient_reads_gamma_and_beta_gradients_sums() {
        // The input gradient takes its two per-channel sums from the parameter gradients'
        // nodes (through the coefficients), so x and dy are summed twice, not three times.
        let ch = Channels {
            c: 3,
            s: 4,
            eps: 1e-5,
        };
        let mut g = Graph::new();
        let x = g.param("x", Shape::new(&[2, 3, 2, 2]), Init::Constant(0.5));
        let gamma = g.param("gamma", Shape::new(&[3]), Init::Constant(1.0));
        let beta = g.param("beta", Shape::new(&[3]), Init::Constant(0.0));
        let stats = g.op(Op::BatchNormStats(ch), &[x]).unwrap();
        let y = g
            .op(Op::BatchNormApply(ch), &[x, stats, gamma, beta])
            .unwrap();
        let loss = g.op(Op::SumSquares, &[y]).unwrap();
        let grads: HashMap<ValueId, ValueId> =
            gradients(&mut g, loss).unwrap().into_iter().collect();
        let node = |v: ValueId| g.node(v).clone();
        let dx = node(grads[&x]);
        assert_eq!(dx.kind, NodeKind::Op(Op::BatchNormGrad(ch)));
        let coeffs = node(dx.inputs[1]);
        assert_eq!(coeffs.kind, NodeKind::Op(Op::BatchNormGradCoeffs(ch)));
        assert_eq!(coeffs.inputs, [stats, gamma, grads[&gamma], grads[&beta]]);
        assert_eq!(
            node(grads[&gamma]).kind,
            NodeKind::Op(Op::BatchNormGammaGrad(ch))
        );
        assert_eq!(node(grads[&beta]).kind, NodeKind::Op(Op::ChannelSum(ch)));
    }
}
