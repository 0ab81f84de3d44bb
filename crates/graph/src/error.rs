//! The graph layer's error type: every variant names the op (or tensor) and the shapes involved.

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong building or running a graph; its `Display` names the op or tensor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op was given operands whose shapes or types it cannot work with (found at build time).
    #[error("{op}: {detail}")]
    Shape {
        /// The op's name.
        op: &'static str,
        /// What is wrong, with the shapes involved.
        detail: String,
    },

    /// Autodiff met an op it cannot differentiate through, or a parameter the loss does not reach.
    #[error("autodiff: {op}: {detail}")]
    NoGradient {
        /// The op's name.
        op: &'static str,
        /// What is wrong, with the shapes involved.
        detail: String,
    },

    /// A name (input, parameter, optimizer state) the graph does not know, or one used twice.
    #[error("{what} '{name}': {detail}")]
    Name {
        /// What kind of name (`input`, `parameter`, `optimizer state`, ...).
        what: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        detail: String,
    },

    /// Host data fed to or read from the session does not fit the tensor.
    #[error("{what}: {detail}")]
    Feed {
        /// The tensor fed or read.
        what: String,
        /// What does not fit (expected and found sizes).
        detail: String,
    },

    /// The device failed (allocation, a launch, a read-back).
    #[error(transparent)]
    Device(#[from] kiln_device::Error),
}

impl Error {
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape { op, detail: detail.into() }
    }
    pub(crate) fn no_grad(op: &'static str, detail: impl Into<String>) -> Self {
        Error::NoGradient { op, detail: detail.into() }
    }
    pub(crate) fn name(what: &'static str, name: &str, detail: impl Into<String>) -> Self {
        Error::Name { what, name: name.to_string(), detail: detail.into() }
    }
    pub(crate) fn feed(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Feed { what: what.into(), detail: detail.into() }
    }
}
