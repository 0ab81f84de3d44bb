// Running statistics updated in place inside a training step (BatchNorm's running mean and
// variance, and its batch counter). Rust side (description, parameters, CPU twin):
// crates/device/src/kernels/running.rs.

// Mirrors RunningParams.
struct Params {
    len: u32,
    keep: f32,
    gain: f32,
    scale: f32,
}

// binding 0: params (uniform)
// binding 1: running [len]  updated in place
// binding 2: value   [len]  this step's statistic
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> running: array<f32>;
@group(0) @binding(2) var<storage, read> value: array<f32>;

// running = keep * running + gain * (value * scale)
@compute @workgroup_size(256)
fn running_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    running[i] = p.keep * running[i] + p.gain * (value[i] * p.scale);
}
