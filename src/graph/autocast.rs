//! Which values an f16 plan stores in f16: PyTorch's autocast lists, for kiln's ops
//! (but for the outputs of layer norm, group norm and softplus, which autocast keeps in
//! f32 and kiln stores in f16 as every normalisation and activation; ARCHITECTURE.md).
//!
//! Ops that move or transform activations (matmul, bias, activations, data movement of
//! convolution, pooling, normalisation outputs, dropout) and the gradients flowing back
//! through them write f16. Reductions, losses and their scalars, softmax, batch statistics
//! and class indices stay f32, as autocast keeps them: they sum many values or need more
//! than f16's 11 bits. Parameter gradients are f32 whatever the op (the planner decides).

use super::Step;
use crate::op::Op;

/// Whether an f16 plan stores this op's output in f16.
pub fn half_output(op: &Op) -> bool {
    match op {
        Op::MatMul { .. }
        | Op::MatMulBias { .. }
        | Op::MatMulBiasAct { .. }
        | Op::ConvMatMul { .. }
        | Op::ConvWeightGrad(_)
        | Op::GroupedConv(_)
        | Op::GroupedConvInputGrad(_)
        | Op::GroupedConvWeightGrad(_)
        | Op::BiasAdd
        | Op::Add
        | Op::Scale(_)
        | Op::Activation(_)
        | Op::ActivationGrad(_)
        | Op::ActivationGradFromOutput(_)
        | Op::Im2Col(_)
        | Op::Col2Im(_)
        | Op::RowsToNchw(_)
        | Op::NchwToRows(_)
        | Op::MaxPool(_)
        | Op::MaxPoolGrad(_)
        | Op::AvgPool(_)
        | Op::AvgPoolGrad(_)
        | Op::AdaptiveAvgPool(_)
        | Op::AdaptiveAvgPoolGrad(_)
        | Op::AdaptiveMaxPool(_)
        | Op::AdaptiveMaxPoolGrad(_)
        | Op::BatchNormApply(_)
        | Op::BatchNormGrad(_)
        | Op::ChannelAffine(_)
        | Op::PRelu(_)
        | Op::PReluGrad(_)
        | Op::LayerNorm { .. }
        | Op::LayerNormGrad { .. }
        | Op::Dropout(_)
        | Op::DropoutGrad(_)
        | Op::SoftmaxCrossEntropyGrad { .. }
        | Op::MseGrad
        | Op::BceWithLogitsGrad
        | Op::L1Grad
        | Op::SmoothL1Grad { .. }
        | Op::HuberGrad { .. } => true,
        Op::BiasGrad
        | Op::Softmax
        | Op::SoftmaxGrad
        | Op::LogSoftmax
        | Op::LogSoftmaxGrad
        | Op::SoftmaxCrossEntropy { .. }
        | Op::Mse
        | Op::BceWithLogits
        | Op::L1
        | Op::SmoothL1 { .. }
        | Op::Huber { .. }
        | Op::Sum
        | Op::Mean
        | Op::SumSquares
        | Op::SumSquaresGrad
        | Op::SumAbs
        | Op::SumAbsGrad
        | Op::Broadcast(_)
        | Op::Argmax
        | Op::Correct
        | Op::Reshape
        | Op::BatchNormStats(_)
        | Op::BatchNormGradCoeffs(_)
        | Op::BatchNormGammaGrad(_)
        | Op::ChannelSum(_)
        | Op::BatchNormRunning { .. }
        | Op::LayerNormGammaGrad { .. }
        // Terms of a parameter gradient, which stay f32 as the gradient does.
        | Op::PReluWeightTerms(_) => false,
    }
}

/// Whether an f16 plan feeds this op the f16 copy of a parameter instead of the f32 master
/// (the weights of matmuls, and so of convolutions; biases and norm scales stay f32).
/// A fused [`Op::MatMulBias`] reads its bias from the f16 copy too, as autocast's
/// `F.linear` casts every operand, bias included, to f16 (so does [`Op::MatMulBiasAct`],
/// and [`Op::ConvMatMul`] as `F.conv2d` does, grouped or not: [`Op::GroupedConv`] and the
/// product with the weight in its input gradient).
pub fn reads_half_weights(op: &Op) -> bool {
    matches!(
        op,
        Op::MatMul { .. }
            | Op::MatMulBias { .. }
            | Op::MatMulBiasAct { .. }
            | Op::ConvMatMul { .. }
            | Op::GroupedConv(_)
            | Op::GroupedConvInputGrad(_)
    )
}

/// Whether a convolution product step rounds the im2col entries it gathers from its
/// image to f16: in f16 plans, whose steps touch f16 slots (the weight copy, the output
/// gradient), so that the entries are those the unfused plan's f16 `Im2Col` output holds
/// (an image in f32, such as the data, would otherwise be read unrounded). Both backends
/// apply this one rule.
pub fn rounds_im2col(step: &Step) -> bool {
    matches!(step.op, Op::ConvMatMul { .. } | Op::ConvWeightGrad(_))
        && std::iter::once(&step.output)
            .chain(&step.inputs)
            .any(|s| s.arena.is_half())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_and_reductions_stay_f32() {
        assert!(half_output(&Op::MatMul {
            trans_a: false,
            trans_b: true
        }));
        assert!(!half_output(&Op::Mean));
        assert!(!half_output(&Op::Correct));
        assert!(!half_output(&Op::Softmax));
        assert!(reads_half_weights(&Op::MatMul {
            trans_a: true,
            trans_b: false
        }));
        assert!(!reads_half_weights(&Op::BiasAdd));
        let fused = Op::MatMulBias {
            trans_a: false,
            trans_b: true,
        };
        assert!(half_output(&fused) && reads_half_weights(&fused));
    }
}
