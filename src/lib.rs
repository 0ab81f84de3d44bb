//! Kiln: train neural networks on the GPU you already own (wgpu + WGSL), with a fast native CPU
//! backend where no GPU is present. This facade re-exports the workspace crates.
//!
//! ```
//! use kiln::prelude::*;
//! # fn main() -> kiln::Result<()> {
//! let mut model = Sequential::new(&[2]).add(Dense(8, Relu)).add(Dense(1, Sigmoid));
//! model.compile(Optimizer::adam(1e-2), Loss::BinaryCrossEntropy, &[Metric::Accuracy])?;
//! let out = model.predict_features(&[0.0, 1.0, 1.0, 0.0])?; // two rows of two features
//! assert_eq!(out.shape(), [2, 1]); // one probability per row
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub use kiln_device as device;
pub use kiln_graph as graph;
pub use kiln_trainer as trainer;
pub use kiln_trainer::{data, Error, Result};

/// `use kiln::prelude::*;` brings in the Keras-style API.
pub mod prelude {
    pub use kiln_trainer::prelude::*;
}
