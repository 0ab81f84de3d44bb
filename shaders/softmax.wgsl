// Softmax and log-softmax of scale * x over the last axis of [rows, cols], and their backward
// kernels. With `causal` (softmax only) the rows are those of [.., T, T] score matrices, T = cols:
// row r takes columns j <= r % T and writes exactly 0 to the others. Plain softmax: scale 1.
// softmax_upto masks by query positions instead: row r of [.., queries, cols] takes the columns
// j <= positions[r % queries] (a decode step attending over a key/value cache).
// One workgroup per row; max and sum are combined through workgroup memory (deterministic).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/softmax.rs.

// Mirrors SoftmaxParams.
struct Params {
    rows: u32,
    cols: u32,
    scale: f32,
    causal: u32,
    queries: u32,
}

// binding 0: params (uniform)
// binding 1: out [rows, cols]  y (forward) or dx (backward)
// binding 2: a   [rows, cols]  x (forward) or y (backward)
// binding 3: dy  [rows, cols]  (backward)
// binding 4: positions [queries] u32  (softmax_upto)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<u32>;

const WG: u32 = 64u;

// How many leading columns of row r take part: all of them, or j <= r % T when causal.
fn row_len(r: u32) -> u32 {
    if p.causal != 0u { return r % p.cols + 1u; }
    return p.cols;
}

// Max and sum of exp(v - max) over the first n entries v = scale * x of row r.
fn row_stats(r: u32, n: u32, lid: u32) -> vec2<f32> {
    let base = r * p.cols;
    var m = bitcast<f32>(0xff800000u);
    for (var j = lid; j < n; j += WG) { m = max(m, p.scale * a[base + j]); }
    m = tree_max(lid, m, WG);
    var s = 0.0;
    for (var j = lid; j < n; j += WG) { s += exp(p.scale * a[base + j] - m); }
    return vec2<f32>(m, tree_sum(lid, s, WG));
}

// Softmax of the first n entries of row r, 0 in the others.
fn softmax_row(r: u32, n: u32, lid: u32) {
    let st = row_stats(r, n, lid);
    let base = r * p.cols;
    for (var j = lid; j < p.cols; j += WG) {
        var v = 0.0;
        if j < n { v = exp(p.scale * a[base + j] - st.x) / st.y; }
        out[base + j] = v;
    }
}

@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    softmax_row(r, row_len(r), lid);
}

// Row r keeps j <= positions[r % queries] (every column for a position >= cols).
@compute @workgroup_size(64)
fn softmax_upto(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    softmax_row(r, min(positions[r % p.queries], p.cols - 1u) + 1u, lid);
}

@compute @workgroup_size(64)
fn log_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let st = row_stats(r, p.cols, lid);
    let base = r * p.cols;
    let lse = log(st.y);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = p.scale * a[base + j] - st.x - lse; }
}

// dx = scale * y * (dy - sum(dy * y))
@compute @workgroup_size(64)
fn softmax_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) { s += dy[base + j] * a[base + j]; }
    let dot = tree_sum(lid, s, WG);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = p.scale * a[base + j] * (dy[base + j] - dot); }
}

// dx = scale * (dy - exp(y) * sum(dy))
@compute @workgroup_size(64)
fn log_softmax_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) { s += dy[base + j]; }
    let total = tree_sum(lid, s, WG);
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = p.scale * (dy[base + j] - exp(a[base + j]) * total);
    }
}
