//! kiln-device: buffers, adapters and kernels for Kiln.
//!
//! Two backends implement [`Backend`] with the same semantics: [`cpu::CpuBackend`] (native Rust,
//! multi-threaded, the reference) and [`gpu::GpuBackend`] (wgpu + the WGSL kernels in `shaders/`).
//! A caller allocates buffers, compiles a list of [`Launch`]es into a plan once, then submits that
//! plan as often as it likes; on the GPU one submission is one command buffer.

mod backend;
pub mod cpu;
mod error;
pub mod gpu;
pub mod kernel;
mod pool;
mod prim;
mod select;

pub use backend::{Backend, BufferId, DType, HostData, HostVec, Launch, PlanId, Stats, Ticket};
pub use error::{Error, Result};
pub use kernel::{
    Access, BinaryOp, Broadcast, Kernel, Matmul, Permute, ReduceOp, Saved, UnaryOp, Window2d, HYPER_LEN,
};
pub use prim::{Patches, Prim, UpdateRule};
pub use select::{open, BackendChoice, DeviceInfo, DeviceKind};
