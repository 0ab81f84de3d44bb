//! Binary elementwise ops with numpy broadcasting (`shaders/binary.wgsl`): the broadcast is
//! resolved once into strides ([`Broadcast`]), so kernels need no shape logic. Comparisons give
//! 1.0 or 0.0.

use rayon::prelude::*;

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot, MAX_RANK};
use crate::error::{Error, Result};
use crate::kernels::twin::{map2, map_wide, mismatch, zip2_wide, In, Out, Par, PAR_CHUNK};
use crate::DType::F32;

/// Binary elementwise ops with broadcasting. Comparisons return 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`.
    Mul,
    /// `a / b`.
    Div,
    /// `max(a, b)`.
    Max,
    /// `min(a, b)`.
    Min,
    /// `a == b`.
    Eq,
    /// `a != b`.
    Ne,
    /// `a < b`.
    Lt,
    /// `a <= b`.
    Le,
    /// `a > b`.
    Gt,
    /// `a >= b`.
    Ge,
}

impl BinaryOp {
    /// Every op, in declaration order.
    pub const ALL: [BinaryOp; 12] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];

    /// The op's name in errors and kernel names (`"add"`, `"maximum"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
        }
    }

    /// The op on two values (the CPU reference).
    #[inline(always)]
    pub fn eval(self, a: f32, b: f32) -> f32 {
        let flag = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::Ne => flag(a != b),
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
        }
    }
}

impl BinaryOp {
    /// `a op b` in f64: the float64 reference, written once for the device tests and the graph's
    /// float64 interpreter (`kiln_graph::reference`).
    pub fn eval_f64(self, a: f64, b: f64) -> f64 {
        let flag = |c: bool| c as u8 as f64;
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::Ne => flag(a != b),
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
        }
    }
}

/// Calls `$body` with `$o` bound to each op as a `const` (see `for_each_unary` in `unary`).
macro_rules! with_binary {
    ($op:expr, $o:ident => $body:expr) => {
        match $op {
            BinaryOp::Add => with_binary!(@ Add, $o, $body),
            BinaryOp::Sub => with_binary!(@ Sub, $o, $body),
            BinaryOp::Mul => with_binary!(@ Mul, $o, $body),
            BinaryOp::Div => with_binary!(@ Div, $o, $body),
            BinaryOp::Max => with_binary!(@ Max, $o, $body),
            BinaryOp::Min => with_binary!(@ Min, $o, $body),
            BinaryOp::Eq => with_binary!(@ Eq, $o, $body),
            BinaryOp::Ne => with_binary!(@ Ne, $o, $body),
            BinaryOp::Lt => with_binary!(@ Lt, $o, $body),
            BinaryOp::Le => with_binary!(@ Le, $o, $body),
            BinaryOp::Gt => with_binary!(@ Gt, $o, $body),
            BinaryOp::Ge => with_binary!(@ Ge, $o, $body),
        }
    };
    (@ $v:ident, $o:ident, $body:expr) => {{
        #[allow(non_upper_case_globals)]
        const $o: BinaryOp = BinaryOp::$v;
        $body
    }};
}

/// `c = a op b` with numpy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Binary {
    /// The op.
    pub op: BinaryOp,
    /// How `a` and `b` broadcast to the output.
    pub bc: Broadcast,
}

/// `Params` in `shaders/binary.wgsl` (`vec4<u32>` members start at 16-byte offsets).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BinaryParams {
    /// Output elements.
    pub len: u32,
    /// Padding (the next member starts at 16 bytes).
    pub pad0: u32,
    /// Padding.
    pub pad1: u32,
    /// Padding.
    pub pad2: u32,
    /// Output dims, right-aligned, padded with 1.
    pub out: [u32; 4],
    /// 0 where `a` is broadcast.
    pub a_strides: [u32; 4],
    /// 0 where `b` is broadcast.
    pub b_strides: [u32; 4],
}

impl Family for Binary {
    const SHADER: &'static str = "binary";
    const SOURCE: &'static str = shader!("binary");
    type Params = BinaryParams;

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn slots(&self) -> Vec<Slot> {
        vec![
            slot(1, "c", F32, self.bc.len(), Write),
            slot(2, "a", F32, self.bc.a_len, Read),
            slot(3, "b", F32, self.bc.b_len, Read),
        ]
    }

    fn validate(&self) -> Result<()> {
        nonzero(self.name(), &slot_lens(&self.slots()))
    }

    fn params(&self) -> BinaryParams {
        let words = |d: [usize; MAX_RANK]| d.map(|x| x as u32);
        BinaryParams {
            len: self.bc.len() as u32,
            pad0: 0,
            pad1: 0,
            pad2: 0,
            out: words(self.bc.out),
            a_strides: words(self.bc.a_strides),
            b_strides: words(self.bc.b_strides),
        }
    }

    fn workgroups(&self) -> [u32; 3] {
        per_element(self.bc.len())
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        match (outs, ins) {
            ([Out::F(c)], [In::F(a), In::F(b)]) => binary(par, self.op, &self.bc, c, a, b),
            _ => mismatch(self.name()),
        }
    }
}

