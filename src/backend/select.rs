//! Choosing a backend from the user's `--backend auto|gpu|cpu`.

use std::str::FromStr;

use super::cpu::CpuBackend;
use super::wgpu::{AdapterPolicy, WgpuBackend};
use super::Backend;
use crate::error::{Error, Result};

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
