//! Datasets: the IDX reader, in-memory datasets, directory and embedded loaders, batching.

mod batch;
mod dataset;
mod dir;
mod embedded;
mod idx;

pub use batch::Batcher;
pub use dataset::{Dataset, MNIST_CLASSES};
pub use dir::{load_dir, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
pub use embedded::{embedded, EMBEDDED_TEST_LEN, EMBEDDED_TRAIN_LEN};
pub use idx::{is_gzip, maybe_gunzip, parse_idx, IdxArray};

/// Fashion-MNIST's class names, indexed by label.
pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where Debian's `dataset-fashion-mnist` package installs the full dataset (gzip files).
pub const SYSTEM_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
