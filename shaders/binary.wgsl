// Binary elementwise ops with numpy broadcasting; comparisons give 1.0 or 0.0.
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/binary.rs.

// Mirrors BinaryParams.
struct Params {
    len: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    out: vec4<u32>,       // output dims, right-aligned, padded with 1
    a_strides: vec4<u32>, // 0 where a is broadcast
    b_strides: vec4<u32>,
}

// binding 0: params (uniform)
// binding 1: c [len]
// binding 2: a [a_len]
// binding 3: b [b_len]
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// Offsets into a and b of output element i.
fn offsets(i: u32) -> vec2<u32> {
    var rest = i;
    var o = vec2<u32>(0u, 0u);
    for (var d = 3; d >= 0; d--) {
        let coord = rest % p.out[d];
        rest = rest / p.out[d];
        o += coord * vec2<u32>(p.a_strides[d], p.b_strides[d]);
    }
    return o;
}

fn flag(c: bool) -> f32 {
    return select(0.0, 1.0, c);
}

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = x + y;
}

@compute @workgroup_size(256)
fn sub(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = x - y;
}

@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = x * y;
}

@compute @workgroup_size(256)
fn div(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = x / y;
}

@compute @workgroup_size(256)
fn maximum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = max(x, y);
}

@compute @workgroup_size(256)
fn minimum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = min(x, y);
}

@compute @workgroup_size(256)
fn eq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = flag(x == y);
}

@compute @workgroup_size(256)
fn ne(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = flag(x != y);
}

@compute @workgroup_size(256)
fn lt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = flag(x < y);
}

@compute @workgroup_size(256)
fn le(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = flag(x <= y);
}

@compute @workgroup_size(256)
fn gt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = flag(x > y);
}

@compute @workgroup_size(256)
fn ge(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let o = offsets(i);
    let x = a[o.x];
    let y = b[o.y];
    c[i] = flag(x >= y);
}
