//! The Fashion-MNIST subset compiled into the binary, so kiln trains with no download.
//!
//! The files are made by `scripts/make_fashion_subset.py`; see
//! `data/fashion-mnist-subset/README.md` for their provenance and license.

use crate::error::Result;

use super::dataset::{Dataset, MNIST_CLASSES};

/// Items in the embedded training set: the first 10,000 of Fashion-MNIST's training set.
pub const EMBEDDED_TRAIN_LEN: usize = 10_000;
/// Items in the embedded test set: the first 2,000 of Fashion-MNIST's test set.
pub const EMBEDDED_TEST_LEN: usize = 2_000;

const TRAIN_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] =
    include_bytes!("../../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz");

/// The embedded (train, test) Fashion-MNIST subset: 10,000 and 2,000 images of 28x28.
/// Inflated on each call (about 30 ms), so callers that need it twice should keep it.
pub fn embedded() -> Result<(Dataset, Dataset)> {
    let train = Dataset::from_idx_named(
        TRAIN_IMAGES,
        "embedded train-images-idx3-ubyte.gz",
        TRAIN_LABELS,
        "embedded train-labels-idx1-ubyte.gz",
        "embedded Fashion-MNIST subset (train)",
        MNIST_CLASSES,
    )?;
    let test = Dataset::from_idx_named(
        TEST_IMAGES,
        "embedded t10k-images-idx3-ubyte.gz",
        TEST_LABELS,
        "embedded t10k-labels-idx1-ubyte.gz",
        "embedded Fashion-MNIST subset (test)",
        MNIST_CLASSES,
    )?;
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_dir, SYSTEM_FASHION_MNIST_DIR};
    use std::path::Path;

    #[test]
    fn embedded_sizes_shapes_and_classes() {
        let (train, test) = embedded().unwrap();
        assert_eq!(
            (train.len, train.rows, train.cols, train.classes),
            (10_000, 28, 28, 10)
        );
        assert_eq!(
            (test.len, test.rows, test.cols, test.classes),
            (2_000, 28, 28, 10)
        );
        assert_eq!(
            (train.len, test.len),
            (EMBEDDED_TRAIN_LEN, EMBEDDED_TEST_LEN)
        );
        assert_eq!(train.images.len(), 7_840_000);
        assert_eq!(test.images.len(), 1_568_000);
        for set in [&train, &test] {
            let counts = set.class_counts();
            assert!(
                counts.iter().all(|&c| c > 0),
                "a class is missing: {counts:?}"
            );
            assert_eq!(counts.iter().sum::<usize>(), set.len);
        }
        // Fashion-MNIST's published first labels: ankle boot, T-shirt, T-shirt, dress.
        assert_eq!(train.labels[..4], [9, 0, 0, 3]);
        assert_eq!(test.labels[..4], [9, 2, 1, 1]);
    }

    #[test]
    fn embedded_matches_the_system_dataset() {
        let dir = Path::new(SYSTEM_FASHION_MNIST_DIR);
        if !dir.is_dir() {
            eprintln!("skipping comparison: {} is absent", dir.display());
            return;
        }
        let (train, test) = embedded().unwrap();
        let (full_train, full_test) = load_dir(dir).unwrap();
        for (sub, full) in [(&train, &full_train), (&test, &full_test)] {
            assert_eq!((sub.rows, sub.cols), (full.rows, full.cols));
            assert!(
                sub.images == full.images[..sub.images.len()],
                "{} images differ",
                sub.name
            );
            assert!(
                sub.labels == full.labels[..sub.len],
                "{} labels differ",
                sub.name
            );
        }
    }
}
