//! The CPU twin's f32 GEMM: which library multiplies, and how the work is spread over threads.
//!
//! The `gemm` crate (its AVX-512 or AVX2/FMA kernels, chosen at run time) runs every product on
//! rayon's threads, the same pool as the elementwise kernels, so no second pool has to wake up
//! between launches. `matrixmultiply` runs it instead on AMD Zen 2 / Zen 3 (AVX2 without AVX-512,
//! families 0x17 and 0x19: it was the faster of the two on a Zen 3), on CPUs without AVX2, and off
//! x86; `KILN_GEMM=gemm|matrixmultiply` overrides the choice ([`Gemm::current`]). Measured on a
//! 2-core AMD EPYC with AVX-512 (Zen 5), GFLOP/s of one product, matrixmultiply / gemm on one
//! thread / gemm on two: 64x64x512 132 / 233 / 143; 256x64x512 350 / 258 / 417; 2048x1536x576 364 /
//! 233 / 431; 16 batched 32x256x64: 162 / 216 (the entries split over the threads: 327). The same
//! CPU with both libraries held to AVX2 (`gemm` built without `x86-v4`, matrixmultiply with
//! `MMTEST_FEATURE=sse2,avx,avx2,fma`), square products, 2 threads: n = 1024 215–220 vs 266, n = 2048
//! 219–225 vs 266–272 (NumPy / OpenBLAS's Haswell kernel: 258).
//!
//! Threads: a product under [`split_flops`] runs on one thread (waking the other costs more than
//! it saves); a batch of small entries is split over the threads by entries, in tasks of at least
//! that much work. The bar is lower when the plan already runs inside rayon's pool (a plan with
//! big launches, see the CPU backend): the other thread is awake then, and splitting products of
//! 2-8 MFLOP (a small transformer's projections and weight gradients) paid: transformer step
//! 382-387 -> 419-447 steps/s with AVX-512, 252-259 -> 314-329 held to AVX2 (Zen 5, interleaved);
//! from a thread outside the pool the bar stays at 8 MFLOP (at 2, mlp-small lost half its speed
//! to wake-ups). How the threads split a product never changes its arithmetic: each element of
//! `C` is accumulated over `k` in the same order whatever the thread count.

use rayon::prelude::*;

/// Work (2mnk flops) below which a product or a task of batch entries stays on one thread, called
/// from outside rayon's pool.
pub(crate) const SPLIT_FLOPS: usize = 8 << 20;

/// The same bar for a product computed on one of rayon's threads (the other threads are awake).
pub(crate) const SPLIT_FLOPS_IN_POOL: usize = 2 << 20;

/// The bar for the calling thread: [`SPLIT_FLOPS_IN_POOL`] inside rayon's pool, else
/// [`SPLIT_FLOPS`].
fn split_flops() -> usize {
    if rayon::current_thread_index().is_some() {
        SPLIT_FLOPS_IN_POOL
    } else {
        SPLIT_FLOPS
    }
}

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

/// The library that runs the CPU's f32 products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gemm {
    /// The `gemm` crate (AVX-512 or AVX2/FMA kernels, on rayon's threads).
    Gemm,
    /// The `matrixmultiply` crate (its own threads).
    Matrixmultiply,
}

impl Gemm {
    /// The choice for this process: `KILN_GEMM` when set to `gemm` or `matrixmultiply`, else by
    /// the CPU and the vector level in use (see the module docs). Decided once.
    pub fn current() -> Gemm {
        static CHOICE: std::sync::OnceLock<Gemm> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| match std::env::var("KILN_GEMM").as_deref() {
            Ok("gemm") => Gemm::Gemm,
            Ok("matrixmultiply") => Gemm::Matrixmultiply,
            _ => Gemm::for_cpu(super::simd::level(), amd_zen2_or_zen3()),
        })
    }

    /// The choice for a vector level, on a Zen 2 / Zen 3 or not.
    pub fn for_cpu(level: super::simd::Level, zen2_or_zen3: bool) -> Gemm {
        use super::simd::Level;
        match level {
            Level::Avx512 => Gemm::Gemm,
            Level::Avx2 if !zen2_or_zen3 => Gemm::Gemm,
            _ => Gemm::Matrixmultiply,
        }
    }

    /// `gemm` or `matrixmultiply`.
    pub fn name(self) -> &'static str {
        match self {
            Gemm::Gemm => "gemm",
            Gemm::Matrixmultiply => "matrixmultiply",
        }
    }
}

/// An AMD CPU of family 0x17 or 0x19 without AVX-512: Zen, Zen 2, Zen 3 (Zen 4 has AVX-512).
fn amd_zen2_or_zen3() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let vendor = std::arch::x86_64::__cpuid(0);
        let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163); // "AuthenticAMD"
        let eax = std::arch::x86_64::__cpuid(1).eax;
        let family = ((eax >> 8) & 0xf) + if (eax >> 8) & 0xf == 0xf { (eax >> 20) & 0xff } else { 0 };
        amd && (family == 0x17 || family == 0x19) && !std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this process runs products through the `gemm` crate.
fn use_gemm() -> bool {
    Gemm::current() == Gemm::Gemm
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
    let split = split_flops();
    if !use_gemm() || threads == 1 || entries == 1 || flops >= split {
        // One entry at a time, each on as many threads as its size deserves.
        let threads = if flops >= split { threads } else { 1 };
        c.chunks_exact_mut(m * n).enumerate().for_each(|(e, c)| entry(e, c, threads));
        return;
    }
    // Small entries: whole entries per task, each task worth at least a quarter of the bar.
    let per_task = (split / 4).div_ceil(flops.max(1)).max(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::Level;

    #[test]
    fn gemm_everywhere_but_zen2_zen3_and_without_avx2() {
        assert_eq!(Gemm::for_cpu(Level::Avx512, false), Gemm::Gemm);
        assert_eq!(Gemm::for_cpu(Level::Avx2, false), Gemm::Gemm);
        assert_eq!(Gemm::for_cpu(Level::Avx2, true), Gemm::Matrixmultiply);
        assert_eq!(Gemm::for_cpu(Level::Base, false), Gemm::Matrixmultiply);
        assert_eq!(Gemm::current().name(), if use_gemm() { "gemm" } else { "matrixmultiply" });
    }
}
