//! Data movement (`shaders/memory.wgsl`): gather and scatter-add along the middle axis of
//! `[outer, axis, inner]` (embeddings and their backward), fill, copy, and the in-place row write
//! of a key/value cache.

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::{F32, U32};

/// The kernels of the memory family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Memory {
    /// `out[o, j, i] = table[o, idx[j], i]`; an index out of range gives 0.
    Gather {
        /// Product of the dimensions before the axis.
        outer: usize,
        /// Length of the indexed axis.
        axis_len: usize,
        /// Product of the dimensions after the axis.
        inner: usize,
        /// Number of indices.
        n_idx: usize,
    },
    /// `out[o, a, i] = sum over j with idx[j] == a of src[o, j, i]` (out is overwritten).
    ScatterAdd {
        /// Product of the dimensions before the axis.
        outer: usize,
        /// Length of the indexed axis.
        axis_len: usize,
        /// Product of the dimensions after the axis.
        inner: usize,
        /// Number of indices.
        n_idx: usize,
    },
    /// `out[j] = value` for `j` in `0..len`.
    Fill {
        /// Elements.
        len: usize,
        /// The value written.
        value: f32,
    },
    /// `out[j] = x[j]` for `j` in `0..len`.
    Copy {
        /// Elements.
        len: usize,
    },
    /// In place: `out[o, idx[j], i] = src[o, j, i]` for every `j`; the rest of `out` keeps its
    /// contents (a key/value cache `[outer, axis_len, inner]` taking this step's rows at their
    /// positions). An index `>= axis_len` is an error on the CPU and skipped on the GPU (that row
    /// is not written). Indices should be distinct (with repeats, which row lands is unspecified
    /// on the GPU; the last on the CPU).
    WriteRows {
        /// Product of the dimensions before the axis.
        outer: usize,
        /// Length of the indexed axis of `out`.
        axis_len: usize,
        /// Product of the dimensions after the axis.
        inner: usize,
        /// Number of indices (rows of `src` along the axis).
        n_idx: usize,
    },
}

/// `Params` in `shaders/memory.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MemoryParams {
    /// gather/scatter: outer; fill/copy: len.
    pub a: u32,
    /// gather/scatter: axis_len; fill: the value's bits.
    pub b: u32,
    /// Product of the dimensions after the axis.
    pub inner: u32,
    /// Number of indices.
    pub n_idx: u32,
}

impl Family for Memory {
    const SHADER: &'static str = "memory";
    const SOURCE: &'static str = shader!("memory");
    type Params = MemoryParams;

    fn name(&self) -> &'static str {
        match self {
            Memory::Gather { .. } => "gather",
            Memory::ScatterAdd { .. } => "scatter_add",
            Memory::Fill { .. } => "fill",
            Memory::Copy { .. } => "copy",
            Memory::WriteRows { .. } => "write_rows",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match *self {
            Memory::Gather { outer, axis_len, inner, n_idx } => vec![
                slot(1, "out", F32, outer * n_idx * inner, Write),
                slot(2, "table", F32, outer * axis_len * inner, Read),
                slot(3, "index", U32, n_idx, Read),
            ],
            Memory::ScatterAdd { outer, axis_len, inner, n_idx }
            | Memory::WriteRows { outer, axis_len, inner, n_idx } => vec![
                slot(1, "out", F32, outer * axis_len * inner, Write),
                slot(2, "src", F32, outer * n_idx * inner, Read),
                slot(3, "index", U32, n_idx, Read),
            ],
            Memory::Fill { len, .. } => vec![slot(1, "out", F32, len, Write)],
            Memory::Copy { len } => vec![slot(1, "out", F32, len, Write), slot(2, "src", F32, len, Read)],
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Memory::Gather { outer, axis_len, inner, n_idx }
            | Memory::ScatterAdd { outer, axis_len, inner, n_idx }
            | Memory::WriteRows { outer, axis_len, inner, n_idx } => {
                nonzero(self.name(), &[outer, axis_len, inner, n_idx])
            }
            _ => nonzero(self.name(), &slot_lens(&self.slots())),
        }
    }

