// Max pooling over NCHW images, as PyTorch's max_pool2d: each window's first largest element in
// (ky, kx) order wins (a NaN wins over numbers), padding is never picked, and the backward hands
// each window's gradient to that element alone, in gather form (each image element sums, in
// (ky, kx) order, the gradients of the windows it won: no two invocations write one element).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/pool.rs.

// Mirrors ConvParams (the window geometry convolution uses; pad_value unused here).
struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    oh: u32,
    ow: u32,
    pad_value: f32,
}

// binding 0: params (uniform)
// binding 1: out   max_pool: [n, c, oh, ow]; max_pool_grad: dx [n, c, h, w]
// binding 2: x     [n, c, h, w]
// binding 3: gy    [n, c, oh, ow] (max_pool_grad)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;

// NaN by its bits (a compiler may assume floats are never NaN, bits it cannot)
fn is_nan_bits(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// A window's winner: its index in the image plane and its value.
struct Winner {
    index: u32,
    value: f32,
}

// The winner of window (oy, ox) of the plane starting at `base`, as window_max in the Rust file.
fn window_max(base: u32, oy: u32, ox: u32) -> Winner {
    var best = 0u;
    var value = bitcast<f32>(0xff800000u); // -inf
    var started = false;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
        if iy < 0 || iy >= i32(p.h) { continue; }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
            if ix < 0 || ix >= i32(p.w) { continue; }
            let i = u32(iy) * p.w + u32(ix);
            let v = x[base + i];
            if !started {
                best = i;
                started = true;
            }
            if v > value || is_nan_bits(v) {
                best = i;
                value = v;
            }
        }
    }
    return Winner(best, value);
}

// One invocation per output element.
@compute @workgroup_size(256)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    let l = p.oh * p.ow;
    if e >= p.n * p.c * l { return; }
    let k = e % l;
    out[e] = window_max((e / l) * p.h * p.w, k / p.ow, k % p.ow).value;
}

// One invocation per image element; windows in (ky, kx) order, as the CPU twin.
@compute @workgroup_size(256)
fn max_pool_grad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    let plane = p.h * p.w;
    if e >= p.n * p.c * plane { return; }
    let pi = e / plane;
    let i = e % plane;
    let iy = i / p.w;
    let ix = i % p.w;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let ty = i32(iy + p.ph) - i32(ky * p.dh);
        if ty < 0 || u32(ty) % p.sh != 0u || u32(ty) / p.sh >= p.oh { continue; }
        let oy = u32(ty) / p.sh;
        for (var kx = 0u; kx < p.kw; kx++) {
            let tx = i32(ix + p.pw) - i32(kx * p.dw);
            if tx < 0 || u32(tx) % p.sw != 0u || u32(tx) / p.sw >= p.ow { continue; }
            let ox = u32(tx) / p.sw;
            if window_max(pi * plane, oy, ox).index == i {
                acc += gy[(pi * p.oh + oy) * p.ow + ox];
            }
        }
    }
    out[e] = acc;
}
