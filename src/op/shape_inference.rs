//! Shape inference: each op's output shape from its input shapes, with errors that name
//! the op and the mismatch.

use super::{AdaptiveGeom, Channels, ConvGeom, GroupGeom, Op, PoolGeom};
use crate::error::{Error, Result};
use crate::shape::Shape;

impl Op {
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
            Op::MatMulBiasAct { act, .. } if !act.grad_from_output() => Err(Error::Unsupported(
                format!("{}: only relu, sigmoid and tanh are fused", self.name()),
            )),
            Op::MatMul { trans_a, trans_b }
            | Op::MatMulBias { trans_a, trans_b }
            | Op::MatMulBiasAct {
                trans_a, trans_b, ..
            } => {
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
                if let Some(bias) = inputs.get(2) {
                    if bias.rank() != 1 || bias.0[0] != n {
                        return mismatch(format!("bias {bias} does not match the {n} columns"));
                    }
                }
                Ok(Shape::new(&[m, n]))
            }
            Op::ConvMatMul {
                act: Some(_),
                bias: false,
                ..
            } => Err(Error::Unsupported(format!(
                "{}: an activation is fused only after a bias",
                self.name()
            ))),
            Op::ConvMatMul { act: Some(a), .. } if !a.grad_from_output() => {
                Err(Error::Unsupported(format!(
                    "{}: only relu, sigmoid and tanh are fused",
                    self.name()
                )))
            }
            Op::ConvMatMul { geom: g, .. } => {
                check_conv(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                let w = inputs[1];
                if w.rank() != 2 || w.0[1] != g.patch() {
                    return mismatch(format!(
                        "weight {w} is not [out_channels, {}] (C·KH·KW)",
                        g.patch()
                    ));
                }
                let oc = w.0[0];
                if let Some(bias) = inputs.get(2) {
                    if bias.rank() != 1 || bias.0[0] != oc {
                        return mismatch(format!("bias {bias} does not match the {oc} channels"));
                    }
                }
                Ok(Shape::new(&[g.n * g.oh() * g.ow(), oc]))
            }
            Op::GroupedConv(gg) => {
                let g = &gg.conv;
                check_groups(self, gg)?;
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                let w = inputs[1];
                if w.rank() != 2 || w.0[1] != gg.group_patch() || !w.0[0].is_multiple_of(gg.groups)
                {
                    return mismatch(format!(
                        "weight {w} is not [out_channels, {}] (C/groups·KH·KW) with out_channels \
                         a multiple of {} groups",
                        gg.group_patch(),
                        gg.groups
                    ));
                }
                Ok(Shape::new(&[g.n * g.oh() * g.ow(), w.0[0]]))
            }
            Op::GroupedConvInputGrad(gg) | Op::GroupedConvWeightGrad(gg) => {
                let g = &gg.conv;
                check_groups(self, gg)?;
                let dy = inputs[0];
                let rows = g.n * g.oh() * g.ow();
                if dy.rank() != 2 || dy.0[0] != rows || !dy.0[1].is_multiple_of(gg.groups) {
                    return mismatch(format!(
                        "output gradient {dy} is not [{rows}, out_channels] (N·OH·OW, a \
                         multiple of {} groups)",
                        gg.groups
                    ));
                }
                if let Op::GroupedConvWeightGrad(_) = self {
                    expect_numel(self, inputs[1], g.n * g.c * g.h * g.w)?;
                    return Ok(Shape::new(&[dy.0[1], gg.group_patch()]));
                }
                let w = inputs[1];
                if w.rank() != 2 || w.0 != [dy.0[1], gg.group_patch()] {
                    return mismatch(format!(
                        "weight {w} is not [{}, {}]",
                        dy.0[1],
                        gg.group_patch()
                    ));
                }
                Ok(Shape::new(&[g.n, g.c, g.h, g.w]))
            }
            Op::ConvWeightGrad(g) => {
                check_conv(self, g)?;
                let dy = inputs[0];
                if dy.rank() != 2 || dy.0[0] != g.n * g.oh() * g.ow() {
                    return mismatch(format!(
                        "output gradient {dy} is not [{}, out_channels] (N·OH·OW)",
                        g.n * g.oh() * g.ow()
                    ));
                }
                expect_numel(self, inputs[1], g.n * g.c * g.h * g.w)?;
                Ok(Shape::new(&[dy.0[1], g.patch()]))
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
            Op::Scale(_) | Op::Activation(_) | Op::Softmax | Op::LogSoftmax => {
                Ok(inputs[0].clone())
            }
            Op::ActivationGradFromOutput(a) if !a.grad_from_output() => {
                Err(Error::Unsupported(format!(
                    "{}: the gradient of {} needs its input, not its output",
                    self.name(),
                    a.name()
                )))
            }
            Op::ActivationGrad(_)
            | Op::ActivationGradFromOutput(_)
            | Op::SoftmaxGrad
            | Op::LogSoftmaxGrad => {
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
            Op::Mse
            | Op::MseGrad
            | Op::BceWithLogits
            | Op::BceWithLogitsGrad
            | Op::L1
            | Op::L1Grad
            | Op::SmoothL1 { .. }
            | Op::SmoothL1Grad { .. }
            | Op::Huber { .. }
            | Op::HuberGrad { .. } => {
                check_threshold(self)?;
                if inputs[0].numel() != inputs[1].numel() {
                    return mismatch(format!("prediction {} vs target {}", inputs[0], inputs[1]));
                }
                Ok(if self.arity() == 2 {
                    Shape::scalar()
                } else {
                    inputs[0].clone()
                })
            }
            Op::Sum | Op::Mean | Op::SumSquares | Op::SumAbs => Ok(Shape::scalar()),
            Op::SumSquaresGrad | Op::SumAbsGrad => {
                expect_numel(self, inputs[1], 1)?;
                Ok(inputs[0].clone())
            }
            Op::Broadcast(_) => target
                .cloned()
                .ok_or_else(|| Error::Graph("broadcast needs a target shape".into())),
            Op::Argmax => {
                if inputs[0].rank() != 2 {
                    return mismatch(format!("argmax takes [B, C], got {}", inputs[0]));
                }
                Ok(Shape::new(&[inputs[0].0[0]]))
            }
            Op::Reshape => {
                let t =
                    target.ok_or_else(|| Error::Graph("reshape needs a target shape".into()))?;
                if t.numel() != inputs[0].numel() {
                    return mismatch(format!("cannot view {} as {t}", inputs[0]));
                }
                Ok(t.clone())
            }
            Op::Im2Col(g) => {
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                check_conv(self, g)?;
                Ok(Shape::new(&[g.n * g.oh() * g.ow(), g.patch()]))
            }
            Op::Col2Im(g) => {
                expect_numel(self, inputs[0], g.n * g.oh() * g.ow() * g.patch())?;
                Ok(Shape::new(&[g.n, g.c, g.h, g.w]))
            }
            Op::RowsToNchw(d) => {
                expect_numel(self, inputs[0], d.n * d.c * d.h * d.w)?;
                Ok(Shape::new(&[d.n, d.c, d.h, d.w]))
            }
            Op::NchwToRows(d) => {
                expect_numel(self, inputs[0], d.n * d.c * d.h * d.w)?;
                Ok(Shape::new(&[d.n * d.h * d.w, d.c]))
            }
            Op::MaxPool(g) | Op::AvgPool(g) => {
                check_window(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                Ok(Shape::new(&[g.n, g.c, g.oh(), g.ow()]))
            }
            Op::MaxPoolGrad(g) => {
                check_window(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                expect_numel(self, inputs[1], g.n * g.c * g.oh() * g.ow())?;
                Ok(inputs[0].clone())
            }
            Op::AdaptiveAvgPool(g) | Op::AdaptiveMaxPool(g) => {
                check_adaptive(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                Ok(Shape::new(&[g.n, g.c, g.oh, g.ow]))
            }
            Op::AdaptiveAvgPoolGrad(g) => {
                check_adaptive(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.oh * g.ow)?;
                Ok(Shape::new(&[g.n, g.c, g.h, g.w]))
            }
            Op::AdaptiveMaxPoolGrad(g) => {
                check_adaptive(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.h * g.w)?;
                expect_numel(self, inputs[1], g.n * g.c * g.oh * g.ow)?;
                Ok(Shape::new(&[g.n, g.c, g.h, g.w]))
            }
            Op::AvgPoolGrad(g) => {
                check_window(self, g)?;
                expect_numel(self, inputs[0], g.n * g.c * g.oh() * g.ow())?;
                Ok(Shape::new(&[g.n, g.c, g.h, g.w]))
            }
            Op::BatchNormStats(ch) => {
                check_channels(self, inputs[0], ch)?;
                Ok(Shape::new(&[2, ch.c]))
            }
            Op::BatchNormApply(ch) => {
                check_channels(self, inputs[0], ch)?;
                expect_numel(self, inputs[1], 2 * ch.c)?;
                expect_numel(self, inputs[2], ch.c)?;
                expect_numel(self, inputs[3], ch.c)?;
                Ok(inputs[0].clone())
            }
            Op::BatchNormGradCoeffs(ch) => {
                expect_numel(self, inputs[0], 2 * ch.c)?;
                for sum in &inputs[1..4] {
                    expect_numel(self, sum, ch.c)?;
                }
                Ok(Shape::new(&[5, ch.c]))
            }
            Op::BatchNormGrad(ch) => {
                check_channels(self, inputs[0], ch)?;
                expect_numel(self, inputs[1], 5 * ch.c)?;
                expect_numel(self, inputs[2], inputs[0].numel())?;
                Ok(inputs[0].clone())
            }
            Op::BatchNormGammaGrad(ch) => {
                check_channels(self, inputs[0], ch)?;
                expect_numel(self, inputs[1], 2 * ch.c)?;
                expect_numel(self, inputs[2], inputs[0].numel())?;
                Ok(Shape::new(&[ch.c]))
            }
            Op::ChannelSum(ch) => {
                check_channels(self, inputs[0], ch)?;
                Ok(Shape::new(&[ch.c]))
            }
            Op::PRelu(ch) | Op::PReluWeightTerms(ch) => {
                check_channels(self, inputs[0], ch)?;
                if matches!(self, Op::PRelu(_)) {
                    expect_numel(self, inputs[1], ch.c)?;
                } else {
                    expect_numel(self, inputs[1], inputs[0].numel())?;
                }
                Ok(inputs[0].clone())
            }
            Op::PReluGrad(ch) => {
                check_channels(self, inputs[0], ch)?;
                expect_numel(self, inputs[1], ch.c)?;
                expect_numel(self, inputs[2], inputs[0].numel())?;
                Ok(inputs[0].clone())
            }
            Op::ChannelAffine(ch) => {
                check_channels(self, inputs[0], ch)?;
                expect_numel(self, inputs[1], ch.c)?;
                expect_numel(self, inputs[2], ch.c)?;
                Ok(inputs[0].clone())
            }
            Op::BatchNormRunning { c, .. } => {
                expect_numel(self, inputs[0], 2 * c)?;
                Ok(Shape::new(&[2, *c]))
            }
            Op::LayerNorm { .. } | Op::LayerNormGrad { .. } => {
                let cols = inputs[0].last();
                expect_numel(self, inputs[1], cols)?;
                let third = if matches!(self, Op::LayerNorm { .. }) {
                    cols
                } else {
                    inputs[0].numel()
                };
                expect_numel(self, inputs[2], third)?;
                Ok(inputs[0].clone())
            }
            Op::LayerNormGammaGrad { .. } => {
                expect_numel(self, inputs[1], inputs[0].numel())?;
                Ok(Shape::new(&[inputs[0].last()]))
            }
            Op::Dropout(_) | Op::DropoutGrad(_) => Ok(inputs[0].clone()),
        }
    }
}

fn expect_numel(op: &Op, s: &Shape, n: usize) -> Result<()> {
    if s.numel() != n {
        return Err(Error::shape(
            op.name(),
            format!("expected {n} elements, got {s}"),
        ));
    }
    Ok(())
}

/// The kernel's span (dilation included) fits the padded input; strides and dilations
/// are positive.
fn check_conv(op: &Op, g: &ConvGeom) -> Result<()> {
    let empty = g.kh == 0 || g.kw == 0;
    let padded = |len: usize, pad: usize| pad.checked_mul(2).and_then(|p| p.checked_add(len));
    let fits = |len, pad, k, d| match (padded(len, pad), ConvGeom::span(k, d)) {
        (Some(p), Some(s)) => p >= s,
        _ => false,
    };
    let positive = g.sh > 0 && g.sw > 0 && g.dh > 0 && g.dw > 0;
    if empty || !positive || !fits(g.h, g.ph, g.kh, g.dh) || !fits(g.w, g.pw, g.kw, g.dw) {
        return Err(Error::shape(
            op.name(),
            format!(
                "kernel {}x{} (dilation {}x{}, stride {}x{}) does not fit input {}x{} padded by {}x{}",
                g.kh, g.kw, g.dh, g.dw, g.sh, g.sw, g.h, g.w, g.ph, g.pw
            ),
        ));
    }
    Ok(())
}

/// A convolution's checks, and groups that divide the input channels.
fn check_groups(op: &Op, g: &GroupGeom) -> Result<()> {
    check_conv(op, &g.conv)?;
    if g.groups == 0 || !g.conv.c.is_multiple_of(g.groups) {
        return Err(Error::shape(
            op.name(),
            format!("{} groups do not divide {} channels", g.groups, g.conv.c),
        ));
    }
    Ok(())
}

/// Positive sizes, and window bounds (i·len and (i+1)·len, p·out) that the shaders form in
/// u32 without wrapping.
fn check_adaptive(op: &Op, g: &AdaptiveGeom) -> Result<()> {
    let fits = |len: usize, out: usize| {
        (len + 1)
            .checked_mul(out + 1)
            .is_some_and(|v| v <= u32::MAX as usize)
    };
    if g.h == 0 || g.w == 0 || g.oh == 0 || g.ow == 0 || !fits(g.h, g.oh) || !fits(g.w, g.ow) {
        return Err(Error::shape(
            op.name(),
            format!(
                "adaptive pooling of {}x{} to {}x{} (sizes must be positive, and their \
                 products below 2^32)",
                g.h, g.w, g.oh, g.ow
            ),
        ));
    }
    Ok(())
}

fn check_window(op: &Op, g: &PoolGeom) -> Result<()> {
    // PyTorch's limits: padding at most half the window, so that every window holds an
    // input position, and the padded input at least one window.
    // Checked: sizes come from the user's layer text.
    let padded = |len: usize, pad: usize| pad.checked_mul(2).and_then(|p| p.checked_add(len));
    let fits = g.h >= 1
        && g.w >= 1
        && padded(g.h, g.ph).is_some_and(|h| h >= g.kh)
        && padded(g.w, g.pw).is_some_and(|w| w >= g.kw)
        && g.kh.checked_mul(g.kw).is_some();
    let half = g.ph <= g.kh / 2 && g.pw <= g.kw / 2;
    if g.kh == 0 || g.kw == 0 || g.sh == 0 || g.sw == 0 || !fits || !half {
        return Err(Error::shape(
            op.name(),
            format!(
                "window {}x{} with stride {}x{} and padding {}x{} does not fit input {}x{}",
                g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.h, g.w
            ),
        ));
    }
    Ok(())
}

fn check_channels(op: &Op, x: &Shape, ch: &Channels) -> Result<()> {
    let per = ch.c * ch.s;
    if x.rank() < 2 || x.0[1] != ch.c || per == 0 || !x.numel().is_multiple_of(per) {
        return Err(Error::shape(
            op.name(),
            format!(
                "expected [N, {}, ...] with {} values per channel, got {x}",
                ch.c, ch.s
            ),
        ));
    }
    Ok(())
}

/// Rejects the thresholds PyTorch rejects (a negative β, a non-positive δ), and NaN, for
/// which neither branch of the loss is meaningful.
fn check_threshold(op: &Op) -> Result<()> {
    let (value, ok, rule) = match *op {
        Op::SmoothL1 { beta } | Op::SmoothL1Grad { beta } => (beta, beta >= 0.0, "beta >= 0"),
        Op::Huber { delta } | Op::HuberGrad { delta } => (delta, delta > 0.0, "delta > 0"),
        _ => return Ok(()),
    };
    if !ok {
        return Err(Error::Config(format!(
            "{} needs {rule}, got {value}",
            op.name()
        )));
    }
    Ok(())
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
