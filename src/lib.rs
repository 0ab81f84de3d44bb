//! Kiln: train neural networks on the GPU you already own (wgpu + WGSL), with a fast native CPU
//! backend where no GPU is present. This facade re-exports the workspace crates.

pub use kiln_device as device;
