//! The planner: dead-code elimination, execution order, buffer liveness and reuse, and the
//! flat arenas every value lives in. A plan is data only; both backends execute it.

use std::collections::HashMap;

use super::placement::{Lifetimes, Placement};
use super::{autocast, Graph, NodeKind, ValueId};
use crate::error::{Error, Result};
use crate::op::Op;
use crate::precision::Precision;
use crate::shape::Shape;

/// Every slot starts on a multiple of this many f32 (256 bytes): the largest
/// `min_storage_buffer_offset_alignment` WebGPU allows, so each slot can be bound directly.
pub const ALIGN: usize = 64;

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Parameters of a model trained in f16 start on multiples of twice [`ALIGN`], so that
/// their f16 copies (at half the byte offset) are 256-byte aligned too.
const HALF_PARAM_ALIGN: usize = 2 * ALIGN;

/// The flat buffers values live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArenaKind {
    /// Trainable parameters (shared by every plan of a model).
    Params,
    /// Their gradients, at the same offsets as the parameters.
    Grads,
    /// Persistent non-trainable state (batch-norm running statistics).
    Buffers,
    /// Per-step inputs and constants of one plan.
    Inputs,
    /// Intermediate values of one plan, reused as their lifetimes end.
    Activations,
    /// The f16 copy of the parameters that f16 plans read weights from, at the same element
    /// offsets as [`ArenaKind::Params`] (half the byte offsets); the optimizer rewrites it.
    ParamsHalf,
    /// f16 intermediate values of one plan. They share the activation buffer: element
    /// `offset` is at byte `2·offset`, inside f32 room the planner reserved.
    ActivationsHalf,
}

impl ArenaKind {
    /// A dense index (0..5) for tables of arenas.
    pub fn index(self) -> usize {
        match self {
            ArenaKind::Params => 0,
            ArenaKind::Grads => 1,
            ArenaKind::Buffers => 2,
            ArenaKind::Inputs => 3,
            ArenaKind::Activations => 4,
            ArenaKind::ParamsHalf => 5,
            ArenaKind::ActivationsHalf => 6,
        }
    }

    /// Whether its elements are f16 (2 bytes) rather than f32.
    pub fn is_half(self) -> bool {
        matches!(self, ArenaKind::ParamsHalf | ArenaKind::ActivationsHalf)
    }

    /// Bytes per element.
    pub fn element_bytes(self) -> usize {
        if self.is_half() {
            2
        } else {
            4
        }
    }
}

/// Number of arena kinds ([`ArenaKind::index`] is below it).
pub const ARENA_KINDS: usize = 7;

/// Where a value lives: an arena and a range of elements (f32, or f16 in the half arenas).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// The arena.
    pub arena: ArenaKind,
    /// First element.
    pub offset: usize,
    /// Number of elements.
    pub len: usize,
}

impl Slot {
    /// Whether the two slots share an element (same arena, intersecting ranges).
    pub fn overlaps(&self, other: &Slot) -> bool {
        self.arena == other.arena
            && self.offset < other.offset + other.len
            && other.offset < self.offset + self.len
    }

    /// The element range in its arena.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }

    /// Where it starts in its buffer, in bytes.
    pub fn byte_offset(&self) -> usize {
        self.offset * self.arena.element_bytes()
    }

    /// Its size in bytes, at least 4 and rounded up to a multiple of 4 (WebGPU binds whole
    /// words).
    pub fn byte_len(&self) -> usize {
        (self.len.max(1) * self.arena.element_bytes()).next_multiple_of(4)
    }
}

/// One parameter's place in the parameter (and gradient) arena.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    /// Its PyTorch state_dict name.
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Its first element in the arena.
    pub offset: usize,
}

impl ParamEntry {
    /// Its slot in the given arena (`Params` or `Grads`).
    pub fn slot(&self, arena: ArenaKind) -> Slot {
        Slot {
            arena,
            offset: self.offset,
            len: self.shape.numel(),
        }
    }
}

