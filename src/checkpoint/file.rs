//! Reading and writing one checkpoint file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// The format written into `__metadata__["format"]`; files of another format are refused.
pub const FORMAT: &str = "kiln-checkpoint-1";

/// An f32 tensor by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Its name (PyTorch's for model tensors, `optim.…` for optimizer state).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// An i64 tensor by name (batch norm's `num_batches_tracked`).
#[derive(Clone, Debug, PartialEq)]
pub struct IntTensor {
    /// Its name.
    pub name: String,
    /// Its shape (`[]` for a scalar, as PyTorch stores it).
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<i64>,
}

/// The contents of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// f32 tensors.
    pub tensors: Vec<Tensor>,
    /// i64 tensors.
    pub ints: Vec<IntTensor>,
    /// String metadata (format and checksum are added on writing).
    pub metadata: BTreeMap<String, String>,
}

fn bad(path: &str, message: impl Into<String>) -> Error {
    Error::data(path, message)
}

impl Checkpoint {
    /// An f32 tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// CRC-32 of every tensor's name, shape and bytes, in name order: what `checksum` in
    /// the metadata records, so a flipped byte anywhere in the data is caught.
    fn checksum(&self) -> String {
        let mut entries: Vec<(&str, &[usize], Vec<u8>)> = Vec::new();
        for t in &self.tensors {
            entries.push((&t.name, &t.shape, bytemuck::cast_slice(&t.data).to_vec()));
        }
        for t in &self.ints {
            entries.push((&t.name, &t.shape, bytemuck::cast_slice(&t.data).to_vec()));
        }
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut h = crc32fast::Hasher::new();
        for (name, shape, bytes) in entries {
            h.update(name.as_bytes());
            for d in shape {
                h.update(&(*d as u64).to_le_bytes());
            }
            h.update(&bytes);
        }
        format!("{:08x}", h.finalize())
    }

    /// The safetensors bytes of this checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut meta: std::collections::HashMap<String, String> =
            self.metadata.clone().into_iter().collect();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("checksum".into(), self.checksum());
        let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
        let fail =
            |e: safetensors::SafeTensorError| Error::Config(format!("building a checkpoint: {e}"));
        for t in &self.tensors {
            views.push((
                t.name.clone(),
                TensorView::new(Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))
                    .map_err(fail)?,
            ));
        }
        for t in &self.ints {
            views.push((
                t.name.clone(),
                TensorView::new(Dtype::I64, t.shape.clone(), bytemuck::cast_slice(&t.data))
                    .map_err(fail)?,
            ));
        }
        safetensors::serialize(views, Some(meta)).map_err(fail)
    }

    /// Parses a checkpoint; `path` names it in errors. Refuses another format, a checksum
    /// that does not match, a header whose offsets do not fit, and tensors of other types.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Checkpoint> {
        check_header_length(bytes, path)?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|e| bad(path, explain(&e, bytes)))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(path, explain(&e, bytes)))?;
        let mut metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut ckpt = Checkpoint::default();
        for name in st.names() {
            let view = st
                .tensor(name)
                .map_err(|e| bad(path, format!("tensor {name}: {e}")))?;
            let shape = view.shape().to_vec();
            let data = view.data();
            match view.dtype() {
                Dtype::F32 => ckpt.tensors.push(Tensor {
                    name: name.to_string(),
                    shape,
                    data: data
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                }),
                Dtype::I64 => ckpt.ints.push(IntTensor {
                    name: name.to_string(),
                    shape,
                    data: data
                        .chunks_exact(8)
                        .map(|c| {
                            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                }),
                other => {
                    return Err(bad(
                        path,
                        format!("tensor {name} is {other:?}; kiln reads F32 and I64"),
                    ))
                }
            }
        }
        ckpt.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        ckpt.ints.sort_by(|a, b| a.name.cmp(&b.name));
        // Plain PyTorch files have no kiln metadata; they can still be read as weights.
        if let Some(format) = metadata.remove("format") {
            if format != FORMAT {
                return Err(bad(path, format!("format '{format}', expected '{FORMAT}'")));
            }
            let stored = metadata.remove("checksum").unwrap_or_default();
            let actual = ckpt.checksum();
            if stored != actual {
                return Err(bad(path, format!("checksum mismatch (stored {stored}, data gives {actual}): the file is corrupt")));
            }
        }
        ckpt.metadata = metadata;
        Ok(ckpt)
    }

    /// Reads and checks a checkpoint file.
    pub fn read(path: &Path) -> Result<Checkpoint> {
        let bytes = fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Checkpoint::from_bytes(&bytes, &path.display().to_string())
    }

    /// Writes the checkpoint atomically (see [`write_atomic`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }
}

