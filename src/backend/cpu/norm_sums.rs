//! Batch norm's per-channel sums, taken once per layer and step.
//!
//! A batch-norm layer's backward is three ops: the input gradient (`BatchNormGrad`), which
//! needs Σdy and Σdy·x̂ per channel, gamma's gradient (`BatchNormGammaGrad`, Σdy·x̂) and
//! beta's (`ChannelSum`, Σdy). Each summed the same `[N, C, S]` tensors again, about a
//! twentieth of a `cnn` step on the CPU. The executor keeps the sums the input gradient
//! took, with the slots it read, and the other two ops take them from there while no step
//! in between has written over those slots. The sums come from the same functions over
//! the same values, so the results are the bits the ops compute on their own.

use super::norm::{batch_norm_grad_from_sums, sum_dy, sum_dy_xhat, ChannelSums};
use crate::graph::Slot;
use crate::op::{Channels, Op};

/// The sums one `BatchNormGrad` step took and what it took them from.
#[derive(Debug)]
pub struct NormSums {
    x: Slot,
    stats: Slot,
    dy: Slot,
    channels: Channels,
    sum_dy: Vec<f32>,
    sum_dy_xhat: Vec<f32>,
}

impl NormSums {
    /// Whether a step writing `output` leaves the sums' inputs as they were.
    pub fn survives(&self, output: &Slot) -> bool {
        ![self.x, self.stats, self.dy]
            .iter()
            .any(|s| s.overlaps(output))
    }
}

/// Runs `op` when it is batch norm's input gradient (keeping its sums in `kept`), or
/// gamma's or beta's gradient of the same tensors (copying the kept sums); `false`, with
/// nothing done, for any other op and when nothing suitable is kept. `slots` and `inputs`
/// are the step's inputs (lengths already checked), `out` its output.
pub fn run(
    op: &Op,
    slots: &[Slot],
    inputs: &[&[f32]],
    out: &mut [f32],
    kept: &mut Option<NormSums>,
) -> bool {
    match *op {
        Op::BatchNormGrad(ch) => {
            let (x, stats, gamma, dy) = (inputs[0], inputs[1], inputs[2], inputs[3]);
            let (n, c, s) = (x.len() / (ch.c * ch.s).max(1), ch.c, ch.s);
            let sums = NormSums {
                x: slots[0],
                stats: slots[1],
                dy: slots[3],
                channels: ch,
                sum_dy: sum_dy(dy, n, c, s),
                sum_dy_xhat: sum_dy_xhat(x, stats, dy, n, c, s, ch.eps),
            };
            let taken = ChannelSums {
                dy: &sums.sum_dy,
                dy_xhat: &sums.sum_dy_xhat,
            };
            batch_norm_grad_from_sums(x, stats, gamma, dy, out, (n, c, s), ch.eps, taken);
            *kept = Some(sums);
            true
        }
        Op::BatchNormGammaGrad(ch) => match kept {
            Some(k) if (k.x, k.stats, k.dy, k.channels) == (slots[0], slots[1], slots[2], ch) => {
                out[..ch.c].copy_from_slice(&k.sum_dy_xhat);
                true
            }
            _ => false,
        },
        Op::ChannelSum(ch) => match kept {
            // Σdy does not depend on eps.
            Some(k) if (k.dy, k.channels.c, k.channels.s) == (slots[0], ch.c, ch.s) => {
                out[..ch.c].copy_from_slice(&k.sum_dy);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::norm::{
        batch_norm_gamma_grad, batch_norm_grad, batch_norm_stats, channel_sum,
    };
    use super::*;
    use crate::graph::ArenaKind;

    fn slot(offset: usize, len: usize) -> Slot {
        Slot {
            arena: ArenaKind::Activations,
            offset,
            len,
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn kept_sums_give_the_bits_of_the_ops_run_alone_and_only_for_their_tensors() {
        let (n, c, s) = (3, 4, 37);
        let len = n * c * s;
        let x: Vec<f32> = (0..len)
            .map(|i| (i as f32 * 0.37).sin() * 2.0 + 0.5)
            .collect();
        let dy: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
        let gamma: Vec<f32> = (0..c).map(|k| 0.5 + k as f32).collect();
        let mut stats = vec![0.0f32; 2 * c];
        batch_norm_stats(&x, &mut stats, n, c, s);
        let ch = Channels { c, s, eps: 1e-5 };
        let (xs, ss, gs, dys) = (
            slot(0, len),
            slot(len, 2 * c),
            slot(0, c),
            slot(2 * len, len),
        );
        let gs = Slot {
            arena: ArenaKind::Params,
            ..gs
        };

        let mut kept = None;
        let mut dx = vec![0.0f32; len];
        let ins: [&[f32]; 4] = [&x, &stats, &gamma, &dy];
        assert!(run(
            &Op::BatchNormGrad(ch),
            &[xs, ss, gs, dys],
            &ins,
            &mut dx,
            &mut kept
        ));
        let mut want = vec![0.0f32; len];
        batch_norm_grad(&x, &stats, &gamma, &dy, &mut want, n, c, s, ch.eps);
        assert_eq!(bits(&dx), bits(&want));

        let mut dgamma = vec![f32::NAN; c];
        let ins: [&[f32]; 3] = [&x, &stats, &dy];
        let op = Op::BatchNormGammaGrad(ch);
        assert!(run(&op, &[xs, ss, dys], &ins, &mut dgamma, &mut kept));
        let mut want = vec![0.0f32; c];
        batch_norm_gamma_grad(&x, &stats, &dy, &mut want, n, c, s, ch.eps);
        assert_eq!(bits(&dgamma), bits(&want));

        let mut dbeta = vec![f32::NAN; c];
        let op = Op::ChannelSum(Channels { eps: 0.0, ..ch });
        assert!(run(&op, &[dys], &[&dy], &mut dbeta, &mut kept));
        let mut want = vec![0.0f32; c];
        channel_sum(&dy, &mut want, n, c, s);
        assert_eq!(bits(&dbeta), bits(&want));

        // Other tensors, or another eps for gamma, are not served from the kept sums.
        let other = slot(3 * len, len);
        let mut unused = vec![f32::NAN; c];
        assert!(!run(
            &Op::ChannelSum(ch),
            &[other],
            &[&dy],
            &mut unused,
            &mut kept
        ));
        let eps = Op::BatchNormGammaGrad(Channels { eps: 1e-3, ..ch });
        assert!(!run(&eps, &[xs, ss, dys], &ins, &mut unused, &mut kept));
        assert!(!run(
            &Op::BatchNormGammaGrad(ch),
            &[xs, other, dys],
            &ins,
            &mut unused,
            &mut kept
        ));
        assert!(unused.iter().all(|v| v.is_nan()));

        // A write over any of the three inputs ends them; one elsewhere does not.
        let k = kept.as_ref().unwrap();
        assert!(k.survives(&slot(3 * len, 10)));
        assert!(k.survives(&gs));
        assert!(!k.survives(&slot(len - 1, 1)));
        assert!(!k.survives(&slot(len + 2 * c - 1, 5)));
        assert!(!k.survives(&slot(3 * len - 1, 1)));
    }
}
