//! What the benchmarks measure, read off the real training plans: the matmul products and
//! conv layers a preset's training step runs, and the FLOPs of a whole step.

use crate::error::Result;
use crate::graph::{fuse_for_plan, gradients, Graph, ParamLayout, Plan, Step};
use crate::nn::{Mode, Model};
use crate::op::{ConvGeom, Op};
use crate::train::{objective, TrainConfig};

/// A preset's training graph and plan at batch `batch`, built as the trainer builds it
/// (default configuration: cross-entropy, no penalties; bias adds and activations fused
/// into products).
pub fn training_plan(spec: &str, batch: usize) -> Result<(Graph, Plan)> {
    let model = Model::parse(spec)?;
    let config = TrainConfig::default();
    let fg = objective(
        &model,
        batch,
        config.sample,
        Mode::Train,
        config.loss,
        config.label_smoothing,
        config.penalty,
        &|_| true,
    )?;
    let mut graph = fg.graph;
    let grads = gradients(&mut graph, fg.total)?;
    let layout = ParamLayout::of(&graph);
    let mut outputs = vec![fg.loss, fg.correct];
    outputs.extend(&fg.updates);
    if config.fuse {
        fuse_for_plan(&mut graph, &outputs, &grads)?;
    }
    let plan = Plan::build(&graph, &layout, &outputs, &grads)?;
    Ok((graph, plan))
}

/// One matrix product: `op(a)·op(b)` with `op(a)` [m, k] and `op(b)` [k, n].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// Terms summed per result.
    pub k: usize,
    /// `a` is stored [k, m] and read transposed.
    pub trans_a: bool,
    /// `b` is stored [n, k] and read transposed.
    pub trans_b: bool,
}

impl Product {
    /// The product a plan step computes, when it is a matmul (with or without a fused
    /// bias and activation: the epilogue is not counted), or a convolution product, as
    /// the product with its im2col matrix.
    pub fn of_step(step: &Step) -> Option<Product> {
        match step.op {
            Op::ConvMatMul { geom, .. } => {
                return Some(Product {
                    m: geom.n * geom.oh() * geom.ow(),
                    n: *step.input_shapes.get(1)?.dims().first()?,
                    k: geom.patch(),
                    trans_a: false,
                    trans_b: true,
                })
            }
            Op::ConvWeightGrad(geom) => {
                return Some(Product {
                    m: *step.shape.dims().first()?,
                    n: geom.patch(),
                    k: geom.n * geom.oh() * geom.ow(),
                    trans_a: true,
                    trans_b: false,
                })
            }
            _ => {}
        }
        let (Op::MatMul { trans_a, trans_b }
        | Op::MatMulBias { trans_a, trans_b }
        | Op::MatMulBiasAct {
            trans_a, trans_b, ..
        }) = step.op
        else {
            return None;
        };
        let (a, b) = (step.input_shapes.first()?, step.input_shapes.get(1)?);
        let (m, k) = match (trans_a, a.dims()) {
            (false, &[m, k]) | (true, &[k, m]) => (m, k),
            _ => return None,
        };
        let n = match (trans_b, b.dims()) {
            (false, &[_, n]) | (true, &[n, _]) => n,
            _ => return None,
        };
        Some(Product {
            m,
            n,
            k,
            trans_a,
            trans_b,
        })
    }

    /// 2·m·n·k.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// The operands as stored, and the result: `[m,k]·[n,k]ᵀ`.
    pub fn describe(&self) -> String {
        let a = if self.trans_a {
            format!("[{},{}]ᵀ", self.k, self.m)
        } else {
            format!("[{},{}]", self.m, self.k)
        };
        let b = if self.trans_b {
            format!("[{},{}]ᵀ", self.n, self.k)
        } else {
            format!("[{},{}]", self.k, self.n)
        };
        format!("{a}·{b}")
    }
}

/// The distinct matmul products of a preset's training step at batch `batch`, in plan
/// order: each linear or conv layer's forward product and the backward ones autodiff emits.
pub fn training_products(spec: &str, batch: usize) -> Result<Vec<Product>> {
    let (_, plan) = training_plan(spec, batch)?;
    let mut out: Vec<Product> = Vec::new();
    for p in plan.steps.iter().filter_map(Product::of_step) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The sum of the matmul and convolution FLOPs of a preset's training step (the other ops
/// are memory-bound and not counted).
pub fn step_flops(spec: &str, batch: usize) -> Result<f64> {
    let (_, plan) = training_plan(spec, batch)?;
    Ok(plan
        .steps
        .iter()
        .filter_map(|s| {
            Product::of_step(s)
                .map(|p| p.flops())
                .or_else(|| grouped_flops(s))
        })
        .sum())
}

/// 2·N·OH·OW·OC·(C/G)·KH·KW for each of a grouped convolution's three ops (forward,
/// input and weight gradients), which are no matmul; `None` for other steps.
fn grouped_flops(step: &Step) -> Option<f64> {
    let (Op::GroupedConv(g) | Op::GroupedConvInputGrad(g) | Op::GroupedConvWeightGrad(g)) = step.op
    else {
        return None;
    };
    let oc = match step.op {
        Op::GroupedConv(_) => *step.input_shapes.get(1)?.dims().first()?,
        _ => *step.input_shapes.first()?.dims().get(1)?,
    };
    let c = g.conv;
    Some(2.0 * (c.n * c.oh() * c.ow()) as f64 * oc as f64 * g.group_patch() as f64)
}

/// A conv layer of a training step: its spec text, geometry, output channels, and whether
/// the step computes its input gradient (not for the first layer, whose input is data).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    /// The layer as written in the model spec, e.g. `conv2d(1,32,3,padding=1)`.
    pub spec: String,
    /// Its geometry at the plan's batch size.
    pub geom: ConvGeom,
    /// Output channels.
    pub out_channels: usize,
    /// Whether the training plan has its `col2im` (the input gradient).
    pub input_grad: bool,
}

