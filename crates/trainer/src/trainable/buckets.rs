//! Gradient buckets of a data-parallel step: which gradients are reduced together, in the order
//! the backward pass completes them (the last layers' first). A replica's forward + backward runs
//! as one part per bucket ([`Session::run_in_parts`](kiln_graph::Session::run_in_parts)), and
//! bucket k is summed across replicas and processes while the part of bucket k+1 still computes,
//! as PyTorch DDP overlaps its 25 MiB buckets with the backward pass.

/// Default bucket size in MiB ([`Compile::bucket_mb`](crate::Compile::bucket_mb)), PyTorch DDP's.
pub const DEFAULT_BUCKET_MB: f64 = 25.0;

/// The first bucket closes at this many bytes at most (as DDP's first bucket): the last layers'
/// gradients start travelling early, even in a model smaller than one bucket.
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;

/// Bytes in a bucket of `mb` MiB; 0 (no buckets: one reduction after the whole backward) for 0,
/// a negative size or NaN.
pub(crate) fn bucket_bytes(mb: f64) -> usize {
    if mb > 0.0 {
        ((mb * (1u64 << 20) as f64) as usize).max(1)
    } else {
        0
    }
}

/// Groups gradient tensors of `sizes` f32 elements, complete after `ready[j]` launches, into
/// buckets in the order they complete (ties in index order): a bucket closes once it holds at
/// least `cap` bytes (the first at least `min(cap, FIRST_BUCKET_BYTES)`), so a tensor larger
/// than a bucket is a bucket of its own. `cap = 0` gives one bucket of every gradient in index
/// order (no overlap). Every rank and replica computes the same buckets from the same graph.
pub(crate) fn buckets(ready: &[usize], sizes: &[usize], cap: usize) -> Vec<Vec<usize>> {
    if cap == 0 {
        return vec![(0..sizes.len()).collect()];
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&j| ready[j]);
    let (mut out, mut open, mut bytes) = (Vec::new(), Vec::new(), 0);
    for j in order {
        open.push(j);
        bytes += 4 * sizes[j];
        let limit = if out.is_empty() { cap.min(FIRST_BUCKET_BYTES) } else { cap };
        if bytes >= limit {
            out.push(std::mem::take(&mut open));
            bytes = 0;
        }
    }
    if !open.is_empty() || out.is_empty() {
        out.push(open);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{bucket_bytes, buckets, FIRST_BUCKET_BYTES};

    #[test]
    fn buckets_follow_readiness_and_close_at_the_cap() {
        // gradients 0..5 complete in the order 3, 4, 1, 2, 0 (reverse layers)
        let ready = [50, 30, 40, 10, 20];
        let sizes = [1000, 300, 700, 200, 250];
        // 4 KB buckets (1000 f32): 3+4+1+2 reach 1450 values, then 0 alone
        assert_eq!(buckets(&ready, &sizes, 4000), vec![vec![3, 4, 1, 2], vec![0]]);
        // 2 KB (500 values): 3+4+1 = 750 close the first, 2 (700) and 0 (1000) one each
        assert_eq!(buckets(&ready, &sizes, 2000), vec![vec![3, 4, 1], vec![2], vec![0]]);
        assert_eq!(buckets(&ready, &sizes, 0), vec![vec![0, 1, 2, 3, 4]], "0: one bucket");
        assert_eq!(buckets(&ready, &sizes, 1), vec![vec![3], vec![4], vec![1], vec![2], vec![0]]);
        assert_eq!(buckets(&[], &[], 100), vec![Vec::<usize>::new()], "no gradients: one empty bucket");
    }

    #[test]
    fn the_first_bucket_closes_at_one_mib() {
        let quarter = FIRST_BUCKET_BYTES / 16; // values: 4 of them fill the first bucket
        let sizes = [quarter; 7];
        let ready = [7, 6, 5, 4, 3, 2, 1];
        let cap = 25 << 20;
        assert_eq!(buckets(&ready, &sizes, cap), vec![vec![6, 5, 4, 3], vec![2, 1, 0]]);
        assert_eq!(bucket_bytes(25.0), cap);
        assert_eq!(bucket_bytes(0.0), 0);
        assert_eq!(bucket_bytes(-1.0), 0);
        assert_eq!(bucket_bytes(f64::NAN), 0);
        assert_eq!(bucket_bytes(1e-9), 1);
    }
}
