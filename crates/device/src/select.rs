//! Which hardware runs the kernels: the user's choice and the adapter policy.

use std::fmt;

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::error::{Error, Result};
use crate::gpu::{self, GpuBackend};

/// The user's backend request, from the API or `KILN_BACKEND`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// A hardware GPU (discrete before integrated), else the native CPU backend. Never a software
    /// Vulkan adapter: those run the WGSL kernels ~20x slower than native CPU code.
    #[default]
    Auto,
    /// The best wgpu adapter, software ones included (how CI runs every WGSL kernel).
    Gpu,
    /// The native CPU backend.
    Cpu,
}

impl BackendChoice {
    /// `KILN_BACKEND` if set (auto, gpu or cpu), otherwise `Auto`.
    pub fn from_env() -> Result<Self> {
        match std::env::var("KILN_BACKEND") {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(BackendChoice::Auto),
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(Error::UnknownBackend(other.to_string())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        })
    }
}

/// Opens the backend the choice asks for, following the adapter policy.
pub fn open(choice: BackendChoice) -> Result<Box<dyn Backend>> {
    open_replica(choice, 0)
}

/// [`open`] for data-parallel replica `index` (0 is what `open` opens): a GPU choice gives the
/// replicas the best adapters of one kind in turn (each GPU of a multi-GPU machine, or several
/// devices on one adapter); a CPU choice opens another CPU backend.
pub fn open_replica(choice: BackendChoice, index: usize) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::Cpu => Ok(Box::new(CpuBackend::new())),
        BackendChoice::Gpu => Ok(Box::new(GpuBackend::new_nth(true, index)?)),
        BackendChoice::Auto => match gpu::has_hardware_adapter() {
            true => Ok(Box::new(GpuBackend::new_nth(false, index)?)),
            false => Ok(Box::new(CpuBackend::new())),
        },
    }
}
