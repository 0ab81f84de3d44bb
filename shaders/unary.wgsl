// Unary elementwise ops, their backward kernels, and the fused bias-add + activation.
// Rust side (description, parameters, CPU twins UnaryOp::eval / UnaryOp::grad, same formulas):
// crates/device/src/kernels/unary/mod.rs.

// Mirrors UnaryParams.
struct Params {
    len: u32,
    alpha: f32, // negative slope of leaky_relu
    cols: u32,  // bias_act: row length
    op: u32,    // bias_act: index of the op in UnaryOp::ALL
}

// binding 0: params (uniform)
// binding 1: out   [len]   y (forward) or dx (backward)
// binding 2: a     [len]   x (forward) or the saved x / y (backward)
// binding 3: b     [len]   dy (backward) or bias [cols] (bias_act)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

fn sigmoid_f(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn tanh_f(x: f32) -> f32 {
    let t = exp(-2.0 * abs(x));
    let r = (1.0 - t) / (1.0 + t);
    return select(r, -r, x < 0.0);
}

// The standard normal CDF Phi(x) and exp(-x^2 / 2), as normal_cdf_exp in the Rust file:
// Phi(-|x|) = erfc(|x| / sqrt 2) / 2 by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7).
fn normal_cdf_exp(x: f32) -> vec2<f32> {
    let z = abs(x) * 0.70710677;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.453152 + t * 1.0614054))));
    let e = exp(-0.5 * x * x);
    let low = 0.5 * poly * e;
    return vec2<f32>(select(low, 1.0 - low, x >= 0.0), e);
}

fn gelu_f(x: f32) -> f32 {
    return x * normal_cdf_exp(x).x;
}

// SiLU (swish): x sigmoid(x)
fn silu_f(x: f32) -> f32 {
    return x * sigmoid_f(x);
}

fn leaky_f(x: f32) -> f32 {
    return select(p.alpha * x, x, x > 0.0);
}

// The forward op by its code (order of UnaryOp::ALL), for bias_act.
fn apply(op: u32, x: f32) -> f32 {
    switch op {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return sqrt(x); }
        case 4u: { return 1.0 / x; }
        case 5u: { return abs(x); }
        case 6u: { return max(x, 0.0); }
        case 7u: { return leaky_f(x); }
        case 8u: { return sigmoid_f(x); }
        case 9u: { return tanh_f(x); }
        case 10u: { return gelu_f(x); }
        default: { return silu_f(x); }
    }
}

@compute @workgroup_size(256)
fn bias_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = apply(p.op, a[i] + b[i % p.cols]);
}

@compute @workgroup_size(256)
fn neg_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = -a[i];
}

@compute @workgroup_size(256)
fn neg_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = -b[i];
}

@compute @workgroup_size(256)
fn exp_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = exp(a[i]);
}

// d/dx e^x = y
@compute @workgroup_size(256)
fn exp_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = b[i] * a[i];
}

@compute @workgroup_size(256)
fn log_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = log(a[i]);
}

// d/dx ln x = 1/x
@compute @workgroup_size(256)
fn log_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = b[i] / a[i];
}

@compute @workgroup_size(256)
fn sqrt_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = sqrt(a[i]);
}

// d/dx sqrt x = 1/(2y)
@compute @workgroup_size(256)
fn sqrt_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = b[i] * 0.5 / a[i];
}

@compute @workgroup_size(256)
fn reciprocal_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = 1.0 / a[i];
}

// d/dx 1/x = -y^2
@compute @workgroup_size(256)
fn reciprocal_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = -b[i] * a[i] * a[i];
}

@compute @workgroup_size(256)
fn abs_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = abs(a[i]);
}

// d/dx |x| = sign(x)
@compute @workgroup_size(256)
fn abs_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = b[i] * sign(a[i]);
}

@compute @workgroup_size(256)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = max(a[i], 0.0);
}

// d/dx relu = [y > 0]
@compute @workgroup_size(256)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = select(0.0, 1.0, a[i] > 0.0) * b[i];
}

@compute @workgroup_size(256)
fn leaky_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = leaky_f(a[i]);
}

// d/dx leaky_relu = 1 if y > 0 else alpha
@compute @workgroup_size(256)
fn leaky_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = select(p.alpha, 1.0, a[i] > 0.0) * b[i];
}

@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = sigmoid_f(a[i]);
}

// d/dx sigmoid = y (1 - y)
@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = b[i] * a[i] * (1.0 - a[i]);
}

@compute @workgroup_size(256)
fn tanh_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = tanh_f(a[i]);
}

// d/dx tanh = 1 - y^2
@compute @workgroup_size(256)
fn tanh_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = b[i] * (1.0 - a[i] * a[i]);
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = gelu_f(a[i]);
}

// d/dx x Phi(x) = Phi(x) + x phi(x)
@compute @workgroup_size(256)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let x = a[i];
    let ce = normal_cdf_exp(x);
    out[i] = b[i] * (ce.x + x * (ce.y * 0.3989423));
}

@compute @workgroup_size(256)
fn silu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    out[i] = silu_f(a[i]);
}

// d/dx x sigmoid(x) = sigmoid(x) (1 + x (1 - sigmoid(x)))
@compute @workgroup_size(256)
fn silu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let x = a[i];
    let s = sigmoid_f(x);
    out[i] = b[i] * s * (1.0 + x * (1.0 - s));
}