/// The layout of the parameter arena, shared by the gradient arena and each optimizer
/// state buffer (so one dispatch updates everything with one index).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamLayout {
    /// The parameters in graph order.
    pub entries: Vec<ParamEntry>,
    /// The arena's length in f32, padding included.
    pub size: usize,
    /// The buffers (non-trainable state) in graph order, in their own arena.
    pub buffers: Vec<ParamEntry>,
    /// The buffer arena's length in f32, padding included.
    pub buffers_size: usize,
    /// The precision the model trains in; with f16, plans keep activations in f16 and read
    /// weights from an f16 copy of the parameters.
    pub precision: Precision,
}

impl ParamLayout {
    /// Fails unless arenas of `params` parameters and `buffers` buffer values fit this
    /// layout (what a backend checks before taking a model's values).
    pub fn check_arenas(&self, params: usize, buffers: usize) -> Result<()> {
        if params != self.size || buffers != self.buffers_size {
            return Err(Error::Graph(format!(
                "arenas of {params} parameters and {buffers} buffer values, layout needs {} and {}",
                self.size, self.buffers_size
            )));
        }
        Ok(())
    }

    /// Lays out the parameters and buffers of a graph in creation order.
    pub fn of(graph: &Graph) -> Self {
        Self::grouped(graph, &|_| false)
    }

    /// Lays out the parameters with those for which `tail` holds placed after all the
    /// others (each part in creation order), so that a parameter group such as "no weight
    /// decay" is one contiguous range ending the arena, starting at [`Self::tail_start`].
    pub fn grouped(graph: &Graph, tail: &dyn Fn(&str) -> bool) -> Self {
        Self::grouped_in(graph, tail, Precision::F32)
    }

    /// [`Self::grouped`] for a model trained in `precision`.
    pub fn grouped_in(graph: &Graph, tail: &dyn Fn(&str) -> bool, precision: Precision) -> Self {
        let param_align = if precision.is_half() {
            HALF_PARAM_ALIGN
        } else {
            ALIGN
        };
        let lay = |items: Vec<(ValueId, &str, &Shape, crate::nn::Init)>, unit: usize| {
            let mut entries = Vec::new();
            let mut size = 0;
            let (head, rest): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| !tail(i.1));
            for (_, name, shape, _) in head.into_iter().chain(rest) {
                entries.push(ParamEntry {
                    name: name.to_string(),
                    shape: shape.clone(),
                    offset: size,
                });
                size += shape.numel().div_ceil(unit) * unit;
            }
            (entries, size.max(unit))
        };
        let (entries, size) = lay(graph.params(), param_align);
        let (buffers, buffers_size) = lay(graph.buffers(), ALIGN);
        ParamLayout {
            entries,
            size,
            buffers,
            buffers_size,
            precision,
        }
    }

    /// The offset where the tail group of [`Self::grouped`] starts (the arena's size when
    /// it is empty).
    pub fn tail_start(&self, tail: &dyn Fn(&str) -> bool) -> usize {
        self.entries
            .iter()
            .filter(|e| tail(&e.name))
            .map(|e| e.offset)
            .min()
            .unwrap_or(self.size)
    }

    /// The entry of a named parameter.
    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Number of real (unpadded) parameter values.
    pub fn numel(&self) -> usize {
        self.entries.iter().map(|e| e.shape.numel()).sum()
    }
}

/// One kernel launch: an op, where its inputs are, where its output goes.
#[derive(Clone, Debug)]
pub struct Step {
    /// The op.
    pub op: Op,
    /// Input slots, in the op's order.
    pub inputs: Vec<Slot>,
    /// Input shapes, in the op's order.
    pub input_shapes: Vec<Shape>,
    /// The output slot (never overlapping an input).
    pub output: Slot,
    /// The output shape.
    pub shape: Shape,
    /// The graph node this step computes.
    pub node: ValueId,
}

