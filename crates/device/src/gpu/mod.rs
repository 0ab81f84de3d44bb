//! The wgpu backend: the kernels of `shaders/` on whatever adapter wgpu finds.
//!
//! This module is only the wgpu machinery (adapter, pipeline cache, encoding): what a kernel binds,
//! its parameter block and its workgroup counts come from its family module (`crate::kernels`).
//! A plan's pipelines, bind groups and parameter block are created once, in `prepare`. A step is
//! one command encoder, one compute pass, one `queue.submit`; read-backs are copied into pooled
//! staging buffers in the same submission and mapped asynchronously, so `submit` returns at once.
//! `Stats` counts the submissions, the dispatches encoded and the host time spent encoding them
//! (apart from `queue.submit` and the wait), so callers can measure the per-dispatch host cost.

mod adapter;
mod pipelines;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use adapter::{describe_all, has_hardware_adapter};

use crate::backend::{
    check_launch, check_part, check_write, Backend, BufferId, DType, HostData, HostVec, Launch, PlanId,
    Stats, Ticket,
};
use crate::device_info::DeviceInfo;
use crate::error::{Error, Result};
use crate::pool::Pool;
use pipelines::{Pipelines, PARAMS_BYTES};

/// The wgpu backend: one adapter and queue, the WGSL kernels' pipelines, pooled buffers; one
/// submitted plan is one command buffer.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: DeviceInfo,
    max_binding: u64,
    uniform_align: u64,
    /// Bound where a kernel variant leaves a declared binding unused (`Kernel::unused_bindings`).
    placeholder: wgpu::Buffer,
    pool: Pool<wgpu::Buffer>,
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
    pipelines: Pipelines,
    plans: HashMap<u32, Plan>,
    next_plan: u32,
    in_flight: HashMap<u64, InFlight>,
    next_ticket: u64,
    bind_groups_created: u64,
    plans_compiled: u64,
    extra_buffers_created: u64,
    submits: u64,
    dispatches: u64,
    encode_ns: u64,
}

struct GpuLaunch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

struct Plan {
    steps: Vec<GpuLaunch>,
    /// Holds every launch's parameter block; kept alive with the plan.
    _params: Option<wgpu::Buffer>,
}

struct Readback {
    dtype: DType,
    len: usize,
    staging: wgpu::Buffer,
    /// 0 while mapping, 1 mapped, 2 failed.
    mapped: Arc<AtomicU8>,
}

struct InFlight {
    index: wgpu::SubmissionIndex,
    reads: Vec<Readback>,
}

impl GpuBackend {
    /// Opens the best adapter (see `select::open` for the policy); `allow_software` admits
    /// software rasterizers such as lavapipe.
    pub fn new(allow_software: bool) -> Result<Self> {
        Self::new_nth(allow_software, 0)
    }

    /// [`GpuBackend::new`] for data-parallel replica `index`: the best adapters of one kind take
    /// the replicas in turn (one adapter takes them all, each its own device and queue).
    pub fn new_nth(allow_software: bool, index: usize) -> Result<Self> {
        let (device, queue, info) = adapter::open_nth(allow_software, index)?;
        let limits = device.limits();
        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(GpuBackend {
            placeholder,
            max_binding: limits.max_storage_buffer_binding_size.min(limits.max_buffer_size),
            uniform_align: (limits.min_uniform_buffer_offset_alignment as u64).max(PARAMS_BYTES),
            device,
            queue,
            info,
            pool: Pool::new(),
            staging: HashMap::new(),
            pipelines: Pipelines::default(),
            plans: HashMap::new(),
            next_plan: 0,
            in_flight: HashMap::new(),
            next_ticket: 0,
            bind_groups_created: 0,
            plans_compiled: 0,
            extra_buffers_created: 0,
            submits: 0,
            dispatches: 0,
            encode_ns: 0,
        })
    }

    /// Runs `f` inside a validation + out-of-memory error scope and turns a captured wgpu error
    /// into `Error::Gpu` instead of a panic.
    fn scoped<T>(&mut self, what: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f(self);
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        match (v.or(o), out) {
            (Some(e), _) => Err(Error::Gpu(format!("{what}: {e}"))),
            (None, out) => out,
        }
    }

