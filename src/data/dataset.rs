//! An in-memory image-classification dataset: u8 images and u8 class labels.

use crate::error::{Error, Result};
use crate::rng::Philox;

use super::idx::parse_idx;

/// The number of classes in MNIST-format datasets (MNIST, Fashion-MNIST).
pub const MNIST_CLASSES: usize = 10;

/// Images and labels held as bytes, exactly as stored, so a 60,000-image set costs 47 MB
/// rather than four times that as f32; batches convert to f32 on the way out.
///
/// The fields are public for reading; build values with [`Dataset::new`] or the loaders so
/// that `len`, `rows`, `cols`, `classes` and the two vectors agree, as batching relies on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// What the set is (a directory and split, or "embedded"), for logs and errors.
    pub name: String,
    /// Pixels, row-major `[len, rows, cols]`.
    pub images: Vec<u8>,
    /// One class index per image, each below `classes`.
    pub labels: Vec<u8>,
    /// Number of items.
    pub len: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Number of classes; every label is below it.
    pub classes: usize,
}

impl Dataset {
    /// Builds a dataset from raw parts, checking that the parts agree: non-empty, one label
    /// per image, and every label below `classes`.
    pub fn new(
        name: impl Into<String>,
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        classes: usize,
    ) -> Result<Dataset> {
        let name = name.into();
        let features = rows.checked_mul(cols).unwrap_or(0);
        if features == 0 {
            return Err(Error::data(
                name,
                format!("images of {rows}x{cols} pixels are not a usable size"),
            ));
        }
        if classes == 0 || classes > 256 {
            return Err(Error::data(
                name,
                format!("{classes} classes cannot be labelled with u8 class indices 0..=255"),
            ));
        }
        if labels.is_empty() {
            return Err(Error::data(name, "dataset is empty (0 items)"));
        }
        let needed = labels.len().checked_mul(features);
        if needed != Some(images.len()) {
            return Err(Error::data(
                name,
                format!(
                    "{} labels need {} image bytes of {rows}x{cols}, found {}",
                    labels.len(),
                    needed.map_or_else(|| "more".to_string(), |n| n.to_string()),
                    images.len()
                ),
            ));
        }
        check_labels(&labels, classes, &name)?;
        Ok(Dataset {
            name,
            len: labels.len(),
            images,
            labels,
            rows,
            cols,
            classes,
        })
    }

    /// Parses an MNIST-format pair of IDX files (gzip or raw) with 10 classes; `name` is
    /// used in errors, suffixed with "images" or "labels" for the file at fault.
    pub fn from_idx(images: &[u8], labels: &[u8], name: &str) -> Result<Dataset> {
        Self::from_idx_named(
            images,
            &format!("{name} images"),
            labels,
            &format!("{name} labels"),
            name,
            MNIST_CLASSES,
        )
    }

    /// Like [`Dataset::from_idx`], with a name for each file (their paths, typically) so
    /// that an error points at the file at fault, and a class count.
    pub fn from_idx_named(
        images: &[u8],
        images_name: &str,
        labels: &[u8],
        labels_name: &str,
        name: &str,
        classes: usize,
    ) -> Result<Dataset> {
        let img = parse_idx(images, images_name)?;
        let lab = parse_idx(labels, labels_name)?;
        let &[n_images, rows, cols] = img.dims.as_slice() else {
            return Err(Error::data(
                images_name,
                format!(
                    "image file must be 3-D [n, rows, cols], its dims are {:?}",
                    img.dims
                ),
            ));
        };
        let &[n_labels] = lab.dims.as_slice() else {
            return Err(Error::data(
                labels_name,
                format!("label file must be 1-D [n], its dims are {:?}", lab.dims),
            ));
        };
        if n_images != n_labels {
            return Err(Error::data(
                name,
                format!(
                    "image/label count mismatch: {images_name} has {n_images} images, \
                     {labels_name} has {n_labels} labels"
                ),
            ));
        }
        if n_images == 0 {
            return Err(Error::data(name, "dataset is empty (0 items)"));
        }
        check_labels(&lab.data, classes, labels_name)?;
        Self::new(name, img.data, lab.data, rows, cols, classes)
    }

