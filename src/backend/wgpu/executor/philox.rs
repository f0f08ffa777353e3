//! `philox.wgsl` on the device, for checking the GPU's Philox4x32-10 against the host's
//! and the published known answers.

use wgpu::util::DeviceExt;

use super::kernels::{groups_1d, Dims};
use super::{BindingKind, Dispatch, WgpuBackend};
use crate::error::Result;
use crate::graph::{ArenaKind, Slot};

impl WgpuBackend {
    /// Runs `shaders/philox.wgsl` on the device: `blocks` consecutive Philox4x32-10 blocks
    /// from `counter` (its first word incremented per block) under `key`, for checking the
    /// device's generator against the host's and the published known answers.
    pub fn philox_blocks(
        &mut self,
        counter: [u32; 4],
        key: [u32; 2],
        blocks: u32,
    ) -> Result<Vec<u32>> {
        let (pipeline, bgl) =
            self.pipeline("philox.wgsl", "philox_fill", &[], BindingKind::Graph, 1)?;
        // The shader reads the f words as raw bits (key and the last counter word).
        let dims = Dims {
            d: [blocks, counter[0], counter[1], counter[2]],
            f: [
                f32::from_bits(key[0]),
                f32::from_bits(key[1]),
                f32::from_bits(counter[3]),
                0.0,
            ],
            e: [0; 16],
        };
        let device = &self.ctx.device;
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("philox dims"),
            contents: bytemuck::bytes_of(&dims),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let words = blocks as usize * 4;
        let out = self.buffer("philox out", words);
        let slot = Slot {
            arena: ArenaKind::Activations,
            offset: 0,
            len: words,
        };
        let bind_group = self.bind_group(
            &bgl,
            (&uniform, 0, std::mem::size_of::<Dims>() as u64),
            &[(&out, slot)],
            None,
        );
        let dispatch = Dispatch {
            pipeline,
            bind_group,
            groups: groups_1d(blocks as usize, self.max_groups())?,
        };
        let ctx = &self.ctx;
        ctx.scoped("running philox_fill", || {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("philox"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("philox"),
                    timestamp_writes: None,
                });
                Self::record(&mut pass, std::iter::once(&dispatch));
            }
            ctx.queue.submit([encoder.finish()]);
        })?;
        let floats = self.ctx.read(&out, 0, words)?;
        Ok(floats.iter().map(|f| f.to_bits()).collect())
    }
}