    fn take_staging(&mut self, bytes: u64) -> wgpu::Buffer {
        if let Some(b) = self.staging.get_mut(&bytes).and_then(Vec::pop) {
            return b;
        }
        self.extra_buffers_created += 1;
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    fn build_plan(&mut self, launches: &[Launch]) -> Result<Plan> {
        for l in launches {
            check_launch(l, &self.pool)?;
            l.kernel.check_workgroups()?;
        }
        if launches.is_empty() {
            return Ok(Plan { steps: Vec::new(), _params: None });
        }
        // One uniform buffer holds every launch's parameters at aligned offsets.
        let align = self.uniform_align;
        let mut block = vec![0u8; align as usize * launches.len()];
        for (i, l) in launches.iter().enumerate() {
            let at = i * align as usize;
            block[at..at + PARAMS_BYTES as usize].copy_from_slice(bytemuck::cast_slice(&l.kernel.params()));
        }
        let params = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln plan params"),
            size: block.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.extra_buffers_created += 1;
        self.queue.write_buffer(&params, 0, &block);

        let mut steps = Vec::with_capacity(launches.len());
        for (i, l) in launches.iter().enumerate() {
            let k = &l.kernel;
            let pipe = self.pipelines.get(&self.device, k);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params,
                    offset: i as u64 * align,
                    size: std::num::NonZeroU64::new(PARAMS_BYTES),
                }),
            }];
            for (slot, id) in k.slots().iter().zip(&l.buffers) {
                entries.push(wgpu::BindGroupEntry {
                    binding: slot.binding,
                    resource: wgpu::BindingResource::Buffer(Self::binding(&self.pool, *id)?),
                });
            }
            for binding in k.unused_bindings() {
                entries
                    .push(wgpu::BindGroupEntry { binding, resource: self.placeholder.as_entire_binding() });
            }
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(k.name()),
                layout: &pipe.layout,
                entries: &entries,
            });
            steps.push(GpuLaunch { pipeline: pipe.pipeline.clone(), bind_group, groups: k.workgroups() });
            self.bind_groups_created += 1;
        }
        Ok(Plan { steps, _params: Some(params) })
    }

    /// The binding of buffer `id`: a whole buffer, or a view's range of its parent. A binding
    /// covers whole 16-byte vec4s where its parent has them (see `alloc`): a view's elements are
    /// followed by at least that padding, since views start 256-byte aligned.
    fn binding(pool: &Pool<wgpu::Buffer>, id: BufferId) -> Result<wgpu::BufferBinding<'_>> {
        let (dtype, len) = pool.describe(id)?;
        let (raw, at) = pool.storage(id)?;
        let offset = dtype.bytes(at);
        let size = dtype.bytes(len.max(1)).next_multiple_of(16).min(raw.size() - offset);
        Ok(wgpu::BufferBinding { buffer: raw, offset, size: std::num::NonZeroU64::new(size) })
    }

    /// Encodes a plan's launches (if any) and copies of `reads` into staging buffers, submits
    /// once, and starts mapping the staging buffers.
    fn submit_work(
        &mut self,
        plan: Option<(PlanId, Option<Range<usize>>)>,
        reads: &[BufferId],
    ) -> Result<Ticket> {
        let started = Instant::now();
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln step") });
        if let Some((plan, part)) = plan {
            let p = self.plans.get(&plan.0).ok_or(Error::UnknownPlan(plan.0))?;
            let steps = match part {
                Some(launches) => &p.steps[check_part(plan, launches, p.steps.len())?],
                None => &p.steps[..],
            };
            if !steps.is_empty() {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("kiln"),
                    timestamp_writes: None,
                });
                for s in steps {
                    pass.set_pipeline(&s.pipeline);
                    pass.set_bind_group(0, &s.bind_group, &[]);
                    pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
                }
                self.dispatches += steps.len() as u64;
            }
        }
        let mut readbacks = Vec::with_capacity(reads.len());
        for &id in reads {
            let (dtype, len) = self.pool.describe(id)?;
            let bytes = dtype.bytes(len.max(1));
            let staging = self.take_staging(bytes);
            let (raw, at) = self.pool.storage(id)?;
            encoder.copy_buffer_to_buffer(raw, dtype.bytes(at), &staging, 0, bytes);
            readbacks.push(Readback { dtype, len, staging, mapped: Arc::new(AtomicU8::new(0)) });
        }
        let commands = encoder.finish();
        self.encode_ns += started.elapsed().as_nanos() as u64;
        self.submits += 1;
        let index = self.queue.submit([commands]);
        for r in &readbacks {
            let flag = r.mapped.clone();
            r.staging.map_async(wgpu::MapMode::Read, .., move |res| {
                flag.store(if res.is_ok() { 1 } else { 2 }, Ordering::Release)
            });
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.in_flight.insert(ticket, InFlight { index, reads: readbacks });
        Ok(Ticket(ticket))
    }
}

