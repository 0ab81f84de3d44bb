//! Shader modules and compute pipelines, each created once and cached by entry point.

use std::collections::HashMap;

use crate::kernel::{Access, Kernel};

/// The WGSL source of a kernel family (a file in `shaders/`).
pub(crate) fn source(family: &str) -> &'static str {
    match family {
        "matmul" => include_str!("../../../../shaders/matmul.wgsl"),
        "unary" => include_str!("../../../../shaders/unary.wgsl"),
        "binary" => include_str!("../../../../shaders/binary.wgsl"),
        "reduce" => include_str!("../../../../shaders/reduce.wgsl"),
        "softmax" => include_str!("../../../../shaders/softmax.wgsl"),
        "layer_norm" => include_str!("../../../../shaders/layer_norm.wgsl"),
        "loss" => include_str!("../../../../shaders/loss.wgsl"),
        "optim" => include_str!("../../../../shaders/optim.wgsl"),
        "memory" => include_str!("../../../../shaders/memory.wgsl"),
        "conv" => include_str!("../../../../shaders/conv.wgsl"),
        "layout" => include_str!("../../../../shaders/layout.wgsl"),
        "running" => include_str!("../../../../shaders/running.wgsl"),
        other => unreachable!("no shader family {other}"),
    }
}

/// Bytes of the uniform block every entry point reads at binding 0 (`Kernel::params`).
pub(crate) const PARAMS_BYTES: u64 = 64;

pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(crate) struct Pipelines {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    cache: HashMap<&'static str, Pipeline>,
    pub created: u64,
}

impl Pipelines {
    /// The pipeline of `k`'s entry point, built on first use. Entry point names are unique across
    /// shader files, so the name is the key; the layout depends only on the entry point.
    pub fn get(&mut self, device: &wgpu::Device, k: &Kernel) -> &Pipeline {
        let name = k.name();
        if !self.cache.contains_key(name) {
            let family = k.family();
            let module = self.modules.entry(family).or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(family),
                    source: wgpu::ShaderSource::Wgsl(source(family).into()),
                })
            });
            let mut entries = vec![layout_entry(0, wgpu::BufferBindingType::Uniform)];
            for s in k.slots() {
                let read_only = s.access == Access::Read;
                entries.push(layout_entry(s.binding, wgpu::BufferBindingType::Storage { read_only }));
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
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(name),
                compilation_options: Default::default(),
                cache: None,
            });
            self.created += 1;
            self.cache.insert(name, Pipeline { pipeline, layout });
        }
        &self.cache[name]
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
