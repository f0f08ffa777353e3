//! A direct interpreter of a graph in any float type: the f64 reference that gradient
//! checks and parity tests compare against, with no planning or arenas in between.

use super::{Graph, NodeKind, ValueId};
use crate::backend::cpu::{run_op, Real};
use crate::error::{Error, Result};
use crate::rng::StepRng;

/// Evaluates every node of `graph` given values for its inputs and parameters (`feed`
/// returns the data of an input or parameter node). Returns all values, indexed by id.
/// `rng` is the step's randomness (dropout masks). In-place updates (running statistics)
/// produce the updated value as their node's value and leave the buffer's node as fed.
pub fn interpret<T: Real>(
    graph: &Graph,
    feed: &dyn Fn(ValueId) -> Option<Vec<T>>,
    rng: &StepRng,
) -> Result<Vec<Vec<T>>> {
    let mut values: Vec<Vec<T>> = Vec::with_capacity(graph.nodes().len());
    for (id, node) in graph.nodes().iter().enumerate() {
        let v = match &node.kind {
            NodeKind::Input(_) | NodeKind::Param { .. } | NodeKind::Buffer { .. } => {
                let v =
                    feed(id).ok_or_else(|| Error::Graph(format!("no value fed for node {id}")))?;
                if v.len() != node.shape.numel() {
                    return Err(Error::shape(
                        format!("node {id}"),
                        format!("fed {} values for shape {}", v.len(), node.shape),
                    ));
                }
                v
            }
            NodeKind::Constant(c) => vec![T::of(f64::from(*c)); node.shape.numel()],
            NodeKind::Op(op) => {
                let ins: Vec<&[T]> = node.inputs.iter().map(|&i| values[i].as_slice()).collect();
                let shapes: Vec<_> = node
                    .inputs
                    .iter()
                    .map(|&i| graph.shape(i).clone())
                    .collect();
                let mut out = match node.in_place {
                    Some(target) => values[target].clone(),
                    None => vec![T::zero(); node.shape.numel()],
                };
                run_op(op, &ins, &shapes, &mut out, &node.shape, rng)?;
                out
            }
        };
        values.push(v);
    }
    Ok(values)
}
