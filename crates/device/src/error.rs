//! The device layer's error type: every variant names what went wrong and where.

use crate::DType;

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on a backend; its `Display` names the kernel or buffer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel was given shapes it cannot work with.
    #[error("{op}: {detail}")]
    Shape {
        /// The kernel's name.
        op: &'static str,
        /// What is wrong, with the shapes involved.
        detail: String,
    },

    /// A buffer bound to a kernel is too small or of the wrong type.
    #[error("{op}: buffer {slot} ({name}) needs {need} x {need_dtype:?}, got {got} x {got_dtype:?}")]
    Binding {
        /// The kernel's name.
        op: &'static str,
        /// The slot (0-based) in the kernel's binding order.
        slot: usize,
        /// The slot's name.
        name: &'static str,
        /// Elements the slot needs.
        need: usize,
        /// The element type the slot needs.
        need_dtype: DType,
        /// Elements the buffer holds.
        got: usize,
        /// The buffer's element type.
        got_dtype: DType,
    },

    /// A launch names a different number of buffers than the kernel binds.
    #[error("{op}: expects {expected} buffers, got {got}")]
    Arity {
        /// The kernel's name.
        op: &'static str,
        /// Buffers the kernel binds.
        expected: usize,
        /// Buffers the launch names.
        got: usize,
    },

    /// Host data does not fit the buffer it is written to or read into.
    #[error("{what}: buffer holds {buffer} x {buffer_dtype:?}, host data has {host} x {host_dtype:?}")]
    HostData {
        /// The buffer's role.
        what: &'static str,
        /// Elements the buffer holds.
        buffer: usize,
        /// The buffer's element type.
        buffer_dtype: DType,
        /// Elements of the host data.
        host: usize,
        /// The host data's element type.
        host_dtype: DType,
    },

    /// A [`BufferId`](crate::BufferId) this backend did not allocate, or one already released.
    #[error("unknown buffer id {0}")]
    UnknownBuffer(u32),

    /// A view ([`Backend::view`](crate::Backend::view)) that cannot be made or released.
    #[error("view of buffer {parent} at element {offset}, {len} elements: {why}")]
    View {
        /// The parent buffer's id.
        parent: u32,
        /// The first element asked for.
        offset: usize,
        /// Elements asked for.
        len: usize,
        /// What is wrong.
        why: String,
    },

    /// A [`PlanId`](crate::PlanId) this backend did not prepare, or one already dropped.
    #[error("unknown plan id {0}")]
    UnknownPlan(u32),

    /// A part of a plan ([`Backend::submit_part`](crate::Backend::submit_part)) outside its
    /// launches.
    #[error("plan {plan}: launches {start}..{end} asked of a plan of {launches} launches")]
    PlanPart {
        /// The plan.
        plan: u32,
        /// The first launch asked.
        start: usize,
        /// One past the last launch asked.
        end: usize,
        /// Launches the plan holds.
        launches: usize,
    },

    /// No adapter satisfies the request.
    #[error("no suitable adapter: {0}")]
    NoAdapter(String),

    /// A backend name (`--backend`, `KILN_BACKEND`) that is none of `auto`, `gpu`, `cpu`.
    #[error("unknown backend '{0}': expected auto, gpu or cpu")]
    UnknownBackend(String),

    /// The adapter lacks a feature or limit a kernel needs.
    #[error("adapter '{adapter}' lacks {what}")]
    Unsupported {
        /// The adapter's name.
        adapter: String,
        /// The missing feature or limit.
        what: String,
    },

    /// wgpu reported an error (device lost, out of memory, validation).
    #[error("gpu: {0}")]
    Gpu(String),
}

impl Error {
    pub(crate) fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape { op, detail: detail.into() }
    }
}
