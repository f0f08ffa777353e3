//! The static graph: built once from a model spec, differentiated once, planned once.

mod autocast;
mod autodiff;
mod fuse;
mod interpret;
mod placement;
mod plan;

pub use autocast::{half_output, reads_half_weights, rounds_im2col};
pub use autodiff::gradients;
pub use fuse::{fuse, fuse_activation, fuse_bias, fuse_for_plan, fuse_im2col};
pub use interpret::interpret;
pub use plan::{ArenaKind, ParamEntry, ParamLayout, Plan, Slot, Step, ALIGN, ARENA_KINDS};

use crate::error::{Error, Result};
use crate::nn::Init;
use crate::op::Op;
use crate::shape::Shape;

/// Index of a node, which is also the id of the one value it produces.
pub type ValueId = usize;

/// What a node is.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// Data fed each step (a batch of images, its labels), by name.
    Input(String),
    /// A trainable parameter, by its PyTorch state_dict name, with its initialiser.
    Param {
        /// The state_dict name, e.g. `0.weight`.
        name: String,
        /// How its values are initialised.
        init: Init,
    },
    /// Persistent non-trainable state (batch-norm running statistics), by name.
    Buffer {
        /// Its name, e.g. `1.running_stats` (split into PyTorch's `running_mean` and
        /// `running_var` when exported).
        name: String,
        /// Its initial values.
        init: Init,
    },
    /// A constant filled with one value (the seed gradient of the loss).
    Constant(f32),
    /// An op applied to earlier values.
    Op(Op),
}

/// One node: its kind, its inputs and the shape of its output.
#[derive(Clone, Debug)]
pub struct Node {
    /// What the node computes.
    pub kind: NodeKind,
    /// The values it reads, in the op's input order.
    pub inputs: Vec<ValueId>,
    /// The shape of the value it produces.
    pub shape: Shape,
    /// The layer that created it, for error messages and `--detect-anomaly`-style reports.
    pub label: String,
    /// For ops that update state in place: the buffer node whose storage is the output.
    pub in_place: Option<ValueId>,
}

