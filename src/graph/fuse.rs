//! Fusion of a bias add into the product before it: `BiasAdd(MatMul(a, b), bias)` becomes
//! one `MatMulBias(a, b, bias)`; then of an activation into that:
//! `Activation(MatMulBias(a, b, bias))` becomes one `MatMulBiasAct(a, b, bias)` for relu,
//! sigmoid and tanh, whose gradients read the activation's output, so that nothing reads
//! the pre-activation once the forward pass is done.
//!
//! Why: every linear and conv layer is a product followed by a bias add, and as two
//! dispatches the second re-reads and re-writes the whole product (on the CPU, a second
//! sweep over it). The fused kernel adds the bias in the product's epilogue, to the f32
//! accumulator before its one store, which in f32 gives the same bits as the two ops.
//!
//! Why a pass over the differentiated graph rather than a layer emitting the fused op:
//! autodiff keeps one small rule per op, and whether the product is needed on its own is
//! only known once the backward nodes exist (a rule could read it). So the trainer and the
//! benchmarks differentiate first, fuse, then plan; the product node is left without
//! readers and the planner's dead-code sweep drops it.

use super::{Graph, NodeKind, ValueId};
use crate::error::Result;
use crate::op::Op;

/// Every fusion kiln plans, in order: [`fuse_bias`], then [`fuse_activation`] (which
/// fuses into the products the first created), then [`fuse_im2col`] (which turns those
/// products into implicit-GEMM convolutions). What the trainer and the benchmarks run
/// after differentiation; returns the number of steps saved.
pub fn fuse(graph: &mut Graph, keep: &[ValueId]) -> Result<usize> {
    Ok(fuse_bias(graph, keep)? + fuse_activation(graph, keep)? + fuse_im2col(graph, keep)?)
}

/// [`fuse`] for a plan of `outputs` and parameter gradients `param_grads` (the arguments
/// [`Plan::build`](super::Plan::build) takes next), keeping every one of them.
pub fn fuse_for_plan(
    graph: &mut Graph,
    outputs: &[ValueId],
    param_grads: &[(ValueId, ValueId)],
) -> Result<usize> {
    let keep: Vec<ValueId> = outputs
        .iter()
        .copied()
        .chain(param_grads.iter().map(|g| g.1))
        .collect();
    fuse(graph, &keep)
}

/// How many nodes read each value (as an input or as the target of an in-place update).
fn readers(graph: &Graph) -> Vec<usize> {
    let mut readers = vec![0usize; graph.nodes().len()];
    for node in graph.nodes() {
        for &i in &node.inputs {
            readers[i] += 1;
        }
        if let Some(t) = node.in_place {
            readers[t] += 1;
        }
    }
    readers
}

/// Whether a node strictly between `first` and `last` updates in place the storage of
/// any of `values`: a fused node at `last`'s place reads them after such a write (say a
/// running statistic that is also an operand), where the node at `first` read them before.
fn overwritten_between(graph: &Graph, first: ValueId, last: ValueId, values: &[ValueId]) -> bool {
    let storages: Vec<ValueId> = values.iter().map(|&v| storage_of(graph, v)).collect();
    graph.nodes()[first + 1..last].iter().any(|n| {
        n.in_place
            .is_some_and(|t| storages.contains(&storage_of(graph, t)))
    })
}

/// Rewrites every `BiasAdd` whose input 0 is a `MatMul` read by nothing else (and not in
/// `keep`: the values the caller will plan as outputs or parameter gradients) into a
/// `MatMulBias` node with the same id, reading the product's operands and the bias.
/// Returns how many were fused; a graph without the pattern is left unchanged.
pub fn fuse_bias(graph: &mut Graph, keep: &[ValueId]) -> Result<usize> {
    let readers = readers(graph);
    let mut fused = 0;
    for id in 0..graph.nodes().len() {
        let node = graph.node(id);
        if node.kind != NodeKind::Op(Op::BiasAdd) || node.in_place.is_some() {
            continue;
        }
        let (product, bias) = (node.inputs[0], node.inputs[1]);
        let p = graph.node(product);
        let NodeKind::Op(Op::MatMul { trans_a, trans_b }) = p.kind else {
            continue;
        };
        if readers[product] != 1
            || p.in_place.is_some()
            || keep.contains(&product)
            || overwritten_between(graph, product, id, &p.inputs)
        {
            continue;
        }
        let inputs = [p.inputs[0], p.inputs[1], bias];
        graph.replace_op(id, Op::MatMulBias { trans_a, trans_b }, &inputs)?;
        fused += 1;
    }
    Ok(fused)
}

