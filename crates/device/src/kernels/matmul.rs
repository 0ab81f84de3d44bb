//! Batched matmul (`shaders/matmul.wgsl`), two entry points: `matmul` (64x64 tiles) and the
//! register-blocked `matmul_blocked` (128x128 tiles, 8x8 outputs per invocation); [`MatmulTile`]
//! names them and [`MatmulTile::for_shape`] is the lowering's rule. The CPU twin runs a
//! library GEMM (`super::sgemm`: the `gemm` crate on CPUs with AVX-512, `matrixmultiply`
//! elsewhere, chosen at run time); it takes row and column strides, so a transposed operand is just
//! swapped strides, never a copy.
//!
//! An addend ([`Addend`]): `C = op(A) @ op(B) + D`, a bias `[n]` added to every row or a tensor
//! of `C`'s shape (a residual), added as `C` is stored (the shader's `EPILOGUE` constant; the
//! CPU twin adds it to the product in a second pass), so a linear layer's bias or a
//! residual connection after a matmul takes no launch of its own.
//!
//! Half inputs: either operand may be f16 or bf16 ([`Matmul::a_dtype`], [`Matmul::b_dtype`]), on
//! both entry points, with every transpose and batching; `C` is f32 and the products accumulate in
//! f32. The shaders bind A and B as `array<u32>` (`array<vec4<u32>>` for the blocked loads) and widen
//! each element exactly as it is loaded (`shaders/common.wgsl`); the operand types are pipeline
//! constants (`override`), so each combination is its own pipeline and the f32 one runs the f32
//! code alone (with them as uniform parameters, lavapipe ran the f32 blocked kernel at ~60%); the CPU twin widens a half operand
//! into an f32 copy with the `half` crate (`cast::widen`, the same values) and runs the same sgemm,
//! so the two differ only in f32 summation order.

use rayon::prelude::*;

use super::cast::{dtype_code, widen};
use super::{nonzero, slot, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::sgemm::{self, Product};
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::{self, F32};

/// `C[b] = op(A[b]) @ op(B[b])`, row-major. `A` is `[m, k]` (`[k, m]` when `trans_a`), `B` is `[k, n]`
/// (`[n, k]` when `trans_b`), `C` is `[batch, m, n]`. An operand that is not batched is shared by
/// every batch entry (a weight matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matmul {
    /// Batch entries (1: a plain matmul).
    pub batch: usize,
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// The contracted dimension.
    pub k: usize,
    /// `A` is stored `[k, m]`.
    pub trans_a: bool,
    /// `B` is stored `[n, k]`.
    pub trans_b: bool,
    /// `A` has one matrix per batch entry (else shared).
    pub a_batched: bool,
    /// `B` has one matrix per batch entry (else shared).
    pub b_batched: bool,
    /// Which entry point computes it (the lowering picks by shape: [`MatmulTile::for_shape`]).
    pub tile: MatmulTile,
    /// `A`'s element type: f32, f16 or bf16.
    pub a_dtype: DType,
    /// `B`'s element type: f32, f16 or bf16.
    pub b_dtype: DType,
    /// A tensor added to the product as it is stored (a bias or a residual), so the add takes
    /// no launch and no pass over `C` of its own.
    pub addend: Addend,
}

/// What a matmul adds to its product as it stores it: `C = op(A) @ op(B) + D`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Addend {
    /// Nothing: `C = op(A) @ op(B)`.
    #[default]
    None,
    /// `D: [n]`, added to every row (a linear layer's bias).
    Bias,
    /// `D: [batch, m, n]`, elementwise (a residual connection).
    Full,
}

impl Addend {
    /// The shader's `EPILOGUE` constant.
    fn code(self) -> u32 {
        match self {
            Addend::None => 0,
            Addend::Bias => 1,
            Addend::Full => 2,
        }
    }
}

/// The matmul family's two entry points: same parameters, bindings and results (up to float
/// rounding order), different blocking. The CPU twin ignores the choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulTile {
    /// `matmul`: 64x64 output tile per workgroup, a 4x4 block per invocation, K in steps of 16.
    /// Many small workgroups: the better choice for small or thin products.
    #[default]
    Small,
    /// `matmul_blocked`: 128x128 output tile per workgroup, an 8x8 block per invocation in
    /// registers, K in steps of 8 with the next slice prefetched, vec4 loads where aligned.
    /// Four times the work per workgroup and half the workgroup-memory traffic per FLOP.
    Blocked,
}

