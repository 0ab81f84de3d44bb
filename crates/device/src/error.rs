//! The device layer's error type: every variant names what went wrong and where.

use crate::DType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel was given shapes it cannot work with.
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// A buffer bound to a kernel is too small or of the wrong type.
    #[error("{op}: buffer {slot} ({name}) needs {need} x {need_dtype:?}, got {got} x {got_dtype:?}")]
    Binding {
        op: &'static str,
        slot: usize,
        name: &'static str,
        need: usize,
        need_dtype: DType,
        got: usize,
        got_dtype: DType,
    },

    /// A launch names a different number of buffers than the kernel binds.
    #[error("{op}: expects {expected} buffers, got {got}")]
    Arity { op: &'static str, expected: usize, got: usize },

    /// Host data does not fit the buffer it is written to or read into.
    #[error("{what}: buffer holds {buffer} x {buffer_dtype:?}, host data has {host} x {host_dtype:?}")]
    HostData { what: &'static str, buffer: usize, buffer_dtype: DType, host: usize, host_dtype: DType },

    #[error("unknown buffer id {0}")]
    UnknownBuffer(u32),

    #[error("unknown plan id {0}")]
    UnknownPlan(u32),

    /// No adapter satisfies the request (or the request is malformed).
    #[error("no suitable adapter: {0}")]
    NoAdapter(String),

    /// The adapter lacks a feature or limit a kernel needs.
    #[error("adapter '{adapter}' lacks {what}")]
    Unsupported { adapter: String, what: String },

    /// wgpu reported an error (device lost, out of memory, validation).
    #[error("gpu: {0}")]
    Gpu(String),
}

impl Error {
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape { op, detail: detail.into() }
    }
}
