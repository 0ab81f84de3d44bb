// Helpers shared by every kernel family. The loader prepends this file to shaders/<family>.wgsl
// when it builds a family's module (plain concatenation of two WGSL files), so a family file
// uses these names without declaring them. Only what an entry point uses ends up in its pipeline.

// Invocations per workgroup of the 1-D (one invocation per element) kernels.
const ELEMENTWISE_WG: u32 = 256u;

// Element index of a 1-D kernel's invocation: dispatches past 65,535 workgroups spill into y
// (`spread` in crates/device/src/kernels/mod.rs).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * ELEMENTWISE_WG;
}

// Workgroup index of a kernel with one workgroup per row or output element, spilled the same way.
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Scratch of the workgroup tree reductions (workgroups of up to 256 invocations).
var<workgroup> tree: array<f32, 256>;

// The sum of `v` over the first `width` (a power of two) invocations of the workgroup, combined
// pairwise in a fixed order (deterministic, no atomics); every invocation gets the result.
fn tree_sum(lid: u32, v: f32, width: u32) -> f32 {
    tree[lid] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid < s { tree[lid] += tree[lid + s]; }
        workgroupBarrier();
    }
    let r = tree[0];
    workgroupBarrier();
    return r;
}

// The maximum of `v` over the first `width` invocations, as `tree_sum`.
fn tree_max(lid: u32, v: f32, width: u32) -> f32 {
    tree[lid] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid < s { tree[lid] = max(tree[lid], tree[lid + s]); }
        workgroupBarrier();
    }
    let r = tree[0];
    workgroupBarrier();
    return r;
}
