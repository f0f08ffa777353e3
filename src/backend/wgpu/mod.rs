//! The wgpu backend: WGSL kernels dispatched from static plans, one submit per step.

pub mod channel_parts;
mod chunk;
mod context;
mod executor;
pub mod kernels;
pub mod matmul;
pub mod shaders;
pub mod split_k;
mod timing;
pub mod tune;

pub use context::{choose_adapter, enumerate_adapters, AdapterPolicy, GpuContext};
pub use executor::WgpuBackend;
pub use timing::{Clock, Timings};
