//! The pipeline caches of the wgpu executor: explicit bind-group layouts per binding shape,
//! shader modules per (file, f16 binding signature), compute pipelines per (entry point,
//! override constants, layout, signature), and bind-group construction. Built once per plan
//! at compile time; a run only replays them.

use std::num::NonZeroU64;

use wgpu::{BindGroup, BindGroupLayout, Buffer, ComputePipeline, PipelineLayout, ShaderModule};

use super::{optimizer, shaders, BindingKind, ExtraUniform, WgpuBackend, SCALARS_BINDING};
use crate::error::Result;
use crate::graph::Slot;

impl WgpuBackend {
    pub(super) fn layout(
        &mut self,
        kind: BindingKind,
        storage: usize,
    ) -> (BindGroupLayout, PipelineLayout) {
        let device = &self.ctx.device;
        self.layouts
            .entry((kind, storage))
            .or_insert_with(|| {
                let uniform = |binding| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                };
                let mut entries = vec![uniform(0)];
                if kind == BindingKind::GraphWithScalars {
                    entries.push(uniform(SCALARS_BINDING));
                }
                if kind == BindingKind::Optim {
                    entries.push(uniform(optimizer::PIECE_BINDING));
                }
                for b in 1..=storage as u32 {
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding: b,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: false },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    });
                }
                let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("kiln bind group layout"),
                    entries: &entries,
                });
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some("kiln pipeline layout"),
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
                (bgl, pl)
            })
            .clone()
    }

    /// The module of `shader` with f16 at the storage bindings where `half` is true.
    pub(super) fn module(&mut self, shader: &'static str, half: &[bool]) -> Result<ShaderModule> {
        let key = (shader, half.to_vec());
        if let Some(m) = self.modules.get(&key) {
            return Ok(m.clone());
        }
        let source = shaders::module_source(shader, half)?;
        let device = &self.ctx.device;
        let module = self.ctx.scoped(&format!("compiling {shader}"), || {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            })
        })?;
        self.modules.insert(key, module.clone());
        Ok(module)
    }

    pub(super) fn pipeline(
        &mut self,
        shader: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        kind: BindingKind,
        storage: usize,
    ) -> Result<(ComputePipeline, BindGroupLayout)> {
        self.pipeline_typed(shader, entry, constants, kind, &vec![false; storage])
    }

    /// [`Self::pipeline`] with f16 at the storage bindings where `half` is true (one flag
    /// per storage binding).
    pub(super) fn pipeline_typed(
        &mut self,
        shader: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        kind: BindingKind,
        half: &[bool],
    ) -> Result<(ComputePipeline, BindGroupLayout)> {
        let storage = half.len();
        let key = format!("{shader}:{entry}:{constants:?}:{kind:?}:{half:?}");
        let (bgl, pl) = self.layout(kind, storage);
        if let Some(p) = self.pipelines.get(&key) {
            return Ok((p.clone(), bgl));
        }
        let module = self.module(shader, half)?;
        let device = &self.ctx.device;
        let pipeline = self
            .ctx
            .scoped(&format!("creating pipeline {shader}:{entry}"), || {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
            })?;
        self.pipelines.insert(key, pipeline.clone());
        Ok((pipeline, bgl))
    }

    pub(super) fn bind_group(
        &self,
        layout: &BindGroupLayout,
        uniform: (&Buffer, u64, u64),
        storage: &[(&Buffer, Slot)],
        extra: Option<ExtraUniform<'_>>,
    ) -> BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniform.0,
                offset: uniform.1,
                size: NonZeroU64::new(uniform.2),
            }),
        }];
        for (i, (buffer, slot)) in storage.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset: slot.byte_offset() as u64,
                    size: NonZeroU64::new(slot.byte_len() as u64),
                }),
            });
        }
        if let Some(u) = extra {
            entries.push(wgpu::BindGroupEntry {
                binding: u.binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: u.buffer,
                    offset: u.offset,
                    size: NonZeroU64::new(u.size),
                }),
            });
        }
        self.ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout,
                entries: &entries,
            })
    }
}
