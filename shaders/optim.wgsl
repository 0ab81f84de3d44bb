// Optimizer updates, in place over flat parameter buffers (PyTorch's update rules).
// Hyper-parameters come from a small buffer the host rewrites each step (layouts: HYPER_LEN in
// crates/device/src/kernel/mod.rs). CPU twin: crates/device/src/cpu (optim).

struct Params {
    len: u32,
}

// binding 0: params (uniform)
// binding 1: param [len]  updated in place
// binding 2: grad  [len]
// binding 3: hyper [8]
// binding 4: state [len]  momentum buffer (sgd), first moment (adam), square average (rmsprop)
// binding 5: v     [len]  second moment (adam)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> hyper: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;

const WG: u32 = 256u;

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// hyper: [lr, momentum, weight_decay, nesterov]
@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len { return; }
    let lr = hyper[0];
    let momentum = hyper[1];
    let g = grad[i] + hyper[2] * param[i];
    let buf = momentum * state[i] + g;
    state[i] = buf;
    var step = g;
    if hyper[3] != 0.0 {
        step = g + momentum * buf;
    } else if momentum != 0.0 {
        step = buf;
    }
    param[i] = param[i] - lr * step;
}

// hyper: [lr, beta1, beta2, eps, weight_decay, 1 - beta1^t, 1 - beta2^t]
fn adam_step(i: u32, g: f32) {
    let m = hyper[1] * state[i] + (1.0 - hyper[1]) * g;
    let s = hyper[2] * v[i] + (1.0 - hyper[2]) * g * g;
    state[i] = m;
    v[i] = s;
    param[i] = param[i] - hyper[0] * (m / hyper[5]) / (sqrt(s / hyper[6]) + hyper[3]);
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len { return; }
    adam_step(i, grad[i] + hyper[4] * param[i]);
}

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len { return; }
    param[i] = param[i] * (1.0 - hyper[0] * hyper[4]);
    adam_step(i, grad[i]);
}

// hyper: [lr, alpha, eps, weight_decay]
@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if i >= p.len { return; }
    let g = grad[i] + hyper[3] * param[i];
    let sq = hyper[1] * state[i] + (1.0 - hyper[1]) * g * g;
    state[i] = sq;
    param[i] = param[i] - hyper[0] * g / (sqrt(sq) + hyper[2]);
}
