//! The register-blocked matmul (`matmul_blocked` in `shaders/matmul.wgsl`) on the GPU against the
//! CPU twin, on random inputs of odd shapes (none a multiple of its 128 x 128 tile or of 4, so
//! the scalar edge loads run, and some with K or the row length a multiple of 4, so the vec4 loads
//! run), with every transpose and batching combination; and the lowering's choice of variant.
//!
//! Each element must lie within `2 k eps (|A| |B|)_ij` of the CPU result (`common::matmul_parity`,
//! shared with the half-input tests); outputs start as NaN, so an element never written fails.
//! Without an adapter the GPU tests print SKIPPED; with `KILN_REQUIRE_GPU=1` they fail instead.

mod common;

use common::matmul_parity::{all_layouts, check};
use kiln_device::{Kernel, MatmulTile, Prim};

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