impl MatmulTile {
    /// Both variants, for tests and benchmarks.
    pub const ALL: [MatmulTile; 2] = [MatmulTile::Small, MatmulTile::Blocked];

    /// The rule the lowering applies: [`MatmulTile::Blocked`] when both output dimensions are at
    /// least 128 (a full blocked tile), `k >= 32`, and there is enough work to fill a large GPU
    /// with 128x128 tiles, `batch * m * n * k >= 2^27` (e.g. 512^3); [`MatmulTile::Small`]
    /// otherwise. `KILN_MATMUL_TILE=small|blocked` in the environment forces one variant (read
    /// once per process; for benchmarking the rule).
    pub fn for_shape(batch: usize, m: usize, n: usize, k: usize) -> MatmulTile {
        static FORCED: std::sync::OnceLock<Option<MatmulTile>> = std::sync::OnceLock::new();
        let forced = FORCED.get_or_init(|| match std::env::var("KILN_MATMUL_TILE").as_deref() {
            Ok("small") => Some(MatmulTile::Small),
            Ok("blocked") => Some(MatmulTile::Blocked),
            _ => None,
        });
        forced.unwrap_or_else(|| MatmulTile::by_rule(batch, m, n, k))
    }

    /// [`MatmulTile::for_shape`] without the environment override.
    pub fn by_rule(batch: usize, m: usize, n: usize, k: usize) -> MatmulTile {
        let work = batch.saturating_mul(m).saturating_mul(n).saturating_mul(k);
        if m >= 128 && n >= 128 && k >= 32 && work >= 1 << 27 {
            MatmulTile::Blocked
        } else {
            MatmulTile::Small
        }
    }

    /// The WGSL entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            MatmulTile::Small => "matmul",
            MatmulTile::Blocked => "matmul_blocked",
        }
    }

    /// Rows and columns of `C` one workgroup computes.
    pub fn tile(self) -> usize {
        match self {
            MatmulTile::Small => 64,
            MatmulTile::Blocked => 128,
        }
    }
}

impl Matmul {
    /// A plain, unbatched `[m, k] @ [k, n]`, on the variant [`MatmulTile::for_shape`] picks.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Matmul {
            batch: 1,
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            a_batched: false,
            b_batched: false,
            tile: MatmulTile::for_shape(1, m, n, k),
            a_dtype: F32,
            b_dtype: F32,
            addend: Addend::None,
        }
    }
    /// The same product on another entry point.
    pub fn with_tile(self, tile: MatmulTile) -> Self {
        Matmul { tile, ..self }
    }
    /// The same product reading `A` as `a` and `B` as `b` (each f32, f16 or bf16).
    pub fn with_dtypes(self, a: DType, b: DType) -> Self {
        Matmul { a_dtype: a, b_dtype: b, ..self }
    }
    /// The same product plus `addend` (bound as a fourth buffer, `d`).
    pub fn with_addend(self, addend: Addend) -> Self {
        Matmul { addend, ..self }
    }
    /// Elements of `D`.
    pub fn d_len(&self) -> usize {
        match self.addend {
            Addend::None => 0,
            Addend::Bias => self.n,
            Addend::Full => self.batch * self.m * self.n,
        }
    }
    /// Elements of `A`.
    pub fn a_len(&self) -> usize {
        self.m * self.k * if self.a_batched { self.batch } else { 1 }
    }
    /// Elements of `B`.
    pub fn b_len(&self) -> usize {
        self.k * self.n * if self.b_batched { self.batch } else { 1 }
    }
}

/// `Params` in `shaders/matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    /// Batch entries (1: a plain matmul).
    pub batch: u32,
    /// Rows of `C`.
    pub m: u32,
    /// Columns of `C`.
    pub n: u32,
    /// The contracted dimension.
    pub k: u32,
    /// 1: A is stored `[k, m]`.
    pub trans_a: u32,
    /// 1: B is stored `[n, k]`.
    pub trans_b: u32,
    /// Elements between batch entries of A (0: shared by all).
    pub a_stride: u32,
    /// Elements between batch entries of B (0: shared by all).
    pub b_stride: u32,
}

impl Family for Matmul {
    const SHADER: &'static str = "matmul";
    const SOURCE: &'static str = shader!("matmul");
    type Params = MatmulParams;

