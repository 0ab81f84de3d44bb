// Optimizer updates, in place over a parameter or over flat parameter memory (many parameters,
// the decayed ones first) with PyTorch's update rules.
// Hyper-parameters come from a small buffer the host rewrites each step, read through the typed
// structs below, which mirror SgdHyper, AdamHyper and RmspropHyper (HYPER_LEN = 8 words each).
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/optim.rs.

// Mirrors OptimParams.
struct Params {
    len: u32,
    decayed: u32, // elements [0, decayed) take the hyper buffer's weight decay, the rest are exempt
}

struct SgdHyper {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: f32, // 1.0 or 0.0
    padding0: f32,
    padding1: f32,
    padding2: f32,
    skip: f32,
}

struct AdamHyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32, // 1 - beta1^t
    bias_correction2: f32, // 1 - beta2^t
    skip: f32,
}

struct RmspropHyper {
    lr: f32,
    alpha: f32,
    eps: f32,
    weight_decay: f32,
    padding0: f32,
    padding1: f32,
    padding2: f32,
    skip: f32,
}

// binding 0: params (uniform)
// binding 1: param [len]  updated in place
// binding 2: grad  [len]
// binding 3: hyper [8]    one of the hyper structs, by entry point
// binding 4: state [len]  momentum buffer (sgd), first moment (adam), square average (rmsprop)
// binding 5: v     [len]  second moment (adam)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> hyper: array<f32, 8>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

// The last word of every hyper layout: nonzero when loss scaling found an overflow in this step's
// gradients (set on the device by shaders/loss_scale.wgsl): the update is skipped.
fn skipped() -> bool {
    return hyper[7] != 0.0;
}

// The weight decay word for element i: 0 past the decayed elements (exempt parameters).
fn decay_word(k: u32, i: u32) -> f32 {
    return select(0.0, hyper[k], i < p.decayed);
}

fn sgd_hyper(i: u32) -> SgdHyper {
    return SgdHyper(hyper[0], hyper[1], decay_word(2u, i), hyper[3], hyper[4], hyper[5], hyper[6], hyper[7]);
}

fn adam_hyper(i: u32) -> AdamHyper {
    return AdamHyper(hyper[0], hyper[1], hyper[2], hyper[3], decay_word(4u, i), hyper[5], hyper[6], hyper[7]);
}

fn rmsprop_hyper(i: u32) -> RmspropHyper {
    return RmspropHyper(hyper[0], hyper[1], hyper[2], decay_word(3u, i), hyper[4], hyper[5], hyper[6], hyper[7]);
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len || skipped() { return; }
    let h = sgd_hyper(i);
    let g = grad[i] + h.weight_decay * param[i];
    let buf = h.momentum * state[i] + g;
    state[i] = buf;
    var step = g;
    if h.nesterov != 0.0 {
        step = g + h.momentum * buf;
    } else if h.momentum != 0.0 {
        step = buf;
    }
    param[i] = param[i] - h.lr * step;
}

fn adam_step(i: u32, g: f32, h: AdamHyper) {
    let m = h.beta1 * state[i] + (1.0 - h.beta1) * g;
    let s = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
    state[i] = m;
    v[i] = s;
    param[i] = param[i] - h.lr * (m / h.bias_correction1) / (sqrt(s / h.bias_correction2) + h.eps);
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len || skipped() { return; }
    let h = adam_hyper(i);
    adam_step(i, grad[i] + h.weight_decay * param[i], h);
}

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len || skipped() { return; }
    let h = adam_hyper(i);
    param[i] = param[i] * (1.0 - h.lr * h.weight_decay);
    adam_step(i, grad[i], h);
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len || skipped() { return; }
    let h = rmsprop_hyper(i);
    let g = grad[i] + h.weight_decay * param[i];
    let sq = h.alpha * state[i] + (1.0 - h.alpha) * g * g;
    state[i] = sq;
    param[i] = param[i] - h.lr * g / (sqrt(sq) + h.eps);
}
