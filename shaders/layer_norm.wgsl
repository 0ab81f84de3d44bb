// LayerNorm without the affine over the last axis of [rows, cols], y = (x - mean) * rstd with
// rstd = 1 / sqrt(var + eps) (biased variance), and its backward from x and dy:
// dx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat)), the row statistics recomputed.
// One workgroup per row; sums are combined through workgroup memory (deterministic), the variance
// in a second pass over the centered row.
// RMSNorm shares the family (entry points rms_norm, rms_norm_grad): y = x * rstd with
// rstd = 1 / sqrt(mean(x^2) + eps), and dx = rstd * (dy - xhat * mean(dy * xhat)), xhat = x * rstd.
// The *_affine entry points apply the weight (and LayerNorm's bias) in the same launch,
// y = xhat * w (+ b), and their backward to x is the above of dy * w.
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/layer_norm.rs.

// Mirrors LayerNormParams.
struct Params {
    rows: u32,
    cols: u32,
    eps: f32, // added to the variance (layer_norm) or the mean square (rms_norm)
}

// binding 0: params (uniform)
// binding 1: out [rows, cols]  y (forward) or dx (backward)
// binding 2: x   [rows, cols]
// binding 3: dy  [rows, cols]  (backward, and the *_dy_xhat entry points: dy * xhat, what the
//                               weight's gradient sums over the rows)
// binding 4: w   [cols]        (the *_affine entry points: the weight)
// binding 5: b   [cols]        (layer_norm_affine: the bias)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> w: array<f32>;
@group(0) @binding(5) var<storage, read> b: array<f32>;

const WG: u32 = 64u;

// Mean and rstd of the row starting at base.
fn row_stats(base: u32, lid: u32) -> vec2<f32> {
    let n = f32(p.cols);
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) { s += x[base + j]; }
    let mean = tree_sum(lid, s, WG) / n;
    var q = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let d = x[base + j] - mean;
        q += d * d;
    }
    let variance = tree_sum(lid, q, WG) / n;
    return vec2<f32>(mean, 1.0 / sqrt(variance + p.eps));
}

@compute @workgroup_size(64)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    let st = row_stats(base, lid);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = (x[base + j] - st.x) * st.y; }
}

// dy[j], times the weight w[j] when `weighted` (the *_affine_grad entry points; the others bind
// a placeholder there and never read it).
fn grad_in(base: u32, j: u32, weighted: bool) -> f32 {
    if weighted { return dy[base + j] * w[j]; }
    return dy[base + j];
}

// LayerNorm's backward of row r to x, of dy (or dy * w).
fn layer_norm_grad_row(r: u32, lid: u32, weighted: bool) {
    let base = r * p.cols;
    let st = row_stats(base, lid);
    let n = f32(p.cols);
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let g = grad_in(base, j, weighted);
        sg += g;
        sgx += g * (x[base + j] - st.x) * st.y;
    }
    let mg = tree_sum(lid, sg, WG) / n;
    let mgx = tree_sum(lid, sgx, WG) / n;
    for (var j = lid; j < p.cols; j += WG) {
        let xhat = (x[base + j] - st.x) * st.y;
        out[base + j] = st.y * (grad_in(base, j, weighted) - mg - xhat * mgx);
    }
}

@compute @workgroup_size(64)
fn layer_norm_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    layer_norm_grad_row(r, lid, false);
}

// rstd = 1 / sqrt(mean(x^2) + eps) of the row starting at base.
fn rms_stat(base: u32, lid: u32) -> f32 {
    var q = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let v = x[base + j];
        q += v * v;
    }
    return 1.0 / sqrt(tree_sum(lid, q, WG) / f32(p.cols) + p.eps);
}

@compute @workgroup_size(64)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    let rstd = rms_stat(base, lid);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = x[base + j] * rstd; }
}

// RMSNorm's backward of row r to x, of dy (or dy * w).
fn rms_norm_grad_row(r: u32, lid: u32, weighted: bool) {
    let base = r * p.cols;
    let rstd = rms_stat(base, lid);
    var sgx = 0.0;
    for (var j = lid; j < p.cols; j += WG) { sgx += grad_in(base, j, weighted) * x[base + j] * rstd; }
    let mgx = tree_sum(lid, sgx, WG) / f32(p.cols);
    for (var j = lid; j < p.cols; j += WG) {
        out[base + j] = rstd * (grad_in(base, j, weighted) - x[base + j] * rstd * mgx);
    }
}

@compute @workgroup_size(64)
fn rms_norm_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    rms_norm_grad_row(r, lid, false);
}

@compute @workgroup_size(64)
fn layer_norm_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    let st = row_stats(base, lid);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = (x[base + j] - st.x) * st.y * w[j] + b[j]; }
}

@compute @workgroup_size(64)
fn layer_norm_affine_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    layer_norm_grad_row(r, lid, true);
}

@compute @workgroup_size(64)
fn rms_norm_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    let rstd = rms_stat(base, lid);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = x[base + j] * rstd * w[j]; }
}

@compute @workgroup_size(64)
fn rms_norm_affine_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    rms_norm_grad_row(r, lid, true);
}

@compute @workgroup_size(64)
fn layer_norm_dy_xhat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    let st = row_stats(base, lid);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = dy[base + j] * ((x[base + j] - st.x) * st.y); }
}

@compute @workgroup_size(64)
fn rms_norm_dy_xhat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let r = flat_group(wid, nwg);
    if r >= p.rows { return; }
    let base = r * p.cols;
    let rstd = rms_stat(base, lid);
    for (var j = lid; j < p.cols; j += WG) { out[base + j] = dy[base + j] * (x[base + j] * rstd); }
}
