//! The description of the device a backend runs on (shared by both backends and the selection
//! policy, so neither depends on the other).

use std::fmt;

/// What kind of device a backend runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    OtherGpu,
    /// A software rasterizer exposed as a GPU (lavapipe/llvmpipe, SwiftShader, WARP).
    SoftwareGpu,
    /// Kiln's native CPU backend.
    Cpu,
}

impl DeviceKind {
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
    pub name: String,
    pub kind: DeviceKind,
    /// "native" for the CPU backend, else the graphics API (Vulkan, Metal, Dx12).
    pub api: String,
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
