//! `kiln_trainer::Error`: every failure of data loading and checkpoint files, with enough context
//! (file, 1-based line counting the header as line 1, column name and 1-based number, tensor name)
//! to fix the input without a debugger.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written (missing file, permissions, disk full).
    /// The OS error is part of the message and deliberately not also the error's `source()`, so
    /// a printed chain (`{:#}`, `Caused by:`) names it once.
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: std::io::Error },

    #[error("{}: the file is empty (expected a header line)", path.display())]
    EmptyFile { path: PathBuf },

    #[error("{}: the file has a header but no data rows", path.display())]
    HeaderOnly { path: PathBuf },

    /// A CSV row with a different number of fields than the header.
    #[error("{}:{line}: expected {expected} fields (as in the header), found {found}", path.display())]
    RaggedRow { path: PathBuf, line: u64, expected: usize, found: usize },

    /// A cell that must be a number is not one (features, or a regression target).
    #[error("{}:{line}: column '{column}' (#{column_number}): '{value}' is not a number", path.display())]
    NotNumeric { path: PathBuf, line: u64, column: String, column_number: usize, value: String },

    /// NaN or an infinity in a cell (CSV) or an element (NPY/IDX: `line` 0, `column` is the index).
    #[error("{}:{line}: column '{column}' (#{column_number}): value '{value}' is not finite (NaN or infinity)", path.display())]
    NotFinite { path: PathBuf, line: u64, column: String, column_number: usize, value: String },

    /// A CSV cell that must not be empty (a target label).
    #[error("{}:{line}: column '{column}' (#{column_number}): empty cell", path.display())]
    EmptyCell { path: PathBuf, line: u64, column: String, column_number: usize },

    /// A class label that is not in the label set saved with the model.
    #[error("{}:{line}: column '{column}' (#{column_number}): unknown class '{value}' (the model knows: {known})", path.display())]
    UnknownClass {
        path: PathBuf,
        line: u64,
        column: String,
        column_number: usize,
        value: String,
        known: String,
    },

    #[error("{}: no column named '{column}' (columns: {available})", path.display())]
    MissingColumn { path: PathBuf, column: String, available: String },

    /// The CSV's feature columns are not the model's (missing, extra, or reordered columns).
    #[error("{}: feature columns do not match the model: {detail}", path.display())]
    FeatureMismatch { path: PathBuf, detail: String },

    /// The CSV itself is malformed (e.g. invalid UTF-8), as reported by the parser.
    #[error("{}:{line}: {message}", path.display())]
    Csv { path: PathBuf, line: u64, message: String },

    /// A corrupt, truncated or unsupported binary file (NPY, IDX, safetensors header).
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },

    /// A problem with one tensor of a safetensors file.
    #[error("{}: tensor '{tensor}': {message}", path.display())]
    Tensor { path: PathBuf, tensor: String, message: String },

    /// Sizes that do not agree: features vs labels, a batch buffer vs the batch, data vs shape.
    #[error("shape mismatch in {context}: expected {expected}, found {found}")]
    Shape { context: String, expected: String, found: String },

    /// A metadata entry (JSON) that is missing or does not parse.
    #[error("metadata '{key}': {message}")]
    Metadata { key: String, message: String },

    /// A caller-supplied argument that makes no sense (batch size 0, split fraction 1.5, index out of range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Building or running the model's graph failed (shape errors name the op and both shapes).
    #[error(transparent)]
    Graph(#[from] kiln_graph::Error),

    /// The device failed (no adapter, a missing feature, out of memory).
    #[error(transparent)]
    Device(#[from] kiln_device::Error),

    /// Training diverged: the loss became NaN or infinite.
    #[error("the loss became {loss} at epoch {epoch}, step {step} (global step {global_step}); lower the learning rate or check the data")]
    NonFiniteLoss { loss: f32, epoch: usize, step: usize, global_step: u64 },

    /// A model definition or a checkpoint that does not fit (layers, shapes, losses, targets).
    #[error("model: {0}")]
    Model(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), cause: source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }

    pub(crate) fn shape(context: impl Into<String>, expected: impl ToString, found: impl ToString) -> Self {
        Error::Shape { context: context.into(), expected: expected.to_string(), found: found.to_string() }
    }
}
