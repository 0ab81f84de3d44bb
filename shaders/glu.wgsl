// Gated linear units: the SwiGLU product y = silu(gate) * up elementwise (Llama's MLP), and its
// backward, one kernel per input: dgate = dy * up * silu'(gate), dup = dy * silu(gate), with
// silu'(g) = s + g s (1 - s), s = sigmoid(g) evaluated without overflow for either sign.
// Rust side (description, parameters, CPU twin): crates/device/src/kernels/glu.rs.

// Mirrors GluParams.
struct Params {
    len: u32,
}

// binding 0: params (uniform)
// binding 1: out  [len]  y, dgate or dup
// binding 2: gate [len]
// binding 3: up   [len]  (swiglu, swiglu_grad_gate)
// binding 4: dy   [len]  (backward)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;

fn sigmoid_f(x: f32) -> f32 {
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

@compute @workgroup_size(256)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let g = gate[i];
    out[i] = g * sigmoid_f(g) * up[i];
}

@compute @workgroup_size(256)
fn swiglu_grad_gate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let g = gate[i];
    let s = sigmoid_f(g);
    out[i] = dy[i] * up[i] * (s + g * s * (1.0 - s));
}

@compute @workgroup_size(256)
fn swiglu_grad_up(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let g = gate[i];
    out[i] = dy[i] * (g * sigmoid_f(g));
}