    fn name(&self) -> &'static str {
        self.tile.entry_point()
    }

    fn slots(&self) -> Vec<Slot> {
        let mut v = vec![
            slot(1, "c", F32, self.batch * self.m * self.n, Write),
            slot(2, "a", self.a_dtype, self.a_len(), Read),
            slot(3, "b", self.b_dtype, self.b_len(), Read),
        ];
        if self.addend != Addend::None {
            v.push(slot(4, "d", F32, self.d_len(), Read));
        }
        v
    }

    fn validate(&self) -> Result<()> {
        for (operand, dtype) in [("A", self.a_dtype), ("B", self.b_dtype)] {
            if dtype == DType::U32 {
                return Err(Error::shape(
                    self.name(),
                    format!("{operand} is u32; expected f32, f16 or bf16"),
                ));
            }
        }
        nonzero(self.name(), &[self.batch, self.m, self.n, self.k])
    }

    fn params(&self) -> MatmulParams {
        let u = |x: usize| x as u32;
        MatmulParams {
            batch: u(self.batch),
            m: u(self.m),
            n: u(self.n),
            k: u(self.k),
            trans_a: self.trans_a as u32,
            trans_b: self.trans_b as u32,
            a_stride: if self.a_batched { u(self.m * self.k) } else { 0 },
            b_stride: if self.b_batched { u(self.k * self.n) } else { 0 },
        }
    }

    /// The operand types and the addend, as the shader's pipeline constants.
    fn overrides(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("A_DTYPE", dtype_code(self.a_dtype)),
            ("B_DTYPE", dtype_code(self.b_dtype)),
            ("EPILOGUE", self.addend.code()),
        ]
    }

    /// Without an addend, `d` (binding 4) is unused.
    fn unused_bindings(&self) -> Vec<u32> {
        if self.addend == Addend::None {
            vec![4]
        } else {
            Vec::new()
        }
    }

    /// One workgroup per tile of C (64 x 64 or 128 x 128), one layer per batch entry.
    fn workgroups(&self) -> [u32; 3] {
        let t = self.tile.tile();
        [self.n.div_ceil(t) as u32, self.m.div_ceil(t) as u32, self.batch as u32]
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        let (d, ins) = match (self.addend, ins) {
            (Addend::None, _) => (None, ins),
            (_, [ab @ .., In::F(d)]) => (Some(*d), ab),
            _ => mismatch(self.name()),
        };
        match (outs, ins) {
            ([Out::F(c)], [In::F(a), In::F(b)]) => matmul(self, c, a, b, d, par),
            // Half operands: widened to f32 copies first (the GPU widens them as it loads).
            ([Out::F(c)], &[a, b]) => {
                let (a, b) = (widen(self.a_dtype, a, self.name()), widen(self.b_dtype, b, self.name()));
                matmul(self, c, &a, &b, d, par)
            }
            _ => mismatch(self.name()),
        }
    }
}

/// `C[b] = op(A[b]) @ op(B[b]) (+ D)`, row-major; an unbatched operand is shared by every batch
/// entry. The addend is added after the product, rounded as a separate add kernel would.
fn matmul(mm: &Matmul, c: &mut [f32], a: &[f32], b: &[f32], d: Option<&[f32]>, par: Par) {
    let (m, n, k) = (mm.m, mm.n, mm.k);
    // Element (i, p) of op(A) is at i * rsa + p * csa; A is stored [m, k], or [k, m] when transposed.
    let (rsa, csa) = if mm.trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if mm.trans_b { (1, k) } else { (n, 1) };
    let a_stride = if mm.a_batched { m * k } else { 0 };
    let b_stride = if mm.b_batched { k * n } else { 0 };
    let product = Product { m, n, k, rsa, csa, rsb, csb };
    let c = &mut c[..mm.batch * m * n];
    sgemm::batched(&product, c, a, a_stride, b, b_stride);
    // the addend in a second pass over C (cache-hot for the small products; the GEMMs' write-only
    // path is their fast one: accumulating into a C copied from D measured slower)
    match (mm.addend, d) {
        (Addend::Bias, Some(d)) => c.chunks_exact_mut(n).for_each(|row| add_into(row, &d[..n])),
        (Addend::Full, Some(d)) => {
            if c.len() >= PAR_ADD && par.light(c.len()) {
                c.par_chunks_mut(PAR_ADD).zip(d.par_chunks(PAR_ADD)).for_each(|(c, d)| add_into(c, d));
            } else {
                add_into(c, &d[..c.len()]);
            }
        }
        _ => {}
    }
}

/// Elements per task of a threaded addend pass.
const PAR_ADD: usize = 64 * 1024;

/// `c += d`, elementwise (f32, as the separate add kernel rounds).
#[inline]
fn add_into(c: &mut [f32], d: &[f32]) {
    c.iter_mut().zip(d).for_each(|(c, &d)| *c += d);
}
