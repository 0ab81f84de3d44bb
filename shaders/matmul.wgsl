// Batched matmul C[b] = op(A[b]) @ op(B[b]), row-major, either operand optionally transposed.
// Rust side (description, parameters, CPU twin: matrixmultiply's sgemm over the same strides):
// crates/device/src/kernels/matmul.rs.
//
// Each workgroup computes a 64x64 tile of C with 256 invocations; each invocation owns a 4x4 block
// held in four vec4 accumulators (named variables, not an array: naga would spill an array to memory).
// K advances in steps of 16 through two tiles in workgroup memory. Loads are bounds-checked and
// zero-filled at the edges, so any M, N, K works.

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

// binding 0: params (uniform)
// binding 1: c [batch, m, n]
// binding 2: a [batch?, m, k] or [batch?, k, m]
// binding 3: b [batch?, k, n] or [batch?, n, k]
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

const TM: u32 = 64u; // tile rows
const TN: u32 = 64u; // tile cols
const TK: u32 = 16u; // tile depth

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k { return 0.0; }
    if p.trans_a == 1u { return a[base + kk * p.m + row]; }
    return a[base + row * p.k + kk];
}

fn load_b(base: u32, kk: u32, col: u32) -> f32 {
    if col >= p.n || kk >= p.k { return 0.0; }
    if p.trans_b == 1u { return b[base + col * p.k + kk]; }
    return b[base + kk * p.n + col];
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if row >= p.m { return; }
    let o = base + row * p.n;
    for (var j = 0u; j < 4u; j++) {
        if col + j < p.n { c[o + col + j] = v[j]; }
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