    fn params(&self) -> MemoryParams {
        let u = |x: usize| x as u32;
        match *self {
            Memory::Gather { outer, axis_len, inner, n_idx }
            | Memory::ScatterAdd { outer, axis_len, inner, n_idx }
            | Memory::WriteRows { outer, axis_len, inner, n_idx } => {
                MemoryParams { a: u(outer), b: u(axis_len), inner: u(inner), n_idx: u(n_idx) }
            }
            Memory::Fill { len, value } => MemoryParams { a: u(len), b: value.to_bits(), inner: 0, n_idx: 0 },
            Memory::Copy { len } => MemoryParams { a: u(len), b: 0, inner: 0, n_idx: 0 },
        }
    }

    fn workgroups(&self) -> [u32; 3] {
        match *self {
            Memory::Gather { outer, inner, n_idx, .. } | Memory::WriteRows { outer, inner, n_idx, .. } => {
                per_element(outer * n_idx * inner)
            }
            Memory::ScatterAdd { outer, axis_len, inner, .. } => per_element(outer * axis_len * inner),
            Memory::Fill { len, .. } | Memory::Copy { len } => per_element(len),
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], _par: Par) {
        match (*self, outs, ins) {
            (Memory::Gather { outer, axis_len, inner, n_idx }, [Out::F(out)], [In::F(t), In::U(idx)]) => {
                gather(outer, axis_len, inner, n_idx, out, t, idx)
            }
            (
                Memory::ScatterAdd { outer, axis_len, inner, n_idx },
                [Out::F(out)],
                [In::F(src), In::U(idx)],
            ) => scatter_add(outer, axis_len, inner, n_idx, out, src, idx),
            (Memory::Fill { value, .. }, [Out::F(out)], []) => out.fill(value),
            (Memory::Copy { .. }, [Out::F(out)], [In::F(src)]) => out.copy_from_slice(src),
            (
                Memory::WriteRows { outer, axis_len, inner, n_idx },
                [Out::F(out)],
                [In::F(src), In::U(idx)],
            ) => write_rows(outer, axis_len, inner, n_idx, out, src, idx),
            _ => mismatch(self.name()),
        }
    }

    /// `write_rows` refuses an out-of-range position before writing anything.
    fn check_cpu(&self, ins: &[In<'_>]) -> Result<()> {
        if let (Memory::WriteRows { axis_len, .. }, [_, In::U(idx)]) = (*self, ins) {
            if let Some((j, &a)) = idx.iter().enumerate().find(|(_, &a)| a as usize >= axis_len) {
                return Err(Error::shape(
                    self.name(),
                    format!("position {a} (index {j}) is out of range for {axis_len} rows"),
                ));
            }
        }
        Ok(())
    }
}

/// `out[o, idx[j], i] = src[o, j, i]`, in place (indices checked by `check_cpu`).
fn write_rows(
    outer: usize,
    axis_len: usize,
    inner: usize,
    n_idx: usize,
    out: &mut [f32],
    src: &[f32],
    idx: &[u32],
) {
    for o in 0..outer {
        for (j, &a) in idx.iter().enumerate() {
            let dst = (o * axis_len + a as usize) * inner;
            out[dst..dst + inner].copy_from_slice(&src[(o * n_idx + j) * inner..][..inner]);
        }
    }
}

/// `out[o, j, i] = table[o, idx[j], i]`; an index `>= axis_len` gives 0.
fn gather(
    outer: usize,
    axis_len: usize,
    inner: usize,
    n_idx: usize,
    out: &mut [f32],
    table: &[f32],
    idx: &[u32],
) {
    for o in 0..outer {
        for (j, &a) in idx.iter().enumerate() {
            let dst = &mut out[(o * n_idx + j) * inner..][..inner];
            match (a as usize) < axis_len {
                true => dst.copy_from_slice(&table[(o * axis_len + a as usize) * inner..][..inner]),
                false => dst.fill(0.0),
            }
        }
    }
}

/// `out[o, a, i] = sum over j with idx[j] == a of src[o, j, i]`; out is overwritten, and an index
/// `>= axis_len` contributes nothing.
fn scatter_add(
    outer: usize,
    axis_len: usize,
    inner: usize,
    n_idx: usize,
    out: &mut [f32],
    src: &[f32],
    idx: &[u32],
) {
    out.fill(0.0);
    for o in 0..outer {
        for (j, &a) in idx.iter().enumerate() {
            if (a as usize) < axis_len {
                let dst = &mut out[(o * axis_len + a as usize) * inner..][..inner];
                for (d, &s) in dst.iter_mut().zip(&src[(o * n_idx + j) * inner..][..inner]) {
                    *d += s;
                }
            }
        }
    }
}
