//! Loading an MNIST-format dataset from a directory of the four standard IDX files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::dataset::{Dataset, MNIST_CLASSES};

/// The standard file names, without the optional `.gz` suffix.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Loads (train, test) from `dir`, which holds the four standard MNIST-format files, each
/// raw or with a `.gz` suffix (as in the original distribution and in Debian's
/// `/usr/share/datasets/fashion-mnist`).
pub fn load_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    let train = load_split(dir, TRAIN_IMAGES, TRAIN_LABELS, "train")?;
    let test = load_split(dir, TEST_IMAGES, TEST_LABELS, "test")?;
    Ok((train, test))
}

/// Reads one split's image and label files and checks them against each other.
fn load_split(dir: &Path, images: &str, labels: &str, split: &str) -> Result<Dataset> {
    let images_path = find_file(dir, images)?;
    let labels_path = find_file(dir, labels)?;
    let images_bytes = read(&images_path)?;
    let labels_bytes = read(&labels_path)?;
    Dataset::from_idx_named(
        &images_bytes,
        &images_path.display().to_string(),
        &labels_bytes,
        &labels_path.display().to_string(),
        &format!("{} ({split})", dir.display()),
        MNIST_CLASSES,
    )
}

/// The path of `base` in `dir`, raw or gzip. The raw file wins when both exist, since a
/// user who decompressed the archive did so to skip inflating it on every run.
fn find_file(dir: &Path, base: &str) -> Result<PathBuf> {
    let raw = dir.join(base);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{base}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let why = if dir.is_dir() {
        ""
    } else {
        " (the directory does not exist)"
    };
    Err(Error::data(
        dir.display().to_string(),
        format!(
            "missing {base}: neither {base} nor {base}.gz is in {}{why}",
            dir.display()
        ),
    ))
}

/// Reads a whole file, naming it in the error.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::{gzip, idx_bytes};

    /// A fresh, empty directory under the system temp dir, unique to this test and process.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-data-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a tiny 4-item train split and 2-item test split of 3x2 images; the first
    /// two files are gzip, the last two raw, so both kinds are read in one load.
    fn write_tiny_set(dir: &Path) {
        let train_px: Vec<u8> = (0..24).collect();
        let test_px: Vec<u8> = (100..112).collect();
        let files = [
            (
                format!("{TRAIN_IMAGES}.gz"),
                gzip(&idx_bytes(&[4, 3, 2], &train_px)),
            ),
            (
                format!("{TRAIN_LABELS}.gz"),
                gzip(&idx_bytes(&[4], &[3, 1, 4, 1])),
            ),
            (TEST_IMAGES.to_string(), idx_bytes(&[2, 3, 2], &test_px)),
            (TEST_LABELS.to_string(), idx_bytes(&[2], &[5, 9])),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn loads_mixed_raw_and_gzip_files() {
        let dir = scratch_dir("mixed");
        write_tiny_set(&dir);
        let (train, test) = load_dir(&dir).unwrap();
        assert_eq!((train.len, train.rows, train.cols), (4, 3, 2));
        assert_eq!(train.labels, vec![3, 1, 4, 1]);
        assert_eq!(train.images[23], 23);
        assert_eq!((test.len, test.rows, test.cols), (2, 3, 2));
        assert_eq!(test.labels, vec![5, 9]);
        assert_eq!(test.images[0], 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_names_file_and_directory() {
        let dir = scratch_dir("missing");
        write_tiny_set(&dir);
        std::fs::remove_file(dir.join(TEST_LABELS)).unwrap();
        let err = load_dir(&dir).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("neither t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte.gz"),
            "{shown}"
        );
        assert!(shown.contains(&dir.display().to_string()), "{shown}");
        std::fs::remove_dir_all(&dir).unwrap();

        let gone = dir.join("nope");
        let shown = load_dir(&gone).unwrap_err().to_string();
        assert!(shown.contains("the directory does not exist"), "{shown}");
    }

    #[test]
    fn format_error_names_the_file() {
        let dir = scratch_dir("corrupt");
        write_tiny_set(&dir);
        // Truncate the raw test images by one byte.
        std::fs::write(dir.join(TEST_IMAGES), idx_bytes(&[2, 3, 2], &[0; 11])).unwrap();
        match load_dir(&dir).unwrap_err() {
            Error::Data { path, message } => {
                assert_eq!(path, dir.join(TEST_IMAGES).display().to_string());
                assert!(message.contains("need 12 bytes, found 11"), "{message}");
            }
            other => panic!("expected a data error, got {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The Debian package's directory (gzip files) loads in full, when it is installed.
    #[test]
    fn loads_debian_fashion_mnist_when_present() {
        let dir = Path::new(crate::data::SYSTEM_FASHION_MNIST_DIR);
        if !dir.is_dir() {
            eprintln!("skipping: {} is absent", dir.display());
            return;
        }
        let (train, test) = load_dir(dir).unwrap();
        assert_eq!(
            (train.len, train.rows, train.cols, train.classes),
            (60_000, 28, 28, 10)
        );
        assert_eq!((test.len, test.rows, test.cols), (10_000, 28, 28));
        // Fashion-MNIST is balanced: 6,000 training and 1,000 test items per class.
        assert_eq!(train.class_counts(), vec![6_000; 10]);
        assert_eq!(test.class_counts(), vec![1_000; 10]);
    }
}