    /// Values per image (rows * cols), the input width of a classifier.
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }

    /// The first `n` items as a new dataset, for quick runs; `n` beyond the length keeps
    /// them all, as `Iterator::take` does. An empty result is an error, as it would leave
    /// nothing to train or average over.
    pub fn take(&self, n: usize) -> Result<Dataset> {
        if n == 0 {
            return Err(Error::Config(format!(
                "taking 0 items of {} leaves an empty dataset",
                self.name
            )));
        }
        let n = n.min(self.len);
        let name = if n == self.len {
            self.name.clone()
        } else {
            format!("{} (first {n})", self.name)
        };
        Ok(Dataset {
            name,
            images: self.images[..n * self.features()].to_vec(),
            labels: self.labels[..n].to_vec(),
            len: n,
            rows: self.rows,
            cols: self.cols,
            classes: self.classes,
        })
    }

    /// The items at `indices`, in that order, as a new dataset named `name`.
    fn subset(&self, indices: &[usize], name: String) -> Dataset {
        let f = self.features();
        let mut images = Vec::with_capacity(indices.len() * f);
        for &i in indices {
            images.extend_from_slice(&self.images[i * f..(i + 1) * f]);
        }
        Dataset {
            name,
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            len: indices.len(),
            rows: self.rows,
            cols: self.cols,
            classes: self.classes,
        }
    }

    /// Holds out a random `fraction` of the items (as `torch.utils.data.random_split` with a
    /// seeded generator): returns (train, validation). Both parts must be non-empty.
    pub fn split(&self, fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::Config(format!(
                "validation fraction must be in (0, 1), got {fraction}"
            )));
        }
        let n_val = ((self.len as f64) * f64::from(fraction)).round() as usize;
        if n_val == 0 || n_val >= self.len {
            return Err(Error::Config(format!(
                "holding out {fraction} of {} items leaves an empty part",
                self.len
            )));
        }
        let mut order: Vec<usize> = (0..self.len).collect();
        // Stream u32::MAX keeps the split independent of the per-epoch shuffles.
        Philox::new(seed, u32::MAX).shuffle(&mut order);
        let (val, train) = order.split_at(n_val);
        Ok((
            self.subset(train, format!("{} (train part)", self.name)),
            self.subset(val, format!("{} (validation part)", self.name)),
        ))
    }

    /// The pixels of item `i`, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let f = self.features();
        self.images.get(i * f..(i + 1) * f)
    }

    /// How many items each class has, indexed by class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &l in &self.labels {
            // Labels were checked against `classes` on construction.
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }
}

