//! Shader modules and compute pipelines, each created once and cached by entry point and the
//! values of its `override` constants (`Kernel::overrides`). A family's
//! module is `shaders/common.wgsl` followed by `shaders/<family>.wgsl`: plain concatenation of
//! two WGSL files.

use std::collections::HashMap;

use crate::kernels::{self, Access, Kernel};

/// Bytes of the uniform block every entry point reads at binding 0 (`Kernel::params`).
pub(crate) const PARAMS_BYTES: u64 = kernels::PARAMS_BYTES as u64;

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// An entry point and the values of its `override` constants.
type PipelineKey = (&'static str, Vec<(&'static str, u32)>);

#[derive(Default)]
pub(crate) struct Pipelines {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    cache: HashMap<PipelineKey, Pipeline>,
    pub created: u64,
}

impl Pipelines {
    /// The pipeline of `k`'s entry point and pipeline constants, built on first use. Entry point
    /// names are unique across shader files, so the name and the constants are the key; the
    /// layout depends on both (the constants may leave a binding unused).
    pub fn get(&mut self, device: &wgpu::Device, k: &Kernel) -> &Pipeline {
        let name = k.name();
        let key = (name, k.overrides());
        if !self.cache.contains_key(&key) {
            let family = k.family();
            let module = self.modules.entry(family).or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(family),
                    source: wgpu::ShaderSource::Wgsl(
                        format!("{}\n{}", kernels::COMMON_WGSL, k.source()).into(),
                    ),
                })
            });
            let mut entries = vec![layout_entry(0, wgpu::BufferBindingType::Uniform)];
            for s in k.slots() {
                let read_only = s.access == Access::Read;
                entries.push(layout_entry(s.binding, wgpu::BufferBindingType::Storage { read_only }));
            }
            for b in k.unused_bindings() {
                entries.push(layout_entry(b, wgpu::BufferBindingType::Storage { read_only: true }));
            }
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries: &entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let constants: Vec<(&str, f64)> = key.1.iter().map(|&(c, v)| (c, v as f64)).collect();
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(name),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    ..Default::default()
                },
                cache: None,
            });
            self.created += 1;
            self.cache.insert(key.clone(), Pipeline { pipeline, layout });
        }
        &self.cache[&key]
    }
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
        count: None,
    }
}
