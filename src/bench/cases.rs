//! The graphs the op benchmarks run: one product, one conv layer's forward or backward
//! steps, one softmax or norm. Every operand is a parameter (written once by
//! `init_model`), so a timed run moves no input and measures the kernels alone; the steps
//! come from the planner exactly as in training.

use super::shapes::{ConvLayer, Product};
use super::Group;
use crate::error::Result;
use crate::graph::{Graph, ValueId};
use crate::nn::{Init, Mode, Model};
use crate::op::{Channels, Nchw, Op};
use crate::shape::Shape;

/// A graph to time and what one run of it does.
pub struct Case {
    /// The suite it belongs to.
    pub group: Group,
    /// The op (or ops) it runs.
    pub name: String,
    /// Its shapes.
    pub shape: String,
    /// The graph; its parameters are the operands.
    pub graph: Graph,
    /// The values the plan computes.
    pub outputs: Vec<ValueId>,
    /// Floating-point operations per run, when the op has a meaningful count.
    pub flops: Option<f64>,
    /// Bytes that must move per run: every operand read once and every output written once.
    pub bytes: f64,
}

const F32: f64 = 4.0;

fn operand(g: &mut Graph, name: &str, dims: &[usize]) -> ValueId {
    g.param(name, Shape::new(dims), Init::Uniform { bound: 1.0 })
}

fn numel(g: &Graph, ids: &[ValueId]) -> f64 {
    ids.iter().map(|&v| g.shape(v).numel() as f64).sum()
}

/// Bytes of the graph's parameters (every operand) and of `outputs`.
fn traffic(g: &Graph, outputs: &[ValueId]) -> f64 {
    let operands: Vec<ValueId> = g.params().iter().map(|p| p.0).collect();
    F32 * (numel(g, &operands) + numel(g, outputs))
}

/// One matmul product; `context` says where its shape comes from.
pub fn matmul(p: Product, context: &str) -> Result<Case> {
    let mut g = Graph::new();
    let a_dims = if p.trans_a { [p.k, p.m] } else { [p.m, p.k] };
    let b_dims = if p.trans_b { [p.n, p.k] } else { [p.k, p.n] };
    let a = operand(&mut g, "a", &a_dims);
    let b = operand(&mut g, "b", &b_dims);
    let op = Op::MatMul {
        trans_a: p.trans_a,
        trans_b: p.trans_b,
    };
    let c = g.op(op, &[a, b])?;
    let bytes = traffic(&g, &[c]);
    let shape = if context.is_empty() {
        p.describe()
    } else {
        format!("{context} {}", p.describe())
    };
    Ok(Case {
        group: Group::Matmul,
        name: op.name(),
        shape,
        outputs: vec![c],
        graph: g,
        flops: Some(p.flops()),
        bytes,
    })
}

/// A square product n³.
pub fn square(n: usize) -> Result<Case> {
    let p = Product {
        m: n,
        n,
        k: n,
        trans_a: false,
        trans_b: false,
    };
    let mut c = matmul(p, "")?;
    c.shape = format!("{n}³");
    Ok(c)
}

fn describe_conv(layer: &ConvLayer) -> String {
    let g = &layer.geom;
    format!("{} on [{},{},{},{}]", layer.spec, g.n, g.c, g.h, g.w)
}

/// A conv layer's training forward, built by the model builder: im2col, the product with
/// the weight, the bias (fused into the product when measured, as training plans it), and
/// the rows-to-NCHW layout.
pub fn conv_forward(layer: &ConvLayer) -> Result<Case> {
    let geom = layer.geom;
    let model = Model::parse(&layer.spec)?;
    let mut g = Graph::new();
    let x = operand(&mut g, "x", &[geom.n, geom.c * geom.h * geom.w]);
    let built = model.build(&mut g, x, [geom.c, geom.h, geom.w], Mode::Train)?;
    let rows = geom.n * geom.oh() * geom.ow();
    let bytes = traffic(&g, &[built.output]);
    Ok(Case {
        group: Group::Conv,
        name: "conv forward".into(),
        shape: describe_conv(layer),
        outputs: vec![built.output],
        graph: g,
        flops: Some(2.0 * (rows * layer.out_channels * geom.patch()) as f64),
        bytes,
    })
}

