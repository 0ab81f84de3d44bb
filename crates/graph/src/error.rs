//! The graph layer's error type: every variant names the op (or tensor) and the shapes involved.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op was given operands whose shapes or types it cannot work with (found at build time).
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// Autodiff met an op it cannot differentiate through, or a parameter the loss does not reach.
    #[error("autodiff: {op}: {detail}")]
    NoGradient { op: &'static str, detail: String },

    /// A name (input, parameter, optimizer state) the graph does not know, or one used twice.
    #[error("{what} '{name}': {detail}")]
    Name { what: &'static str, name: String, detail: String },

    /// Host data fed to or read from the session does not fit the tensor.
    #[error("{what}: {detail}")]
    Feed { what: String, detail: String },

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
