//! The im2col matrices of a CPU plan's implicit-GEMM convolution products.
//!
//! A conv layer's forward product (`ConvMatMul`) and its weight gradient
//! (`ConvWeightGrad`) read the same image with the same geometry. The GPU gathers the
//! matrix's entries while staging its tiles and never stores it; the CPU hands the GEMM
//! crate a matrix, and building it twice per training step (and allocating it each time)
//! cost the CPU backend about a tenth of a `cnn` step. So each plan keeps one buffer per
//! (image, geometry) run of readers: the first reader of a run builds the matrix, the
//! later ones reuse it, as the unfused plan kept the matrix in its arena from the forward
//! pass to the weight gradient. The buffers live as long as the plan, so the pages are
//! touched once, not every step. A product nothing else shares a matrix with (an
//! evaluation plan's forward products) builds it in one scratch buffer all such products
//! of the plan share.

use crate::graph::{rounds_im2col, Plan, Slot};
use crate::op::{ConvGeom, Op};

/// Which steps of a plan build or reuse which im2col buffer.
#[derive(Debug, Default)]
pub struct ColsCache {
    /// Buffer 0 is the shared scratch; the others each serve one group of readers.
    buffers: Vec<Vec<f32>>,
    /// For each step: its buffer and whether the step builds it (else it is already
    /// built, from the same image, earlier in the same run).
    by_step: Vec<Option<(usize, bool)>>,
}

/// The image a convolution product reads and its geometry.
fn image_of(op: &Op, inputs: &[Slot]) -> Option<(Slot, ConvGeom)> {
    match *op {
        Op::ConvMatMul { geom, .. } => Some((*inputs.first()?, geom)),
        Op::ConvWeightGrad(geom) => Some((*inputs.get(1)?, geom)),
        _ => None,
    }
}

impl ColsCache {
    /// Groups the convolution products of `plan`: a product joins the previous group of
    /// the same image slot and geometry when no step in between wrote over that slot.
    /// Products that round the entries to f16 ([`rounds_im2col`]) and products that do
    /// not keep separate buffers.
    pub fn of(plan: &Plan) -> Self {
        // (image, geometry and rounding, buffer, index of the group's last reader)
        let mut open: Vec<(Slot, (ConvGeom, bool), usize, usize)> = Vec::new();
        let mut cache = ColsCache {
            buffers: vec![Vec::new()],
            by_step: Vec::new(),
        };
        for (index, step) in plan.steps.iter().enumerate() {
            let mut entry = None;
            if let Some((image, geom)) = image_of(&step.op, &step.inputs) {
                let geom = (geom, rounds_im2col(step));
                let unchanged = |since: usize| {
                    !plan.steps[since + 1..index]
                        .iter()
                        .any(|s| s.output.overlaps(&image))
                };
                let joined = open
                    .iter_mut()
                    .find(|g| g.0 == image && g.1 == geom && unchanged(g.3));
                entry = Some(match joined {
                    Some(g) => {
                        g.3 = index;
                        (g.2, false)
                    }
                    None => {
                        let buffer = cache.buffers.len();
                        cache.buffers.push(Vec::new());
                        open.retain(|g| !(g.0 == image && g.1 == geom));
                        open.push((image, geom, buffer, index));
                        (buffer, true)
                    }
                });
            }
            cache.by_step.push(entry);
        }
        // Groups of one reader share the scratch buffer (their matrix is used at once).
        let mut readers = vec![0usize; cache.buffers.len()];
        for &(buffer, _) in cache.by_step.iter().flatten() {
            readers[buffer] += 1;
        }
        for (buffer, _) in cache.by_step.iter_mut().flatten() {
            if readers[*buffer] == 1 {
                *buffer = 0;
            }
        }
        cache
    }

    /// The buffer of step `index`, if it is a convolution product, and whether the step
    /// builds the matrix in it.
    pub fn for_step(&mut self, index: usize) -> Option<(&mut Vec<f32>, bool)> {
        let (buffer, builds) = (*self.by_step.get(index)?)?;
        Some((self.buffers.get_mut(buffer)?, builds))
    }

    /// How many matrices a run of the plan builds.
    #[cfg(test)]
    fn builds(&self) -> usize {
        self.by_step.iter().flatten().filter(|e| e.1).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ArenaKind, Step};
    use crate::shape::Shape;