impl Backend for GpuBackend {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&mut self, dtype: DType, len: usize) -> Result<BufferId> {
        // Whole vec4s: `matmul_blocked` reads its operands through `array<vec4<u32>>` views, whose
        // binding must hold at least one element and whose last elements must be addressable.
        // The padding is never read as data (loads past `len` are bounds-checked in the shader).
        // Half types take 2 bytes per element, two per 32-bit word (`DType::bytes`).
        let bytes = dtype.bytes(len.max(1)).next_multiple_of(16);
        if bytes > self.max_binding {
            return Err(Error::Unsupported {
                adapter: self.info.name.clone(),
                what: format!("a buffer of {bytes} bytes (the binding limit is {} bytes)", self.max_binding),
            });
        }
        let device = self.device.clone();
        self.scoped("alloc", |me| {
            me.pool.alloc(dtype, len, || {
                Ok(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kiln buffer"),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }))
            })
        })
    }

    fn view(&mut self, parent: BufferId, offset: usize, len: usize) -> Result<BufferId> {
        self.pool.view(parent, offset, len)
    }

    fn max_buffer_bytes(&self) -> u64 {
        self.max_binding
    }

    fn release(&mut self, id: BufferId) -> Result<()> {
        self.pool.release(id)
    }

    fn describe(&self, id: BufferId) -> Result<(DType, usize)> {
        self.pool.describe(id)
    }

    fn write(&mut self, id: BufferId, data: HostData<'_>) -> Result<()> {
        let (dtype, len) = self.pool.describe(id)?;
        check_write(dtype, len, &data)?;
        let (raw, at) = self.pool.storage(id)?;
        let at = dtype.bytes(at);
        let bytes = data.bytes();
        if bytes.len().is_multiple_of(4) {
            if !bytes.is_empty() {
                self.queue.write_buffer(raw, at, bytes);
            }
        } else {
            // An odd number of half elements filling the buffer: writes cover whole words, so the
            // last word takes a zero high half (padding, never read as data).
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.queue.write_buffer(raw, at, &padded);
        }
        Ok(())
    }

    fn prepare(&mut self, launches: &[Launch]) -> Result<PlanId> {
        let plan = self.scoped("prepare", |me| me.build_plan(launches))?;
        let id = self.next_plan;
        self.next_plan += 1;
        self.plans_compiled += 1;
        self.plans.insert(id, plan);
        Ok(PlanId(id))
    }

    fn drop_plan(&mut self, plan: PlanId) -> Result<()> {
        self.plans.remove(&plan.0).map(|_| ()).ok_or(Error::UnknownPlan(plan.0))
    }

    fn submit(&mut self, plan: PlanId, reads: &[BufferId]) -> Result<Ticket> {
        self.submit_work(Some((plan, None)), reads)
    }

    fn submit_part(&mut self, plan: PlanId, launches: Range<usize>, reads: &[BufferId]) -> Result<Ticket> {
        self.submit_work(Some((plan, Some(launches))), reads)
    }

    /// A read outside any plan: one copy into a staging buffer, no plan compiled.
    fn read(&mut self, id: BufferId) -> Result<HostVec> {
        let ticket = self.submit_work(None, &[id])?;
        Ok(self.wait(ticket)?.remove(0))
    }

    fn wait(&mut self, ticket: Ticket) -> Result<Vec<HostVec>> {
        let job = self
            .in_flight
            .remove(&ticket.0)
            .ok_or_else(|| Error::Gpu(format!("unknown ticket {}", ticket.0)))?;
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(job.index), timeout: None })
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        let mut out = Vec::with_capacity(job.reads.len());
        for r in job.reads {
            while r.mapped.load(Ordering::Acquire) == 0 {
                self.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| Error::Gpu(format!("mapping a read-back: {e}")))?;
            }
            if r.mapped.load(Ordering::Acquire) == 2 {
                return Err(Error::Gpu("mapping a read-back buffer failed (device lost?)".into()));
            }
            {
                let view =
                    r.staging.get_mapped_range(..).map_err(|e| Error::Gpu(format!("read-back: {e}")))?;
                out.push(HostVec::from_bytes(r.dtype, r.len, &view));
            }
            r.staging.unmap();
            self.staging.entry(r.staging.size()).or_default().push(r.staging);
        }
        Ok(out)
    }

    fn stats(&self) -> Stats {
        let mut s = self.pool.stats;
        s.buffers_created += self.extra_buffers_created;
        s.pipelines_created = self.pipelines.created;
        s.bind_groups_created = self.bind_groups_created;
        s.plans_compiled = self.plans_compiled;
        s.submits = self.submits;
        s.dispatches = self.dispatches;
        s.encode_ns = self.encode_ns;
        s
    }
}