/// The bytes of the header-length field that starts every safetensors file.
const LENGTH_FIELD: usize = 8;

/// Checks the header-length field against the file's size, so that a truncated file or a
/// lying length is named as such rather than as a malformed header.
fn check_header_length(bytes: &[u8], path: &str) -> Result<()> {
    let Some(field) = bytes
        .get(..LENGTH_FIELD)
        .and_then(|b| <[u8; LENGTH_FIELD]>::try_from(b).ok())
    else {
        return Err(bad(
            path,
            format!(
                "file is {} bytes, shorter than the {LENGTH_FIELD}-byte header length field \
                 (truncated, or not a safetensors file)",
                bytes.len()
            ),
        ));
    };
    let declared = u64::from_le_bytes(field);
    let available = bytes.len() - LENGTH_FIELD;
    if declared > available as u64 {
        return Err(bad(
            path,
            format!(
                "header length field says {declared} bytes but only {available} follow it \
                 (truncated, or the length is corrupt)"
            ),
        ));
    }
    Ok(())
}

/// safetensors' error in words that say what is wrong with the file.
fn explain(e: &safetensors::SafeTensorError, bytes: &[u8]) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer => {
            let header = bytes
                .get(..LENGTH_FIELD)
                .and_then(|b| <[u8; LENGTH_FIELD]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes);
            let data = (bytes.len() as u64).saturating_sub(LENGTH_FIELD as u64 + header);
            format!(
                "the tensor data_offsets do not cover the {data} bytes of tensor data exactly \
                 (truncated, trailing bytes, or offsets past the end)"
            )
        }
        E::InvalidOffset(name) => format!(
            "tensor '{name}' has data_offsets that overlap another tensor, leave a gap or \
             run backwards"
        ),
        E::TensorInvalidInfo => {
            "a tensor's data_offsets do not span its shape times its element size".to_string()
        }
        E::ValidationOverflow => "a tensor's shape overflows the address space".to_string(),
        E::HeaderTooLarge => "the header length field is larger than safetensors allows \
             (corrupt, or not a safetensors file)"
            .to_string(),
        other => format!("not a valid safetensors file: {other}"),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
/// a temporary file in the same directory, fsync, rename over the target, fsync of the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = File::open(dir) {
        // Directories cannot be fsynced on every platform; where they can, it makes the
        // rename itself durable.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut c = Checkpoint::default();
        c.tensors.push(Tensor {
            name: "0.weight".into(),
            shape: vec![2, 3],
            data: vec![1.0, -2.0, 3.5, 0.0, 1e-7, 9.0],
        });
        c.ints.push(IntTensor {
            name: "1.num_batches_tracked".into(),
            shape: vec![],
            data: vec![42],
        });
        c.metadata.insert("model".into(), "mlp".into());
        c
    }

    #[test]
    fn round_trips_through_bytes() {
        let c = sample();
        let back = Checkpoint::from_bytes(&c.to_bytes().unwrap(), "x").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn flipped_bytes_and_truncation_are_refused_without_panic() {
        let bytes = sample().to_bytes().unwrap();
        // A flipped byte in the tensor data (the last bytes of the file) fails the checksum.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        let err = Checkpoint::from_bytes(&flipped, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum"), "{err}");
        // Every truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(
                Checkpoint::from_bytes(&bytes[..cut], "x").is_err(),
                "cut at {cut}"
            );
        }
        // A header that lies about offsets: the f32 tensor (after the 8-byte i64 scalar,
        // as safetensors orders by alignment) said to end past the data.
        let mut lying = bytes.clone();
        let needle = b"\"data_offsets\":[8,32]";
        let at = lying
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the f32 tensor's offsets in the header");
        lying[at + 16..at + 20].copy_from_slice(b"8,99");
        let err = Checkpoint::from_bytes(&lying, "x").unwrap_err().to_string();
        assert!(err.contains("data_offsets do not span its shape"), "{err}");
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("kiln-ckpt-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.safetensors");
        sample().write(&path).unwrap();
        let mut c = sample();
        c.metadata.insert("step".into(), "7".into());
        c.write(&path).unwrap();
        assert_eq!(
            Checkpoint::read(&path)
                .unwrap()
                .metadata
                .get("step")
                .map(String::as_str),
            Some("7")
        );
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
