//! Data parallelism across processes (and machines): the process group this process trains in.
//!
//! A process joins a group once, at start ([`set_process_group`]; with the `mpi` feature,
//! `Mpi::init` under `mpirun`). From then on every model bound in it
//! ([`Compile`](crate::Compile)) is one replica of a data-parallel job over the group's
//! processes ("ranks"): every rank computes the same seeded order of rows, takes its contiguous
//! share of each global batch (rank `r` of `n` takes `split_rows(rows, n)[r]`, sizes within one,
//! as the in-process replicas split a batch; its own devices then split that share again), runs
//! forward and backward on it, weights its gradients by its rows over the global batch's and
//! the group sums them ([`AllReduce`]). Every rank then applies the same update to the same
//! weights, so the ranks stay bit-identical without a weight broadcast (the sum each rank
//! receives is the same: MPI's sum of two values is commutative and each element is reduced
//! once and distributed, or pairwise on both sides of an exchange). `fit` checks at its start
//! that every rank trains the same thing (rows, batch size, epochs, step, seed and a checksum of
//! the weights) and fails on every rank otherwise. Only rank 0 logs, plots, prints progress and
//! writes checkpoints ([`is_root`]). Evaluation (validation in `fit`, `evaluate`) is sharded:
//! each rank runs its block of the batches and the results are gathered, so every rank must call
//! it (`trainable/eval_shard.rs`).
//!
//! Without a group (the default) a process is a group of one ([`SingleProcess`]).

mod all_reduce;
#[cfg(feature = "mpi")]
mod mpi;

use std::sync::OnceLock;

pub use self::all_reduce::{AllReduce, SingleProcess};
#[cfg(feature = "mpi")]
pub use self::mpi::{Mpi, MpiAllReduce, BUCKET_BYTES};
use crate::{Error, Result};

/// Opens a handle on the process group (each binding of a model takes one).
pub type GroupFactory = Box<dyn Fn() -> Box<dyn AllReduce> + Send + Sync>;

struct Group {
    rank: usize,
    size: usize,
    open: GroupFactory,
}

static GROUP: OnceLock<Group> = OnceLock::new();

/// Makes this process rank `rank` of a group of `size` processes whose collectives `open`
/// returns. Once per process, before any model is bound; an error when a group is set already.
pub fn set_process_group(rank: usize, size: usize, open: GroupFactory) -> Result<()> {
    if size == 0 || rank >= size {
        return Err(Error::InvalidArgument(format!("process group: rank {rank} of {size}")));
    }
    GROUP
        .set(Group { rank, size, open })
        .map_err(|_| Error::InvalidArgument("the process group is set already (once per process)".into()))
}

/// This process's rank in its group (0 without one).
pub fn rank() -> usize {
    GROUP.get().map_or(0, |g| g.rank)
}

/// Processes in this process's group (1 without one).
pub fn size() -> usize {
    GROUP.get().map_or(1, |g| g.size)
}

/// Whether this process writes the files and prints the progress of a job (rank 0).
pub fn is_root() -> bool {
    rank() == 0
}

/// A handle on the group's collectives ([`SingleProcess`] without a group).
pub fn open_group() -> Box<dyn AllReduce> {
    match GROUP.get() {
        Some(g) => (g.open)(),
        None => Box::new(SingleProcess),
    }
}

/// Waits until every rank has called it (a sum of one value over the group).
pub fn barrier() -> Result<()> {
    if size() > 1 {
        open_group().all_reduce_sum(&mut [vec![0.0]])?;
    }
    Ok(())
}

/// Fails on every rank unless every rank passes the same `values` (what `fit` checks that the
/// ranks train alike with); `what` names them in order.
pub(crate) fn check_same(what: &[&str], values: &[u64]) -> Result<()> {
    let n = size();
    if n == 1 {
        return Ok(());
    }
    // 16-bit pieces: exact in f32
    let local: Vec<f32> =
        values.iter().flat_map(|v| (0..4).map(move |k| ((v >> (16 * k)) & 0xFFFF) as f32)).collect();
    let all = open_group().all_gather(&local, &vec![local.len(); n])?;
    for (r, theirs) in all.chunks(local.len()).enumerate() {
        for (i, (a, b)) in theirs.chunks(4).zip(local.chunks(4)).enumerate() {
            if a != b {
                return Err(Error::InvalidArgument(format!(
                    "rank {r} of {n} trains with a different {} than rank {} (every rank must run the \
                     same command on the same data and files)",
                    what[i],
                    rank()
                )));
            }
        }
    }
    Ok(())
}

/// A checksum of `values` (FNV-1a over their bits).
pub(crate) fn checksum<'a>(values: impl IntoIterator<Item = &'a [f32]>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for v in values {
        for x in v {
            h = (h ^ u64::from(x.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
