//! The process group on MPI (rsmpi over the system's OpenMPI or MPICH): `MPI_Allreduce(MPI_SUM)`
//! of the gradients in fused buckets, `MPI_Allgatherv` of predictions, `MPI_Abort` on failure.

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;

use super::AllReduce;
use crate::{Error, Result};

/// The size of a fused gradient bucket: gradient tensors are concatenated into buffers of up to
/// this many bytes, each summed by one `MPI_Allreduce` (PyTorch DDP's default bucket size).
pub const BUCKET_BYTES: usize = 25 << 20;

/// MPI, initialized for this process (once): it holds the environment (`MPI_Finalize` when
/// dropped, at the end of `main`) and makes this process its rank of `MPI_COMM_WORLD`'s group.
pub struct Mpi {
    _universe: Universe,
    rank: usize,
    size: usize,
}

impl Mpi {
    /// Initializes MPI (`MPI_Init_thread`, funneled: only the thread that calls `fit` makes MPI
    /// calls) and sets the process group. A process run without `mpirun` is a group of one.
    pub fn init() -> Result<Mpi> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Model("MPI is initialized already".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        super::set_process_group(rank, size, Box::new(move || Box::new(MpiAllReduce { rank, size })))?;
        Ok(Mpi { _universe: universe, rank, size })
    }

    /// This process's rank in `MPI_COMM_WORLD`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Processes in `MPI_COMM_WORLD`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Ends every rank of the job with `code` (`MPI_Abort`): what a failing rank does after
    /// printing its error, so that ranks waiting for it in a collective do not hang.
    pub fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}

/// [`AllReduce`] over `MPI_COMM_WORLD`. The gradients it is given (one bucket of a step,
/// `Compile::bucket_mb`) are concatenated into buffers of up to [`BUCKET_BYTES`], each summed by
/// one `MPI_Iallreduce(MPI_SUM)` that the reducing thread waits for: the replicas' threads
/// compute the backward pass of the next bucket meanwhile, and only that thread (the one that
/// initialized MPI) calls MPI.
#[derive(Clone, Copy, Debug)]
pub struct MpiAllReduce {
    rank: usize,
    size: usize,
}

/// `recv = sum over ranks of send`: a non-blocking `MPI_Iallreduce` polled with `MPI_Test`,
/// yielding the core between polls. A blocking `MPI_Allreduce` spins in MPI's progress loop while
/// it waits for the other ranks, taking a core from the replica threads that compute the next
/// bucket (on the loaded 2-core development machine, overlapped mlp-large steps took a median of
/// 136 ms with it and 100 ms with this, over 4 interleaved runs each). For two ranks either sums
/// each element in one commutative addition: the same bits.
fn sum_polled(world: &SimpleCommunicator, send: &[f32], recv: &mut [f32]) {
    mpi::request::scope(|scope| {
        let mut request = world.immediate_all_reduce_into(scope, send, recv, SystemOperation::sum());
        loop {
            match request.test() {
                Ok(_) => break,
                Err(pending) => {
                    request = pending;
                    std::thread::yield_now();
                }
            }
        }
    });
}

impl AllReduce for MpiAllReduce {
    fn all_reduce_sum(&mut self, grads: &mut [Vec<f32>]) -> Result<()> {
        let world = SimpleCommunicator::world();
        let cap = BUCKET_BYTES / std::mem::size_of::<f32>();
        let total: usize = grads.iter().map(Vec::len).sum();
        let mut send = Vec::with_capacity(cap.min(total));
        let mut recv = vec![0.0f32; cap.min(total)];
        // tensors laid end to end, cut into buckets (a tensor larger than a bucket spans several)
        let (mut t, mut at) = (0, 0);
        while t < grads.len() {
            send.clear();
            let mut parts = Vec::new(); // (tensor, from, to) of this bucket
            while t < grads.len() && send.len() < cap {
                let take = (grads[t].len() - at).min(cap - send.len());
                send.extend_from_slice(&grads[t][at..at + take]);
                parts.push((t, at, at + take));
                at += take;
                if at == grads[t].len() {
                    (t, at) = (t + 1, 0);
                }
            }
            let recv = &mut recv[..send.len()];
            sum_polled(&world, &send[..], recv);
            let mut from = 0;
            for (k, lo, hi) in parts {
                grads[k][lo..hi].copy_from_slice(&recv[from..from + hi - lo]);
                from += hi - lo;
            }
        }
        Ok(())
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&mut self, local: &[f32], counts: &[usize]) -> Result<Vec<f32>> {
        if counts.len() != self.size || counts[self.rank] != local.len() {
            return Err(Error::Model(format!(
                "all_gather: rank {} sends {} values, the counts say {:?}",
                self.rank,
                local.len(),
                counts
            )));
        }
        let to_count = |n: usize| {
            mpi::Count::try_from(n).map_err(|_| Error::Model("all_gather: too many values".into()))
        };
        let counts = counts.iter().map(|&c| to_count(c)).collect::<Result<Vec<_>>>()?;
        let mut displs = Vec::with_capacity(counts.len());
        let mut at = 0;
        for &c in &counts {
            displs.push(at);
            at += c;
        }
        let mut out = vec![0.0f32; at as usize];
        let mut part = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
        SimpleCommunicator::world().all_gather_varcount_into(local, &mut part);
        Ok(out)
    }
}
