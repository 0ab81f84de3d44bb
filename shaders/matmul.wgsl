// Batched matmul C[b] = op(A[b]) @ op(B[b]), row-major, either operand optionally transposed.
// Rust side (description, parameters, CPU twin: matrixmultiply's sgemm over the same strides):
// crates/device/src/kernels/matmul.rs.
//
// Two entry points, same Params and bindings: `matmul` (below) for small and thin products and
// `matmul_blocked` (after it) for large ones; the lowering picks one by shape (`MatmulTile`).
//
// matmul: each workgroup computes a 64x64 tile of C with 256 invocations; each invocation owns a 4x4 block
// held in four vec4 accumulators (named variables, not an array: naga would spill an array to memory).
// K advances in steps of 16 through two tiles in workgroup memory. Loads are bounds-checked and
// zero-filled at the edges, so any M, N, K works.
//
// Half inputs: A and B are bound as words (`array<u32>`, and `array<vec4<u32>>` in the blocked
// variant), each read as f32 bits or as packed f16/bf16 pairs by its type (A_DTYPE, B_DTYPE below),
// and widened to f32 exactly as it is loaded (common.wgsl); products accumulate in f32, C is f32.

// Mirrors MatmulParams.
struct Params {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,  // 1: A is stored [k, m]
    trans_b: u32,  // 1: B is stored [n, k]
    a_stride: u32, // elements between batch entries of A (0: shared by all)
    b_stride: u32,
}

// The operands' element types (DTYPE_F32, DTYPE_F16 or DTYPE_BF16, common.wgsl): pipeline
// constants, one pipeline per combination (`Matmul::overrides`), so the compiler folds the type
// branches away and the f32 pipelines run exactly the f32 code.
override A_DTYPE: u32 = 0u;
override B_DTYPE: u32 = 0u;

// What the store adds to the product (`Addend`, also a pipeline constant): 0 nothing, 1 a bias
// d[col] on every row, 2 a tensor d of C's shape (a residual), elementwise.
override EPILOGUE: u32 = 0u;

// binding 0: params (uniform)
// binding 1: c [batch, m, n]
// binding 2: a [batch?, m, k] or [batch?, k, m] (f32 bits, or f16/bf16 packed two per word)
// binding 3: b [batch?, k, n] or [batch?, n, k] (likewise)
// binding 4: d [n] or [batch, m, n] (only with an EPILOGUE)
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read> d: array<f32>;

const TM: u32 = 64u; // tile rows
const TN: u32 = 64u; // tile cols
const TK: u32 = 16u; // tile depth

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

// Element i of A (of B), widened to f32.
fn a_at(i: u32) -> f32 {
    if A_DTYPE == DTYPE_F32 { return bitcast<f32>(a[i]); }
    return bitcast<f32>(half_to_f32_bits(half_in_word(a[i >> 1u], i), A_DTYPE));
}

