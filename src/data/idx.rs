//! The IDX file format (MNIST, Fashion-MNIST): big-endian header, then a dense u8 array.
//!
//! Layout: two zero bytes, an element-type byte, the number of dimensions, one big-endian
//! u32 per dimension, then the elements in row-major order.

use std::io::Read;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The element-type byte for unsigned bytes, the only type kiln's datasets use.
const TYPE_U8: u8 = 0x08;

/// The two-byte magic that starts every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate cannot expand data by more than about 1032:1, so a bigger gzip size trailer is
/// corrupt and must not be trusted as an allocation size.
const MAX_DEFLATE_RATIO: usize = 1032;

/// A parsed IDX array of u8 elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions as stored in the header, outermost first.
    pub dims: Vec<usize>,
    /// The elements in row-major order; its length is the product of `dims`.
    pub data: Vec<u8>,
}

/// Whether `bytes` start with the gzip magic; content decides, not the file name, so a
/// renamed or mislabelled file still reads.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[..2] == GZIP_MAGIC
}

/// Inflates `bytes` if they are gzip, otherwise returns them unchanged; `name` is used in errors.
pub fn maybe_gunzip(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    if !is_gzip(bytes) {
        return Ok(bytes.to_vec());
    }
    // The trailer's ISIZE is only a hint (it is the size mod 2^32 of the last member).
    let hint = bytes
        .len()
        .checked_sub(4)
        .and_then(|at| bytes.get(at..))
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(0, |tail| u32::from_le_bytes(tail) as usize)
        .min(bytes.len().saturating_mul(MAX_DEFLATE_RATIO));
    let mut out = Vec::with_capacity(hint);
    // Multi-member aware, so files written by pigz or concatenated gzips inflate whole.
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::data(name, format!("gzip data does not inflate: {e}")))?;
    Ok(out)
}

/// Parses an IDX file given as bytes, gzip-compressed or raw; `name` is used in errors.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    let raw = maybe_gunzip(bytes, name)?;
    parse_raw(raw, name)
}

/// Parses an uncompressed IDX file, taking ownership so the payload is not copied twice.
fn parse_raw(mut raw: Vec<u8>, name: &str) -> Result<IdxArray> {
    if raw.len() < 4 {
        return Err(Error::data(
            name,
            format!(
                "file is {} bytes, shorter than the 4-byte IDX magic",
                raw.len()
            ),
        ));
    }
    if raw[0] != 0 || raw[1] != 0 {
        return Err(Error::data(
            name,
            format!(
                "bad IDX magic: the first two bytes must be 0x00 0x00, found {:#04x} {:#04x} \
                 (not an IDX file, or a compression kiln does not read)",
                raw[0], raw[1]
            ),
        ));
    }
    let type_byte = raw[2];
    if type_byte != TYPE_U8 {
        return Err(Error::data(
            name,
            format!(
                "IDX element type {type_byte:#04x} ({}) is not supported; only u8 (0x08) is",
                type_name(type_byte)
            ),
        ));
    }
    let ndim = usize::from(raw[3]);
    if ndim == 0 {
        return Err(Error::data(name, "IDX header declares 0 dimensions"));
    }
    let header_len = 4 + 4 * ndim;
    let header = raw.get(4..header_len).ok_or_else(|| {
        Error::data(
            name,
            format!(
                "IDX header truncated: {ndim} dimensions need a {header_len}-byte header, \
                 file has {} bytes",
                raw.len()
            ),
        )
    })?;
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::data(
                name,
                format!("IDX dims {dims:?} overflow the address space"),
            )
        })?;
    let found = raw.len() - header_len;
    if found != expected {
        let what = if found < expected {
            "truncated".to_string()
        } else {
            format!("{} trailing bytes", found - expected)
        };
        return Err(Error::data(
            name,
            format!(
                "IDX payload length mismatch: dims {dims:?} need {expected} bytes, found {found} ({what})"
            ),
        ));
    }
    raw.drain(..header_len);
    Ok(IdxArray { dims, data: raw })
}