/// An executable plan: steps in order over flat arenas.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Kernel launches in execution order.
    pub steps: Vec<Step>,
    /// Named inputs fed each step: (name, slot, shape).
    pub inputs: Vec<(String, Slot, Shape)>,
    /// Constants written once into the input arena.
    pub constants: Vec<(Slot, f32)>,
    /// Where each requested output ends up.
    pub outputs: Vec<(ValueId, Slot)>,
    /// Length of the input arena in f32.
    pub inputs_size: usize,
    /// Length of the activation arena in f32 (after reuse; f16 values take half an f32).
    pub activations_size: usize,
    /// The slot of the loss's seed gradient (a constant 1) when the plan differentiates a
    /// loss: with loss scaling the backend writes the scale there before each run.
    pub loss_seed: Option<Slot>,
}

impl Plan {
    /// Plans the nodes needed for `outputs` and for the gradients in `param_grads`
    /// (`(param, gradient)` pairs from [`super::gradients`]), which are written straight
    /// into the gradient arena at their parameter's offset.
    ///
    /// Activations share one arena: the plan is walked once to record when each value is
    /// written and last read, then the values are placed offline, largest first, each at
    /// the lowest offset free for its whole lifetime (or first fit in plan order, when
    /// that packs tighter), and the plan is built with those offsets.
    pub fn build(
        graph: &Graph,
        layout: &ParamLayout,
        outputs: &[ValueId],
        param_grads: &[(ValueId, ValueId)],
    ) -> Result<Plan> {
        let mut lifetimes = Lifetimes::default();
        Self::build_placed(graph, layout, outputs, param_grads, &mut lifetimes)?;
        let mut placed = lifetimes.place();
        Self::build_placed(graph, layout, outputs, param_grads, &mut placed)
    }

    /// [`Plan::build`] with activation offsets from `place`.
    fn build_placed(
        graph: &Graph,
        layout: &ParamLayout,
        outputs: &[ValueId],
        param_grads: &[(ValueId, ValueId)],
        free: &mut dyn Placement,
    ) -> Result<Plan> {
        let nodes = graph.nodes();
        // Entries are found by name: a layout may order its tensors differently from the
        // graph (parameter groups are laid out contiguously).
        let by_name = |items: Vec<(ValueId, &str, &Shape, crate::nn::Init)>,
                       entries: &'_ [ParamEntry]| {
            let mut map = HashMap::new();
            for (id, name, _, _) in items {
                if let Some(e) = entries.iter().find(|e| e.name == name) {
                    map.insert(id, e.clone());
                }
            }
            map
        };
        let param_slot: HashMap<ValueId, ParamEntry> = by_name(graph.params(), &layout.entries);
        let buffer_slot: HashMap<ValueId, ParamEntry> = by_name(graph.buffers(), &layout.buffers);
        let is_alias = |id: ValueId| matches!(nodes[id].kind, NodeKind::Op(Op::Reshape));

        // Which nodes are needed: a backwards sweep from the roots.
        let mut needed = vec![false; nodes.len()];
        for &r in outputs.iter().chain(param_grads.iter().map(|(_, g)| g)) {
            needed[r] = true;
        }
        for id in (0..nodes.len()).rev() {
            if needed[id] {
                for &i in &nodes[id].inputs {
                    needed[i] = true;
                }
                if let Some(t) = nodes[id].in_place {
                    needed[t] = true;
                }
            }
        }

        // Last use of each value, in node order; roots live to the end.
        let mut last_use = vec![0usize; nodes.len()];
        for (id, n) in nodes.iter().enumerate() {
            if needed[id] {
                for &i in &n.inputs {
                    last_use[i] = last_use[i].max(id);
                }
            }
        }
        for &r in outputs {
            last_use[r] = usize::MAX;
        }
        // A reshape shares its input's storage: the input lives as long as its views.
        for id in (0..nodes.len()).rev() {
            if needed[id] && is_alias(id) {
                let src = nodes[id].inputs[0];
                last_use[src] = last_use[src].max(last_use[id]);
            }
        }

