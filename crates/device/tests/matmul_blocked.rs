//! The register-blocked matmul (`matmul_blocked` in `shaders/matmul.wgsl`) on the GPU against the
//! CPU twin, on random inputs of odd shapes (none a multiple of its 128 x 128 tile or of 4, so
//! the scalar edge loads run, and some with K or the row length a multiple of 4, so the vec4 loads
//! run), with every transpose and batching combination; and the lowering's choice of variant.
//!
//! Each element must lie within `2 k eps (|A| |B|)_ij` of the CPU result (the forward error bound
//! of a k-term f32 dot product, for each of the two summation orders); a wrong index or a missed
//! tile is off by O(1). Outputs start as NaN, so an element never written fails. Without an
//! adapter the GPU tests print SKIPPED; with `KILN_REQUIRE_GPU=1` they fail instead.

mod common;

use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::{Backend, HostData, HostVec, Kernel, Launch, Matmul, MatmulTile, Prim};

/// Runs `mm` on `be` from `a` and `b`, output poisoned with NaN.
fn run(be: &mut dyn Backend, mm: Matmul, a: &[f32], b: &[f32]) -> Vec<f32> {
    let c = be.upload(HostData::F32(&vec![f32::NAN; mm.batch * mm.m * mm.n])).unwrap();
    let (ia, ib) = (be.upload(HostData::F32(a)).unwrap(), be.upload(HostData::F32(b)).unwrap());
    be.run(Launch::new(Kernel::Matmul(mm), &[c, ia, ib])).unwrap_or_else(|e| panic!("{mm:?}: {e}"));
    let HostVec::F32(out) = be.read(c).unwrap() else { panic!("{mm:?}: not f32") };
    for id in [c, ia, ib] {
        be.release(id).unwrap();
    }
    out
}

/// `(|op(A)| |op(B)|)` per element of C, in f64: the scale of each element's rounding error.
fn abs_product(mm: &Matmul, a: &[f32], b: &[f32]) -> Vec<f64> {
    let (m, n, k) = (mm.m, mm.n, mm.k);
    let mut out = vec![0.0; mm.batch * m * n];
    for bi in 0..mm.batch {
        let a = &a[if mm.a_batched { bi * m * k } else { 0 }..];
        let b = &b[if mm.b_batched { bi * k * n } else { 0 }..];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let x = if mm.trans_a { a[p * m + i] } else { a[i * k + p] };
                    let y = if mm.trans_b { b[j * k + p] } else { b[p * n + j] };
                    s += (x as f64 * y as f64).abs();
                }
                out[(bi * m + i) * n + j] = s;
            }
        }
    }
    out
}

fn check(gpu: &mut dyn Backend, mm: Matmul, seed: u64) {
    let mut rng = Rng::new(seed);
    let (a, b) = (rng.normal_vec(mm.a_len()), rng.normal_vec(mm.b_len()));
    let got = run(gpu, mm, &a, &b);
    let want = run(&mut CpuBackend::new(), mm, &a, &b);
    let scale = abs_product(&mm, &a, &b);
    let eps = f32::EPSILON as f64;
    for (i, ((&g, &w), &s)) in got.iter().zip(&want).zip(&scale).enumerate() {
        let tol = 2.0 * mm.k as f64 * eps * s + 1e-30;
        let err = (g as f64 - w as f64).abs();
        assert!(err <= tol, "{mm:?}: element {i} is {g}, the CPU gives {w} (|err| {err:e} > {tol:e})");
    }
}

/// Every transpose pair and (for batch > 1) every batching of the operands.
fn all_layouts(batch: usize, m: usize, n: usize, k: usize, tile: MatmulTile) -> Vec<Matmul> {
    let mut v = Vec::new();
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        for (a_batched, b_batched) in [(true, true), (true, false), (false, true)] {
            if batch == 1 && !(a_batched && b_batched) {
                continue;
            }
            v.push(Matmul { batch, m, n, k, trans_a, trans_b, a_batched, b_batched, tile });
        }
    }
    v
}

#[test]
fn blocked_matches_cpu_on_odd_shapes() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("matmul_blocked") else { return };
    eprintln!("matmul_blocked parity on {}", gpu.info());
    // (batch, m, n, k): one element; thin; tile edges in n, in m; K a multiple of 4 (vec4 loads
    // along k) and rows a multiple of 4 (vec4 loads along m / n); several K steps; batched.
    let shapes = [
        (1, 1, 1, 1),
        (1, 5, 3, 2),
        (1, 67, 129, 33),
        (1, 130, 70, 257),
        (1, 132, 136, 20),
        (1, 129, 260, 44),
        (3, 65, 97, 41),
        (2, 140, 132, 12),
    ];
    let mut seed = 100;
    for (batch, m, n, k) in shapes {
        for mm in all_layouts(batch, m, n, k, MatmulTile::Blocked) {
            seed += 1;
            check(gpu.as_mut(), mm, seed);
        }
    }
}

/// The two entry points agree with each other and the CPU on one shape past both tiles.
#[test]
fn both_variants_match_cpu() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("matmul variants") else { return };
    for tile in MatmulTile::ALL {
        for mm in all_layouts(2, 131, 67, 71, tile) {
            check(gpu.as_mut(), mm, 7);
        }
    }
}

/// Large products lower to the blocked entry point, small and thin ones to the 64 x 64 one.
#[test]
fn the_lowering_picks_the_variant_by_shape() {
    let lower = |a: &[usize], b: &[usize]| match (Prim::Matmul { trans_a: false, trans_b: false })
        .lower(&[a, b], &[])
        .unwrap()
    {
        Kernel::Matmul(mm) => mm,
        k => panic!("{k:?}"),
    };
    assert_eq!(MatmulTile::by_rule(1, 1024, 1024, 1024), MatmulTile::Blocked);
    assert_eq!(MatmulTile::by_rule(1, 64, 4096, 4096), MatmulTile::Small); // m below one tile
    assert_eq!(MatmulTile::by_rule(1, 256, 256, 256), MatmulTile::Small); // too little work
    assert_eq!(MatmulTile::by_rule(8, 256, 256, 256), MatmulTile::Blocked); // batched: enough
    assert_eq!(MatmulTile::by_rule(1, 4096, 4096, 16), MatmulTile::Small); // k too short
    if std::env::var_os("KILN_MATMUL_TILE").is_none() {
        assert_eq!(lower(&[2048, 576], &[576, 1536]).tile, MatmulTile::Blocked);
        assert_eq!(lower(&[4, 8, 3], &[3, 5]).tile, MatmulTile::Small);
        assert_eq!(Kernel::Matmul(lower(&[2048, 576], &[576, 1536])).name(), "matmul_blocked");
        assert_eq!(Kernel::Matmul(lower(&[8, 3], &[3, 5])).name(), "matmul");
    }
}
