// Helpers shared by every kernel family. The loader prepends this file to shaders/<family>.wgsl
// when it builds a family's module (plain concatenation of two WGSL files), so a family file
// uses these names without declaring them. Only what an entry point uses ends up in its pipeline.

// Invocations per workgroup of the 1-D (one invocation per element) kernels.
const ELEMENTWISE_WG: u32 = 256u;

// Element index of a 1-D kernel's invocation: dispatches past 65,535 workgroups spill into y
// (`spread` in crates/device/src/kernels/mod.rs).
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * ELEMENTWISE_WG;
}

// Workgroup index of a kernel with one workgroup per row or output element, spilled the same way.
fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Scratch of the workgroup tree reductions (workgroups of up to 256 invocations).
var<workgroup> tree: array<f32, 256>;

// The sum of `v` over the first `width` (a power of two) invocations of the workgroup, combined
// pairwise in a fixed order (deterministic, no atomics); every invocation gets the result.
fn tree_sum(lid: u32, v: f32, width: u32) -> f32 {
    tree[lid] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid < s { tree[lid] += tree[lid + s]; }
        workgroupBarrier();
    }
    let r = tree[0];
    workgroupBarrier();
    return r;
}

// The maximum of `v` over the first `width` invocations, as `tree_sum`.
fn tree_max(lid: u32, v: f32, width: u32) -> f32 {
    tree[lid] = v;
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s >>= 1u) {
        if lid < s { tree[lid] = max(tree[lid], tree[lid + s]); }
        workgroupBarrier();
    }
    let r = tree[0];
    workgroupBarrier();
    return r;
}

// ---------------------------------------------------------------------------------------------
// Half precision. An f16 or bf16 buffer is an `array<u32>`: element 2i in the low 16 bits of word
// i, element 2i + 1 in the high 16 bits (`DType` in crates/device/src/backend.rs). The
// conversions are integer bit operations, so no adapter feature (`enable f16;`) is needed and the
// result does not depend on how a driver rounds `pack2x16float`: they give the bits of the `half`
// crate's conversions (the CPU twins'): round to nearest, ties to even; NaNs quieted with their top
// payload bits kept; f16 subnormals kept; f32 past f16's range to infinity. (Checked on lavapipe:
// its pack2x16float agreed on 400,000 finite values, ties and subnormals included, but returned a
// canonical NaN, dropping payloads; WGSL leaves both implementation-defined.)

// Element-type codes of float operands in parameter blocks (`dtype_code` in kernels/cast.rs).
const DTYPE_F32: u32 = 0u;
const DTYPE_F16: u32 = 1u;
const DTYPE_BF16: u32 = 2u;

// The 16 bits of element i of a half buffer, given the word that holds it (word i / 2).
fn half_in_word(word: u32, i: u32) -> u32 {
    return (word >> ((i & 1u) * 16u)) & 0xffffu;
}

// bf16 bits -> f32 bits (exact; a NaN gets its quiet bit).
fn bf16_to_f32_bits(h: u32) -> u32 {
    if (h & 0x7fffu) > 0x7f80u { return (h | 0x40u) << 16u; }
    return h << 16u;
}

// f32 bits -> bf16 bits, rounded to nearest even (a carry out of the mantissa bumps the exponent,
// up to infinity).
fn f32_bits_to_bf16(x: u32) -> u32 {
    if (x & 0x7fffffffu) > 0x7f800000u { return (x >> 16u) | 0x40u; }
    // round bit set, and a sticky bit or the result's lowest bit set
    if (x & 0x8000u) != 0u && (x & 0x17fffu) != 0u { return (x >> 16u) + 1u; }
    return x >> 16u;
}

// f16 bits -> f32 bits (exact; subnormals normalized, a NaN gets its quiet bit).
fn f16_to_f32_bits(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let exp = h & 0x7c00u;
    let man = h & 0x3ffu;
    if (h & 0x7fffu) == 0u { return sign; }
    if exp == 0x7c00u {
        if man == 0u { return sign | 0x7f800000u; }
        return sign | 0x7fc00000u | (man << 13u);
    }
    if exp == 0u {
        // subnormal: shift the leading one into the hidden bit, lowering the exponent to match
        let e = countLeadingZeros(man) - 22u;
        return sign | ((112u - e) << 23u) | ((man << (14u + e)) & 0x7fffffu);
    }
    return sign | (((exp >> 10u) + 112u) << 23u) | (man << 13u);
}

// f32 bits -> f16 bits, rounded to nearest even; past the largest finite f16 gives infinity, below
// half the smallest subnormal gives a signed zero.
fn f32_bits_to_f16(x: u32) -> u32 {
    let sign = (x >> 16u) & 0x8000u;
    let exp = x & 0x7f800000u;
    let man = x & 0x7fffffu;
    if exp == 0x7f800000u {
        var nan_bit = 0u;
        if man != 0u { nan_bit = 0x200u; }
        return sign | 0x7c00u | nan_bit | (man >> 13u);
    }
    let half_exp = i32(exp >> 23u) - 112; // rebias: - 127 + 15
    if half_exp >= 31 { return sign | 0x7c00u; }
    if half_exp <= 0 {
        if half_exp < -10 { return sign; }
        let m = man | 0x800000u; // the hidden bit
        let shift = u32(14 - half_exp);
        let round_bit = 1u << (shift - 1u);
        var hm = m >> shift;
        // round bit set, and a sticky bit or the result's lowest bit set (3 * round_bit - 1)
        if (m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u { hm += 1u; }
        return sign | hm;
    }
    let h = sign | (u32(half_exp) << 10u) | (man >> 13u);
    if (man & 0x1000u) != 0u && (man & 0x2fffu) != 0u { return h + 1u; }
    return h;
}

// Half bits of type `dtype` (DTYPE_F16 or DTYPE_BF16) -> f32 bits.
fn half_to_f32_bits(h: u32, dtype: u32) -> u32 {
    if dtype == DTYPE_BF16 { return bf16_to_f32_bits(h); }
    return f16_to_f32_bits(h);
}

// f32 bits -> half bits of type `dtype` (DTYPE_F16 or DTYPE_BF16).
fn f32_bits_to_half(x: u32, dtype: u32) -> u32 {
    if dtype == DTYPE_BF16 { return f32_bits_to_bf16(x); }
    return f32_bits_to_f16(x);
}
