//! Casts between f32 and the half types (`shaders/cast.wgsl`): `cast_f32_bf16`, `cast_bf16_f32`,
//! `cast_f32_f16`, `cast_f16_f32`, and the element conversions the other families' CPU twins use
//! to read half buffers (`widen`).
//!
//! A half buffer holds two elements per 32-bit word (see [`DType`]). On the GPU each invocation
//! handles one word, two elements, so no two invocations write the same word; an odd length leaves
//! the last word's high half zero when narrowing, and unread when widening. The conversions are
//! integer bit operations in `shaders/common.wgsl` (no `enable f16;`, so every adapter runs them)
//! that give the same bits as the `half` crate, which the CPU twin calls: round to nearest, ties to
//! even; f32 values past f16's range become infinities; f16 subnormals are kept; NaNs stay NaN with
//! the quiet bit set and the top payload bits kept; signs (of zeros too) are kept. Widening is exact.

use std::borrow::Cow;

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use rayon::prelude::*;

use super::{nonzero, per_element, slot, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::twin::{map1, mismatch, In, Out, Par, PAR_CHUNK};
use crate::DType::{self, BF16, F16, F32};

/// `out[i] = x[i]` converted from `from` to `to`: one of f32 -> bf16, bf16 -> f32, f32 -> f16,
/// f16 -> f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cast {
    /// The input's element type.
    pub from: DType,
    /// The output's element type.
    pub to: DType,
    /// Elements.
    pub len: usize,
}

impl Cast {
    /// The (from, to) pairs with a kernel.
    pub const PAIRS: [(DType, DType); 4] = [(F32, BF16), (BF16, F32), (F32, F16), (F16, F32)];

    /// A cast of `len` elements.
    pub fn new(from: DType, to: DType, len: usize) -> Self {
        Cast { from, to, len }
    }
}

/// `Params` in `shaders/cast.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CastParams {
    /// Elements.
    pub len: u32,
    /// 32-bit words of the half side (`len / 2` rounded up): one invocation each.
    pub words: u32,
}

/// The code a shader's parameter block gives an element type of a float operand (`DTYPE_*` in
/// `shaders/common.wgsl`): 0 f32, 1 f16, 2 bf16.
pub(crate) fn dtype_code(d: DType) -> u32 {
    match d {
        F32 => 0,
        F16 => 1,
        BF16 => 2,
        DType::U32 => u32::MAX,
    }
}

impl Family for Cast {
    const SHADER: &'static str = "cast";
    const SOURCE: &'static str = shader!("cast");
    type Params = CastParams;

    fn name(&self) -> &'static str {
        match (self.from, self.to) {
            (F32, BF16) => "cast_f32_bf16",
            (BF16, F32) => "cast_bf16_f32",
            (F32, F16) => "cast_f32_f16",
            (F16, F32) => "cast_f16_f32",
            _ => "cast",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        vec![slot(1, "out", self.to, self.len, Write), slot(2, "x", self.from, self.len, Read)]
    }

    fn validate(&self) -> Result<()> {
        if !Cast::PAIRS.contains(&(self.from, self.to)) {
            return Err(Error::shape(
                "cast",
                format!("no kernel casts {} to {} (only f32 <-> f16 and f32 <-> bf16)", self.from, self.to),
            ));
        }
        nonzero(self.name(), &[self.len])
    }

    fn params(&self) -> CastParams {
        CastParams { len: self.len as u32, words: self.len.div_ceil(2) as u32 }
    }

    fn workgroups(&self) -> [u32; 3] {
        per_element(self.len.div_ceil(2))
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        let parallel = par.light(self.len);
        match (outs, ins) {
            ([Out::H(out)], [In::F(x)]) => narrow(self.to, parallel, out, x),
            ([Out::F(out)], [In::H(x)]) => widen_into(self.from, parallel, out, x),
            _ => mismatch(self.name()),
        }
    }
}

/// `out[i]` = the `to` bits of `x[i]`, rounded to nearest even (the `half` crate's conversion;
/// f16 through its slice conversion, which uses the CPU's F16C instructions where present).
fn narrow(to: DType, parallel: bool, out: &mut [u16], x: &[f32]) {
    match to {
        F16 => chunks(parallel, out, x, |o, x| o.reinterpret_cast_mut::<f16>().convert_from_f32_slice(x)),
        BF16 => map1(parallel, out, x, |v| bf16::from_f32(v).to_bits()),
        _ => unreachable!("narrowing to {to}"),
    }
}

/// `out[i]` = the half value of type `from` whose bits are `x[i]`, as f32 (exact).
fn widen_into(from: DType, parallel: bool, out: &mut [f32], x: &[u16]) {
    match from {
        F16 => chunks(parallel, out, x, |o, x| x.reinterpret_cast::<f16>().convert_to_f32_slice(o)),
        BF16 => map1(parallel, out, x, |h| bf16::from_bits(h).to_f32()),
        _ => unreachable!("widening from {from}"),
    }
}

/// `f(out_chunk, x_chunk)` over equal-length slices in `PAR_CHUNK` pieces, on rayon's threads
/// when `parallel`.
fn chunks<A: Sync, B: Send>(parallel: bool, out: &mut [B], x: &[A], f: impl Fn(&mut [B], &[A]) + Sync) {
    if parallel {
        out.par_chunks_mut(PAR_CHUNK).zip(x.par_chunks(PAR_CHUNK)).for_each(|(o, x)| f(o, x));
    } else {
        f(out, x);
    }
}

/// A float operand of a CPU twin as f32: an f32 buffer as it is, a half buffer (of type `dtype`)
/// widened into a new vector. Families that accept half inputs compute on these, so their GPU
/// kernels (which widen each element as they load it) see the same values.
pub(crate) fn widen<'a>(dtype: DType, x: In<'a>, name: &str) -> Cow<'a, [f32]> {
    match x {
        In::F(v) => Cow::Borrowed(v),
        In::H(h) => {
            let mut out = vec![0.0; h.len()];
            widen_into(dtype, false, &mut out, h);
            Cow::Owned(out)
        }
        In::U(_) => mismatch(name),
    }
}
