//! The seam between the graph and the hardware: the [`Backend`] trait, buffers, launches and plans.

use std::ops::Range;

use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel};

/// Element type of a device buffer. Both are 4 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (class labels, token ids, indices).
    U32,
}

/// A buffer owned by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub(crate) u32);

/// A compiled list of launches owned by a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlanId(pub(crate) u32);

/// A submitted plan whose requested buffers can be collected with [`Backend::wait`].
#[derive(Debug)]
#[must_use = "a ticket holds read-back buffers until it is waited on"]
pub struct Ticket(pub(crate) u64);

/// One kernel launch over buffers, given in the order of [`Kernel::slots`].
#[derive(Clone, Debug)]
pub struct Launch {
    /// The kernel to run, with its sizes.
    pub kernel: Kernel,
    /// Its buffers, one per slot.
    pub buffers: Vec<BufferId>,
}

impl Launch {
    /// A launch of `kernel` over `buffers` (in slot order; checked by [`Backend::prepare`]).
    pub fn new(kernel: Kernel, buffers: &[BufferId]) -> Self {
        Launch { kernel, buffers: buffers.to_vec() }
    }
}

/// Host data to write into a buffer.
#[derive(Clone, Copy, Debug)]
pub enum HostData<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// u32 values.
    U32(&'a [u32]),
}

impl HostData<'_> {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::U32(_) => DType::U32,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(d) => d.len(),
            HostData::U32(d) => d.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            HostData::F32(d) => bytemuck::cast_slice(d),
            HostData::U32(d) => bytemuck::cast_slice(d),
        }
    }
}

/// Data read back from a buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum HostVec {
    /// Contents of an f32 buffer.
    F32(Vec<f32>),
    /// Contents of a u32 buffer.
    U32(Vec<u32>),
}

impl HostVec {
    /// The f32 contents; an error for a u32 buffer.
    pub fn into_f32(self) -> Result<Vec<f32>> {
        match self {
            HostVec::F32(v) => Ok(v),
            HostVec::U32(v) => Err(host_mismatch("read as f32", v.len(), DType::U32, DType::F32)),
        }
    }
    /// The u32 contents; an error for an f32 buffer.
    pub fn into_u32(self) -> Result<Vec<u32>> {
        match self {
            HostVec::U32(v) => Ok(v),
            HostVec::F32(v) => Err(host_mismatch("read as u32", v.len(), DType::F32, DType::U32)),
        }
    }
}

fn host_mismatch(what: &'static str, len: usize, have: DType, want: DType) -> Error {
    Error::HostData { what, buffer: len, buffer_dtype: have, host: len, host_dtype: want }
}

/// Counters a caller can assert on: after warm-up, a training loop should create nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Device buffers ever created (pool misses).
    pub buffers_created: u64,
    /// Buffers currently handed out.
    pub buffers_live: usize,
    /// Bytes held by the backend, live and pooled.
    pub bytes_held: u64,
    /// Compute pipelines ever created (GPU only).
    pub pipelines_created: u64,
    /// Bind groups ever created (GPU only).
    pub bind_groups_created: u64,
    /// Plans compiled.
    pub plans_compiled: u64,
}

/// What every backend provides. Semantics are identical across backends; only speed differs.
pub trait Backend: Send {
    /// The device this backend runs on.
    fn info(&self) -> &DeviceInfo;

    /// A buffer of `len` elements, taken from the pool when one of that size is free.
    /// Its contents are unspecified until written.
    fn alloc(&mut self, dtype: DType, len: usize) -> Result<BufferId>;

    /// Returns a buffer to the pool. Plans that bind it must be dropped first.
    fn release(&mut self, id: BufferId) -> Result<()>;

    /// Element type and length of a buffer.
    fn describe(&self, id: BufferId) -> Result<(DType, usize)>;

