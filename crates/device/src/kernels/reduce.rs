//! Reductions over the middle axis of `[outer, len, inner]` to `[outer, inner]`
//! (`shaders/reduce.wgsl`). On the CPU sums accumulate in f64, so the reference is exact to f32
//! rounding whatever the length.

use rayon::prelude::*;

use super::{nonzero, slot, spread, Access::*, Family, Slot};
use crate::error::Result;
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::{F32, U32};

/// Reductions over one axis of a tensor viewed as `[outer, len, inner]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// Sum.
    Sum,
    /// Mean.
    Mean,
    /// Maximum.
    Max,
    /// Index of the first maximum, written to a u32 buffer.
    Argmax,
}

impl ReduceOp {
    /// Every op, in declaration order.
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Argmax];

    /// The op's name (`"sum"`, `"mean"`, `"max"`, `"argmax"`).
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Argmax => "argmax",
        }
    }
}

/// Reduce `[outer, len, inner]` over the middle axis to `[outer, inner]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reduce {
    /// The reduction.
    pub op: ReduceOp,
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the reduced axis.
    pub len: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

/// `Params` in `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    /// Product of the dimensions before the axis.
    pub outer: u32,
    /// Length of the reduced axis.
    pub len: u32,
    /// Product of the dimensions after the axis.
    pub inner: u32,
}

impl Family for Reduce {
    const SHADER: &'static str = "reduce";
    const SOURCE: &'static str = shader!("reduce");
    type Params = ReduceParams;

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn slots(&self) -> Vec<Slot> {
        let Reduce { op, outer, len, inner } = *self;
        match op {
            ReduceOp::Argmax => {
                vec![
                    slot(3, "index", U32, outer * inner, Write),
                    slot(2, "x", F32, outer * len * inner, Read),
                ]
            }
            _ => vec![slot(1, "y", F32, outer * inner, Write), slot(2, "x", F32, outer * len * inner, Read)],
        }
    }

    fn validate(&self) -> Result<()> {
        nonzero(self.name(), &[self.outer, self.len, self.inner])
    }

    fn params(&self) -> ReduceParams {
        ReduceParams { outer: self.outer as u32, len: self.len as u32, inner: self.inner as u32 }
    }

    /// One 64-wide workgroup per output element.
    fn workgroups(&self) -> [u32; 3] {
        spread(self.outer * self.inner)
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        let Reduce { op, outer, len, inner } = *self;
        match (op, outs, ins) {
            (ReduceOp::Argmax, [Out::U(idx)], [In::F(x)]) => argmax(outer, len, inner, idx, x),
            (_, [Out::F(y)], [In::F(x)]) => reduce(par, op, outer, len, inner, y, x),
            _ => mismatch(self.name()),
        }
    }
}

/// Inner positions handled together, accumulated in a stack array.
const TILE: usize = 64;

/// Sum, mean or max: `y[o, i] = reduce over l of x[o, l, i]`.
fn reduce(par: Par, op: ReduceOp, outer: usize, len: usize, inner: usize, y: &mut [f32], x: &[f32]) {
    let one = |y: &mut [f32], x: &[f32]| reduce_outer(op, len, inner, y, x);
    if par.light(x.len()) && outer > 1 {
        y.par_chunks_mut(inner).zip(x.par_chunks(len * inner)).for_each(|(y, x)| one(y, x));
    } else {
        y.chunks_mut(inner).zip(x.chunks(len * inner)).for_each(|(y, x)| one(y, x));
    }
}

/// One outer index: `x` is `[len, inner]`, `y` is `[inner]`.
fn reduce_outer(op: ReduceOp, len: usize, inner: usize, y: &mut [f32], x: &[f32]) {
    if inner == 1 {
        y[0] = match op {
            ReduceOp::Max => x.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            _ => {
                let s: f64 = x.iter().map(|&v| v as f64).sum();
                (if op == ReduceOp::Mean { s / len as f64 } else { s }) as f32
            }
        };
        return;
    }
    for i0 in (0..inner).step_by(TILE) {
        let w = TILE.min(inner - i0);
        let y = &mut y[i0..i0 + w];
        if op == ReduceOp::Max {
            y.fill(f32::NEG_INFINITY);
            for row in x.chunks(inner) {
                for (m, &v) in y.iter_mut().zip(&row[i0..i0 + w]) {
                    *m = m.max(v);
                }
            }
            continue;
        }
        let mut acc = [0f64; TILE];
        for row in x.chunks(inner) {
            for (s, &v) in acc.iter_mut().zip(&row[i0..i0 + w]) {
                *s += v as f64;
            }
        }
        let scale = if op == ReduceOp::Mean { 1.0 / len as f64 } else { 1.0 };
        for (out, s) in y.iter_mut().zip(acc) {
            *out = (s * scale) as f32;
        }
    }
}

/// Index of the first maximum along the middle axis. A NaN never wins (comparisons with it fail).
fn argmax(outer: usize, len: usize, inner: usize, idx: &mut [u32], x: &[f32]) {
    for o in 0..outer {
        for i in 0..inner {
            let (mut best, mut at) = (x[o * len * inner + i], 0);
            for l in 1..len {
                let v = x[(o * len + l) * inner + i];
                if v > best {
                    best = v;
                    at = l;
                }
            }
            idx[o * inner + i] = at as u32;
        }
    }
}