        let mut pinned: HashMap<ValueId, Slot> = HashMap::new();
        for &(p, g) in param_grads {
            let entry = param_slot
                .get(&p)
                .ok_or_else(|| Error::Graph(format!("value {p} is not a parameter")))?;
            if pinned
                .insert(g, entry.slot(super::ArenaKind::Grads))
                .is_some()
            {
                return Err(Error::Graph(format!("gradient value {g} is pinned twice")));
            }
        }

        let half = layout.precision.is_half();
        // Values that must stay f32 although their op could write f16: parameter gradients
        // and what flows into them unchanged or summed (a weight's data and regularisation
        // gradients, the product a conv weight's gradient is a reshaped copy of).
        let mut keep_f32 = vec![false; nodes.len()];
        for &(_, g) in param_grads {
            keep_f32[g] = true;
        }
        for id in (0..nodes.len()).rev() {
            let passes_on = matches!(
                nodes[id].kind,
                NodeKind::Op(Op::Add | Op::Reshape | Op::Scale(_))
            );
            if keep_f32[id] && passes_on {
                for &i in &nodes[id].inputs {
                    keep_f32[i] = true;
                }
            }
        }
        let half_output = |id: ValueId, op: &Op| half && autocast::half_output(op) && !keep_f32[id];
        // Room a value takes in the activation arena, in f32 units.
        let room = |len: usize, in_half: bool| align(if in_half { len.div_ceil(2) } else { len });

        let mut slots: HashMap<ValueId, Slot> = HashMap::new();
        let mut inputs = Vec::new();
        let mut constants = Vec::new();
        let mut inputs_size = 0;
        let mut steps = Vec::new();

        for (id, n) in nodes.iter().enumerate() {
            if !needed[id] {
                continue;
            }
            let len = n.shape.numel();
            match &n.kind {
                NodeKind::Param { .. } => {
                    let e = param_slot
                        .get(&id)
                        .ok_or_else(|| Error::Graph(format!("parameter {id} not in layout")))?;
                    slots.insert(id, e.slot(ArenaKind::Params));
                }
                NodeKind::Buffer { .. } => {
                    let e = buffer_slot
                        .get(&id)
                        .ok_or_else(|| Error::Graph(format!("buffer {id} not in layout")))?;
                    slots.insert(id, e.slot(ArenaKind::Buffers));
                }
                NodeKind::Op(Op::Reshape) => {
                    let src = slots[&n.inputs[0]];
                    slots.insert(id, Slot { len, ..src });
                }
                NodeKind::Input(_) | NodeKind::Constant(_) => {
                    let slot = Slot {
                        arena: ArenaKind::Inputs,
                        offset: inputs_size,
                        len,
                    };
                    inputs_size += align(len);
                    slots.insert(id, slot);
                    match &n.kind {
                        NodeKind::Constant(v) => constants.push((slot, *v)),
                        NodeKind::Input(name) => inputs.push((name.clone(), slot, n.shape.clone())),
                        _ => {}
                    }
                }
                NodeKind::Op(op) => {
                    let output = match (pinned.get(&id), n.in_place) {
                        (Some(s), _) => *s,
                        (None, Some(target)) => slots[&target],
                        (None, None) if half_output(id, op) => Slot {
                            arena: ArenaKind::ActivationsHalf,
                            offset: 2 * free.alloc(room(len, true)),
                            len,
                        },
                        (None, None) => Slot {
                            arena: ArenaKind::Activations,
                            offset: free.alloc(room(len, false)),
                            len,
                        },
                    };
                    let in_slots: Vec<Slot> = n
                        .inputs
                        .iter()
                        .map(|i| {
                            let s = slots[i];
                            // f16 plans multiply by the optimizer's f16 copy of the weights.
                            if half
                                && s.arena == ArenaKind::Params
                                && autocast::reads_half_weights(op)
                            {
                                Slot {
                                    arena: ArenaKind::ParamsHalf,
                                    ..s
                                }
                            } else {
                                s
                            }
                        })
                        .collect();
                    steps.push(Step {
                        op: *op,
                        inputs: in_slots,
                        input_shapes: n.inputs.iter().map(|&i| nodes[i].shape.clone()).collect(),
                        output,
                        shape: n.shape.clone(),
                        node: id,
                    });
                    slots.insert(id, output);
                    // Inputs whose last reader is this step are free for later steps
                    // (after the output was placed, so an output never aliases an input).
                    let mut seen = Vec::new();
                    for &i in &n.inputs {
                        // A view is freed through the value that owns its storage.
                        let mut root = i;
                        while is_alias(root) {
                            root = nodes[root].inputs[0];
                        }
                        if last_use[root] == id && !seen.contains(&root) {
                            seen.push(root);
                            release(free, slots[&root]);
                        }
                    }
                    // A value nobody reads (and not a root) is freed at once.
                    if last_use[id] == 0 {
                        release(free, output);
                    }
                }
            }
        }