    fn slot(offset: usize, len: usize) -> Slot {
        Slot {
            arena: ArenaKind::Activations,
            offset,
            len,
        }
    }

    const GEOM: ConvGeom = ConvGeom {
        n: 1,
        c: 1,
        h: 4,
        w: 4,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        ph: 1,
        pw: 1,
        dh: 1,
        dw: 1,
    };

    /// A step of `op` reading `inputs` and writing `output` (shapes do not matter here).
    fn step(op: Op, inputs: Vec<Slot>, output: Slot) -> Step {
        Step {
            op,
            input_shapes: vec![Shape::new(&[1]); inputs.len()],
            inputs,
            output,
            shape: Shape::new(&[1]),
            node: 0,
        }
    }

    fn plan(steps: Vec<Step>) -> Plan {
        Plan {
            steps,
            inputs: Vec::new(),
            constants: Vec::new(),
            outputs: Vec::new(),
            inputs_size: 0,
            activations_size: 0,
            loss_seed: None,
        }
    }

    fn forward(geom: ConvGeom, image: Slot) -> Step {
        let op = Op::ConvMatMul {
            geom,
            bias: false,
            act: None,
        };
        step(op, vec![image, slot(100, 9)], slot(200, 16))
    }

    fn weight_grad(geom: ConvGeom, image: Slot) -> Step {
        step(
            Op::ConvWeightGrad(geom),
            vec![slot(300, 16), image],
            slot(400, 9),
        )
    }

    #[test]
    fn the_weight_gradient_reuses_the_forward_matrix_of_its_image() {
        let image = slot(0, 16);
        let relu = step(
            Op::Activation(crate::op::Activation::Relu),
            vec![slot(200, 16)],
            slot(500, 16),
        );
        let mut c = ColsCache::of(&plan(vec![
            forward(GEOM, image),
            relu,
            weight_grad(GEOM, image),
        ]));
        assert_eq!(c.builds(), 1);
        assert!(matches!(c.for_step(0), Some((_, true))));
        assert!(c.for_step(1).is_none());
        assert!(matches!(c.for_step(2), Some((_, false))));
    }

    #[test]
    fn a_write_over_the_image_or_another_geometry_builds_again() {
        let image = slot(0, 16);
        let overwrite = step(Op::Scale(2.0), vec![slot(500, 4)], slot(12, 4));
        let c = ColsCache::of(&plan(vec![
            forward(GEOM, image),
            overwrite,
            weight_grad(GEOM, image),
        ]));
        assert_eq!(c.builds(), 2);
        let other = ConvGeom { sh: 2, ..GEOM };
        let c = ColsCache::of(&plan(vec![forward(GEOM, image), weight_grad(other, image)]));
        assert_eq!(c.builds(), 2);
        // A write elsewhere in the arena changes nothing.
        let elsewhere = step(Op::Scale(2.0), vec![slot(500, 4)], slot(16, 4));
        let c = ColsCache::of(&plan(vec![
            forward(GEOM, image),
            elsewhere,
            weight_grad(GEOM, image),
        ]));
        assert_eq!(c.builds(), 1);
    }

    #[test]
    fn products_that_share_no_matrix_use_the_scratch_buffer() {
        let image = slot(0, 16);
        let other = ConvGeom { sh: 2, ..GEOM };
        let c = ColsCache::of(&plan(vec![
            forward(GEOM, image),
            forward(other, image),
            weight_grad(GEOM, image),
        ]));
        let buffer = |i: usize| c.by_step[i].map(|e| e.0);
        assert_eq!(buffer(1), Some(0), "a lone reader builds in the scratch");
        assert_eq!(buffer(0), buffer(2));
        assert_ne!(buffer(0), Some(0), "a shared matrix has its own buffer");
    }

    #[test]
    fn the_cnn_training_plan_builds_one_matrix_per_conv_layer() {
        let (_, plan) = crate::bench::shapes::training_plan("cnn", 2).unwrap();
        let c = ColsCache::of(&plan);
        assert_eq!(c.by_step.iter().flatten().count(), 4);
        assert_eq!(c.builds(), 2);
    }
}