fn b_at(i: u32) -> f32 {
    if B_DTYPE == DTYPE_F32 { return bitcast<f32>(b[i]); }
    return bitcast<f32>(half_to_f32_bits(half_in_word(b[i >> 1u], i), B_DTYPE));
}

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k { return 0.0; }
    if p.trans_a == 1u { return a_at(base + kk * p.m + row); }
    return a_at(base + row * p.k + kk);
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if col >= p.n || kk >= p.k { return 0.0; }
    if p.trans_b == 1u { return b_at(base + col * p.k + kk); }
    return b_at(base + kk * p.n + col);
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if row >= p.m { return; }
    let o = base + row * p.n;
    for (var j = 0u; j < 4u; j++) {
        if col + j < p.n {
            var x = v[j];
            if EPILOGUE == 1u { x += d[col + j]; }
            if EPILOGUE == 2u { x += d[o + col + j]; }
            c[o + col + j] = x;
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let batch = wid.z;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let a_base = batch * p.a_stride;
    let b_base = batch * p.b_stride;
    let tr = lid3.y * 4u; // this invocation's rows within the tile
    let tc = lid3.x * 4u; // and columns

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 1024 elements per tile, 4 per invocation. Walk memory-contiguous along the stored layout.
        for (var q = 0u; q < 4u; q++) {
            let e = lid + q * 256u;
            var kk: u32;
            var rr: u32;
            if p.trans_a == 1u { kk = e / TM; rr = e % TM; } else { kk = e % TK; rr = e / TK; }
            a_tile[kk * TM + rr] = load_a(a_base, row0 + rr, k0 + kk);
            var cc: u32;
            if p.trans_b == 1u { kk = e % TK; cc = e / TK; } else { kk = e / TN; cc = e % TN; }
            b_tile[kk * TN + cc] = load_b(b_base, k0 + kk, col0 + cc);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ai = kk * TM + tr;
            let bi = kk * TN + tc;
            let av = vec4<f32>(a_tile[ai], a_tile[ai + 1u], a_tile[ai + 2u], a_tile[ai + 3u]);
            let bv = vec4<f32>(b_tile[bi], b_tile[bi + 1u], b_tile[bi + 2u], b_tile[bi + 3u]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }

    let c_base = batch * p.m * p.n;
    store_row(c_base, row0 + tr, col0 + tc, acc0);
    store_row(c_base, row0 + tr + 1u, col0 + tc, acc1);
    store_row(c_base, row0 + tr + 2u, col0 + tc, acc2);
    store_row(c_base, row0 + tr + 3u, col0 + tc, acc3);
}

// ---------------------------------------------------------------------------------------------
// matmul_blocked: the register-blocked variant for large products (the lowering picks it by
// shape, see `MatmulTile` in crates/device/src/kernels/matmul.rs). Same Params, same bindings.
//
// Each workgroup computes a 128x128 tile of C with 256 invocations (16x16); each invocation owns
// an 8x8 block: rows ty*4+{0..3} and 64+ty*4+{0..3}, columns tx*4+{0..3} and 64+tx*4+{0..3}
// (two halves, so neighbouring invocations read neighbouring vec4s of the tiles), held in 16
// named vec4 accumulators. K advances in steps of 8 through two [8][128] tiles in workgroup
// memory (8 KiB); the next step's slice is fetched from global memory into registers while the
// current one is multiplied. A and B are read through vec4 views of their buffers (the GPU
// backend sizes buffers to whole vec4s): one aligned vec4 load per invocation and operand per
// step where the stored rows are a multiple of 4 long and the vec4 lies inside the matrix,
// bounds-checked scalar loads (zero outside) otherwise, so any M, N, K works. Half operands are
// read through the same vec4-of-words views: four aligned halves are two words of one vec4.

@group(0) @binding(2) var<storage, read> a4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<u32>>;

const BM: u32 = 128u; // tile rows
const BN: u32 = 128u; // tile cols
const BK: u32 = 8u;   // tile depth

var<workgroup> a_blk: array<vec4<f32>, 256>; // [BK][BM / 4]: a_blk[kk * 32 + r / 4][r % 4]
var<workgroup> b_blk: array<vec4<f32>, 256>; // [BK][BN / 4]

// Word w of a vec4-of-words view.
fn a4_word(w: u32) -> u32 {
    return a4[w >> 2u][w & 3u];
}

fn b4_word(w: u32) -> u32 {
    return b4[w >> 2u][w & 3u];
}

// Element i of A (of B), widened to f32.
fn a4_at(i: u32) -> f32 {
    if A_DTYPE == DTYPE_F32 { return bitcast<f32>(a4_word(i)); }
    return bitcast<f32>(half_to_f32_bits(half_in_word(a4_word(i >> 1u), i), A_DTYPE));
}

fn b4_at(i: u32) -> f32 {
    if B_DTYPE == DTYPE_F32 { return bitcast<f32>(b4_word(i)); }
    return bitcast<f32>(half_to_f32_bits(half_in_word(b4_word(i >> 1u), i), B_DTYPE));
}

// Four halves of type `dtype` held in two words, widened.
fn widen4(lo: u32, hi: u32, dtype: u32) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(
        half_to_f32_bits(lo & 0xffffu, dtype), half_to_f32_bits(lo >> 16u, dtype),
        half_to_f32_bits(hi & 0xffffu, dtype), half_to_f32_bits(hi >> 16u, dtype),
    ));
}

// The two words holding halves i..i+3 (i a multiple of 4) of a vec4-of-words view's vec4 `v`.
fn half_pair(v: vec4<u32>, i: u32) -> vec2<u32> {
    if (i & 4u) == 0u { return v.xy; }
    return v.zw;
}

// Four consecutive stored elements of A starting at flat index i, where `run` of them (0..4) lie
// inside the matrix; one vec4 load when all four do and i is a multiple of 4.
fn a_run(i: u32, run: u32) -> vec4<f32> {
    if run == 4u && (i & 3u) == 0u {
        if A_DTYPE == DTYPE_F32 { return bitcast<vec4<f32>>(a4[i >> 2u]); }
        let w = half_pair(a4[i >> 3u], i);
        return widen4(w.x, w.y, A_DTYPE);
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if j < run { v[j] = a4_at(i + j); }
    }
    return v;
}

fn b_run(i: u32, run: u32) -> vec4<f32> {
    if run == 4u && (i & 3u) == 0u {
        if B_DTYPE == DTYPE_F32 { return bitcast<vec4<f32>>(b4[i >> 2u]); }
        let w = half_pair(b4[i >> 3u], i);
        return widen4(w.x, w.y, B_DTYPE);
    }
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        if j < run { v[j] = b4_at(i + j); }
    }
    return v;
}

// How many of the 4 positions x..x+3 are below `limit` (0 when `ok` is false).
fn run_len(x: u32, limit: u32, ok: bool) -> u32 {
    if !ok || x >= limit { return 0u; }
    return min(4u, limit - x);
}