/// A directed acyclic graph in topological order: a node's inputs always come before it.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    label: String,
    loss_seed: Option<ValueId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The nodes, in topological order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, id: ValueId) -> &Node {
        &self.nodes[id]
    }

    /// The shape of a value.
    pub fn shape(&self, id: ValueId) -> &Shape {
        &self.nodes[id].shape
    }

    /// Sets the label given to the nodes added from now on (the layer being built).
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }

    fn push(&mut self, kind: NodeKind, inputs: Vec<ValueId>, shape: Shape) -> ValueId {
        self.nodes.push(Node {
            kind,
            inputs,
            shape,
            label: self.label.clone(),
            in_place: None,
        });
        self.nodes.len() - 1
    }

    /// A named input fed each step.
    pub fn input(&mut self, name: &str, shape: Shape) -> ValueId {
        self.push(NodeKind::Input(name.to_string()), vec![], shape)
    }

    /// A trainable parameter.
    pub fn param(&mut self, name: &str, shape: Shape, init: Init) -> ValueId {
        self.push(
            NodeKind::Param {
                name: name.to_string(),
                init,
            },
            vec![],
            shape,
        )
    }

    /// A persistent non-trainable buffer.
    pub fn buffer(&mut self, name: &str, shape: Shape, init: Init) -> ValueId {
        self.push(
            NodeKind::Buffer {
                name: name.to_string(),
                init,
            },
            vec![],
            shape,
        )
    }

    /// Applies an op that updates `target` (a buffer) in place, reading its old value.
    pub fn op_in_place(&mut self, op: Op, inputs: &[ValueId], target: ValueId) -> Result<ValueId> {
        if !matches!(
            self.nodes.get(target).map(|n| &n.kind),
            Some(NodeKind::Buffer { .. })
        ) {
            return Err(Error::Graph(format!(
                "{} can only update a buffer in place",
                op.name()
            )));
        }
        let id = self.op(op, inputs)?;
        if self.nodes[id].shape != self.nodes[target].shape {
            return Err(Error::shape(
                op.name(),
                format!(
                    "in-place output {} does not match buffer {}",
                    self.nodes[id].shape, self.nodes[target].shape
                ),
            ));
        }
        self.nodes[id].in_place = Some(target);
        Ok(id)
    }

    /// The same values viewed with another shape (no copy).
    pub fn reshape(&mut self, x: ValueId, shape: Shape) -> Result<ValueId> {
        self.op_with_shape(Op::Reshape, &[x], Some(&shape))
    }

    /// A constant tensor with every element equal to `value`.
    pub fn constant(&mut self, value: f32, shape: Shape) -> ValueId {
        self.push(NodeKind::Constant(value), vec![], shape)
    }

    /// The constant 1 that seeds the backward pass of the loss (a loss scaler writes its
    /// scale there instead); set by [`gradients`].
    pub fn loss_seed(&self) -> Option<ValueId> {
        self.loss_seed
    }

    /// Applies an op; the output shape is inferred and checked.
    pub fn op(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        self.op_with_shape(op, inputs, None)
    }

    /// Applies an op whose output shape is not a function of its inputs (`Broadcast`).
    pub fn op_with_shape(
        &mut self,
        op: Op,
        inputs: &[ValueId],
        target: Option<&Shape>,
    ) -> Result<ValueId> {
        if let Some(&bad) = inputs.iter().find(|&&i| i >= self.nodes.len()) {
            return Err(Error::Graph(format!(
                "{} reads unknown value {bad}",
                op.name()
            )));
        }
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| &self.nodes[i].shape).collect();
        let shape = op.output_shape(&shapes, target).map_err(|e| match e {
            Error::Shape { context, detail } if !self.label.is_empty() => Error::Shape {
                context: format!("{} ({context})", self.label),
                detail,
            },
            other => other,
        })?;
        Ok(self.push(NodeKind::Op(op), inputs.to_vec(), shape))
    }

    /// Makes node `id` compute `op` on `inputs` instead, keeping its id, label and shape,
    /// so every reader is unchanged: the rewrite a fusion pass makes after differentiation.
    /// The inputs must come before `id` (the graph stays in topological order) and the new
    /// op must produce the node's shape; nodes that no longer have readers stay in the
    /// graph, and the planner leaves them out.
    pub fn replace_op(&mut self, id: ValueId, op: Op, inputs: &[ValueId]) -> Result<()> {
        let Some(node) = self.nodes.get(id) else {
            return Err(Error::Graph(format!("no node {id} to replace")));
        };
        if !matches!(node.kind, NodeKind::Op(_)) || node.in_place.is_some() {
            return Err(Error::Graph(format!(
                "node {id} is not an op computing a value of its own"
            )));
        }
        if let Some(&bad) = inputs.iter().find(|&&i| i >= id) {
            return Err(Error::Graph(format!(
                "{} at node {id} cannot read value {bad}, which does not come before it",
                op.name()
            )));
        }
        let shapes: Vec<&Shape> = inputs.iter().map(|&i| &self.nodes[i].shape).collect();
        let shape = op.output_shape(&shapes, None)?;
        if shape != node.shape {
            return Err(Error::shape(
                op.name(),
                format!(
                    "replacing node {id} of shape {} with a value of shape {shape}",
                    node.shape
                ),
            ));
        }
        let node = &mut self.nodes[id];
        node.kind = NodeKind::Op(op);
        node.inputs = inputs.to_vec();
        Ok(())
    }

    /// Renames the layer node `id` is reported under (a fused node computes parts of two
    /// layers). Errors for a node that does not exist.
    pub fn relabel(&mut self, id: ValueId, label: impl Into<String>) -> Result<()> {
        let node = self
            .nodes
            .get_mut(id)
            .ok_or_else(|| Error::Graph(format!("no node {id} to relabel")))?;
        node.label = label.into();
        Ok(())
    }

    /// The parameters, in creation order: (value id, name, shape, init).
    pub fn params(&self) -> Vec<(ValueId, &str, &Shape, Init)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::Param { name, init } => Some((i, name.as_str(), &n.shape, *init)),
                _ => None,
            })
            .collect()
    }

    /// The buffers, in creation order: (value id, name, shape, init).
    pub fn buffers(&self) -> Vec<(ValueId, &str, &Shape, Init)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::Buffer { name, init } => Some((i, name.as_str(), &n.shape, *init)),
                _ => None,
            })
            .collect()
    }

    /// The value id of a named input.
    pub fn find_input(&self, name: &str) -> Option<ValueId> {
        self.nodes
            .iter()
            .position(|n| matches!(&n.kind, NodeKind::Input(s) if s == name))
    }
}