/// The IDX specification's name for an element-type byte, for error messages.
fn type_name(type_byte: u8) -> &'static str {
    match type_byte {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown type",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    /// A u8 IDX file with the given dims and payload (payload length is not checked, so
    /// tests can build malformed files).
    pub(crate) fn idx_bytes(dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, TYPE_U8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn message(err: Error) -> String {
        match err {
            Error::Data { path, message } => {
                assert_eq!(path, "test.idx");
                message
            }
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_3d_u8_array() {
        let payload: Vec<u8> = (0..24).collect();
        let arr = parse_idx(&idx_bytes(&[2, 3, 4], &payload), "test.idx").unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, payload);
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut bytes = idx_bytes(&[3], &[1, 2, 3]);
        bytes[1] = 0x01;
        let msg = message(parse_idx(&bytes, "test.idx").unwrap_err());
        assert!(msg.contains("bad IDX magic"), "{msg}");
        assert!(msg.contains("0x00 0x01"), "{msg}");
    }

    #[test]
    fn rejects_too_short_file() {
        let msg = message(parse_idx(&[0, 0], "test.idx").unwrap_err());
        assert!(msg.contains("file is 2 bytes"), "{msg}");
    }

    #[test]
    fn rejects_non_u8_element_type_by_name() {
        let mut bytes = idx_bytes(&[1], &[0, 0, 0, 0]);
        bytes[2] = 0x0D;
        let msg = message(parse_idx(&bytes, "test.idx").unwrap_err());
        assert!(msg.contains("0x0d (f32)"), "{msg}");
        bytes[2] = 0x0C;
        let msg = message(parse_idx(&bytes, "test.idx").unwrap_err());
        assert!(msg.contains("0x0c (i32)"), "{msg}");
    }

    #[test]
    fn rejects_truncated_header() {
        // Three dims declared, only one present.
        let bytes = [0, 0, 0x08, 3, 0, 0, 0, 5];
        let msg = message(parse_idx(&bytes, "test.idx").unwrap_err());
        assert!(msg.contains("16-byte header, file has 8 bytes"), "{msg}");
    }

    #[test]
    fn rejects_truncated_payload_with_lengths() {
        let bytes = idx_bytes(&[2, 2, 2], &[7; 5]);
        let msg = message(parse_idx(&bytes, "test.idx").unwrap_err());
        assert!(msg.contains("need 8 bytes, found 5 (truncated)"), "{msg}");
    }

    #[test]
    fn rejects_trailing_bytes_with_lengths() {
        let bytes = idx_bytes(&[4], &[7; 6]);
        let msg = message(parse_idx(&bytes, "test.idx").unwrap_err());
        assert!(
            msg.contains("need 4 bytes, found 6 (2 trailing bytes)"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_gzip_that_does_not_inflate() {
        // A valid gzip header followed by bytes that are not a deflate stream.
        let mut bad = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
        bad.extend_from_slice(&[0xff; 32]);
        let msg = message(parse_idx(&bad, "test.idx").unwrap_err());
        assert!(msg.contains("gzip data does not inflate"), "{msg}");

        // A real gzip cut short.
        let good = gzip(&idx_bytes(&[64], &[9; 64]));
        let msg = message(parse_idx(&good[..good.len() - 6], "test.idx").unwrap_err());
        assert!(msg.contains("gzip data does not inflate"), "{msg}");
    }

    #[test]
    fn raw_and_gzip_of_same_bytes_parse_equal() {
        let payload: Vec<u8> = (0..=255).cycle().take(3 * 28 * 28).collect();
        let raw = idx_bytes(&[3, 28, 28], &payload);
        let gz = gzip(&raw);
        assert!(is_gzip(&gz) && !is_gzip(&raw));
        let a = parse_idx(&raw, "test.idx").unwrap();
        let b = parse_idx(&gz, "test.idx").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.dims, vec![3, 28, 28]);
        assert_eq!(a.data.len(), 2352);
    }

    #[test]
    fn concatenated_gzip_members_inflate_whole() {
        let raw = idx_bytes(&[6], &[1, 2, 3, 4, 5, 6]);
        let mut gz = gzip(&raw[..7]);
        gz.extend_from_slice(&gzip(&raw[7..]));
        let arr = parse_idx(&gz, "test.idx").unwrap();
        assert_eq!(arr.data, vec![1, 2, 3, 4, 5, 6]);
    }
}
