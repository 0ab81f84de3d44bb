//! The seam between the graph and the hardware: the [`Backend`] trait, buffers, launches and plans.

use std::ops::Range;

use half::slice::HalfFloatSliceExt;
use half::vec::HalfBitsVecExt;
use half::{bf16, f16};

use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::kernels::{Access, Kernel};
use crate::pool::Pool;

/// Alignment, in bytes, of a view's first element within its parent ([`Backend::view`]): the
/// largest `min_storage_buffer_offset_alignment` WebGPU allows, so a view binds on any adapter.
pub const VIEW_ALIGN: usize = 256;

/// Element type of a device buffer.
///
/// `F32` and `U32` take 4 bytes per element. `F16` and `BF16` take 2, packed two per 32-bit word
/// (element `2i` in the low half of word `i`, `2i + 1` in the high half); a buffer of them is
/// rounded up to whole words, so an odd length leaves the last word's high half unused. On the CPU
/// they are held as `u16` bits; on the GPU the WGSL kernels read them through `array<u32>` and
/// convert with integer bit operations (no adapter feature needed), rounding to nearest even exactly
/// as the `half` crate does on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 32-bit unsigned integer (class labels, token ids, indices).
    U32,
    /// IEEE 754 binary16 (`half::f16`): 5 exponent bits, 10 mantissa bits.
    F16,
    /// bfloat16 (`half::bf16`): the high 16 bits of an f32 (8 exponent bits, 7 mantissa bits).
    BF16,
}

impl DType {
    /// Every element type.
    pub const ALL: [DType; 4] = [DType::F32, DType::U32, DType::F16, DType::BF16];

    /// Bytes of one element: 4, or 2 for the half types.
    pub fn size(self) -> usize {
        if self.is_half() {
            2
        } else {
            4
        }
    }

    /// Bytes of a buffer of `len` elements: `len * size`, rounded up to whole 32-bit words.
    pub fn bytes(self, len: usize) -> u64 {
        (self.size() as u64 * len as u64).next_multiple_of(4)
    }

    /// Whether this is a 16-bit float type (`F16` or `BF16`).
    pub fn is_half(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }

    /// The lower-case name (`f32`, `u32`, `f16`, `bf16`), as in PyTorch and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::U32 => "u32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    BF16(&'a [bf16]),
}

impl<'a> HostData<'a> {
    /// Elements `range` of the data.
    pub fn slice(&self, range: std::ops::Range<usize>) -> HostData<'a> {
        match *self {
            HostData::F32(d) => HostData::F32(&d[range]),
            HostData::U32(d) => HostData::U32(&d[range]),
            HostData::F16(d) => HostData::F16(&d[range]),
            HostData::BF16(d) => HostData::BF16(&d[range]),
        }
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::U32(_) => DType::U32,
            HostData::F16(_) => DType::F16,
            HostData::BF16(_) => DType::BF16,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(d) => d.len(),
            HostData::U32(d) => d.len(),
            HostData::F16(d) => d.len(),
            HostData::BF16(d) => d.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw little-endian bytes (2 per element for the half types, not padded).
    pub fn bytes(&self) -> &[u8] {
        match self {
            HostData::F32(d) => bytemuck::cast_slice(d),
            HostData::U32(d) => bytemuck::cast_slice(d),
            HostData::F16(d) => bytemuck::cast_slice(d.reinterpret_cast()),
            HostData::BF16(d) => bytemuck::cast_slice(d.reinterpret_cast()),
        }
    }
    /// The half types' bits (`None` for f32 and u32).
    pub(crate) fn half_bits(&self) -> Option<&'a [u16]> {
        match self {
            HostData::F16(d) => Some(d.reinterpret_cast()),
            HostData::BF16(d) => Some(d.reinterpret_cast()),
            HostData::F32(_) | HostData::U32(_) => None,
        }
    }
}

