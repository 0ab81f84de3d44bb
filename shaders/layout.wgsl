// Moving data between layouts: permute (transpose of up to 4 axes, e.g. attention heads
// [B, T, H, D] -> [B, H, T, D]) and slice_pad (a slice along one axis, or a zero pad: each other's
// adjoint, and concat is pads added together).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/layout.rs.

// Mirrors LayoutParams: one block for both entry points (a module may bind one variable per slot).
// permute: { len, -, -, -, out, src_strides }; slice_pad: { outer, src_len, out_len, inner, offset in v.x }
struct Params {
    a: u32,        // permute: len; slice_pad: outer
    src_len: u32,
    out_len: u32,
    inner: u32,
    v: vec4<u32>,  // permute: output dims, padded on the left with 1s; slice_pad: x = offset (i32 bits)
    s: vec4<u32>,  // permute: stride in x of each output dim
}

// binding 0: params (uniform)
// binding 1: out  permute: [len]; slice_pad: [outer, out_len, inner]
// binding 2: x    permute: [len]; slice_pad: [outer, src_len, inner]
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

@compute @workgroup_size(256)
fn permute(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if e >= p.a { return; }
    var rem = e;
    var off = 0u;
    for (var d = 3; d >= 0; d--) {
        off += (rem % p.v[d]) * p.s[d];
        rem /= p.v[d];
    }
    out[e] = x[off];
}

// out[o, j, i] = x[o, j + offset, i] inside 0..src_len, else 0.
@compute @workgroup_size(256)
fn slice_pad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if e >= p.a * p.out_len * p.inner { return; }
    let i = e % p.inner;
    let j = (e / p.inner) % p.out_len;
    let o = e / (p.inner * p.out_len);
    let s = i32(j) + bitcast<i32>(p.v.x);
    var v = 0.0;
    if s >= 0 && s < i32(p.src_len) { v = x[(o * p.src_len + u32(s)) * p.inner + i]; }
    out[e] = v;
}