/// Errors on the first label at or above `classes`, naming its index so it can be found.
fn check_labels(labels: &[u8], classes: usize, name: &str) -> Result<()> {
    match labels.iter().position(|&l| usize::from(l) >= classes) {
        Some(i) => Err(Error::data(
            name,
            format!(
                "label {} at index {i} is out of range: there are {classes} classes (0..{})",
                labels[i],
                classes - 1
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::{gzip, idx_bytes};

    fn data_error(err: Error) -> (String, String) {
        match err {
            Error::Data { path, message } => (path, message),
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    /// Three 2x2 images with pixel values 0..12 and labels 0, 9, 4.
    fn small_pair() -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..12).collect();
        (idx_bytes(&[3, 2, 2], &pixels), idx_bytes(&[3], &[0, 9, 4]))
    }

    #[test]
    fn split_partitions_the_items_reproducibly() {
        let labels: Vec<u8> = (0..10).collect();
        let images: Vec<u8> = (0..10).flat_map(|i| [i, i, i, i]).collect();
        let d = Dataset::new("d", images, labels, 2, 2, 10).unwrap();
        let (train, val) = d.split(0.3, 7).unwrap();
        assert_eq!((train.len, val.len), (7, 3));
        let mut all: Vec<u8> = train.labels.iter().chain(&val.labels).copied().collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<u8>>());
        // Images travel with their labels.
        assert_eq!(&val.images[..4], &[val.labels[0]; 4]);
        assert_eq!(d.split(0.3, 7).unwrap().1.labels, val.labels);
        assert!(d.split(0.0, 7).is_err());
        assert!(d.split(0.01, 7).is_err());
    }

    #[test]
    fn from_idx_reads_shape_and_values() {
        let (img, lab) = small_pair();
        let ds = Dataset::from_idx(&gzip(&img), &lab, "small").unwrap();
        assert_eq!((ds.len, ds.rows, ds.cols, ds.classes), (3, 2, 2, 10));
        assert_eq!(ds.features(), 4);
        assert_eq!(ds.labels, vec![0, 9, 4]);
        assert_eq!(ds.image(1).unwrap(), &[4, 5, 6, 7]);
        assert_eq!(ds.image(3), None);
        let counts = ds.class_counts();
        assert_eq!(
            (
                counts[0],
                counts[4],
                counts[9],
                counts.iter().sum::<usize>()
            ),
            (1, 1, 1, 3)
        );
    }

    #[test]
    fn rejects_image_label_count_mismatch() {
        let (img, _) = small_pair();
        let lab = idx_bytes(&[2], &[1, 2]);
        let (path, msg) = data_error(Dataset::from_idx(&img, &lab, "small").unwrap_err());
        assert_eq!(path, "small");
        assert!(
            msg.contains("small images has 3 images, small labels has 2 labels"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_label_at_or_above_classes() {
        let (img, _) = small_pair();
        let lab = idx_bytes(&[3], &[0, 10, 4]);
        let (path, msg) = data_error(Dataset::from_idx(&img, &lab, "small").unwrap_err());
        assert_eq!(path, "small labels");
        assert!(msg.contains("label 10 at index 1 is out of range"), "{msg}");
        assert!(msg.contains("10 classes (0..9)"), "{msg}");

        // The same labels pass with more classes, and fail with fewer.
        let lab = idx_bytes(&[3], &[0, 10, 4]);
        assert!(Dataset::from_idx_named(&img, "i", &lab, "l", "s", 11).is_ok());
        let (_, msg) =
            data_error(Dataset::from_idx_named(&img, "i", &lab, "l", "s", 4).unwrap_err());
        assert!(msg.contains("label 10 at index 1"), "{msg}");
    }

    #[test]
    fn rejects_empty_dataset() {
        let img = idx_bytes(&[0, 28, 28], &[]);
        let lab = idx_bytes(&[0], &[]);
        let (path, msg) = data_error(Dataset::from_idx(&img, &lab, "empty").unwrap_err());
        assert_eq!(path, "empty");
        assert!(msg.contains("empty (0 items)"), "{msg}");
        let (_, msg) = data_error(Dataset::new("e", vec![], vec![], 28, 28, 10).unwrap_err());
        assert!(msg.contains("empty (0 items)"), "{msg}");
    }

    #[test]
    fn rejects_wrong_rank() {
        let (img, lab) = small_pair();
        let (path, msg) = data_error(Dataset::from_idx(&lab, &lab, "swap").unwrap_err());
        assert_eq!(path, "swap images");
        assert!(
            msg.contains("must be 3-D [n, rows, cols], its dims are [3]"),
            "{msg}"
        );
        let (path, msg) = data_error(Dataset::from_idx(&img, &img, "swap").unwrap_err());
        assert_eq!(path, "swap labels");
        assert!(
            msg.contains("must be 1-D [n], its dims are [3, 2, 2]"),
            "{msg}"
        );
    }

    #[test]
    fn new_checks_image_bytes_per_label() {
        let (_, msg) =
            data_error(Dataset::new("raw", vec![0; 7], vec![1, 2], 2, 2, 10).unwrap_err());
        assert!(
            msg.contains("2 labels need 8 image bytes of 2x2, found 7"),
            "{msg}"
        );
    }

    /// Regression: `labels.len() * rows * cols` overflowed (a panic with overflow checks,
    /// a wrapped size without) for sizes whose product does not fit.
    #[test]
    fn new_refuses_sizes_that_overflow() {
        let (_, msg) = data_error(
            Dataset::new("big", vec![0; 4], vec![1; 4], usize::MAX / 2, 1, 10).unwrap_err(),
        );
        assert!(msg.contains("4 labels need more image bytes of"), "{msg}");
    }

    #[test]
    fn take_keeps_the_first_items_and_clamps() {
        let (img, lab) = small_pair();
        let ds = Dataset::from_idx(&img, &lab, "small").unwrap();
        let two = ds.take(2).unwrap();
        assert_eq!(two.len, 2);
        assert_eq!(two.labels, vec![0, 9]);
        assert_eq!(two.images, (0..8).collect::<Vec<u8>>());
        assert_eq!(two.name, "small (first 2)");
        assert_eq!(ds.take(100).unwrap(), ds);
        assert!(matches!(ds.take(0), Err(Error::Config(_))));
    }
}
