//! kiln-trainer: layers, models, losses, optimizers, metrics, data, fit/evaluate/predict, checkpoints.

pub mod checkpoint;
pub mod data;
mod error;

pub use error::{Error, Result};
