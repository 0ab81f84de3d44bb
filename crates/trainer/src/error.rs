//! `kiln_trainer::Error`: every failure of data loading and checkpoint files, with enough context
//! (file, 1-based line counting the header as line 1, column name and 1-based number, tensor name)
//! to fix the input without a debugger.

use std::path::PathBuf;

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kiln-trainer; its `Display` is a message to show as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written (missing file, permissions, disk full).
    /// The OS error is part of the message and deliberately not also the error's `source()`, so
    /// a printed chain (`{:#}`, `Caused by:`) names it once.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },

    /// A CSV file with no bytes at all.
    #[error("{}: the file is empty (expected a header line)", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },

    /// A CSV file with a header line and no rows.
    #[error("{}: the file has a header but no data rows", path.display())]
    HeaderOnly {
        /// The file.
        path: PathBuf,
    },

    /// A CSV row with a different number of fields than the header.
    #[error("{}:{line}: expected {expected} fields (as in the header), found {found}", path.display())]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// 1-based physical line (the header is line 1).
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in the row.
        found: usize,
    },

    /// A cell that must be a number is not one (features, or a regression target).
    #[error("{}:{line}: column '{column}' (#{column_number}): '{value}' is not a number", path.display())]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// 1-based physical line (the header is line 1).
        line: u64,
        /// The column's name (shortened).
        column: String,
        /// The column's 1-based number.
        column_number: usize,
        /// The cell as written (shortened).
        value: String,
    },

    /// NaN or an infinity in a cell (CSV) or an element (NPY/IDX: `line` 0, `column` is the index).
    #[error("{}:{line}: column '{column}' (#{column_number}): value '{value}' is not finite (NaN or infinity)", path.display())]
    NotFinite {
        /// The file.
        path: PathBuf,
        /// 1-based physical line (the header is line 1).
        line: u64,
        /// The column's name (shortened).
        column: String,
        /// The column's 1-based number.
        column_number: usize,
        /// The cell as written (shortened).
        value: String,
    },

    /// A CSV cell that must not be empty (a target label).
    #[error("{}:{line}: column '{column}' (#{column_number}): empty cell", path.display())]
    EmptyCell {
        /// The file.
        path: PathBuf,
        /// 1-based physical line (the header is line 1).
        line: u64,
        /// The column's name (shortened).
        column: String,
        /// The column's 1-based number.
        column_number: usize,
    },

    /// A class label that is not in the label set saved with the model.
    #[error("{}:{line}: column '{column}' (#{column_number}): unknown class '{value}' (the model knows: {known})", path.display())]
    UnknownClass {
        /// The file.
        path: PathBuf,
        /// 1-based physical line (the header is line 1).
        line: u64,
        /// The column's name (shortened).
        column: String,
        /// The column's 1-based number.
        column_number: usize,
        /// The cell as written (shortened).
        value: String,
        /// The model's labels (shortened list).
        known: String,
    },

    /// The target (or another named) column is not in the CSV's header.
    #[error("{}: no column named '{column}' (columns: {available})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column's name (shortened).
        column: String,
        /// The columns the file has (shortened list).
        available: String,
    },

    /// The CSV's feature columns are not the model's (missing, extra, or reordered columns).
    #[error("{}: feature columns do not match the model: {detail}", path.display())]
    FeatureMismatch {
        /// The file.
        path: PathBuf,
        /// The missing, unexpected or misplaced columns.
        detail: String,
    },

    /// The CSV itself is malformed (e.g. invalid UTF-8), as reported by the parser.
    #[error("{}:{line}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// 1-based physical line (the header is line 1).
        line: u64,
        /// What is wrong.
        message: String,
    },

    /// A corrupt, truncated or unsupported binary file (NPY, IDX, safetensors header).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A problem with one tensor of a safetensors file.
    #[error("{}: tensor '{tensor}': {message}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        message: String,
    },

    /// Sizes that do not agree: features vs labels, a batch buffer vs the batch, data vs shape.
    #[error("shape mismatch in {context}: expected {expected}, found {found}")]
    Shape {
        /// What was being checked.
        context: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },

    /// A metadata entry (JSON) that is missing or does not parse.
    #[error("metadata '{key}': {message}")]
    Metadata {
        /// The metadata key.
        key: String,
        /// What is wrong.
        message: String,
    },

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
    NonFiniteLoss {
        /// The loss value (NaN or infinite).
        loss: f32,
        /// The epoch (1-based).
        epoch: usize,
        /// The step within the epoch (1-based).
        step: usize,
        /// Steps since the model was created.
        global_step: u64,
    },

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