/// Rewrites every `Activation` of a kind whose gradient reads its output (relu, sigmoid,
/// tanh: [`Activation::grad_from_output`](crate::op::Activation::grad_from_output)) whose
/// input is a `MatMulBias` read by nothing else and not in `keep` into a `MatMulBiasAct`
/// node with the same id, reading the product's operands and bias; the pre-activation is
/// left without readers. The other kinds (leaky relu, gelu, silu, ..., mish) are left
/// alone: their gradients read the
/// pre-activation, which would then have to be stored anyway. Returns how many were fused.
pub fn fuse_activation(graph: &mut Graph, keep: &[ValueId]) -> Result<usize> {
    let readers = readers(graph);
    let mut fused = 0;
    for id in 0..graph.nodes().len() {
        let node = graph.node(id);
        let NodeKind::Op(Op::Activation(act)) = node.kind else {
            continue;
        };
        if !act.grad_from_output() || node.in_place.is_some() {
            continue;
        }
        let pre = node.inputs[0];
        let p = graph.node(pre);
        let node = node.clone();
        let NodeKind::Op(Op::MatMulBias { trans_a, trans_b }) = p.kind else {
            continue;
        };
        if readers[pre] != 1
            || p.in_place.is_some()
            || keep.contains(&pre)
            || overwritten_between(graph, pre, id, &p.inputs)
        {
            continue;
        }
        let inputs = p.inputs.clone();
        // Reported (`--detect-anomaly`) as both layers: a non-finite value may come from
        // the product's layer as well as from the activation's.
        let label = if p.label == node.label {
            p.label.clone()
        } else {
            format!("{} and {}", p.label, node.label)
        };
        let op = Op::MatMulBiasAct {
            trans_a,
            trans_b,
            act,
        };
        graph.replace_op(id, op, &inputs)?;
        graph.relabel(id, label)?;
        fused += 1;
    }
    Ok(fused)
}

/// The value whose storage `v` is: reshapes are views of their input in a plan, and an
/// in-place update's value is its target's storage.
fn storage_of(graph: &Graph, mut v: ValueId) -> ValueId {
    loop {
        let node = graph.node(v);
        v = match (node.in_place, &node.kind) {
            (Some(target), _) => target,
            (None, NodeKind::Op(Op::Reshape)) => node.inputs[0],
            _ => return v,
        };
    }
}

/// How a reader of an im2col matrix becomes an implicit-GEMM convolution product, or
/// `None` when it reads the matrix any other way.
fn conv_product(graph: &Graph, reader: ValueId, cols: ValueId) -> Option<(Op, Vec<ValueId>)> {
    let node = graph.node(reader);
    if node.in_place.is_some() {
        return None;
    }
    let NodeKind::Op(op) = node.kind else {
        return None;
    };
    let x = graph.node(cols).inputs[0];
    let NodeKind::Op(Op::Im2Col(geom)) = graph.node(cols).kind else {
        return None;
    };
    let ins = &node.inputs;
    let forward = |bias, act| {
        let mut inputs = vec![x, ins[1]];
        inputs.extend(ins.get(2));
        Some((Op::ConvMatMul { geom, bias, act }, inputs))
    };
    // The matrix as the first operand only (the forward product), or as the second only
    // (the weight gradient).
    let (as_a, as_b) = (ins[0] == cols, ins.get(1) == Some(&cols));
    match op {
        // The weight gradient: the output gradient read transposed times the matrix.
        Op::MatMul {
            trans_a: true,
            trans_b: false,
        } if as_b && !as_a => Some((Op::ConvWeightGrad(geom), vec![ins[0], x])),
        _ if !as_a || as_b => None,
        // The layer's forward product: the matrix times the weight read transposed.
        Op::MatMul {
            trans_a: false,
            trans_b: true,
        } => forward(false, None),
        Op::MatMulBias {
            trans_a: false,
            trans_b: true,
        } => forward(true, None),
        Op::MatMulBiasAct {
            trans_a: false,
            trans_b: true,
            act,
        } => forward(true, Some(act)),
        _ => None,
    }
}

