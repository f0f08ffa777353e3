//! kiln: a training engine for neural-network classifiers on wgpu compute shaders, with a
//! CPU reference backend that runs the same plans so every kernel is checked against it.
//!
//! ```no_run
//! use kiln::{backend::cpu::CpuBackend, data, train::{TrainConfig, Trainer}};
//! # fn main() -> kiln::Result<()> {
//! let (train, test) = data::embedded()?;
//! let config = TrainConfig { epochs: 1, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(Box::new(CpuBackend::new()), "mlp", &config)?;
//! let report = trainer.fit(&train, &test, &mut |_| {})?;
//! println!("test accuracy {:.2}%", 100.0 * report.last().map_or(0.0, |e| e.test_accuracy));
//! # Ok(()) }
//! ```

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod graph;
pub mod nn;
pub mod op;
pub mod optim;
pub mod parity;
pub mod precision;
pub mod report;
pub mod rng;
pub mod shape;
pub mod train;

pub use error::{Error, Result};
