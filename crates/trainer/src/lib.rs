//! kiln-trainer: layers, models, losses, optimizers, metrics, data, fit/evaluate/predict, checkpoints.
//!
//! Each layer is one file of [`layers`] (its shape rule, PyTorch-named parameters and their
//! initialization, its graph in training and evaluation mode, its summary line). [`Sequential`]
//! and the [`zoo`] models describe their graph to one trainable core, which compiles them and
//! provides `fit` (schedules, clipping, metrics, validation, early stopping, progress, logs,
//! checkpoints), `evaluate`, `predict`, `save`, `load` and exact resume for all of them.
//!
//! ```no_run
//! use kiln_trainer::prelude::*;
//! # fn main() -> kiln_trainer::Result<()> {
//! let (train, test) = kiln_trainer::data::digits_train_test()?;
//! let mut model = Sequential::new(&[64]).add(Dense(64, Relu)).add(Dense(10, Softmax));
//! model.compile(Optimizer::adam(1e-3), Loss::CrossEntropy, &[Metric::Accuracy])?;
//! model.fit(&train, &FitOptions { epochs: 20, batch_size: 32, ..Default::default() })?;
//! println!("{:?}", model.evaluate(&test, 256)?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod checkpoint;
pub mod data;
pub mod distributed;
mod error;
pub mod interrupt;
pub mod layers;
pub mod losses;
pub mod metrics;
mod model;
mod precision;
pub mod report;
pub mod schedule;
mod stream;
mod trainable;
pub mod validate;
pub mod zoo;

pub use error::{Error, Result};
pub use kiln_graph::{GradScaler, Optimizer, ScalerState};
pub use layers::{
    Activation, AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Embedding, Flatten, GlobalAvgPool2d, Init,
    Layer, LayerNorm, MaxPool2d,
};
pub use losses::Loss;
pub use metrics::Metric;
pub use model::{DataInfo, NamedTensor, Predictions, Sequential};
pub use precision::{LossScaling, Precision};
pub use report::{EpochRecord, History};
pub use schedule::Schedule;
pub use trainable::{
    optimizer_path, AllReduce, Compile, EarlyStopping, Evaluation, Features, FitOptions, SingleProcess,
    StepTimes, StoppedAt, Validation, DEFAULT_BUCKET_MB, FIRST_BUCKET_BYTES,
};

/// Everything a training script needs, Keras-style: `Dense(64, Relu)`, `Optimizer::adam(1e-3)`.
pub mod prelude {
    pub use crate::layers::Activation::{Gelu, LeakyRelu, Relu, Sigmoid, Silu, Softmax, Tanh};
    pub use crate::{
        Activation, AvgPool2d, BatchNorm, Compile, Conv2d, Dense, Dropout, EarlyStopping, Embedding,
        FitOptions, Flatten, GlobalAvgPool2d, Init, LayerNorm, Loss, MaxPool2d, Metric, Optimizer, Precision,
        Schedule, Sequential, Validation,
    };
    pub use kiln_device::BackendChoice;
}
