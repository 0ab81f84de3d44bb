//! The native CPU backend: the readable reference every GPU kernel is tested against, and the
//! default where no hardware GPU exists.
//!
//! This module is only the machinery: buffers are plain `Vec`s kept in a `Pool`; `prepare` checks
//! every launch once and turns it into a `CpuLaunch` (buffer ids with the slot each binds), so
//! `submit` only looks buffers up and hands slices to the kernel's CPU twin (in its family module,
//! `crate::kernels`), synchronously; no buffer is allocated per launch (a few twins build a small
//! scratch: im2col's tap table, cross-entropy's per-row terms). Read-backs are stashed
//! under the ticket until `wait` collects them.

use std::collections::HashMap;
use std::ops::Range;

use crate::backend::{
    check_launch, check_part, check_write, Backend, BufferId, DType, HostData, HostVec, Launch, PlanId,
    Stats, Ticket,
};
use crate::device_info::{DeviceInfo, DeviceKind};
use crate::error::{Error, Result};
use crate::kernels::twin::{In, Out, Par};
use crate::kernels::{Access, Kernel, Slot};
use crate::pool::Pool;

mod profile;
use profile::KernelProfile;

/// Default for [`CpuBackend::with_parallel_min`]: transcendental work splits from 32K elements,
/// memory-bound work from 128K. Since a plan with big launches runs inside the rayon pool (no
/// wake-up of the submitting thread per launch), splitting pays earlier than the 64K / 1M chosen
/// before: on a 2-core Zen 5, interleaved, the cnn step went 746-766 -> 784-798 steps/s and the
/// others held (16K / 64K lost 30% on mlp-small, whose plans then ran in the pool).
pub const DEFAULT_PARALLEL_MIN: usize = 32 * 1024;

/// The storage of one CPU buffer: f16 and bf16 buffers both hold their bits as `u16` (the pool
/// entry's dtype tells which).
#[derive(Debug)]
pub(crate) enum CpuBuf {
    F32(Vec<f32>),
    U32(Vec<u32>),
    Half(Vec<u16>),
}

impl CpuBuf {
    /// Elements `offset..offset + len` as a kernel output.
    ///
    /// # Safety
    /// The range must lie within the buffer, and nothing else may access it while the returned
    /// slice lives (the buffer itself must not be moved, resized or dropped meanwhile).
    unsafe fn out_at<'a>(&mut self, offset: usize, len: usize) -> Out<'a> {
        use std::slice::from_raw_parts_mut as part;
        // `as_mut_ptr` makes no reference to the whole vector, so several disjoint ranges of one
        // buffer can be out at once.
        match self {
            CpuBuf::F32(v) => Out::F(part(v.as_mut_ptr().add(offset), len)),
            CpuBuf::U32(v) => Out::U(part(v.as_mut_ptr().add(offset), len)),
            CpuBuf::Half(v) => Out::H(part(v.as_mut_ptr().add(offset), len)),
        }
    }
    /// Elements `offset..offset + len` as a kernel input.
    ///
    /// # Safety
    /// As [`CpuBuf::out_at`], except that other inputs may share the range.
    unsafe fn input_at<'a>(&mut self, offset: usize, len: usize) -> In<'a> {
        use std::slice::from_raw_parts as part;
        match self {
            CpuBuf::F32(v) => In::F(part(v.as_mut_ptr().add(offset), len)),
            CpuBuf::U32(v) => In::U(part(v.as_mut_ptr().add(offset), len)),
            CpuBuf::Half(v) => In::H(part(v.as_mut_ptr().add(offset), len)),
        }
    }
}

/// The most buffers one kernel writes (Adam: param, m, v) and reads (a loss grad: pred, target, dloss).
const MAX_WRITES: usize = 3;
const MAX_READS: usize = 3;

/// One checked launch: the kernel and, per slot, the buffer bound there.
struct CpuLaunch {
    kernel: Kernel,
    binds: Vec<(BufferId, Slot)>,
}

/// A prepared plan: its launches, and whether any of them is big enough to split over threads.
struct CpuPlan {
    launches: Vec<CpuLaunch>,
    threaded: bool,
}

