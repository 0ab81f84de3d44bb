//! Moving data between layouts (`shaders/layout.wgsl`): permute (a transpose of up to 4 axes,
//! e.g. attention heads `[B, T, H, D] -> [B, H, T, D]`) and slice/pad along one axis (each other's
//! adjoint; concat is pads added together).

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot, MAX_RANK};
use crate::error::{Error, Result};
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// The kernels of the layout family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `out = x.permute(perm)` (see [`Permute`]).
    Permute(Permute),
    /// `out[o, j, i] = x[o, j + offset, i]` when `0 <= j + offset < src_len`, else 0, for `j` in
    /// `0..out_len`: a slice (offset >= 0, out_len <= src_len) or a zero pad (offset <= 0), which
    /// are each other's adjoint. Concat is pads added together.
    SlicePad {
        /// Product of the dimensions before the axis.
        outer: usize,
        /// Length of the axis in the input.
        src_len: usize,
        /// Length of the axis in the output.
        out_len: usize,
        /// Product of the dimensions after the axis.
        inner: usize,
        /// Input position of output position 0 along the axis.
        offset: i32,
    },
}

/// `Params` in `shaders/layout.wgsl`, one block for both entry points.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayoutParams {
    /// permute: len; slice_pad: outer.
    pub a: u32,
    /// Length of the axis in the input.
    pub src_len: u32,
    /// Length of the axis in the output.
    pub out_len: u32,
    /// Product of the dimensions after the axis.
    pub inner: u32,
    /// permute: the output dims, padded on the left with 1s; slice_pad: `v[0]` = offset (i32 bits).
    pub v: [u32; 4],
    /// permute: the stride in x of each output dim.
    pub s: [u32; 4],
}

impl Family for Layout {
    const SHADER: &'static str = "layout";
    const SOURCE: &'static str = shader!("layout");
    type Params = LayoutParams;

    fn name(&self) -> &'static str {
        match self {
            Layout::Permute(_) => "permute",
            Layout::SlicePad { .. } => "slice_pad",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match *self {
            Layout::Permute(pm) => {
                vec![slot(1, "out", F32, pm.len(), Write), slot(2, "x", F32, pm.len(), Read)]
            }
            Layout::SlicePad { outer, src_len, out_len, inner, .. } => vec![
                slot(1, "out", F32, outer * out_len * inner, Write),
                slot(2, "x", F32, outer * src_len * inner, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Layout::Permute(_) => nonzero(self.name(), &slot_lens(&self.slots())),
            Layout::SlicePad { outer, src_len, out_len, inner, .. } => {
                nonzero(self.name(), &[outer, src_len, out_len, inner])
            }
        }
    }

    fn params(&self) -> LayoutParams {
        let words = |d: [usize; MAX_RANK]| d.map(|x| x as u32);
        match *self {
            Layout::Permute(pm) => LayoutParams {
                a: pm.len() as u32,
                src_len: 0,
                out_len: 0,
                inner: 0,
                v: words(pm.out),
                s: words(pm.src_strides),
            },
            Layout::SlicePad { outer, src_len, out_len, inner, offset } => LayoutParams {
                a: outer as u32,
                src_len: src_len as u32,
                out_len: out_len as u32,
                inner: inner as u32,
                v: [offset as u32, 0, 0, 0],
                s: [0; 4],
            },
        }
    }

    fn workgroups(&self) -> [u32; 3] {
        match *self {
            Layout::Permute(pm) => per_element(pm.len()),
            Layout::SlicePad { outer, out_len, inner, .. } => per_element(outer * out_len * inner),
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], _par: Par) {
        match (*self, outs, ins) {
            (Layout::Permute(pm), [Out::F(out)], [In::F(x)]) => permute(&pm, out, x),
            (Layout::SlicePad { outer, src_len, out_len, inner, offset }, [Out::F(out)], [In::F(x)]) => {
                slice_pad(outer, src_len, out_len, inner, offset, out, x)
            }
            _ => mismatch(self.name()),
        }
    }
}

/// `out = x.permute(perm)` for `x` of rank <= 4, resolved into the output's dimensions (padded
/// on the left with 1s to rank 4) and, per output dimension, the stride of `x` it walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permute {
    /// Output dims, padded on the left with 1s to rank 4.
    pub out: [usize; MAX_RANK],
    /// Stride of `x` walked by each output dim.
    pub src_strides: [usize; MAX_RANK],
}

impl Permute {
    /// Output dimension `d` is input dimension `perm[d]`; `perm` must be a permutation of
    /// `0..shape.len()`.
    pub fn new(op: &'static str, shape: &[usize], perm: &[usize]) -> Result<Self> {
        let r = shape.len();
        let mut seen = [false; MAX_RANK];
        if r > MAX_RANK
            || perm.len() != r
            || perm.iter().any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::shape(
                op,
                format!("{perm:?} is not a permutation of the axes of {shape:?} (rank <= {MAX_RANK})"),
            ));
        }
        let mut strides = vec![1usize; r];
        for d in (0..r.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        let mut p = Permute { out: [1; MAX_RANK], src_strides: [0; MAX_RANK] };
        for d in 0..r {
            p.out[MAX_RANK - r + d] = shape[perm[d]];
            p.src_strides[MAX_RANK - r + d] = strides[perm[d]];
        }
        Ok(p)
    }

    /// Output elements.
    pub fn len(&self) -> usize {
        self.out.iter().product()
    }

    /// Whether the output has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The offset into `x` of output element `i`.
    #[inline]
    pub fn src_offset(&self, mut i: usize) -> usize {
        let mut off = 0;
        for d in (0..MAX_RANK).rev() {
            off += (i % self.out[d]) * self.src_strides[d];
            i /= self.out[d];
        }
        off
    }
}

fn permute(pm: &Permute, out: &mut [f32], x: &[f32]) {
    // four nested loops with running offsets: no division per element
    let ([n0, n1, n2, n3], [s0, s1, s2, s3]) = (pm.out, pm.src_strides);
    let mut rows = out.chunks_exact_mut(n3.max(1));
    for i0 in 0..n0 {
        for i1 in 0..n1 {
            for i2 in 0..n2 {
                let base = i0 * s0 + i1 * s1 + i2 * s2;
                let Some(row) = rows.next() else { return };
                if s3 == 1 {
                    row.copy_from_slice(&x[base..base + n3]);
                } else {
                    for (i3, o) in row.iter_mut().enumerate() {
                        *o = x[base + i3 * s3];
                    }
                }
            }
        }
    }
}

/// `out[o, j, i] = x[o, j + offset, i]` inside `0..src_len`, else 0.
fn slice_pad(
    outer: usize,
    src_len: usize,
    out_len: usize,
    inner: usize,
    offset: i32,
    out: &mut [f32],
    x: &[f32],
) {
    for o in 0..outer {
        for j in 0..out_len {
            let dst = &mut out[(o * out_len + j) * inner..][..inner];
            let s = j as i64 + offset as i64;
            if (0..src_len as i64).contains(&s) {
                dst.copy_from_slice(&x[(o * src_len + s as usize) * inner..][..inner]);
            } else {
                dst.fill(0.0);
            }
        }
    }
}