/// The conv layers of a preset's training step at batch `batch`, in order.
pub fn conv_layers(spec: &str, batch: usize) -> Result<Vec<ConvLayer>> {
    let (graph, plan) = training_plan(spec, batch)?;
    let mut out = Vec::new();
    for step in &plan.steps {
        // The layer's im2col, or the product that reads its input as im2col (fused).
        let (Op::Im2Col(geom) | Op::ConvMatMul { geom, .. }) = step.op else {
            continue;
        };
        let label = &graph.node(step.node).label;
        // Forward nodes are labelled "layer i 'text'"; backward ones "backward".
        let Some(text) = label.split('\'').nth(1) else {
            continue;
        };
        let out_channels = plan
            .steps
            .iter()
            .find_map(|s| match s.op {
                Op::RowsToNchw(d) if graph.node(s.node).label == *label => Some(d.c),
                _ => None,
            })
            .unwrap_or(0);
        let input_grad = plan
            .steps
            .iter()
            .any(|s| matches!(s.op, Op::Col2Im(g) if g == geom));
        out.push(ConvLayer {
            spec: text.to_string(),
            geom,
            out_channels,
            input_grad,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_layers_count_their_three_ops() {
        // A depthwise layer (4 channels, multiplier 2, 3x3, 28x28 kept by padding) after a
        // dense one, so its input gradient is computed too.
        let spec = "conv2d(1,4,3,padding=1),relu,conv2d(4,8,3,padding=1,groups=4,bias=false),\
                    flatten,linear(6272,10)";
        let (_, plan) = training_plan(spec, 2).unwrap();
        let grouped: f64 = plan.steps.iter().filter_map(grouped_flops).sum();
        // 2 · N·OH·OW · OC · C/G·KH·KW per op, three ops.
        assert_eq!(grouped, 3.0 * 2.0 * (2.0 * 784.0) * 8.0 * 9.0);
        let dense_only = step_flops(spec, 2).unwrap() - grouped;
        assert!(dense_only > 0.0 && step_flops(spec, 2).unwrap() > grouped);
    }

    #[test]
    fn mlp_products_are_each_layers_forward_and_backward() {
        let p = training_products("mlp", 128).unwrap();
        // Three forward products, three weight gradients, two input gradients (the first
        // layer's input is data).
        assert_eq!(p.len(), 8, "{p:?}");
        let first = Product {
            m: 128,
            n: 256,
            k: 784,
            trans_a: false,
            trans_b: true,
        };
        assert_eq!(p[0], first);
        assert!(p.contains(&Product {
            m: 256,
            n: 784,
            k: 128,
            trans_a: true,
            trans_b: false
        }));
        assert_eq!(first.describe(), "[128,784]·[256,784]ᵀ");
    }

    #[test]
    fn cnn_conv_layers_come_from_the_plan() {
        let c = conv_layers("cnn", 8).unwrap();
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].spec, "conv2d(1,32,3,padding=1)");
        assert_eq!((c[0].geom.n, c[0].geom.h, c[0].out_channels), (8, 28, 32));
        assert!(!c[0].input_grad);
        assert_eq!((c[1].geom.c, c[1].geom.h, c[1].out_channels), (32, 14, 64));
        assert!(c[1].input_grad);
        // Forward and weight gradient of both conv layers and the second's input
        // gradient (the first's input is data), and the three products of each linear
        // layer.
        let conv = |g: &ConvGeom, oc: usize| 2.0 * (g.n * g.oh() * g.ow() * g.patch() * oc) as f64;
        let linear = |m: usize, n: usize, k: usize| 2.0 * (m * n * k) as f64;
        let want = 2.0 * conv(&c[0].geom, 32)
            + 3.0 * conv(&c[1].geom, 64)
            + 3.0 * linear(8, 128, 64 * 7 * 7)
            + 3.0 * linear(8, 10, 128);
        assert_eq!(step_flops("cnn", 8).unwrap(), want);
    }
}