/// Checks a host write of `data` into a buffer of `len` x `dtype` (the same rule on every backend):
/// same type, no longer than the buffer, and for the half types either an even number of elements
/// or the whole buffer (a GPU write covers whole 32-bit words, so a partial write of odd length would
/// clobber the next element).
pub(crate) fn check_write(dtype: DType, len: usize, data: &HostData<'_>) -> Result<()> {
    let odd_partial = dtype.is_half() && data.len() % 2 == 1 && data.len() < len;
    if dtype != data.dtype() || data.len() > len || odd_partial {
        return Err(Error::HostData {
            what: if odd_partial { "write (a partial half write must have an even length)" } else { "write" },
            buffer: len,
            buffer_dtype: dtype,
            host: data.len(),
            host_dtype: data.dtype(),
        });
    }
    Ok(())
}

/// Data read back from a buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum HostVec {
    /// Contents of an f32 buffer.
    F32(Vec<f32>),
    /// Contents of a u32 buffer.
    U32(Vec<u32>),
    /// Contents of an f16 buffer.
    F16(Vec<f16>),
    /// Contents of a bf16 buffer.
    BF16(Vec<bf16>),
}

impl HostVec {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostVec::F32(_) => DType::F32,
            HostVec::U32(_) => DType::U32,
            HostVec::F16(_) => DType::F16,
            HostVec::BF16(_) => DType::BF16,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostVec::F32(v) => v.len(),
            HostVec::U32(v) => v.len(),
            HostVec::F16(v) => v.len(),
            HostVec::BF16(v) => v.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A view to write back into a buffer.
    pub fn as_data(&self) -> HostData<'_> {
        match self {
            HostVec::F32(v) => HostData::F32(v),
            HostVec::U32(v) => HostData::U32(v),
            HostVec::F16(v) => HostData::F16(v),
            HostVec::BF16(v) => HostData::BF16(v),
        }
    }
    /// Keeps the first `len` elements.
    pub fn truncate(&mut self, len: usize) {
        match self {
            HostVec::F32(v) => v.truncate(len),
            HostVec::U32(v) => v.truncate(len),
            HostVec::F16(v) => v.truncate(len),
            HostVec::BF16(v) => v.truncate(len),
        }
    }
    /// The f32 contents; an error for any other type.
    pub fn into_f32(self) -> Result<Vec<f32>> {
        match self {
            HostVec::F32(v) => Ok(v),
            other => Err(host_mismatch("read as f32", &other, DType::F32)),
        }
    }
    /// The u32 contents; an error for any other type.
    pub fn into_u32(self) -> Result<Vec<u32>> {
        match self {
            HostVec::U32(v) => Ok(v),
            other => Err(host_mismatch("read as u32", &other, DType::U32)),
        }
    }
    /// The f16 contents; an error for any other type.
    pub fn into_f16(self) -> Result<Vec<f16>> {
        match self {
            HostVec::F16(v) => Ok(v),
            other => Err(host_mismatch("read as f16", &other, DType::F16)),
        }
    }
    /// The bf16 contents; an error for any other type.
    pub fn into_bf16(self) -> Result<Vec<bf16>> {
        match self {
            HostVec::BF16(v) => Ok(v),
            other => Err(host_mismatch("read as bf16", &other, DType::BF16)),
        }
    }
    /// `len` elements of `dtype` from a buffer's raw little-endian bytes (at least
    /// `dtype.size() * len` of them).
    pub(crate) fn from_bytes(dtype: DType, len: usize, bytes: &[u8]) -> HostVec {
        let bytes = &bytes[..dtype.size() * len];
        match dtype {
            DType::F32 => HostVec::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::U32 => HostVec::U32(bytemuck::pod_collect_to_vec(bytes)),
            DType::F16 | DType::BF16 => HostVec::from_half_bits(dtype, bytemuck::pod_collect_to_vec(bytes)),
        }
    }
    /// A half type's contents from its bits.
    pub(crate) fn from_half_bits(dtype: DType, bits: Vec<u16>) -> HostVec {
        match dtype {
            DType::F16 => HostVec::F16(bits.reinterpret_into()),
            DType::BF16 => HostVec::BF16(bits.reinterpret_into()),
            DType::F32 | DType::U32 => unreachable!("{dtype} is not a half type"),
        }
    }
}

