//! The matmul family on one backend against the CPU twin, for the tests of both entry points
//! (`matmul_blocked.rs`) and of half inputs (`half_matmul.rs`).
//!
//! Each element must lie within `2 k eps (|A| |B|)_ij` of the CPU result (the forward error bound
//! of a k-term f32 dot product, for each of the two summation orders); a wrong index or a missed
//! tile is off by O(1). Half operands are drawn already rounded to their type, so both backends
//! multiply the same values and differ only in f32 summation order. Outputs start as NaN, so an
//! element never written fails.

use super::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::half::{bf16, f16};
use kiln_device::{Backend, BufferId, DType, HostData, HostVec, Kernel, Launch, Matmul, MatmulTile};

/// `v` rounded to `dtype` (f32, f16 or bf16) and back: the values a buffer of that type holds.
pub fn quantize(dtype: DType, v: &[f32]) -> Vec<f32> {
    match dtype {
        DType::F16 => v.iter().map(|&x| f16::from_f32(x).to_f32()).collect(),
        DType::BF16 => v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect(),
        _ => v.to_vec(),
    }
}

/// A buffer of `dtype` holding `v` (rounded to it).
pub fn upload_as(be: &mut dyn Backend, dtype: DType, v: &[f32]) -> BufferId {
    match dtype {
        DType::F16 => be.upload(HostData::F16(&v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>())),
        DType::BF16 => be.upload(HostData::BF16(&v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>())),
        _ => be.upload(HostData::F32(v)),
    }
    .unwrap()
}

/// Runs `mm` on `be` from `a` and `b` (uploaded as `mm`'s operand types), output poisoned with NaN.
pub fn run(be: &mut dyn Backend, mm: Matmul, a: &[f32], b: &[f32]) -> Vec<f32> {
    let c = be.upload(HostData::F32(&vec![f32::NAN; mm.batch * mm.m * mm.n])).unwrap();
    let (ia, ib) = (upload_as(be, mm.a_dtype, a), upload_as(be, mm.b_dtype, b));
    be.run(Launch::new(Kernel::Matmul(mm), &[c, ia, ib])).unwrap_or_else(|e| panic!("{mm:?}: {e}"));
    let HostVec::F32(out) = be.read(c).unwrap() else { panic!("{mm:?}: not f32") };
    for id in [c, ia, ib] {
        be.release(id).unwrap();
    }
    out
}

/// `op(A) @ op(B)` per element of C in f64, and `(|op(A)| |op(B)|)`: the exact product and the
/// scale of each element's rounding error.
pub fn exact_product(mm: &Matmul, a: &[f32], b: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (m, n, k) = (mm.m, mm.n, mm.k);
    let (mut out, mut abs) = (vec![0.0; mm.batch * m * n], vec![0.0; mm.batch * m * n]);
    for bi in 0..mm.batch {
        let a = &a[if mm.a_batched { bi * m * k } else { 0 }..];
        let b = &b[if mm.b_batched { bi * k * n } else { 0 }..];
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut t) = (0.0, 0.0);
                for p in 0..k {
                    let x = if mm.trans_a { a[p * m + i] } else { a[i * k + p] };
                    let y = if mm.trans_b { b[j * k + p] } else { b[p * n + j] };
                    s += x as f64 * y as f64;
                    t += (x as f64 * y as f64).abs();
                }
                out[(bi * m + i) * n + j] = s;
                abs[(bi * m + i) * n + j] = t;
            }
        }
    }
    (out, abs)
}

/// Asserts every element of `got` lies within `2 k eps (|A| |B|)_ij` of `want`.
pub fn assert_within_dot_bound(what: &str, mm: &Matmul, got: &[f32], want: &[f64], scale: &[f64]) {
    let eps = f32::EPSILON as f64;
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let tol = 2.0 * mm.k as f64 * eps * s + 1e-30;
        let err = (g as f64 - w).abs();
        assert!(err <= tol, "{what} {mm:?}: element {i} is {g}, want {w} (|err| {err:e} > {tol:e})");
    }
}

/// `mm` on `gpu` against the CPU twin, on random inputs (rounded to `mm`'s operand types).
pub fn check(gpu: &mut dyn Backend, mm: Matmul, seed: u64) {
    let mut rng = Rng::new(seed);
    let a = quantize(mm.a_dtype, &rng.normal_vec(mm.a_len()));
    let b = quantize(mm.b_dtype, &rng.normal_vec(mm.b_len()));
    let got = run(gpu, mm, &a, &b);
    let want = run(&mut CpuBackend::new(), mm, &a, &b);
    let (_, scale) = exact_product(&mm, &a, &b);
    assert_within_dot_bound(
        "GPU vs CPU",
        &mm,
        &got,
        &want.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        &scale,
    );
}

/// Every transpose pair and (for batch > 1) every batching of the operands, all f32.
pub fn all_layouts(batch: usize, m: usize, n: usize, k: usize, tile: MatmulTile) -> Vec<Matmul> {
    let mut v = Vec::new();
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        for (a_batched, b_batched) in [(true, true), (true, false), (false, true)] {
            if batch == 1 && !(a_batched && b_batched) {
                continue;
            }
            v.push(Matmul { batch, trans_a, trans_b, a_batched, b_batched, tile, ..Matmul::new(m, n, k) });
        }
    }
    v
}
