//! Finding wgpu adapters, ranking them, and opening a device with the adapter's own limits.

use crate::device_info::{DeviceInfo, DeviceKind};
use crate::error::{Error, Result};

/// Graphics APIs Kiln uses natively.
const APIS: wgpu::Backends = wgpu::Backends::VULKAN.union(wgpu::Backends::METAL).union(wgpu::Backends::DX12);

/// Features used when the adapter has them; none is required.
const WANTED: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

/// What Kiln's kernels need at least: five storage buffers per stage (Adam), 256 invocations per
/// workgroup, 8 KiB of workgroup memory (the matmul tiles).
pub(crate) fn check_limits(name: &str, l: &wgpu::Limits) -> Result<()> {
    let needs: [(&str, u64, u64); 4] = [
        ("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage as u64, 5),
        ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup as u64, 256),
        ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size as u64, 8192),
        ("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension as u64, 65535),
    ];
    for (what, have, need) in needs {
        if have < need {
            return Err(Error::Unsupported {
                adapter: name.to_string(),
                what: format!("{what} >= {need} (it offers {have})"),
            });
        }
    }
    Ok(())
}

fn instance() -> wgpu::Instance {
    quiet_mesa();
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = APIS;
    wgpu::Instance::new(desc)
}

/// Mesa's Vulkan drivers (lavapipe included) print "error: XDG_RUNTIME_DIR is invalid or not set
/// in the environment." on every instance when the variable is unset (headless machines, CI,
/// containers). It is harmless but reads like an error of the program's, so every user of the
/// library (not only the CLI) gets it set to the temporary directory, once, before the first
/// instance. A value the user set is never changed.
fn quiet_mesa() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
    });
}

pub(crate) fn kind_of(info: &wgpu::AdapterInfo) -> DeviceKind {
    let name = info.name.to_ascii_lowercase();
    let software = ["llvmpipe", "lavapipe", "swiftshader", "basic render driver", "warp"];
    if info.device_type == wgpu::DeviceType::Cpu || software.iter().any(|s| name.contains(s)) {
        return DeviceKind::SoftwareGpu;
    }
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu,
        _ => DeviceKind::OtherGpu,
    }
}

/// Every adapter wgpu finds for Vulkan, Metal and DX12, best first: discrete, integrated, virtual,
/// other, software; Vulkan before the others for the same kind.
pub fn list() -> Vec<(wgpu::Adapter, DeviceKind)> {
    let mut adapters: Vec<(wgpu::Adapter, DeviceKind)> =
        pollster::block_on(instance().enumerate_adapters(APIS))
            .into_iter()
            .map(|a| {
                let kind = kind_of(&a.get_info());
                (a, kind)
            })
            .collect();
    adapters.sort_by_key(|(a, kind)| (*kind, a.get_info().backend != wgpu::Backend::Vulkan));
    adapters
}

/// A short description of every adapter, for `kiln info`.
pub fn describe_all() -> Vec<DeviceInfo> {
    list().iter().map(|(a, kind)| info_of(a, *kind, a.limits(), a.features() & WANTED)).collect()
}

/// True when a hardware GPU (not a software rasterizer) is present.
pub fn has_hardware_adapter() -> bool {
    list().iter().any(|(_, kind)| kind.is_hardware_gpu())
}

fn info_of(a: &wgpu::Adapter, kind: DeviceKind, l: wgpu::Limits, features: wgpu::Features) -> DeviceInfo {
    let i = a.get_info();
    DeviceInfo {
        name: i.name.clone(),
        kind,
        api: format!("{:?}", i.backend),
        driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        limits: vec![
            ("max_buffer_size", l.max_buffer_size),
            ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
            ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size as u64),
            ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup as u64),
            ("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage as u64),
        ],
        features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
    }
}

/// Opens an adapter (hardware only unless `allow_software`): the best for `index` 0, and for
/// data-parallel replica `index` the adapters of the best one's kind and API (two identical GPUs,
/// not one GPU seen through two APIs) in turn, so one adapter takes them all.
pub(crate) fn open_nth(
    allow_software: bool,
    index: usize,
) -> Result<(wgpu::Device, wgpu::Queue, DeviceInfo)> {
    let mut adapters = list();
    let found: Vec<String> = adapters.iter().map(|(a, k)| format!("{} ({k:?})", a.get_info().name)).collect();
    adapters.retain(|(_, kind)| allow_software || kind.is_hardware_gpu());
    if let Some((best, kind)) = adapters.first().map(|(a, k)| (a.get_info().backend, *k)) {
        adapters.retain(|(a, k)| *k == kind && a.get_info().backend == best);
    }
    let turn = index % adapters.len().max(1);
    let (adapter, kind) = adapters.into_iter().nth(turn).ok_or_else(|| {
        Error::NoAdapter(if found.is_empty() {
            "wgpu found no Vulkan, Metal or DX12 adapter (on Linux without a GPU: apt-get install \
                 mesa-vulkan-drivers libvulkan1 for the software one)"
                .into()
        } else {
            format!("only software adapters were found: {}", found.join(", "))
        })
    })?;
    let name = adapter.get_info().name;
    let limits = adapter.limits();
    check_limits(&name, &limits)?;
    let features = adapter.features() & WANTED;
    let desc = wgpu::DeviceDescriptor {
        label: Some("kiln"),
        required_features: features,
        required_limits: limits.clone(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc))
        .map_err(|e| Error::Gpu(format!("{name}: request_device failed: {e}")))?;
    let info = info_of(&adapter, kind, limits, features);
    Ok((device, queue, info))
}
