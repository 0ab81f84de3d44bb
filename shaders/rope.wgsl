// Rotary position embedding, Hugging Face's non-interleaved convention ("rotate_half"), over
// x [rows, heads, 2 * half] (rows = B * T flattened) with tables cos, sin [table_rows, half]; row r
// uses table row r % table_rows. For i < half:
//   y[i]        = x[i] * c - x[i + half] * s
//   y[i + half] = x[i + half] * c + x[i] * s
// with s = sin (forward) or -sin (inverse: the backward, a rotation by the opposite angle).
// One invocation per (row, head, i) pair.
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/rope.rs.

// Mirrors RopeParams.
struct Params {
    rows: u32,
    heads: u32,
    half: u32,
    table_rows: u32,
    inverse: u32,
}

// binding 0: params (uniform)
// binding 1: out [rows, heads, 2 * half]
// binding 2: x   [rows, heads, 2 * half]
// binding 3: cos [table_rows, half]
// binding 4: sin [table_rows, half]
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> cos_t: array<f32>;
@group(0) @binding(4) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if e >= p.rows * p.heads * p.half { return; }
    let i = e % p.half;
    let rh = e / p.half; // row * heads + head
    let r = rh / p.heads;
    let t = (r % p.table_rows) * p.half + i;
    let c = cos_t[t];
    var s = sin_t[t];
    if p.inverse != 0u { s = -s; }
    let base = rh * 2u * p.half;
    let a = x[base + i];
    let b = x[base + i + p.half];
    out[base + i] = a * c - b * s;
    out[base + i + p.half] = b * c + a * s;
}