/// Rewrites the readers of every `Im2Col` matrix (not in `keep`) into implicit-GEMM
/// convolution products that read the image instead (`Op::ConvMatMul` for the layer's
/// forward product, with its fused bias and activation, `Op::ConvWeightGrad` for the
/// weight gradient), when every reader is one of those two and nothing updates the image
/// in place before the last of them: the matrix is then never written. Each reader keeps
/// its id; the `Im2Col` node is left without readers. Returns how many matrices were
/// removed.
///
/// Why: the im2col matrix is C·KH·KW times the image (9× for a 3×3 kernel) and, as the
/// weight gradient reads it, lives in the activation arena from the forward pass to the
/// backward pass; the products gather its entries from the image while staging their
/// tiles instead. The input gradient (the product with the weight, then `Col2Im`) does
/// not read the matrix and is left as it is.
pub fn fuse_im2col(graph: &mut Graph, keep: &[ValueId]) -> Result<usize> {
    let mut readers_of: Vec<Vec<ValueId>> = vec![Vec::new(); graph.nodes().len()];
    for (id, node) in graph.nodes().iter().enumerate() {
        for &i in node.inputs.iter().chain(node.in_place.iter()) {
            if readers_of[i].last() != Some(&id) {
                readers_of[i].push(id);
            }
        }
    }
    let mut fused = 0;
    for (cols, readers) in readers_of.iter().enumerate() {
        let node = graph.node(cols);
        if !matches!(node.kind, NodeKind::Op(Op::Im2Col(_)))
            || node.in_place.is_some()
            || keep.contains(&cols)
            || readers.is_empty()
        {
            continue;
        }
        let image = node.inputs[0];
        let Some(rewrites) = readers
            .iter()
            .map(|&r| conv_product(graph, r, cols).map(|(op, ins)| (r, op, ins)))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        // The products read the image where they stand; it must still hold what Im2Col
        // read there.
        let last = readers.iter().copied().max().unwrap_or(cols);
        if overwritten_between(graph, cols, last, &[image]) {
            continue;
        }
        for (reader, op, inputs) in rewrites {
            graph.replace_op(reader, op, &inputs)?;
        }
        fused += 1;
    }
    Ok(fused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{gradients, interpret, ParamLayout, Plan};
    use crate::nn::Init;
    use crate::op::{Activation, ConvGeom};
    use crate::rng::StepRng;
    use crate::shape::Shape;

    /// x [4, 3] · w [5, 3]ᵀ + b [5] → relu → mean, differentiated.
    fn linear() -> (Graph, Vec<ValueId>, Vec<(ValueId, ValueId)>, ValueId) {
        let (g, outputs, grads, y, _) = linear_with(Activation::Relu);
        (g, outputs, grads, y)
    }

    /// x [4, 3] · w [5, 3]ᵀ + b [5] → `act` → mean, differentiated; also returns the
    /// pre-activation `y` and the activation `h`.
    fn linear_with(
        act: Activation,
    ) -> (
        Graph,
        Vec<ValueId>,
        Vec<(ValueId, ValueId)>,
        ValueId,
        ValueId,
    ) {
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[4, 3]));
        let w = g.param("w", Shape::new(&[5, 3]), Init::Uniform { bound: 1.0 });
        let b = g.param("b", Shape::new(&[5]), Init::Uniform { bound: 1.0 });
        let mm = Op::MatMul {
            trans_a: false,
            trans_b: true,
        };
        let y = g.op(mm, &[x, w]).unwrap();
        let y = g.op(Op::BiasAdd, &[y, b]).unwrap();
        let h = g.op(Op::Activation(act), &[y]).unwrap();
        let loss = g.op(Op::Mean, &[h]).unwrap();
        let grads = gradients(&mut g, loss).unwrap();
        (g, vec![loss], grads, y, h)
    }

    fn keep(outputs: &[ValueId], grads: &[(ValueId, ValueId)]) -> Vec<ValueId> {
        outputs
            .iter()
            .copied()
            .chain(grads.iter().map(|g| g.1))
            .collect()
    }

    #[test]
    fn a_product_read_only_by_its_bias_add_is_fused_and_planned_once() {
        let (mut g, outputs, grads, y) = linear();
        let layout = ParamLayout::of(&g);
        let before = Plan::build(&g, &layout, &outputs, &grads).unwrap();
        assert_eq!(fuse_bias(&mut g, &keep(&outputs, &grads)).unwrap(), 1);
        assert_eq!(
            g.node(y).kind,
            NodeKind::Op(Op::MatMulBias {
                trans_a: false,
                trans_b: true
            })
        );
        let after = Plan::build(&g, &layout, &outputs, &grads).unwrap();
        assert_eq!(after.steps.len() + 1, before.steps.len());
        assert!(after.steps.iter().all(|s| s.op != Op::BiasAdd));
        // The same values, in f64 through the reference kernels.
        let (plain, _, _, _) = linear();
        let feed = |id: ValueId| -> Option<Vec<f64>> {
            let n = g.shape(id).numel();
            Some((0..n).map(|i| ((i * 7 + id) as f64 * 0.37).sin()).collect())
        };
        let rng = StepRng::default();
        let fused = interpret(&g, &feed, &rng).unwrap();
        let unfused = interpret(&plain, &feed, &rng).unwrap();
        assert_eq!(fused[y], unfused[y]);
        // Fusing again finds nothing.
        assert_eq!(fuse_bias(&mut g, &[]).unwrap(), 0);
    }

    #[test]
    fn a_product_read_elsewhere_or_kept_is_not_fused() {
        let (mut g, outputs, grads, y) = linear();
        let product = g.node(y).inputs[0];
        // Kept as an output.
        let mut kept = keep(&outputs, &grads);
        kept.push(product);
        assert_eq!(fuse_bias(&mut g, &kept).unwrap(), 0);
        // Read by a second node.
        g.op(Op::Sum, &[product]).unwrap();
        assert_eq!(fuse_bias(&mut g, &keep(&outputs, &grads)).unwrap(), 0);
        assert_eq!(g.node(y).kind, NodeKind::Op(Op::BiasAdd));
    }

    /// A product whose operand is updated in place between it and its bias add keeps
    /// reading the value before the update: fusing would read it after.
    #[test]
    fn an_in_place_write_between_product_and_bias_add_blocks_fusion() {
        let mut g = Graph::new();
        let x = g.input("x", Shape::new(&[4, 2]));
        let running = g.buffer("running", Shape::new(&[2, 2]), Init::RunningStats);
        let b = g.param("b", Shape::new(&[2]), Init::Uniform { bound: 1.0 });
        let mm = Op::MatMul {
            trans_a: false,
            trans_b: false,
        };
        let product = g.op(mm, &[x, running]).unwrap();
        let stats = g.input("stats", Shape::new(&[2, 2]));
        let update = Op::BatchNormRunning {
            c: 2,
            momentum: 0.1,
            count: 4,
        };
        let updated = g.op_in_place(update, &[stats], running).unwrap();
        let y = g.op(Op::BiasAdd, &[product, b]).unwrap();
        assert_eq!(fuse(&mut g, &[y, updated]).unwrap(), 0);
        assert_eq!(g.node(y).kind, NodeKind::Op(Op::BiasAdd));
    }

    #[test]
    fn an_activation_reading_its_output_is_fused_into_the_biased_product() {
        for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
            let (mut g, outputs, grads, _, h) = linear_with(act);
            let layout = ParamLayout::of(&g);
            let before = Plan::build(&g, &layout, &outputs, &grads).unwrap();
            assert_eq!(fuse(&mut g, &keep(&outputs, &grads)).unwrap(), 2, "{act:?}");
            let want = Op::MatMulBiasAct {
                trans_a: false,
                trans_b: true,
                act,
            };
            assert_eq!(g.node(h).kind, NodeKind::Op(want));
            let after = Plan::build(&g, &layout, &outputs, &grads).unwrap();
            assert_eq!(after.steps.len() + 2, before.steps.len(), "{act:?}");
            assert!(after.steps.iter().all(|s| s.op != Op::Activation(act)));
            // The pre-activation is not computed at all.
            assert!(after
                .steps
                .iter()
                .all(|s| !matches!(s.op, Op::MatMulBias { .. })));
            // The same values and gradients, in f64 through the reference kernels.
            let (plain, _, _, _, _) = linear_with(act);
            let feed = |id: ValueId| -> Option<Vec<f64>> {
                let n = g.shape(id).numel();
                Some((0..n).map(|i| ((i * 7 + id) as f64 * 0.37).sin()).collect())
            };
            let rng = StepRng::default();
            let a = interpret(&g, &feed, &rng).unwrap();
            let b = interpret(&plain, &feed, &rng).unwrap();
            assert_eq!(a[h], b[h], "{act:?}");
            for &(_, grad) in &grads {
                assert_eq!(a[grad], b[grad], "{act:?}");
            }
            assert_eq!(fuse(&mut g, &[]).unwrap(), 0);
        }
    }

    #[test]
    fn activations_reading_their_input_or_a_read_pre_activation_are_not_fused() {
        for act in [Activation::LeakyRelu(0.1), Activation::Gelu] {
            let (mut g, outputs, grads, _, h) = linear_with(act);
            assert_eq!(fuse(&mut g, &keep(&outputs, &grads)).unwrap(), 1, "{act:?}");
            assert_eq!(g.node(h).kind, NodeKind::Op(Op::Activation(act)));
        }
        let (mut g, outputs, grads, y, h) = linear_with(Activation::Tanh);
        let mut kept = keep(&outputs, &grads);
        kept.push(y);
        assert_eq!(fuse(&mut g, &kept).unwrap(), 1);
        assert_eq!(
            g.node(h).kind,
            NodeKind::Op(Op::Activation(Activation::Tanh))
        );
        g.op(Op::Sum, &[y]).unwrap();
        assert_eq!(fuse_activation(&mut g, &keep(&outputs, &grads)).unwrap(), 0);
    }

    /// x [2, 3, 6, 6] → conv 3×3 (stride 2, padding 1, 4 channels, bias) → relu → mean,
    /// differentiated with respect to the input too (so the input gradient is planned).
    fn conv() -> (Graph, Vec<ValueId>, Vec<(ValueId, ValueId)>, ConvGeom) {
        let mut g = Graph::new();
        let geom = ConvGeom {
            n: 2,
            c: 3,
            h: 6,
            w: 6,
            kh: 3,
            kw: 3,
            sh: 2,
            sw: 2,
            ph: 1,
            pw: 1,
            dh: 1,
            dw: 1,
        };
        let x = g.param("x", Shape::new(&[2, 3, 6, 6]), Init::Uniform { bound: 1.0 });
        let w = g.param("w", Shape::new(&[4, 27]), Init::Uniform { bound: 1.0 });
        let b = g.param("b", Shape::new(&[4]), Init::Uniform { bound: 1.0 });
        let cols = g.op(Op::Im2Col(geom), &[x]).unwrap();
        let mm = Op::MatMul {
            trans_a: false,
            trans_b: true,
        };
        let y = g.op(mm, &[cols, w]).unwrap();
        let y = g.op(Op::BiasAdd, &[y, b]).unwrap();
        let h = g.op(Op::Activation(Activation::Relu), &[y]).unwrap();
        let loss = g.op(Op::Mean, &[h]).unwrap();
        let grads = gradients(&mut g, loss).unwrap();
        (g, vec![loss, h], grads, geom)
    }

    fn feed(g: &Graph) -> impl Fn(ValueId) -> Option<Vec<f64>> + '_ {
        |id: ValueId| {
            let n = g.shape(id).numel();
            Some((0..n).map(|i| ((i * 7 + id) as f64 * 0.37).sin()).collect())
        }
    }

    #[test]
    fn conv_products_read_the_image_and_give_the_same_values() {
        let (mut g, outputs, grads, geom) = conv();
        let (plain, _, _, _) = conv();
        let layout = ParamLayout::of(&g);
        let before = Plan::build(&g, &layout, &outputs, &grads).unwrap();
        // The bias, the relu, then the matrix.
        assert_eq!(fuse(&mut g, &keep(&outputs, &grads)).unwrap(), 3);
        let after = Plan::build(&g, &layout, &outputs, &grads).unwrap();
        assert_eq!(after.steps.len() + 3, before.steps.len());
        let ops: Vec<Op> = after.steps.iter().map(|s| s.op).collect();
        assert!(ops.iter().all(|op| !matches!(op, Op::Im2Col(_))), "{ops:?}");
        let forward = Op::ConvMatMul {
            geom,
            bias: true,
            act: Some(Activation::Relu),
        };
        assert!(ops.contains(&forward), "{ops:?}");
        assert!(ops.contains(&Op::ConvWeightGrad(geom)), "{ops:?}");
        assert!(ops.contains(&Op::Col2Im(geom)), "{ops:?}");
        // The matrix ([2·3·3, 27] floats) is not in the activation arena any more.
        assert!(after.activations_size + 18 * 27 <= before.activations_size);
        // The same values and gradients, in f64 through the reference kernels.
        let rng = StepRng::default();
        let a = interpret(&g, &feed(&g), &rng).unwrap();
        let b = interpret(&plain, &feed(&plain), &rng).unwrap();
        for &v in outputs.iter().chain(grads.iter().map(|(_, d)| d)) {
            assert_eq!(a[v], b[v], "value {v}");
        }
        assert_eq!(fuse(&mut g, &[]).unwrap(), 0);
    }

    #[test]
    fn a_matrix_read_otherwise_or_kept_is_left_alone() {
        let (mut g, outputs, grads, _) = conv();
        let cols = (0..g.nodes().len())
            .find(|&i| matches!(g.node(i).kind, NodeKind::Op(Op::Im2Col(_))))
            .unwrap();
        let mut kept = keep(&outputs, &grads);
        kept.push(cols);
        assert_eq!(fuse_im2col(&mut g, &kept).unwrap(), 0);
        g.op(Op::Sum, &[cols]).unwrap();
        assert_eq!(fuse_im2col(&mut g, &keep(&outputs, &grads)).unwrap(), 0);
        assert_eq!(
            fuse_bias(&mut g, &keep(&outputs, &grads)).unwrap(),
            1,
            "the bias still fuses"
        );
    }

    /// The products would read the image after an in-place update that Im2Col read
    /// before: a buffer seen through a reshape, updated between the two.
    #[test]
    fn an_in_place_write_to_the_image_blocks_the_fusion() {
        for update_between in [true, false] {
            let mut g = Graph::new();
            let running = g.buffer("running", Shape::new(&[2, 2]), Init::RunningStats);
            let image = g.reshape(running, Shape::new(&[1, 1, 2, 2])).unwrap();
            let geom = ConvGeom {
                n: 1,
                c: 1,
                h: 2,
                w: 2,
                kh: 1,
                kw: 1,
                sh: 1,
                sw: 1,
                ph: 0,
                pw: 0,
                dh: 1,
                dw: 1,
            };
            let cols = g.op(Op::Im2Col(geom), &[image]).unwrap();
            let w = g.param("w", Shape::new(&[3, 1]), Init::Uniform { bound: 1.0 });
            let stats = g.input("stats", Shape::new(&[2, 2]));
            let update = Op::BatchNormRunning {
                c: 2,
                momentum: 0.1,
                count: 4,
            };
            let mut keep = Vec::new();
            if update_between {
                keep.push(g.op_in_place(update, &[stats], running).unwrap());
            }
            let mm = Op::MatMul {
                trans_a: false,
                trans_b: true,
            };
            let y = g.op(mm, &[cols, w]).unwrap();
            if !update_between {
                keep.push(g.op_in_place(update, &[stats], running).unwrap());
            }
            keep.push(y);
            let fused = fuse_im2col(&mut g, &keep).unwrap();
            assert_eq!(fused, usize::from(!update_between));
        }
    }
}