/// A conv layer's training backward: the ops autodiff emits for it (`graph/autodiff.rs`),
/// from the output gradient and the layer's input: NCHW-to-rows, the bias gradient, the
/// weight gradient (the product with the im2col matrix, which fusion reads from the input
/// as training plans it) and, when the plan has it, the input gradient (product with the
/// weight, then col2im).
pub fn conv_backward(layer: &ConvLayer) -> Result<Case> {
    let geom = layer.geom;
    let (oc, patch) = (layer.out_channels, geom.patch());
    let rows = geom.n * geom.oh() * geom.ow();
    let d = Nchw {
        n: geom.n,
        c: oc,
        h: geom.oh(),
        w: geom.ow(),
    };
    let mut g = Graph::new();
    let dy = operand(&mut g, "dy", &[d.n, d.c, d.h, d.w]);
    let x = operand(&mut g, "x", &[geom.n, geom.c, geom.h, geom.w]);
    let cols = g.op(Op::Im2Col(geom), &[x])?;
    let drows = g.op(Op::NchwToRows(d), &[dy])?;
    let db = g.op(Op::BiasGrad, &[drows])?;
    let dw = g.op(
        Op::MatMul {
            trans_a: true,
            trans_b: false,
        },
        &[drows, cols],
    )?;
    let mut outputs = vec![db, dw];
    let mut flops = 2.0 * (oc * patch * rows) as f64;
    if layer.input_grad {
        let w = operand(&mut g, "w", &[oc, patch]);
        let dcols = g.op(
            Op::MatMul {
                trans_a: false,
                trans_b: false,
            },
            &[drows, w],
        )?;
        outputs.push(g.op(Op::Col2Im(geom), &[dcols])?);
        flops *= 2.0;
    }
    let bytes = traffic(&g, &outputs);
    Ok(Case {
        group: Group::Conv,
        name: if layer.input_grad {
            "conv backward (dw, db, dx)".into()
        } else {
            "conv backward (dw, db)".into()
        },
        shape: describe_conv(layer),
        outputs,
        graph: g,
        flops: Some(flops),
        bytes,
    })
}

/// A one-layer model (`softmax`, `layernorm(C)`, `batchnorm1d(C)`) in training mode over
/// [rows, cols], with its state updates (batch norm's running statistics).
fn layer(group: Group, name: &str, spec: &str, rows: usize, cols: usize) -> Result<Case> {
    let model = Model::parse(spec)?;
    let mut g = Graph::new();
    let x = operand(&mut g, "x", &[rows, cols]);
    let built = model.build(&mut g, x, [1, 1, cols], Mode::Train)?;
    let mut outputs = vec![built.output];
    outputs.extend(&built.updates);
    // In-place updates write the buffer they read: count the buffers once each way.
    let state: f64 = g.buffers().iter().map(|b| 2.0 * b.2.numel() as f64).sum();
    let bytes = traffic(&g, &[built.output]) + F32 * state;
    Ok(Case {
        group,
        name: name.into(),
        shape: format!("[{rows},{cols}]"),
        outputs,
        graph: g,
        flops: None,
        bytes,
    })
}

/// One gradient op over [rows, cols] with operands of the given shapes (`x`-like ones are
/// [rows, cols], per-column ones [cols]).
fn gradient(group: Group, op: Op, rows: usize, cols: usize, operands: &[Operand]) -> Result<Case> {
    let mut g = Graph::new();
    let mut ids = Vec::new();
    for (i, o) in operands.iter().enumerate() {
        let name = format!("in{i}");
        ids.push(match o {
            Operand::Full => operand(&mut g, &name, &[rows, cols]),
            Operand::PerColumn => operand(&mut g, &name, &[cols]),
        });
    }
    let out = g.op(op, &ids)?;
    let bytes = traffic(&g, &[out]);
    Ok(Case {
        group,
        name: op.name(),
        shape: format!("[{rows},{cols}]"),
        outputs: vec![out],
        graph: g,
        flops: None,
        bytes,
    })
}

/// The shape of a gradient op's operand.
enum Operand {
    Full,
    PerColumn,
}

/// Softmax over the last dimension of [rows, cols], forward and its gradient.
pub fn softmax(rows: usize, cols: usize) -> Result<Vec<Case>> {
    Ok(vec![
        layer(Group::Softmax, "softmax", "softmax", rows, cols)?,
        gradient(
            Group::Softmax,
            Op::SoftmaxGrad,
            rows,
            cols,
            &[Operand::Full, Operand::Full],
        )?,
    ])
}

