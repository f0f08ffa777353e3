//! Mini-batches over a dataset, in order or shuffled per epoch, written into reused buffers.

use crate::error::{Error, Result};
use crate::rng::Philox;

use super::dataset::Dataset;

/// Walks a dataset in batches, one epoch at a time, like PyTorch's `DataLoader` with
/// `drop_last=False`: the last batch of an epoch may be smaller than `batch_size`.
///
/// The index order is allocated once; batches are written into the caller's vectors, which
/// keep their capacity, so steady-state training does not allocate per batch.
#[derive(Clone, Debug)]
pub struct Batcher<'a> {
    data: &'a Dataset,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    order: Vec<usize>,
    cursor: usize,
}

impl<'a> Batcher<'a> {
    /// A batcher over `data`; with `shuffle`, each epoch's order is drawn from
    /// `Philox::new(seed, epoch)`. Starts positioned at epoch 0.
    pub fn new(data: &'a Dataset, batch_size: usize, shuffle: bool, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        let mut batcher = Batcher {
            data,
            batch_size,
            shuffle,
            seed,
            order: Vec::with_capacity(data.len),
            cursor: 0,
        };
        batcher.start_epoch(0);
        Ok(batcher)
    }

    /// Rewinds to the start of `epoch` and sets its order. The order is rebuilt from the
    /// identity each time, so it depends on (seed, epoch) only: a resumed run sees the same
    /// batches as an uninterrupted one. Epochs past `u32::MAX` wrap, as the stream id is 32 bits.
    pub fn start_epoch(&mut self, epoch: usize) {
        self.order.clear();
        self.order.extend(0..self.data.len);
        if self.shuffle {
            Philox::new(self.seed, epoch as u32).shuffle(&mut self.order);
        }
        self.cursor = 0;
    }

    /// Writes the next batch of the current epoch and returns its size, or `None` once the
    /// epoch is done. `images` becomes row-major `[n, features]` with `pixel / 255`; `labels`
    /// becomes `[n]`, holding each class index as f32 (3 -> 3.0).
    pub fn next_batch(&mut self, images: &mut Vec<f32>, labels: &mut Vec<f32>) -> Option<usize> {
        let data = self.data;
        let indices = self.next_indices()?;
        let n = indices.len();
        let features = data.features();
        images.clear();
        labels.clear();
        for &i in indices {
            let start = i * features;
            images.extend(
                data.images[start..start + features]
                    .iter()
                    .map(|&p| f32::from(p) / 255.0),
            );
            labels.push(f32::from(data.labels[i]));
        }
        Some(n)
    }

    /// The dataset indices of the next batch of the current epoch (advancing past it), or
    /// `None` once the epoch is done; for callers that gather items themselves.
    pub fn next_indices(&mut self) -> Option<&[usize]> {
        if self.cursor >= self.order.len() {
            return None;
        }
        let start = self.cursor;
        self.cursor = (start + self.batch_size).min(self.order.len());
        Some(&self.order[start..self.cursor])
    }

    /// Batches per epoch, counting the partial last one.
    pub fn batches_per_epoch(&self) -> usize {
        self.data.len.div_ceil(self.batch_size)
    }

    /// The batch size given at construction (the last batch of an epoch may be smaller).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The dataset being batched.
    pub fn dataset(&self) -> &'a Dataset {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` 1x2 images whose pixels are (i, 255 - i) and whose label is i % 10, so every
    /// batch row tells which item it came from.
    fn indexed(n: usize) -> Dataset {
        let images = (0..n).flat_map(|i| [i as u8, 255 - i as u8]).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::new("indexed", images, labels, 1, 2, 10).unwrap()
    }

    /// Every item index yielded in one epoch, recovered from the pixel values.
    fn epoch_indices(b: &mut Batcher, epoch: usize) -> Vec<usize> {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut seen = Vec::new();
        b.start_epoch(epoch);
        while let Some(n) = b.next_batch(&mut x, &mut y) {
            assert_eq!((x.len(), y.len()), (2 * n, n));
            for r in 0..n {
                let i = (x[2 * r] * 255.0).round() as usize;
                assert_eq!(y[r], (i % 10) as f32);
                seen.push(i);
            }
        }
        seen
    }

    #[test]
    fn in_order_without_shuffle() {
        let data = indexed(23);
        let mut b = Batcher::new(&data, 5, false, 1).unwrap();
        assert_eq!(epoch_indices(&mut b, 0), (0..23).collect::<Vec<_>>());
        assert_eq!(epoch_indices(&mut b, 7), (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn shuffle_covers_every_index_once_and_is_reproducible() {
        let data = indexed(200);
        let mut a = Batcher::new(&data, 16, true, 42).unwrap();
        let mut b = Batcher::new(&data, 16, true, 42).unwrap();
        let e0 = epoch_indices(&mut a, 0);
        let e1 = epoch_indices(&mut a, 1);
        for order in [&e0, &e1] {
            let mut sorted = order.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..200).collect::<Vec<_>>());
        }
        assert_ne!(e0, (0..200).collect::<Vec<_>>(), "epoch 0 was not shuffled");
        assert_ne!(e0, e1, "epochs 0 and 1 have the same order");
        // Same seed: same orders, whichever epoch is visited first.
        assert_eq!(epoch_indices(&mut b, 1), e1);
        assert_eq!(epoch_indices(&mut b, 0), e0);
        // Another seed: another order.
        let mut c = Batcher::new(&data, 16, true, 43).unwrap();
        assert_ne!(epoch_indices(&mut c, 0), e0);
        // The order is exactly Philox::new(seed, epoch).shuffle of the identity.
        let mut expect: Vec<usize> = (0..200).collect();
        Philox::new(42, 1).shuffle(&mut expect);
        assert_eq!(e1, expect);
    }

    #[test]
    fn last_partial_batch_is_yielded() {
        let data = indexed(23);
        let mut b = Batcher::new(&data, 10, true, 5).unwrap();
        assert_eq!(b.batches_per_epoch(), 3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut sizes = Vec::new();
        while let Some(n) = b.next_batch(&mut x, &mut y) {
            sizes.push(n);
        }
        assert_eq!(sizes, vec![10, 10, 3]);
        assert_eq!((x.len(), y.len()), (6, 3));
        // Exhausted until the next epoch starts.
        assert_eq!(b.next_batch(&mut x, &mut y), None);
        b.start_epoch(1);
        assert_eq!(b.next_batch(&mut x, &mut y), Some(10));

        // A batch larger than the dataset gives one batch of everything.
        let mut big = Batcher::new(&data, 64, false, 0).unwrap();
        assert_eq!(big.batches_per_epoch(), 1);
        assert_eq!(big.next_batch(&mut x, &mut y), Some(23));
    }

    #[test]
    fn scales_pixels_to_unit_range_and_labels_to_f32() {
        let data =
            Dataset::new("px", vec![0, 255, 51, 128, 1, 254], vec![3, 9, 0], 1, 2, 10).unwrap();
        let mut b = Batcher::new(&data, 3, false, 0).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        assert_eq!(b.next_batch(&mut x, &mut y), Some(3));
        assert_eq!(x[0], 0.0);
        assert_eq!(x[1], 1.0);
        assert_eq!(x[2], 0.2);
        assert_eq!(x[3], 128.0 / 255.0);
        assert!((x[3] - 0.501_960_8).abs() < 1e-7);
        assert_eq!(x[4], 1.0 / 255.0);
        assert_eq!(x[5], 254.0 / 255.0);
        assert_eq!(y, vec![3.0, 9.0, 0.0]);
    }

    #[test]
    fn buffers_keep_their_allocation() {
        let data = indexed(50);
        let mut b = Batcher::new(&data, 8, true, 9).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        b.next_batch(&mut x, &mut y);
        let (px, py) = (x.as_ptr(), y.as_ptr());
        for epoch in 0..3 {
            b.start_epoch(epoch);
            while b.next_batch(&mut x, &mut y).is_some() {
                assert_eq!((x.as_ptr(), y.as_ptr()), (px, py));
            }
        }
    }

    #[test]
    fn rejects_zero_batch_size() {
        let data = indexed(4);
        assert!(matches!(
            Batcher::new(&data, 0, false, 0),
            Err(Error::Config(_))
        ));
    }
}
