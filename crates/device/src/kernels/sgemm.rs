//! The CPU twin's f32 GEMM: which library multiplies, and how the work is spread over threads.
//!
//! On CPUs with AVX-512 the `gemm` crate (its `x86-v4` kernels, 16-lane FMA, chosen at run time)
//! runs every product on rayon's threads, the same pool as the elementwise kernels, so no second
//! pool has to wake up between launches; elsewhere `matrixmultiply` runs it (faster than `gemm`
//! on AVX2-only CPUs, measured on a Zen 3, and the only choice off x86). Measured on a 2-core
//! AMD EPYC with AVX-512 (Zen 5), GFLOP/s of one product, matrixmultiply / gemm on one thread /
//! gemm on two: 64x64x512 132 / 233 / 143; 256x64x512 350 / 258 / 417; 2048x1536x576 364 / 233 / 431;
//! 16 batched 32x256x64: 162 / 216 (the entries split over the threads: 327).
//!
//! Threads: a product under [`SPLIT_FLOPS`] runs on one thread (waking the other costs more than
//! it saves); a batch of small entries is split over the threads by entries, in tasks of at least
//! that much work. How the threads split a product never changes its arithmetic: each element of
//! `C` is accumulated over `k` in the same order whatever the thread count.

use rayon::prelude::*;

/// Work (2mnk flops) below which a product or a task of batch entries stays on one thread.
pub(crate) const SPLIT_FLOPS: usize = 8 << 20;

/// One f32 product `C = op(A) @ op(B)` of an `m x k` by `k x n`, given by element strides: element
/// `(i, p)` of op(A) is at `i * rsa + p * csa`, element `(p, j)` of op(B) at `p * rsb + j * csb`,
/// `C` is row-major `m x n`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Product {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub rsa: usize,
    pub csa: usize,
    pub rsb: usize,
    pub csb: usize,
}

/// Whether this CPU runs products through the `gemm` crate (AVX-512), else `matrixmultiply`.
fn use_gemm() -> bool {
    super::simd::level() == super::simd::Level::Avx512
}

/// `C[e] = op(A[e]) @ op(B[e])` for the `c.len() / (m * n)` entries, `A` advancing by `a_stride`
/// elements per entry and `B` by `b_stride` (0: shared by every entry).
pub(crate) fn batched(p: &Product, c: &mut [f32], a: &[f32], a_stride: usize, b: &[f32], b_stride: usize) {
    let entries = c.len() / (p.m * p.n).max(1);
    if entries > 1 && b_stride == 0 && a_stride == p.m * p.k && p.csa == 1 && p.rsa == p.k {
        // A batch of row-major A entries against one shared B is one product of all their rows.
        let tall = Product { m: entries * p.m, ..*p };
        return batched(&tall, c, a, 0, b, 0);
    }
    let (m, n, k) = (p.m, p.n, p.k);
    let entry = |e: usize, c: &mut [f32], threads: usize| {
        let a = &a[e * a_stride..][..m * k];
        let b = &b[e * b_stride..][..k * n];
        product(p, c, a, b, threads);
    };
    let flops = 2 * m * n * k;
    let threads = rayon::current_num_threads();
    if !use_gemm() || threads == 1 || entries == 1 || flops >= SPLIT_FLOPS {
        // One entry at a time, each on as many threads as its size deserves.
        let threads = if flops >= SPLIT_FLOPS { threads } else { 1 };
        c.chunks_exact_mut(m * n).enumerate().for_each(|(e, c)| entry(e, c, threads));
        return;
    }
    // Small entries: whole entries per task, each task worth at least SPLIT_FLOPS / 4.
    let per_task = (SPLIT_FLOPS / 4).div_ceil(flops.max(1)).max(1);
    if per_task >= entries {
        c.chunks_exact_mut(m * n).enumerate().for_each(|(e, c)| entry(e, c, 1));
    } else {
        c.par_chunks_mut(per_task * m * n).enumerate().for_each(|(t, c)| {
            for (i, c) in c.chunks_exact_mut(m * n).enumerate() {
                entry(t * per_task + i, c, 1);
            }
        });
    }
}

/// One product on up to `threads` of rayon's threads (gemm); matrixmultiply splits by its own rule
/// over its own threads.
fn product(p: &Product, c: &mut [f32], a: &[f32], b: &[f32], threads: usize) {
    let s = |v: usize| v as isize;
    if use_gemm() {
        let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        // SAFETY: `a` holds the m x k elements the strides address, `b` the k x n, `c` the m x n;
        // `c` is not aliased (a launch never binds its written buffer twice); with `read_dst`
        // false, `c` is only written (alpha, the factor on the old `c`, is unused).
        unsafe {
            gemm::gemm(
                p.m,
                p.n,
                p.k,
                c.as_mut_ptr(),
                1,
                s(p.n),
                false,
                a.as_ptr(),
                s(p.csa),
                s(p.rsa),
                b.as_ptr(),
                s(p.csb),
                s(p.rsb),
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    } else {
        // SAFETY: as above; beta = 0 means C is only written.
        unsafe {
            matrixmultiply::sgemm(
                p.m,
                p.k,
                p.n,
                1.0,
                a.as_ptr(),
                s(p.rsa),
                s(p.csa),
                b.as_ptr(),
                s(p.rsb),
                s(p.csb),
                0.0,
                c.as_mut_ptr(),
                s(p.n),
                1,
            );
        }
    }
}