        let outputs = outputs.iter().map(|&o| (o, slots[&o])).collect();
        Ok(Plan {
            steps,
            inputs,
            constants,
            outputs,
            inputs_size: inputs_size.max(ALIGN),
            activations_size: free.size().max(ALIGN),
            loss_seed: graph.loss_seed().and_then(|s| slots.get(&s).copied()),
        })
    }

    /// The slot of a named input.
    pub fn input_slot(&self, name: &str) -> Option<Slot> {
        self.inputs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, _)| *s)
    }

    /// The slot of a requested output.
    pub fn output_slot(&self, value: ValueId) -> Option<Slot> {
        self.outputs
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, s)| *s)
    }
}

/// Returns an activation's room to the free list (values in other arenas are not planned).
fn release(free: &mut dyn Placement, s: Slot) {
    match s.arena {
        ArenaKind::Activations => free.release(s.offset, align(s.len)),
        ArenaKind::ActivationsHalf => free.release(s.offset / 2, align(s.len.div_ceil(2))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::placement::tests::assert_disjoint;
    use super::*;

    #[test]
    fn a_training_plan_is_placed_without_collisions_and_no_larger_than_first_fit() {
        let (graph, _) = crate::bench::shapes::training_plan("cnn", 4).unwrap();
        // Record the plan's lifetimes the way build does, then check both placements.
        let layout = ParamLayout::of(&graph);
        let mut l = Lifetimes::default();
        let roots: Vec<ValueId> = (0..graph.nodes().len())
            .filter(|&i| !graph.nodes().iter().any(|n| n.inputs.contains(&i)))
            .collect();
        Plan::build_placed(&graph, &layout, &roots, &[], &mut l).unwrap();
        assert!(l.allocs.len() > 20);
        let (greedy, first) = (l.greedy_by_size(), l.first_fit());
        assert_disjoint(&l, &greedy);
        assert_disjoint(&l, &first);
        let plan = Plan::build(&graph, &layout, &roots, &[]).unwrap();
        let first_size = first
            .iter()
            .zip(&l.allocs)
            .map(|(o, a)| o + a.0)
            .max()
            .unwrap();
        assert!(plan.activations_size <= first_size.max(ALIGN));
    }

    #[test]
    fn arenas_must_match_the_layout() {
        let (graph, _) = crate::bench::shapes::training_plan("cnn", 4).unwrap();
        let layout = ParamLayout::of(&graph);
        // The cnn's batch norms have running statistics, so both sizes are checked.
        assert!(layout.buffers_size > 0);
        assert!(layout
            .check_arenas(layout.size, layout.buffers_size)
            .is_ok());
        let err = layout.check_arenas(layout.size - 1, layout.buffers_size);
        assert!(err.unwrap_err().to_string().contains("layout needs"));
        assert!(layout
            .check_arenas(layout.size, layout.buffers_size + 1)
            .is_err());
    }
}
