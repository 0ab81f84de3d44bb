//! `kiln train` settings: the same names as flags and as keys of a TOML file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Classes for a text or small-integer target, otherwise regression.
    Auto,
    Binary,
    Multiclass,
    Regression,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Auto => "auto",
            Task::Binary => "binary classification",
            Task::Multiclass => "multiclass classification",
            Task::Regression => "regression",
        }
    }
}

#[derive(Clone, Debug, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrainSettings {
    /// CSV file with a header row.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Name of the target column.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Hidden layer sizes [default: 100].
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// relu, leaky_relu, tanh, sigmoid, gelu or silu [default: relu].
    #[arg(long)]
    pub activation: Option<String>,
    /// Epochs at most (early stopping may end sooner) [default: 200].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// [default: min(200, rows)]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Gradient accumulation: batches per optimizer update (an update as with a batch this many
    /// times larger) [default: 1; on --resume, the saved value].
    #[arg(long)]
    pub accumulate: Option<usize>,
    /// Mixed precision: f32, bf16 or f16 (matmuls read half copies of their operands, master
    /// weights and optimizer state stay f32) [default: f32; on --resume, the saved value].
    #[arg(long)]
    pub precision: Option<String>,
    /// Dynamic loss scaling (PyTorch GradScaler rules, decided on the device): auto (on for
    /// f16), off, dynamic, or an initial scale such as 65536 [default: auto; on --resume, the
    /// saved value].
    #[arg(long)]
    pub loss_scale: Option<String>,
    /// adam, adamw, sgd or rmsprop [default: adam].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate [default: 0.001; sgd 0.01].
    #[arg(long)]
    pub lr: Option<f32>,
    /// A separate validation CSV (same columns).
    #[arg(long, conflicts_with = "validation_split")]
    pub validation: Option<PathBuf>,
    /// Hold out this fraction of the training rows for validation [default: none].
    #[arg(long)]
    pub validation_split: Option<f64>,
    /// Stop after this many epochs without improvement of the validation loss (or the training
    /// loss without validation) [default: 10].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Seed for initialization, shuffling and splits [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// auto, gpu or cpu [default: KILN_BACKEND, else auto].
    #[arg(long)]
    pub backend: Option<String>,
    /// Data-parallel replicas of --backend in this process, each training on its share of every
    /// batch [default: 1].
    #[arg(long)]
    pub devices: Option<usize>,
    /// Data-parallel gradient buckets in MiB: each is summed across devices and ranks while the
    /// backward pass of the next computes; 0 sums every gradient after the whole backward (no
    /// overlap) [default: 25, the first bucket at most 1 MiB].
    #[arg(long)]
    pub bucket_mb: Option<f64>,
    /// Starting weights (safetensors with PyTorch nn.Sequential names).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Continue training the model at --out up to --epochs epochs in total.
    #[arg(long)]
    #[serde(default)]
    pub resume: bool,
    #[arg(long)]
    #[serde(default)]
    pub no_shuffle: bool,
    /// Feed the features as they are (by default they are standardized; a regression target
    /// always is, and is predicted back in its units).
    #[arg(long)]
    #[serde(default)]
    pub no_standardize: bool,
    /// No progress output.
    #[arg(long)]
    #[serde(default)]
    pub quiet: bool,
    /// Where to write the model (safetensors); the log and plot go next to it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl TrainSettings {
    pub fn from_toml(path: &Path) -> Result<TrainSettings> {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if !meta.is_file() {
            anyhow::bail!(
                "{}: not a regular file (a device, FIFO or directory); give a TOML file",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let mut s: TrainSettings = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        // relative paths in a config file are relative to the file
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut s.data, &mut s.validation, &mut s.init, &mut s.out].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(s)
    }

    /// These settings, with `other` filling what these leave unset.
    pub fn or(self, other: TrainSettings) -> TrainSettings {
        TrainSettings {
            data: self.data.or(other.data),
            target: self.target.or(other.target),
            task: self.task.or(other.task),
            hidden: self.hidden.or(other.hidden),
            activation: self.activation.or(other.activation),
            epochs: self.epochs.or(other.epochs),
            batch_size: self.batch_size.or(other.batch_size),
            accumulate: self.accumulate.or(other.accumulate),
            precision: self.precision.or(other.precision),
            loss_scale: self.loss_scale.or(other.loss_scale),
            optimizer: self.optimizer.or(other.optimizer),
            lr: self.lr.or(other.lr),
            validation: self.validation.or(other.validation),
            validation_split: self.validation_split.or(other.validation_split),
            patience: self.patience.or(other.patience),
            seed: self.seed.or(other.seed),
            backend: self.backend.or(other.backend),
            devices: self.devices.or(other.devices),
            bucket_mb: self.bucket_mb.or(other.bucket_mb),
            init: self.init.or(other.init),
            resume: self.resume || other.resume,
            no_shuffle: self.no_shuffle || other.no_shuffle,
            no_standardize: self.no_standardize || other.no_standardize,
            quiet: self.quiet || other.quiet,
            out: self.out.or(other.out),
        }
    }
}
