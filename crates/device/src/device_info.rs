//! The description of the device a backend runs on (shared by both backends and the selection
//! policy, so neither depends on the other).

use std::fmt;

/// What kind of device a backend runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    /// A discrete GPU (its own memory).
    DiscreteGpu,
    /// A GPU integrated with the CPU (shared memory).
    IntegratedGpu,
    /// A virtualized GPU (a VM's passthrough or vGPU).
    VirtualGpu,
    /// A hardware GPU of unknown kind.
    OtherGpu,
    /// A software rasterizer exposed as a GPU (lavapipe/llvmpipe, SwiftShader, WARP).
    SoftwareGpu,
    /// Kiln's native CPU backend.
    Cpu,
}

impl DeviceKind {
    /// Whether this is real GPU hardware (not a software rasterizer or the CPU backend).
    pub fn is_hardware_gpu(self) -> bool {
        matches!(
            self,
            DeviceKind::DiscreteGpu
                | DeviceKind::IntegratedGpu
                | DeviceKind::VirtualGpu
                | DeviceKind::OtherGpu
        )
    }
}

/// A description of a backend's device, for logs and `kiln info`.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// The adapter's name (e.g. "NVIDIA GeForce RTX 3060"), or the CPU's.
    pub name: String,
    /// What kind of device it is.
    pub kind: DeviceKind,
    /// "native" for the CPU backend, else the graphics API (Vulkan, Metal, Dx12).
    pub api: String,
    /// Driver name and version as the adapter reports them (empty if unknown).
    pub driver: String,
    /// Limits that matter to Kiln's kernels, by wgpu's names.
    pub limits: Vec<(&'static str, u64)>,
    /// Optional features that were requested and granted.
    pub features: Vec<String>,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}, {}", self.name, self.kind, self.api)?;
        if !self.driver.is_empty() {
            write!(f, ", driver {}", self.driver)?;
        }
        write!(f, ")")
    }
}