// Invocation e's vec4 of the A slice at depth k0, along the stored rows: A [m, k] gives four k
// values of one row (e / 2, k0 + (e % 2) * 4), A^T [k, m] four rows of one k (k0 + e / 32).
fn fetch_a(base: u32, row0: u32, k0: u32, e: u32) -> vec4<f32> {
    if p.trans_a == 1u {
        let kk = k0 + e / 32u;
        let r = row0 + (e % 32u) * 4u;
        return a_run(base + kk * p.m + r, run_len(r, p.m, kk < p.k));
    }
    let r = row0 + e / 2u;
    let kk = k0 + (e % 2u) * 4u;
    return a_run(base + r * p.k + kk, run_len(kk, p.k, r < p.m));
}

fn stash_a(e: u32, v: vec4<f32>) {
    if p.trans_a == 1u {
        a_blk[(e / 32u) * 32u + e % 32u] = v;
        return;
    }
    let r = e / 2u;
    let kq = (e % 2u) * 4u;
    for (var j = 0u; j < 4u; j++) {
        a_blk[(kq + j) * 32u + r / 4u][r % 4u] = v[j];
    }
}

// B [k, n] gives four columns of one k (k0 + e / 32), B^T [n, k] four k values of one column.
fn fetch_b(base: u32, col0: u32, k0: u32, e: u32) -> vec4<f32> {
    if p.trans_b == 1u {
        let c = col0 + e / 2u;
        let kk = k0 + (e % 2u) * 4u;
        return b_run(base + c * p.k + kk, run_len(kk, p.k, c < p.n));
    }
    let kk = k0 + e / 32u;
    let c = col0 + (e % 32u) * 4u;
    return b_run(base + kk * p.n + c, run_len(c, p.n, kk < p.k));
}

fn stash_b(e: u32, v: vec4<f32>) {
    if p.trans_b == 0u {
        b_blk[(e / 32u) * 32u + e % 32u] = v;
        return;
    }
    let c = e / 2u;
    let kq = (e % 2u) * 4u;
    for (var j = 0u; j < 4u; j++) {
        b_blk[(kq + j) * 32u + c / 4u][c % 4u] = v[j];
    }
}

@compute @workgroup_size(16, 16)
fn matmul_blocked(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let batch = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let a_base = batch * p.a_stride;
    let b_base = batch * p.b_stride;
    let tx = lid3.x;
    let ty = lid3.y;

    // acc<row><half>: row i of the block (0..3: ty*4+i, 4..7: 64+ty*4+i-4), half l: columns
    // tx*4.., h: 64+tx*4..
    var c0l = vec4<f32>(0.0); var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0); var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0); var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0); var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0); var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0); var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0); var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0); var c7h = vec4<f32>(0.0);

    var va = fetch_a(a_base, row0, 0u, lid);
    var vb = fetch_b(b_base, col0, 0u, lid);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        stash_a(lid, va);
        stash_b(lid, vb);
        workgroupBarrier();
        if k0 + BK < p.k {
            va = fetch_a(a_base, row0, k0 + BK, lid);
            vb = fetch_b(b_base, col0, k0 + BK, lid);
        }
        for (var kk = 0u; kk < BK; kk++) {
            let al = a_blk[kk * 32u + ty];
            let ah = a_blk[kk * 32u + 16u + ty];
            let bl = b_blk[kk * 32u + tx];
            let bh = b_blk[kk * 32u + 16u + tx];
            c0l += al.x * bl; c0h += al.x * bh;
            c1l += al.y * bl; c1h += al.y * bh;
            c2l += al.z * bl; c2h += al.z * bh;
            c3l += al.w * bl; c3h += al.w * bh;
            c4l += ah.x * bl; c4h += ah.x * bh;
            c5l += ah.y * bl; c5h += ah.y * bh;
            c6l += ah.z * bl; c6h += ah.z * bh;
            c7l += ah.w * bl; c7h += ah.w * bh;
        }
        workgroupBarrier();
    }

    let c_base = batch * p.m * p.n;
    let rl = row0 + ty * 4u;
    let rh = row0 + 64u + ty * 4u;
    let cl = col0 + tx * 4u;
    let ch = col0 + 64u + tx * 4u;
    store_row(c_base, rl, cl, c0l); store_row(c_base, rl, ch, c0h);
    store_row(c_base, rl + 1u, cl, c1l); store_row(c_base, rl + 1u, ch, c1h);
    store_row(c_base, rl + 2u, cl, c2l); store_row(c_base, rl + 2u, ch, c2h);
    store_row(c_base, rl + 3u, cl, c3l); store_row(c_base, rl + 3u, ch, c3h);
    store_row(c_base, rh, cl, c4l); store_row(c_base, rh, ch, c4h);
    store_row(c_base, rh + 1u, cl, c5l); store_row(c_base, rh + 1u, ch, c5h);
    store_row(c_base, rh + 2u, cl, c6l); store_row(c_base, rh + 2u, ch, c6h);
    store_row(c_base, rh + 3u, cl, c7l); store_row(c_base, rh + 3u, ch, c7h);
}
