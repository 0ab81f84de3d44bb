//! Matmul through the `matrixmultiply` crate (its own threads for large products). Its sgemm takes
//! row and column strides, so a transposed operand is just swapped strides, never a copy.
//!
//! Chosen over the `gemm` crate (0.19, rayon) by measurement on the 2-core dev machine, side by side
//! with NumPy/OpenBLAS (GFLOP/s at n = 1024 / 2048, machine shared and loaded, so noisy):
//! matrixmultiply 40-48 / 45-47, gemm 36-39 / 36-39, NumPy 27-36 / 48-50; single-threaded:
//! matrixmultiply 45 / 49, gemm 44 / 42, NumPy 57 / 53. Note matrixmultiply uses at most 4 threads
//! (its `MAX_THREADS`): on many-core machines re-measure against `gemm`, which uses all of rayon's.

use crate::kernel::Matmul;

/// `C[b] = op(A[b]) @ op(B[b])`, row-major; an unbatched operand is shared by every batch entry.
pub(crate) fn matmul(mm: &Matmul, c: &mut [f32], a: &[f32], b: &[f32]) {
    let (m, n, k) = (mm.m, mm.n, mm.k);
    // Element (i, p) of op(A) is at i * rsa + p * csa; A is stored [m, k], or [k, m] when transposed.
    let (rsa, csa) = if mm.trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if mm.trans_b { (1, k) } else { (n, 1) };
    let a_stride = if mm.a_batched { m * k } else { 0 };
    let b_stride = if mm.b_batched { k * n } else { 0 };
    for (bi, c) in c.chunks_exact_mut(m * n).take(mm.batch).enumerate() {
        let a = &a[bi * a_stride..][..m * k];
        let b = &b[bi * b_stride..][..k * n];
        // SAFETY: the slices above hold exactly the m x k, k x n and m x n elements the strides
        // address, C is not aliased (a launch never binds its written buffer twice), and beta = 0
        // means C is only written.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.as_ptr(),
                rsa as isize,
                csa as isize,
                b.as_ptr(),
                rsb as isize,
                csb as isize,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
    }
}
