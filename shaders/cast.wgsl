// Casts between f32 and the half types: cast_f32_bf16, cast_bf16_f32, cast_f32_f16, cast_f16_f32.
// Rust side (description, parameters, CPU twin: the `half` crate): crates/device/src/kernels/cast.rs.
// The conversions themselves are in common.wgsl (integer bit operations, the same bits as the CPU).
//
// Both buffers are bound as `array<u32>` (f32 values as their bits, never through float registers,
// so NaN payloads and signed zeros survive). Each invocation handles one 32-bit word of the half
// side, two elements, so no two invocations write the same word; an odd length's last word has
// one element (narrowing writes a zero high half, widening reads only the low half).

// Mirrors CastParams.
struct Params {
    len: u32,   // elements
    words: u32, // words of the half side: len / 2 rounded up
}

// binding 0: params (uniform)
// binding 1: out [len] (f32 bits, or half bits packed two per word)
// binding 2: x   [len] (likewise)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<u32>;

// Word w of the half output: elements 2w and 2w + 1 of x narrowed to `dtype`.
fn narrow_word(w: u32, dtype: u32) {
    let i = 2u * w;
    var hi = 0u;
    if i + 1u < p.len { hi = f32_bits_to_half(x[i + 1u], dtype); }
    out[w] = f32_bits_to_half(x[i], dtype) | (hi << 16u);
}

// Elements 2w and 2w + 1 of the f32 output: word w of the half input widened from `dtype`.
fn widen_word(w: u32, dtype: u32) {
    let word = x[w];
    let i = 2u * w;
    out[i] = half_to_f32_bits(word & 0xffffu, dtype);
    if i + 1u < p.len { out[i + 1u] = half_to_f32_bits(word >> 16u, dtype); }
}

@compute @workgroup_size(256)
fn cast_f32_bf16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = flat_index(gid, nwg);
    if w < p.words { narrow_word(w, DTYPE_BF16); }
}

@compute @workgroup_size(256)
fn cast_bf16_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = flat_index(gid, nwg);
    if w < p.words { widen_word(w, DTYPE_BF16); }
}

@compute @workgroup_size(256)
fn cast_f32_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = flat_index(gid, nwg);
    if w < p.words { narrow_word(w, DTYPE_F16); }
}

@compute @workgroup_size(256)
fn cast_f16_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = flat_index(gid, nwg);
    if w < p.words { widen_word(w, DTYPE_F16); }
}
