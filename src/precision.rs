//! The numeric precision a model trains in: plain f32, or f16 mixed precision (f16
//! activations and activation gradients, f32 master weights, gradients and optimizer state,
//! dynamic loss scaling), as PyTorch's `torch.autocast` with a `GradScaler`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How activations are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Activations, their gradients and an f16 copy of the weights in f16, read into f32
    /// for every computation; master weights, gradients and optimizer state in f32.
    F16,
}

impl Precision {
    /// Whether activations are stored in f16.
    pub fn is_half(self) -> bool {
        self == Precision::F16
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "f32" | "float32" => Ok(Precision::F32),
            "f16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(Error::Config(format!(
                "unknown precision '{s}' (expected f32 or f16)"
            ))),
        }
    }
}

/// `x` rounded to the nearest f16 (ties to even; overflow to ±infinity), as an f32: the
/// value an f16 slot holds after an f32 computation is stored in it.
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Rounds every value of `values` to f16 in place (see [`round_f16`]), through `half`'s
/// slice conversions, which use the CPU's f16 instructions (F16C) where it has them.
pub fn round_slice_f16(values: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let mut halves = [half::f16::ZERO; 1024];
    for chunk in values.chunks_mut(halves.len()) {
        let h = &mut halves[..chunk.len()];
        h.convert_from_f32_slice(chunk);
        h.convert_to_f32_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_ieee_half() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
        assert_eq!(round_f16(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(
            round_f16(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2.0 * 2f32.powi(-10)
        );
        assert_eq!(round_f16(65504.0), 65504.0);
        assert_eq!(round_f16(65520.0), f32::INFINITY);
        assert_eq!(round_f16(-1e6), f32::NEG_INFINITY);
        // The smallest subnormal f16, 2^-24, survives; half of it rounds to zero.
        assert_eq!(round_f16(2f32.powi(-24)), 2f32.powi(-24));
        assert_eq!(round_f16(2f32.powi(-26)), 0.0);
        assert!(round_f16(f32::NAN).is_nan());
    }

    #[test]
    fn slice_rounding_matches_scalar_rounding() {
        let mut values: Vec<f32> = (0..3000)
            .map(|i| (i as f32 - 1500.0) * 1.000_37_f32.powi(i) * 0.013)
            .chain([65519.0, 65520.0, 2f32.powi(-25), f32::INFINITY])
            .collect();
        let want: Vec<f32> = values.iter().map(|&v| round_f16(v)).collect();
        round_slice_f16(&mut values);
        assert_eq!(values, want);
    }

    #[test]
    fn parses_pytorch_names() {
        assert_eq!("f16".parse::<Precision>().ok(), Some(Precision::F16));
        assert_eq!("float32".parse::<Precision>().ok(), Some(Precision::F32));
        assert!("bf16".parse::<Precision>().is_err());
    }
}