/// The native CPU backend.
pub struct CpuBackend {
    info: DeviceInfo,
    pool: Pool<CpuBuf>,
    plans: Vec<Option<CpuPlan>>,
    free_plans: Vec<u32>,
    next_ticket: u64,
    done: HashMap<u64, Vec<HostVec>>,
    par: Par,
    /// Time per kernel (`KILN_PROFILE_KERNELS=1`), printed when the backend is dropped.
    profile: Option<KernelProfile>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A CPU backend on all cores (small kernels run on one thread).
    pub fn new() -> Self {
        Self::with_parallel_min(DEFAULT_PARALLEL_MIN)
    }

    /// A backend whose kernels use rayon's threads only for work of at least `elements` elements
    /// (16x that for memory-bound kernels). Tests pass 1 to run the threaded paths on small inputs.
    pub fn with_parallel_min(elements: usize) -> Self {
        let threads = rayon::current_num_threads();
        CpuBackend {
            info: DeviceInfo {
                name: format!("native CPU ({threads} threads)"),
                kind: DeviceKind::Cpu,
                api: "native".into(),
                driver: String::new(),
                limits: vec![],
                features: vec![],
            },
            pool: Pool::new(),
            plans: Vec::new(),
            free_plans: Vec::new(),
            next_ticket: 0,
            done: HashMap::new(),
            par: Par { min: elements.max(1) },
            profile: KernelProfile::from_env(),
        }
    }

    /// Launches `plan` holds.
    fn launches(&self, plan: PlanId) -> Result<usize> {
        self.plans
            .get(plan.0 as usize)
            .and_then(Option::as_ref)
            .map(|p| p.launches.len())
            .ok_or(Error::UnknownPlan(plan.0))
    }

