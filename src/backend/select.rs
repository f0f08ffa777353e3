//! Choosing a backend from the user's `--backend auto|gpu|cpu`.

use std::str::FromStr;

use super::cpu::CpuBackend;
use super::wgpu::{AdapterPolicy, WgpuBackend};
use super::Backend;
use crate::error::{Error, Result};
use crate::precision::Precision;

/// The user's choice of backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// A hardware GPU if there is one, else the CPU backend (a software adapter is slower
    /// than kiln's own CPU backend, so it is used only when asked for).
    Auto,
    /// A wgpu adapter, software ones included; an error when there is none.
    Gpu,
    /// The CPU reference backend.
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" | "wgpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(Error::Config(format!(
                "unknown backend '{other}' (auto, gpu, cpu)"
            ))),
        }
    }
}

/// Opens the chosen backend. `Auto` says in one line on stderr when it falls back to the CPU.
pub fn select_backend(choice: BackendChoice) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::new())),
        BackendChoice::Gpu => Ok(Box::new(WgpuBackend::new(AdapterPolicy::AllowSoftware)?)),
        BackendChoice::Auto => match WgpuBackend::new(AdapterPolicy::HardwareOnly) {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => {
                eprintln!("{e}; training on the CPU backend (use --backend gpu to use a software adapter)");
                Ok(Box::new(CpuBackend::new()))
            }
        },
    }
}

/// Opens the chosen backend for a model trained in `precision`, and says which precision it
/// will train in. The CPU backend runs f16 as an emulation (same rounding as the GPU's f16
/// storage). A GPU without `SHADER_F16` is a typed error when the GPU was asked for by name
/// (`--backend gpu --precision f16`), and with `Auto` a one-line message and f32.
pub fn select_backend_for(
    choice: BackendChoice,
    precision: Precision,
) -> Result<(Box<dyn Backend>, Precision)> {
    let gpu = |policy| -> Result<(WgpuBackend, bool)> {
        let b = WgpuBackend::new(policy)?;
        let f16 = b.context().has_f16();
        Ok((b, f16))
    };
    match (choice, precision) {
        (_, Precision::F32) | (BackendChoice::Cpu, _) => Ok((select_backend(choice)?, precision)),
        (BackendChoice::Gpu, Precision::F16) => match gpu(AdapterPolicy::AllowSoftware)? {
            (b, true) => Ok((Box::new(b), precision)),
            (b, false) => Err(Error::Unsupported(format!(
                "--precision f16 needs the SHADER_F16 feature, which {} lacks (use --precision \
                 f32)",
                b.describe()
            ))),
        },
        (BackendChoice::Auto, Precision::F16) => match gpu(AdapterPolicy::HardwareOnly) {
            Ok((b, true)) => Ok((Box::new(b), precision)),
            Ok((b, false)) => {
                eprintln!(
                    "{} lacks SHADER_F16 (f16 shaders): training in f32",
                    b.describe()
                );
                Ok((Box::new(b), Precision::F32))
            }
            Err(e) => {
                eprintln!(
                    "{e}; training on the CPU backend, which emulates f16 (use --backend gpu \
                     to use a software adapter)"
                );
                Ok((Box::new(CpuBackend::new()), precision))
            }
        },
    }
}
