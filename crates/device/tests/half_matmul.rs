//! The matmul family with f16 and bf16 operands (either or both; C is f32, accumulated in f32), on
//! both entry points, with every transpose and batching:
//! - the CPU twin against the exact (float64) product of the same half values;
//! - the GPU (lavapipe in CI) against the CPU twin, on odd shapes that cross tile edges and take
//!   both the scalar and the vec4 loads (row lengths a multiple of 4 but not of 8 put four halves in
//!   the high pair of a vec4 of words).
//!
//! Both bounds are `2 k eps (|A| |B|)_ij` per element (`common::matmul_parity`): the inputs are
//! identical half values, so only f32 summation order differs. Without an adapter the GPU test
//! prints SKIPPED; with `KILN_REQUIRE_GPU=1` it fails instead.

mod common;

use common::matmul_parity::{all_layouts, assert_within_dot_bound, check, exact_product, quantize, run};
use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::{Backend, DType, Error, Kernel, Launch, Matmul, MatmulTile};

/// Operand types with at least one half: both alike, mixed halves, one side f32.
const PAIRS: [(DType, DType); 6] = [
    (DType::BF16, DType::BF16),
    (DType::F16, DType::F16),
    (DType::BF16, DType::F32),
    (DType::F32, DType::F16),
    (DType::F16, DType::BF16),
    (DType::BF16, DType::F16),
];

/// (batch, m, n, k): one element; thin; tile edges; K and row lengths a multiple of 4 and not 8;
/// several K steps; batched.
const SHAPES: [(usize, usize, usize, usize); 6] =
    [(1, 1, 1, 1), (1, 5, 3, 2), (1, 67, 129, 33), (1, 132, 68, 20), (3, 65, 37, 41), (2, 12, 20, 28)];

/// Every shape, layout and tile, the operand types taking turns, so each pair meets each tile.
fn cases() -> Vec<Matmul> {
    let mut v = Vec::new();
    for (batch, m, n, k) in SHAPES {
        for tile in MatmulTile::ALL {
            for mm in all_layouts(batch, m, n, k, tile) {
                let (a, b) = PAIRS[v.len() % PAIRS.len()];
                v.push(mm.with_dtypes(a, b));
            }
        }
    }
    v
}

#[test]
fn cpu_half_matmul_matches_the_f64_product() {
    for (seed, mm) in cases().into_iter().enumerate() {
        let mut rng = Rng::new(seed as u64);
        let a = quantize(mm.a_dtype, &rng.normal_vec(mm.a_len()));
        let b = quantize(mm.b_dtype, &rng.normal_vec(mm.b_len()));
        let got = run(&mut CpuBackend::new(), mm, &a, &b);
        let (want, scale) = exact_product(&mm, &a, &b);
        assert_within_dot_bound("CPU vs f64", &mm, &got, &want, &scale);
    }
}

#[test]
fn gpu_half_matmul_matches_cpu_on_odd_shapes() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("half-input matmul") else { return };
    eprintln!("half matmul parity on {}", gpu.info());
    let cases = cases();
    for pair in PAIRS {
        for tile in MatmulTile::ALL {
            let n = cases.iter().filter(|mm| (mm.a_dtype, mm.b_dtype) == pair && mm.tile == tile).count();
            assert!(n >= 3, "{pair:?} on {tile:?}: only {n} cases");
        }
    }
    for (seed, mm) in cases.into_iter().enumerate() {
        check(gpu.as_mut(), mm, 1000 + seed as u64);
    }
}

/// A half operand must be bound to a buffer of its type; u32 operands are refused.
#[test]
fn operand_types_are_checked() {
    let mut cpu = CpuBackend::new();
    let mm = Matmul::new(3, 5, 7).with_dtypes(DType::BF16, DType::F32);
    let c = cpu.alloc(DType::F32, 15).unwrap();
    let (a32, a16, b) = (
        cpu.alloc(DType::F32, 21).unwrap(),
        cpu.alloc(DType::F16, 21).unwrap(),
        cpu.alloc(DType::F32, 35).unwrap(),
    );
    for a in [a32, a16] {
        let err = cpu.run(Launch::new(Kernel::Matmul(mm), &[c, a, b])).unwrap_err();
        assert!(matches!(err, Error::Binding { slot: 1, need_dtype: DType::BF16, .. }), "{err}");
    }
    let err = cpu
        .run(Launch::new(Kernel::Matmul(mm.with_dtypes(DType::U32, DType::F32)), &[c, a32, b]))
        .unwrap_err();
    assert!(err.to_string().contains("A is u32"), "{err}");
}
