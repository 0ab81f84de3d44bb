// Gather / scatter-add along an axis (embeddings and their backward), fill, copy, and write_rows
// (in place: a key/value cache takes this step's rows at their positions).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/memory.rs.

// Mirrors MemoryParams.
struct Params {
    a: u32, // gather/scatter: outer; fill/copy: len
    b: u32, // gather/scatter: axis_len; fill: value bits
    inner: u32,
    n_idx: u32,
}

// binding 0: params (uniform)
// binding 1: out   gather [outer, n_idx, inner]; scatter_add, write_rows [outer, axis_len, inner];
//                  fill/copy [len]
// binding 2: src   gather: table [outer, axis_len, inner]; scatter_add, write_rows: [outer, n_idx, inner];
//                  copy [len]
// binding 3: index [n_idx] u32
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> index: array<u32>;

// out[o, j, i] = table[o, index[j], i]; an index out of range gives 0.
@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    let outer = p.a;
    let axis_len = p.b;
    if e >= outer * p.n_idx * p.inner { return; }
    let i = e % p.inner;
    let j = (e / p.inner) % p.n_idx;
    let o = e / (p.inner * p.n_idx);
    let k = index[j];
    var v = 0.0;
    if k < axis_len { v = src[(o * axis_len + k) * p.inner + i]; }
    out[e] = v;
}

// out[o, k, i] = sum over j with index[j] == k of src[o, j, i]. Each output element walks the
// index list in order, so the sum is deterministic without atomics.
@compute @workgroup_size(256)
fn scatter_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    let outer = p.a;
    let axis_len = p.b;
    if e >= outer * axis_len * p.inner { return; }
    let i = e % p.inner;
    let k = (e / p.inner) % axis_len;
    let o = e / (p.inner * axis_len);
    var acc = 0.0;
    for (var j = 0u; j < p.n_idx; j++) {
        if index[j] == k { acc += src[(o * p.n_idx + j) * p.inner + i]; }
    }
    out[e] = acc;
}

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if e >= p.a { return; }
    out[e] = bitcast<f32>(p.b);
}

@compute @workgroup_size(256)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if e >= p.a { return; }
    out[e] = src[e];
}

// In place: out[o, index[j], i] = src[o, j, i]; the rest of out is left as it is. An index out of
// range is skipped (the CPU twin refuses it).
@compute @workgroup_size(256)
fn write_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    let outer = p.a;
    let axis_len = p.b;
    if e >= outer * p.n_idx * p.inner { return; }
    let i = e % p.inner;
    let j = (e / p.inner) % p.n_idx;
    let o = e / (p.inner * p.n_idx);
    let k = index[j];
    if k < axis_len { out[(o * axis_len + k) * p.inner + i] = src[e]; }
}
