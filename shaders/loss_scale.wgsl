// Dynamic loss scaling (PyTorch GradScaler semantics), decided on the device inside the training
// step. Rust side (description, tracker layout, parameters, CPU twin):
// crates/device/src/kernels/loss_scale.rs.

// Mirrors LossScaleParams.
struct Params {
    len: u32,
    interval: u32, // good updates in a row before the scale grows
    growth: f32,
    backoff: f32,
    adam: u32, // 1: rewrite Adam's bias corrections in the hyper buffer
}

// tracker words (TRACKER_* in the Rust file), f32 values held as their bits
const GOOD: u32 = 0u;
const SKIPPED: u32 = 1u;
const FOUND: u32 = 2u;
const APPLIED: u32 = 3u;
const ONE_BITS: u32 = 0x3f800000u; // 1.0
const SKIP_WORD: u32 = 7u; // HYPER_SKIP

// unscale:      binding 1 out [len], 2 grad [len], 3 scale [1], 4 tracker [4]
// scale_update: binding 5 scale [1], 4 tracker [4], 6 hyper [8]
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read> scale: array<f32, 1>;
@group(0) @binding(4) var<storage, read_write> tracker: array<atomic<u32>, 4>;
@group(0) @binding(5) var<storage, read_write> scale_rw: array<f32, 1>;
@group(0) @binding(6) var<storage, read_write> hyper: array<f32, 8>;

// inf or NaN, by the exponent bits (a compiler may assume floats are finite, bits it cannot)
fn not_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// out = grad * (1 / scale); the found-inf flag raised by any invocation that sees inf or NaN
@compute @workgroup_size(256)
fn unscale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= p.len { return; }
    let g = grad[i];
    out[i] = g * (1.0 / scale[0]);
    if not_finite(g) {
        atomicOr(&tracker[FOUND], ONE_BITS);
    }
}

fn load(k: u32) -> f32 {
    return bitcast<f32>(atomicLoad(&tracker[k]));
}

fn store(k: u32, v: f32) {
    atomicStore(&tracker[k], bitcast<u32>(v));
}

// base^n by square-and-multiply, as `powi` in the Rust file
fn powi(base: f32, n: u32) -> f32 {
    var result = 1.0;
    var x = base;
    var e = n;
    loop {
        if (e & 1u) == 1u {
            result = result * x;
        }
        e = e >> 1u;
        if e == 0u {
            break;
        }
        x = x * x;
    }
    return result;
}

// 1 - beta^n without cancellation near 1, as `bias_correction` in the Rust file: -expm1(n ln(beta))
// by series for beta in [0.5, 1), 1 - powi(beta, n) below.
fn bias_correction(beta: f32, n: f32) -> f32 {
    if beta < 0.5 {
        return 1.0 - powi(beta, u32(n));
    }
    let d = 1.0 - beta;
    var acc = 1.0 / 40.0;
    for (var k = 39u; k >= 1u; k = k - 1u) {
        acc = 1.0 / f32(k) + d * acc;
    }
    let x = -(n * (d * acc));
    if x > -1.0 {
        var t = 1.0;
        for (var k = 12u; k >= 2u; k = k - 1u) {
            t = 1.0 + x * t / f32(k);
        }
        return -(x * t);
    }
    return 1.0 - exp(x);
}

// The scaler's step: one invocation, after every unscale and before the optimizer kernels.
@compute @workgroup_size(1)
fn scale_update() {
    let found = atomicLoad(&tracker[FOUND]) != 0u;
    atomicStore(&tracker[FOUND], 0u);
    if found {
        scale_rw[0] = scale_rw[0] * p.backoff;
        store(GOOD, 0.0);
        store(SKIPPED, load(SKIPPED) + 1.0);
        hyper[SKIP_WORD] = 1.0;
        return;
    }
    hyper[SKIP_WORD] = 0.0;
    let applied = load(APPLIED) + 1.0;
    store(APPLIED, applied);
    let good = load(GOOD) + 1.0;
    if good >= f32(p.interval) {
        let grown = scale_rw[0] * p.growth;
        if !not_finite(grown) {
            scale_rw[0] = grown;
        }
        store(GOOD, 0.0);
    } else {
        store(GOOD, good);
    }
    if p.adam != 0u {
        hyper[5] = bias_correction(hyper[1], applied);
        hyper[6] = bias_correction(hyper[2], applied);
    }
}