/// `c = a op b` with the broadcast resolved in `bc`.
fn binary(par: Par, op: BinaryOp, bc: &Broadcast, c: &mut [f32], a: &[f32], b: &[f32]) {
    if a.len() == c.len() && b.len() == c.len() {
        // Same shape: strides are the identity.
        return with_binary!(op, o => map2(par.light(c.len()), c, a, b, #[inline(always)] |x, y| o.eval(x, y)));
    }
    let bc = &bc.coalesced();
    with_binary!(op, o => {
        let run = |start: usize, c: &mut [f32]| broadcast_range(bc, start, c, a, b, #[inline(always)] |x, y| o.eval(x, y));
        if par.light(c.len()) {
            c.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(i, c)| run(i * PAR_CHUNK, c))
        } else {
            run(0, c)
        }
    })
}

/// Writes output elements `start..start + c.len()`, walking the innermost dimension with its
/// strides and recomputing offsets only at the start of each innermost row.
fn broadcast_range(
    bc: &Broadcast,
    start: usize,
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32,
) {
    let row = bc.out[3];
    let (sa, sb) = (bc.a_strides[3], bc.b_strides[3]);
    let mut done = 0;
    while done < c.len() {
        let i = start + done;
        let (oa, ob) = bc.offsets(i);
        let n = (row - i % row).min(c.len() - done);
        let c = &mut c[done..done + n];
        // The common innermost strides get loops the compiler vectorizes.
        match (sa, sb) {
            (1, 1) => zip2_wide(c, &a[oa..oa + n], &b[ob..ob + n], &f),
            (1, 0) => map_wide(
                c,
                &a[oa..oa + n],
                #[inline(always)]
                |x| f(x, b[ob]),
            ),
            (0, 1) => map_wide(
                c,
                &b[ob..ob + n],
                #[inline(always)]
                |y| f(a[oa], y),
            ),
            _ => c.iter_mut().enumerate().for_each(|(j, o)| *o = f(a[oa + j * sa], b[ob + j * sb])),
        }
        done += n;
    }
}

/// numpy-style broadcasting of `a` and `b`, right-aligned and padded to [`MAX_RANK`] dimensions.
/// A stride of 0 repeats an operand along that dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Broadcast {
    /// Output dims, right-aligned, padded with 1.
    pub out: [usize; MAX_RANK],
    /// Stride of `a` per output dim; 0 where `a` is broadcast.
    pub a_strides: [usize; MAX_RANK],
    /// Stride of `b` per output dim; 0 where `b` is broadcast.
    pub b_strides: [usize; MAX_RANK],
    /// Elements of `a`.
    pub a_len: usize,
    /// Elements of `b`.
    pub b_len: usize,
}

impl Broadcast {
    /// Same-shape operands of `len` elements.
    pub fn same(len: usize) -> Self {
        Broadcast {
            out: [1, 1, 1, len],
            a_strides: [0, 0, 0, 1],
            b_strides: [0, 0, 0, 1],
            a_len: len,
            b_len: len,
        }
    }

    /// Resolves the broadcast of two shapes; `op` names the caller in the error.
    pub fn new(op: &'static str, a: &[usize], b: &[usize]) -> Result<Self> {
        if a.len() > MAX_RANK || b.len() > MAX_RANK {
            return Err(Error::shape(op, format!("{a:?} and {b:?}: at most {MAX_RANK} dimensions")));
        }
        let pad = |s: &[usize]| {
            let mut p = [1usize; MAX_RANK];
            p[MAX_RANK - s.len()..].copy_from_slice(s);
            p
        };
        let (pa, pb) = (pad(a), pad(b));
        let mut out = [1usize; MAX_RANK];
        for d in 0..MAX_RANK {
            out[d] = match (pa[d], pb[d]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(Error::shape(op, format!("shapes {a:?} and {b:?} do not broadcast")));
                }
            };
        }
        let strides = |p: [usize; MAX_RANK]| {
            let mut s = [0usize; MAX_RANK];
            let mut acc = 1;
            for d in (0..MAX_RANK).rev() {
                s[d] = if p[d] == 1 { 0 } else { acc };
                acc *= p[d];
            }
            s
        };
        Ok(Broadcast {
            out,
            a_strides: strides(pa),
            b_strides: strides(pb),
            a_len: pa.iter().product(),
            b_len: pb.iter().product(),
        })
    }

    /// Number of output elements.
    pub fn len(&self) -> usize {
        self.out.iter().product()
    }

    /// Whether the output has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the result, without the leading padding.
    pub fn out_shape(&self, rank: usize) -> Vec<usize> {
        self.out[MAX_RANK - rank..].to_vec()
    }

    /// The same element mapping over the fewest dimensions: size-1 dimensions dropped and
    /// neighbours merged where both operands walk them as one (contiguous, or both broadcast).
    /// The CPU twin walks this form, so a bias over `[n, c, h, w]` runs rows of `h * w`, not `w`.
    pub fn coalesced(&self) -> Broadcast {
        let mut dims: Vec<(usize, usize, usize)> = Vec::with_capacity(MAX_RANK);
        for d in 0..MAX_RANK {
            let cur = (self.out[d], self.a_strides[d], self.b_strides[d]);
            if cur.0 == 1 {
                continue;
            }
            match dims.last_mut() {
                Some(prev) if prev.1 == cur.1 * cur.0 && prev.2 == cur.2 * cur.0 => {
                    *prev = (prev.0 * cur.0, cur.1, cur.2)
                }
                _ => dims.push(cur),
            }
        }
        let mut bc =
            Broadcast { out: [1; MAX_RANK], a_strides: [0; MAX_RANK], b_strides: [0; MAX_RANK], ..*self };
        for (k, &(n, sa, sb)) in dims.iter().rev().enumerate() {
            let d = MAX_RANK - 1 - k;
            (bc.out[d], bc.a_strides[d], bc.b_strides[d]) = (n, sa, sb);
        }
        bc
    }

    /// Offsets into `a` and `b` of output element `i`.
    #[inline]
    pub fn offsets(&self, mut i: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for d in (0..MAX_RANK).rev() {
            let c = i % self.out[d];
            i /= self.out[d];
            oa += c * self.a_strides[d];
            ob += c * self.b_strides[d];
        }
        (oa, ob)
    }
}
