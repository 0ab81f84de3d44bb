// Losses (mean over the batch) and their gradients. A loss kernel is one workgroup that walks
// every element and combines partial sums in workgroup memory; a gradient kernel is elementwise
// (or one workgroup per row for softmax cross-entropy).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/loss.rs.

// Mirrors LossParams.
struct Params {
    n: u32,    // elements (mse, bce) or rows (softmax cross-entropy)
    cols: u32, // classes (softmax cross-entropy)
}

// binding 0: params (uniform)
// binding 1: out    [1] loss, or [n] / [rows, cols] gradient
// binding 2: x      [n] predictions / logits, or [rows, cols] logits
// binding 3: tgt    [n] f32 targets (mse, bce)
// binding 4: dloss  [1] incoming gradient of the loss (gradient kernels)
// binding 5: labels [rows] u32 class ids (softmax cross-entropy)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<f32>;
@group(0) @binding(4) var<storage, read> dloss: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;

const WG: u32 = 256u;
const ROW_WG: u32 = 64u;

fn sigmoid_f(z: f32) -> f32 {
    if z >= 0.0 { return 1.0 / (1.0 + exp(-z)); }
    let e = exp(z);
    return e / (1.0 + e);
}

@compute @workgroup_size(256)
fn mse_loss(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let d = x[i] - tgt[i];
        acc += d * d;
    }
    let s = tree_sum(lid, acc, WG);
    if lid == 0u { out[0] = s / f32(p.n); }
}

// d/dp mean((p - t)^2) = 2 (p - t) / n
@compute @workgroup_size(256)
fn mse_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.n { return; }
    out[i] = 2.0 * (x[i] - tgt[i]) / f32(p.n) * dloss[0];
}

@compute @workgroup_size(256)
fn bce_logits_loss(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        let z = x[i];
        acc += max(z, 0.0) - z * tgt[i] + log(1.0 + exp(-abs(z)));
    }
    let s = tree_sum(lid, acc, WG);
    if lid == 0u { out[0] = s / f32(p.n); }
}

// d/dz = (sigmoid(z) - t) / n
@compute @workgroup_size(256)
fn bce_logits_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.n { return; }
    out[i] = (sigmoid_f(x[i]) - tgt[i]) / f32(p.n) * dloss[0];
}

// A label >= cols has an all-zero one-hot: its row adds logsumexp only (the host validates labels).
// The workgroup takes the rows in turn, all its invocations over each row's columns (max, then the
// sum of exponentials, by tree reductions), so no invocation runs a loop as long as a row: with one
// invocation per row, rows of 32K+ columns came out wrong on llvmpipe.
@compute @workgroup_size(256)
fn softmax_ce_loss(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var r = 0u; r < p.n; r++) {
        let base = r * p.cols;
        var m = bitcast<f32>(0xff800000u);
        for (var j = lid; j < p.cols; j += WG) { m = max(m, x[base + j]); }
        m = tree_max(lid, m, WG);
        var e = 0.0;
        for (var j = lid; j < p.cols; j += WG) { e += exp(x[base + j] - m); }
        let total = tree_sum(lid, e, WG);
        if lid == 0u {
            acc += m + log(total);
            let label = labels[r];
            if label < p.cols { acc -= x[base + label]; }
        }
    }
    if lid == 0u { out[0] = acc / f32(p.n); }
}

// d/dz = (softmax(z) - onehot(label)) / rows; one workgroup per row.
@compute @workgroup_size(64)
fn softmax_ce_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.n { return; }
    let base = r * p.cols;
    let label = labels[r];
    var m = bitcast<f32>(0xff800000u);
    for (var j = lid; j < p.cols; j += ROW_WG) { m = max(m, x[base + j]); }
    m = tree_max(lid, m, ROW_WG);
    var acc = 0.0;
    for (var j = lid; j < p.cols; j += ROW_WG) { acc += exp(x[base + j] - m); }
    let total = tree_sum(lid, acc, ROW_WG);
    let scale = dloss[0] / f32(p.n);
    for (var j = lid; j < p.cols; j += ROW_WG) {
        let g = exp(x[base + j] - m) / total - select(0.0, 1.0, j == label);
        out[base + j] = g * scale;
    }
}