/// Layer norm and batch norm (training mode: statistics, normalisation and the running
/// statistics' update, as the model builder emits them) over [rows, cols], forward and the
/// input gradient of each.
pub fn norms(rows: usize, cols: usize) -> Result<Vec<Case>> {
    let eps = 1e-5;
    let ch = Channels { c: cols, s: 1, eps };
    let bn = layer(
        Group::Norm,
        "batch_norm_train",
        &format!("batchnorm1d({cols})"),
        rows,
        cols,
    )?;
    Ok(vec![
        layer(
            Group::Norm,
            "layer_norm",
            &format!("layernorm({cols})"),
            rows,
            cols,
        )?,
        gradient(
            Group::Norm,
            Op::LayerNormGrad { eps },
            rows,
            cols,
            &[Operand::Full, Operand::PerColumn, Operand::Full],
        )?,
        bn,
        batch_norm_backward(ch, rows)?,
    ])
}

/// Batch norm's whole input gradient over [rows, C] as training plans run it: gamma's and
/// beta's gradients (whose sums it reads), the channels' coefficients, then dx.
fn batch_norm_backward(ch: Channels, rows: usize) -> Result<Case> {
    let cols = ch.c;
    let mut g = Graph::new();
    let x = operand(&mut g, "x", &[rows, cols]);
    // Means in [0.5, 1.5], variances too: valid statistics.
    let range = Init::UniformRange {
        low: 0.5,
        high: 1.5,
    };
    let stats = g.param("stats", Shape::new(&[2, cols]), range);
    let gamma = operand(&mut g, "gamma", &[cols]);
    let dy = operand(&mut g, "dy", &[rows, cols]);
    let dgamma = g.op(Op::BatchNormGammaGrad(ch), &[x, stats, dy])?;
    let dbeta = g.op(Op::ChannelSum(ch), &[dy])?;
    let coeffs = g.op(Op::BatchNormGradCoeffs(ch), &[stats, gamma, dgamma, dbeta])?;
    let out = g.op(Op::BatchNormGrad(ch), &[x, coeffs, dy])?;
    // x and dy are read twice (sums, then dx).
    let bytes = traffic(&g, &[out]) + F32 * 2.0 * (rows * cols) as f64;
    Ok(Case {
        group: Group::Norm,
        name: "batch_norm_grad".into(),
        shape: format!("[{rows},{cols}]"),
        outputs: vec![out],
        graph: g,
        flops: None,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::shapes::{conv_layers, training_plan};
    use super::*;
    use crate::graph::{fuse, ParamLayout, Plan};

    fn op_names(plan: &Plan, keep: impl Fn(&crate::graph::Step) -> bool) -> Vec<String> {
        let mut v: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.op.name())
            .collect();
        v.sort();
        v
    }

    /// The conv cases run the same ops as the conv layers of the real training plan.
    #[test]
    fn conv_cases_run_the_training_plans_ops() {
        let (graph, plan) = training_plan("cnn", 2).unwrap();
        for layer in conv_layers("cnn", 2).unwrap() {
            let quoted = format!("'{}'", layer.spec);
            let label = |s: &crate::graph::Step| graph.node(s.node).label.clone();
            let forward = op_names(&plan, |s| {
                let l = label(s);
                l.starts_with("layer") && l.ends_with(&quoted)
            });
            let backward = op_names(&plan, |s| {
                let l = label(s);
                l.starts_with("the backward pass of layer") && l.ends_with(&quoted)
            });
            for (case, want) in [
                (conv_forward(&layer).unwrap(), forward),
                (conv_backward(&layer).unwrap(), backward),
            ] {
                let layout = ParamLayout::of(&case.graph);
                // Fused as `Engine::measure` plans it.
                let mut graph = case.graph.clone();
                fuse(&mut graph, &case.outputs).unwrap();
                let p = Plan::build(&graph, &layout, &case.outputs, &[]).unwrap();
                assert!(!want.is_empty(), "{} {}", case.name, layer.spec);
                assert_eq!(op_names(&p, |_| true), want, "{} {}", case.name, layer.spec);
            }
        }
    }
}
