//! The collective a data-parallel step needs from a process group: summing every rank's
//! gradients (and gathering outputs for metrics). One process is a group of one.

use crate::Result;

/// Sums gradients across processes. The replicas of one process are summed on the host first;
/// an MPI communicator implements this with `MPI_Allreduce(MPI_SUM)` over its ranks
/// (`MpiAllReduce`, the `mpi` feature).
pub trait AllReduce: Send {
    /// Replaces each of this process's gradient tensors (`grads[k]`, already weighted by rows) by
    /// its element-wise sum over every process.
    fn all_reduce_sum(&mut self, grads: &mut [Vec<f32>]) -> Result<()>;

    /// This process's rank in the group (0 of 1 by default).
    fn rank(&self) -> usize {
        0
    }

    /// Processes in the group.
    fn size(&self) -> usize {
        1
    }

    /// Every rank's `local` values laid end to end in rank order; rank `r` sends `counts[r]`
    /// values (one process: `local` itself).
    fn all_gather(&mut self, local: &[f32], _counts: &[usize]) -> Result<Vec<f32>> {
        Ok(local.to_vec())
    }
}

/// The communicator of a single process: its local sum is the global one.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl AllReduce for SingleProcess {
    fn all_reduce_sum(&mut self, _grads: &mut [Vec<f32>]) -> Result<()> {
        Ok(())
    }
}