fn host_mismatch(what: &'static str, have: &HostVec, want: DType) -> Error {
    let len = have.len();
    Error::HostData { what, buffer: len, buffer_dtype: have.dtype(), host: len, host_dtype: want }
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
    /// Submissions made (GPU only; every `submit`, `submit_part` and plan-less `read`).
    pub submits: u64,
    /// Kernel dispatches encoded into those submissions (GPU only).
    pub dispatches: u64,
    /// Host nanoseconds spent encoding those submissions (GPU only): from creating the command
    /// encoder through its passes, dispatches and read-back copies to `finish`, without
    /// `queue.submit` (which on a software adapter also runs the work) and without the wait.
    /// Differences between two readings give a step's encoding cost.
    pub encode_ns: u64,
}

/// What every backend provides. Semantics are identical across backends; only speed differs.
pub trait Backend: Send {
    /// The device this backend runs on.
    fn info(&self) -> &DeviceInfo;

    /// A buffer of `len` elements, taken from the pool when one of that size is free.
    /// Its contents are unspecified until written.
    fn alloc(&mut self, dtype: DType, len: usize) -> Result<BufferId>;

    /// A buffer id for elements `offset..offset + len` of `parent`: kernels, reads and writes see
    /// just those elements, and they are the parent's (no copy). `parent` must own its storage
    /// (not be a view itself) and `offset` elements must be a multiple of [`VIEW_ALIGN`] bytes.
    /// Flat parameter memory is built from views: each parameter a view of one buffer, so one
    /// launch can update them all. A launch may not write a view and bind its parent's storage
    /// elsewhere for reading.
    fn view(&mut self, parent: BufferId, offset: usize, len: usize) -> Result<BufferId>;

    /// The largest buffer this backend can allocate and bind, in bytes.
    fn max_buffer_bytes(&self) -> u64 {
        u64::MAX
    }

    /// Returns a buffer to the pool (a view: just its id). Plans that bind it must be dropped
    /// first, and a buffer's views released before it.
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

    /// Blocking read of an f32 buffer; an error for any other type.
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

/// Checks a launch's buffers against its kernel: count, type, length, and no storage both written
/// and bound again in the same launch (a written view's parent may hold other written views that
/// do not overlap it, but nothing read: wgpu tracks a dispatch's usage per buffer, not per range).
pub(crate) fn check_launch<R>(launch: &Launch, pool: &Pool<R>) -> Result<()> {
    let k = &launch.kernel;
    k.validate()?;
    let slots = k.slots();
    if slots.len() != launch.buffers.len() {
        return Err(Error::Arity { op: k.name(), expected: slots.len(), got: launch.buffers.len() });
    }
    let mut bound = Vec::with_capacity(slots.len());
    for (i, (s, &id)) in slots.iter().zip(&launch.buffers).enumerate() {
        let (dtype, len) = pool.describe(id)?;
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
        let at = pool.place(id)?;
        bound.push((at.root, at.offset..at.offset + len));
    }
    for (i, s) in slots.iter().enumerate().filter(|(_, s)| s.access == Access::Write) {
        let (root, range) = &bound[i];
        let clash = (0..slots.len()).find(|&j| {
            let (other, r) = &bound[j];
            j != i
                && other == root
                && (slots[j].access == Access::Read || (r.start < range.end && range.start < r.end))
        });
        if let Some(j) = clash {
            return Err(Error::shape(
                k.name(),
                format!(
                    "buffer {} ({}) is written and its storage is also bound as buffer {} ({})",
                    i, s.name, j, slots[j].name
                ),
            ));
        }
    }
    Ok(())
}