    /// Overwrites a buffer from the host. On the GPU the write lands before the next submission.
    fn write(&mut self, id: BufferId, data: HostData<'_>) -> Result<()>;

    /// Validates launches against their buffers and prepares them to run (on the GPU: pipelines
    /// and bind groups, created here once).
    fn prepare(&mut self, launches: &[Launch]) -> Result<PlanId>;

    /// Frees a plan's prepared state (its buffers stay allocated).
    fn drop_plan(&mut self, plan: PlanId) -> Result<()>;

    /// Runs a plan and schedules a read-back of `reads`. On the GPU this returns as soon as the work
    /// is queued, so the host can prepare the next step while the device computes.
    fn submit(&mut self, plan: PlanId, reads: &[BufferId]) -> Result<Ticket>;

    /// Runs launches `launches` of a plan (one submission) and schedules a read-back of `reads`
    /// after them: a plan run in consecutive parts, so that outputs complete early (the first
    /// gradients of a backward pass) are read while the rest still has to run. The parts are
    /// the caller's to submit in order; a range outside the plan is an error.
    fn submit_part(&mut self, plan: PlanId, launches: Range<usize>, reads: &[BufferId]) -> Result<Ticket>;

    /// Blocks until a submission is done and returns the buffers it was asked to read.
    fn wait(&mut self, ticket: Ticket) -> Result<Vec<HostVec>>;

    /// Counters of buffers, bytes, pipelines and plans.
    fn stats(&self) -> Stats;

    /// Blocking read of one buffer (tests, checkpoints).
    fn read(&mut self, id: BufferId) -> Result<HostVec> {
        let plan = self.prepare(&[])?;
        let ticket = self.submit(plan, &[id]);
        self.drop_plan(plan)?;
        Ok(self.wait(ticket?)?.remove(0))
    }

    /// Runs one launch to completion (tests and one-off work; training compiles plans instead).
    fn run(&mut self, launch: Launch) -> Result<()> {
        let plan = self.prepare(std::slice::from_ref(&launch))?;
        let ticket = self.submit(plan, &[]);
        self.drop_plan(plan)?;
        self.wait(ticket?).map(|_| ())
    }

    /// Blocking read of an f32 buffer; an error for a u32 one.
    fn read_f32(&mut self, id: BufferId) -> Result<Vec<f32>> {
        self.read(id)?.into_f32()
    }

    /// A new buffer holding `data`.
    fn upload(&mut self, data: HostData<'_>) -> Result<BufferId> {
        let id = self.alloc(data.dtype(), data.len())?;
        self.write(id, data)?;
        Ok(id)
    }
}

/// `launches` when it lies within a plan of `len` launches, else [`Error::PlanPart`].
pub(crate) fn check_part(plan: PlanId, launches: Range<usize>, len: usize) -> Result<Range<usize>> {
    if launches.start > launches.end || launches.end > len {
        return Err(Error::PlanPart {
            plan: plan.0,
            start: launches.start,
            end: launches.end,
            launches: len,
        });
    }
    Ok(launches)
}

/// Checks a launch's buffers against its kernel: count, type, length, and no buffer both written
/// and bound again in the same launch. `describe` looks a buffer up in the backend.
pub(crate) fn check_launch(
    launch: &Launch,
    describe: impl Fn(BufferId) -> Result<(DType, usize)>,
) -> Result<()> {
    let k = &launch.kernel;
    k.validate()?;
    let slots = k.slots();
    if slots.len() != launch.buffers.len() {
        return Err(Error::Arity { op: k.name(), expected: slots.len(), got: launch.buffers.len() });
    }
    for (i, (s, &id)) in slots.iter().zip(&launch.buffers).enumerate() {
        let (dtype, len) = describe(id)?;
        if dtype != s.dtype || len < s.len {
            return Err(Error::Binding {
                op: k.name(),
                slot: i,
                name: s.name,
                need: s.len,
                need_dtype: s.dtype,
                got: len,
                got_dtype: dtype,
            });
        }
        let bound_again = launch.buffers.iter().enumerate().any(|(j, &o)| j != i && o == id);
        if s.access == Access::Write && bound_again {
            return Err(Error::shape(
                k.name(),
                format!("buffer {} ({}) is written and also bound elsewhere", i, s.name),
            ));
        }
    }
    Ok(())
}
