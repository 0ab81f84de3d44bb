//! kiln-device: buffers, adapters and kernels for Kiln.
//!
//! Two backends implement [`Backend`] with the same semantics: [`cpu::CpuBackend`] (native Rust,
//! multi-threaded, the reference) and [`gpu::GpuBackend`] (wgpu + the WGSL kernels in `shaders/`).
//! A caller allocates buffers, prepares a list of [`Launch`]es into a plan once, then submits that
//! plan as often as it likes, whole or in consecutive parts ([`Backend::submit_part`]); on the GPU
//! one submission is one command buffer. A view ([`Backend::view`]) is an id for an aligned range
//! of a buffer, which kernels, reads and writes see as a buffer of its own: flat parameter memory
//! (one optimizer launch over every parameter) is built from them.
//!
//! Buffers hold one [`DType`]: f32, u32, or the half types f16 and bf16 (two per 32-bit word on
//! both backends' terms, converted in the shaders with integer bit operations, so every adapter runs
//! them; host data uses the re-exported [`half`] crate's types). The `cast` family converts between
//! f32 and the half types; the matmul family reads half operands ([`Matmul::with_dtypes`]).
//!
//! Layout of the crate:
//! - [`kernels`]: one module per kernel family, named as its shader `shaders/<family>.wgsl`
//!   (matmul, unary, binary, reduce, softmax, layer_norm, loss, conv, layout, optim, memory,
//!   running, glu, rope, cast). Each holds its kernels' description (the type a [`Kernel`] variant wraps), their
//!   buffer slots, the `#[repr(C)]` parameter block its shader's `Params` struct mirrors, its
//!   workgroup counts and its CPU twin. `shaders/common.wgsl` (shared WGSL helpers) is prepended
//!   to every family's source.
//! - [`cpu`] and [`gpu`]: only the backend machinery (buffers, plans, threading; adapters,
//!   pipelines, encoding). They run any [`Kernel`] through its family, with no per-kernel code.
//! - `backend` (the [`Backend`] trait), `device_info` ([`DeviceInfo`]), `select` (the adapter
//!   policy, [`open`]), `pool` (buffer reuse), `error`.
//! - `testing` (cargo feature `testing`): helpers for tests, not part of the API.
//!
//! The shaders are read at build time through the `shaders` link inside this crate (to the
//! workspace's top-level `shaders/`), so `cargo package` ships them; see `build.rs`.

#![warn(missing_docs)]

/// The `half` crate, whose `f16` and `bf16` are the host types of [`DType::F16`] and
/// [`DType::BF16`] buffers ([`HostData`], [`HostVec`]).
pub use half;

mod backend;
pub mod cpu;
mod device_info;
mod error;
pub mod gpu;
pub mod kernels;
mod pool;
mod prim;
mod select;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{Backend, BufferId, DType, HostData, HostVec, Launch, PlanId, Stats, Ticket, VIEW_ALIGN};
pub use device_info::{DeviceInfo, DeviceKind};
pub use error::{Error, Result};
pub use kernels::{
    Access, AdamHyper, Addend, Binary, BinaryOp, Broadcast, Cast, Conv, Glu, Kernel, LayerNorm, Layout, Loss,
    LossScale, Matmul, MatmulTile, Memory, Optim, Permute, Pooling, Reduce, ReduceOp, RmspropHyper, Rope,
    RunningUpdate, Saved, SgdHyper, Softmax, Unary, UnaryOp, Window2d, HYPER_LEN,
};
pub use prim::{Patches, Prim, UpdateRule};
pub use select::{open, open_replica, BackendChoice};