    /// Runs one step: its buffers' elements handed to the kernel's CPU twin as slices.
    fn run_step(pool: &mut Pool<CpuBuf>, step: &CpuLaunch, par: Par) -> Result<()> {
        let op = step.kernel.name();
        // A buffer may have been released and its id reused since prepare: check again (cheap).
        for (i, (id, s)) in step.binds.iter().enumerate() {
            let (dtype, len) = pool.describe(*id)?;
            if dtype != s.dtype || len < s.len {
                return Err(Error::Binding {
                    op,
                    slot: i,
                    name: s.name,
                    need: s.len,
                    need_dtype: s.dtype,
                    got: len,
                    got_dtype: dtype,
                });
            }
        }
        let mut outs: [Out<'_>; MAX_WRITES] = [Out::F(&mut []), Out::F(&mut []), Out::F(&mut [])];
        let mut ins: [In<'_>; MAX_READS] = [In::F(&[]); MAX_READS];
        let (mut w, mut r) = (0, 0);
        for (id, s) in &step.binds {
            let (raw, offset) = pool.storage_mut(*id)?;
            // SAFETY: the buffer holds `offset + s.len` elements (checked just above: `describe`
            // gives the view's length, which lies within its parent); `prepare` checked that no
            // written range overlaps any other range this launch binds, and the slices die with
            // this call, before the pool can change.
            match s.access {
                Access::Write => {
                    outs[w] = unsafe { raw.out_at(offset, s.len) };
                    w += 1;
                }
                Access::Read => {
                    ins[r] = unsafe { raw.input_at(offset, s.len) };
                    r += 1;
                }
            }
        }
        step.kernel.run_cpu(&mut outs[..w], &ins[..r], par)
    }
}

impl Drop for CpuBackend {
    fn drop(&mut self) {
        if let Some(p) = &self.profile {
            eprint!("{}", p.report());
        }
    }
}

impl Backend for CpuBackend {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn alloc(&mut self, dtype: DType, len: usize) -> Result<BufferId> {
        self.pool.alloc(dtype, len, || {
            Ok(match dtype {
                DType::F32 => CpuBuf::F32(vec![0.0; len]),
                DType::U32 => CpuBuf::U32(vec![0; len]),
                DType::F16 | DType::BF16 => CpuBuf::Half(vec![0; len]),
            })
        })
    }

    fn view(&mut self, parent: BufferId, offset: usize, len: usize) -> Result<BufferId> {
        self.pool.view(parent, offset, len)
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
        let (raw, at) = self.pool.storage_mut(id)?;
        match (raw, data) {
            (CpuBuf::F32(v), HostData::F32(d)) => v[at..at + d.len()].copy_from_slice(d),
            (CpuBuf::U32(v), HostData::U32(d)) => v[at..at + d.len()].copy_from_slice(d),
            (CpuBuf::Half(v), d) => {
                let bits = d.half_bits().expect("check_write matched the dtypes");
                v[at..at + bits.len()].copy_from_slice(bits)
            }
            _ => unreachable!("check_write matched the dtypes"),
        }
        Ok(())
    }

    fn prepare(&mut self, launches: &[Launch]) -> Result<PlanId> {
        let mut steps = Vec::with_capacity(launches.len());
        for launch in launches {
            check_launch(launch, &self.pool)?;
            let slots = launch.kernel.slots();
            let (n_w, n_r) = slots.iter().fold((0, 0), |(w, r), s| match s.access {
                Access::Write => (w + 1, r),
                Access::Read => (w, r + 1),
            });
            assert!(n_w <= MAX_WRITES && n_r <= MAX_READS, "{}: too many buffers", launch.kernel.name());
            steps.push(CpuLaunch {
                kernel: launch.kernel,
                binds: launch.buffers.iter().copied().zip(slots).collect(),
            });
        }
        // Kernels split their work only past `par.min` elements; matmuls past a few MFLOP, which
        // an output of that many elements is a fair proxy for.
        let threaded = steps.iter().any(|l| l.binds.iter().any(|(_, s)| s.len >= self.par.min));
        let steps = CpuPlan { launches: steps, threaded };
        self.pool.stats.plans_compiled += 1;
        Ok(match self.free_plans.pop() {
            Some(i) => {
                self.plans[i as usize] = Some(steps);
                PlanId(i)
            }
            None => {
                self.plans.push(Some(steps));
                PlanId(self.plans.len() as u32 - 1)
            }
        })
    }

    fn drop_plan(&mut self, plan: PlanId) -> Result<()> {
        self.plans.get_mut(plan.0 as usize).and_then(Option::take).ok_or(Error::UnknownPlan(plan.0))?;
        self.free_plans.push(plan.0);
        Ok(())
    }

    fn submit(&mut self, plan: PlanId, reads: &[BufferId]) -> Result<Ticket> {
        self.submit_part(plan, 0..self.launches(plan)?, reads)
    }

    fn submit_part(&mut self, plan: PlanId, launches: Range<usize>, reads: &[BufferId]) -> Result<Ticket> {
        // Checked before running, so a bad read id does not leave a half-run step behind.
        for &id in reads {
            self.pool.describe(id)?;
        }
        let steps =
            self.plans.get(plan.0 as usize).and_then(Option::as_ref).ok_or(Error::UnknownPlan(plan.0))?;
        let launches = check_part(plan, launches, steps.launches.len())?;
        let (pool, par, profile) = (&mut self.pool, self.par, &mut self.profile);
        let run = || {
            for step in &steps.launches[launches] {
                match profile {
                    None => Self::run_step(pool, step, par)?,
                    Some(p) => p.time(&step.kernel, || Self::run_step(pool, step, par))?,
                }
            }
            Ok::<(), Error>(())
        };
        if steps.threaded {
            // The whole plan runs on one of rayon's threads: a kernel that splits its work then
            // forks onto the other threads from inside the pool, instead of this thread handing
            // every launch to the pool and sleeping until it is done (a wake-up per launch, ~10 us).
            rayon::scope(|_| run())?;
        } else {
            run()?;
        }
        let out = reads.iter().map(|&id| self.read(id)).collect::<Result<Vec<_>>>()?;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.done.insert(ticket, out);
        Ok(Ticket(ticket))
    }

    fn wait(&mut self, ticket: Ticket) -> Result<Vec<HostVec>> {
        // A ticket is only made by submit and consumed here, so it is always present.
        Ok(self.done.remove(&ticket.0).unwrap_or_default())
    }

    fn stats(&self) -> Stats {
        self.pool.stats
    }

    /// A direct copy: unlike the trait's default, it compiles no plan (so `plans_compiled` stays
    /// flat in a training loop that reads its loss).
    fn read(&mut self, id: BufferId) -> Result<HostVec> {
        let (dtype, len) = self.pool.describe(id)?;
        let (raw, at) = self.pool.storage(id)?;
        let range = at..at + len;
        Ok(match raw {
            CpuBuf::F32(v) => HostVec::F32(v[range].to_vec()),
            CpuBuf::U32(v) => HostVec::U32(v[range].to_vec()),
            CpuBuf::Half(v) => HostVec::from_half_bits(dtype, v[range].to_vec()),
        })
    }
}
