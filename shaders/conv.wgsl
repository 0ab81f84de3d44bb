// The sliding 2-D window of convolution and pooling over NCHW images: im2col lays every window out
// as a column (so a convolution is one batched matmul), col2im is its adjoint (the convolution's
// input gradient), written in gather form: each image element sums the entries that read it, so
// no two invocations write the same element and no float atomics are needed.
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/conv.rs.

// Mirrors ConvParams.
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
    pad_value: f32, // im2col: what positions outside the image read
}

// binding 0: params (uniform)
// binding 1: out   im2col: cols [n, c*kh*kw, oh*ow]; col2im: x [n, c, h, w]
// binding 2: src   im2col: x [n, c, h, w]; col2im: cols [n, c*kh*kw, oh*ow]
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

// One invocation per column entry.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    let l = p.oh * p.ow;
    let rows = p.c * p.kh * p.kw;
    if e >= p.n * rows * l { return; }
    let pos = e % l;
    let row = (e / l) % rows;
    let b = e / (l * rows);
    let ox = pos % p.ow;
    let oy = pos / p.ow;
    let kx = row % p.kw;
    let ky = (row / p.kw) % p.kh;
    let ch = row / (p.kw * p.kh);
    // signed: the padded border lies at negative coordinates
    let iy = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
    let ix = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
    var v = p.pad_value;
    if iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w) {
        v = src[((b * p.c + ch) * p.h + u32(iy)) * p.w + u32(ix)];
    }
    out[e] = v;
}

// One invocation per image element; taps in the same order as the CPU twin (ky, then kx).
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = flat_index(gid, nwg);
    if e >= p.n * p.c * p.h * p.w { return; }
    let ix = e % p.w;
    let iy = (e / p.w) % p.h;
    let ch = (e / (p.w * p.h)) % p.c;
    let b = e / (p.w * p.h * p.c);
    let l = p.oh * p.ow;
    let rows = p.c * p.kh * p.kw;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let ty = i32(iy + p.ph) - i32(ky * p.dh);
        if ty < 0 || u32(ty) % p.sh != 0u || u32(ty) / p.sh >= p.oh { continue; }
        let oy = u32(ty) / p.sh;
        for (var kx = 0u; kx < p.kw; kx++) {
            let tx = i32(ix + p.pw) - i32(kx * p.dw);
            if tx < 0 || u32(tx) % p.sw != 0u || u32(tx) / p.sw >= p.ow { continue; }
            let ox = u32(tx) / p.sw;
            let row = (ch * p.kh + ky) * p.kw + kx;
            acc += src[(b * rows + row) * l + oy * p.ow + ox];
        }
    }
    out[e] = acc;
}
