// Reductions over the middle axis of [outer, len, inner] -> [outer, inner].
// One workgroup per output element: 64 invocations stride over the axis, then a tree in workgroup
// memory combines them (no float atomics: the result is deterministic).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/reduce.rs.

// Mirrors ReduceParams.
struct Params {
    outer: u32,
    len: u32,
    inner: u32,
}

// binding 0: params (uniform)
// binding 1: y     [outer, inner] f32 (sum, mean, max)
// binding 2: x     [outer, len, inner]
// binding 3: index [outer, inner] u32 (argmax)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> index: array<u32>;

const WG: u32 = 64u;
// argmax combines (value, index) pairs in its own tree
var<workgroup> vals: array<f32, 64>;
var<workgroup> idxs: array<u32, 64>;

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

// Element k of the reduced axis for output w.
fn at(w: u32, k: u32) -> f32 {
    let o = w / p.inner;
    let i = w % p.inner;
    return x[(o * p.len + k) * p.inner + i];
}

fn sum_of(w: u32, lid: u32) -> f32 {
    var acc = 0.0;
    for (var k = lid; k < p.len; k += WG) { acc += at(w, k); }
    return tree_sum(lid, acc, WG);
}

@compute @workgroup_size(64)
fn reduce_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let w = flat_group(wid, nwg);
    if w >= p.outer * p.inner { return; }
    let s = sum_of(w, lid);
    if lid == 0u { y[w] = s; }
}

@compute @workgroup_size(64)
fn reduce_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let w = flat_group(wid, nwg);
    if w >= p.outer * p.inner { return; }
    let s = sum_of(w, lid);
    if lid == 0u { y[w] = s / f32(p.len); }
}

@compute @workgroup_size(64)
fn reduce_max(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let w = flat_group(wid, nwg);
    if w >= p.outer * p.inner { return; }
    var m = neg_inf();
    for (var k = lid; k < p.len; k += WG) { m = max(m, at(w, k)); }
    let r = tree_max(lid, m, WG);
    if lid == 0u { y[w] = r; }
}

// Index of the first maximum.
@compute @workgroup_size(64)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let w = flat_group(wid, nwg);
    if w >= p.outer * p.inner { return; }
    var m = neg_inf();
    var mi = 0xffffffffu;
    for (var k = lid; k < p.len; k += WG) {
        let v = at(w, k);
        if v > m || mi == 0xffffffffu { m = v; mi = k; }
    }
    vals[lid] = m;
    idxs[lid] = mi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            let v = vals[lid + s];
            let j = idxs[lid + s];
            let better = v > vals[lid] || (v == vals[lid] && j < idxs[lid]);
            if j != 0xffffffffu && (idxs[lid] == 0xffffffffu || better) {
                vals[lid] = v;
                idxs[lid] = j;
            }
        }
        workgroupBarrier();
    }
    if lid == 0u { index[w] = idxs[0]; }
}
