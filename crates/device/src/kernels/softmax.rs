//! Softmax and log-softmax of `scale * x` over the last axis of `[rows, cols]`, optionally with
//! attention's causal mask or a mask by query positions (a decode step over a key/value cache),
//! and their backward kernels (`shaders/softmax.wgsl`).

use super::{nonzero, slot, spread, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::twin::{mismatch, rows, sum_f64, In, Out, Par};
use crate::kernels::unary::fast_exp;
use crate::DType::{F32, U32};

/// The kernels of the softmax family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Softmax {
    /// Softmax (or log-softmax) of `scale * x` over the last axis of `[rows, cols]`.
    /// With `causal` (softmax only), the rows are those of `[.., T, T]` score matrices (`cols` is
    /// `T`, `rows` a multiple of it): row `r` takes columns `j <= r % T` and writes exactly 0 to the
    /// others (attention's causal mask, without a `-inf` constant). Plain softmax is `scale` 1,
    /// `causal` false ([`crate::Kernel::softmax`]).
    Forward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Log-softmax instead of softmax.
        log: bool,
        /// Factor applied to x before the softmax.
        scale: f32,
        /// Mask columns after each row's position (softmax only).
        causal: bool,
    },
    /// Softmax of `scale * x` over `[rows, cols]` masked by query positions: the rows are those
    /// of `[.., queries, cols]` score matrices (`rows` a multiple of `queries`), and row `r` takes
    /// the columns `j <= positions[r % queries]` (all of them for a position `>= cols`) and writes
    /// exactly 0 to the others. Its backward is [`Softmax::Backward`] (masked outputs are 0).
    Upto {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis (the keys).
        cols: usize,
        /// Factor applied to x before the softmax.
        scale: f32,
        /// Length of the positions buffer (the query axis, innermost before `cols`).
        queries: usize,
    },
    /// Backward of softmax from its output y: `dx = scale * y * (dy - sum(dy * y))`;
    /// of log-softmax: `dx = scale * (dy - exp(y) * sum(dy))`. Causally masked entries have y = 0,
    /// so their gradient is 0 with no mask of its own.
    Backward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Log-softmax instead of softmax.
        log: bool,
        /// Factor applied to x before the softmax.
        scale: f32,
    },
}

/// `Params` in `shaders/softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    /// Rows.
    pub rows: u32,
    /// Length of each row.
    pub cols: u32,
    /// Factor applied to x.
    pub scale: f32,
    /// 1: the causal mask (forward softmax only).
    pub causal: u32,
    /// Length of the positions buffer (`softmax_upto` only).
    pub queries: u32,
}

impl Softmax {
    fn rows_cols(&self) -> (usize, usize) {
        match *self {
            Softmax::Forward { rows, cols, .. }
            | Softmax::Backward { rows, cols, .. }
            | Softmax::Upto { rows, cols, .. } => (rows, cols),
        }
    }
}

impl Family for Softmax {
    const SHADER: &'static str = "softmax";
    const SOURCE: &'static str = shader!("softmax");
    type Params = SoftmaxParams;

    fn name(&self) -> &'static str {
        match self {
            Softmax::Forward { log: false, .. } => "softmax",
            Softmax::Forward { log: true, .. } => "log_softmax",
            Softmax::Backward { log: false, .. } => "softmax_grad",
            Softmax::Backward { log: true, .. } => "log_softmax_grad",
            Softmax::Upto { .. } => "softmax_upto",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        let (rows, cols) = self.rows_cols();
        match self {
            Softmax::Forward { .. } => {
                vec![slot(1, "y", F32, rows * cols, Write), slot(2, "x", F32, rows * cols, Read)]
            }
            Softmax::Backward { .. } => vec![
                slot(1, "dx", F32, rows * cols, Write),
                slot(2, "y", F32, rows * cols, Read),
                slot(3, "dy", F32, rows * cols, Read),
            ],
            Softmax::Upto { queries, .. } => vec![
                slot(1, "y", F32, rows * cols, Write),
                slot(2, "x", F32, rows * cols, Read),
                slot(4, "positions", U32, *queries, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        let (rows, cols) = self.rows_cols();
        nonzero(self.name(), &[rows, cols])?;
        match *self {
            Softmax::Forward { scale, .. }
            | Softmax::Backward { scale, .. }
            | Softmax::Upto { scale, .. }
                if !scale.is_finite() =>
            {
                Err(Error::shape(self.name(), format!("scale must be finite, got {scale}")))
            }
            Softmax::Forward { causal: true, log: true, .. } => {
                Err(Error::shape(self.name(), "the causal mask is for softmax, not log-softmax"))
            }
            Softmax::Forward { rows, cols, causal: true, .. } if rows % cols != 0 => Err(Error::shape(
                self.name(),
                format!("causal rows ({rows}) must be whole [T, T] blocks of T = cols = {cols}"),
            )),
            Softmax::Upto { rows, queries, .. } if queries == 0 || rows % queries != 0 => Err(Error::shape(
                self.name(),
                format!("rows ({rows}) must be whole [{queries}, cols] blocks of the query positions"),
            )),
            _ => Ok(()),
        }
    }

    fn params(&self) -> SoftmaxParams {
        let (rows, cols) = self.rows_cols();
        let (scale, causal, queries) = match *self {
            Softmax::Forward { scale, causal, .. } => (scale, causal, 0),
            Softmax::Backward { scale, .. } => (scale, false, 0),
            Softmax::Upto { scale, queries, .. } => (scale, false, queries),
        };
        let (rows, cols, causal, queries) = (rows as u32, cols as u32, causal as u32, queries as u32);
        SoftmaxParams { rows, cols, scale, causal, queries }
    }

    /// One 64-wide workgroup per row.
    fn workgroups(&self) -> [u32; 3] {
        spread(self.rows_cols().0)
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        match (*self, outs, ins) {
            (Softmax::Forward { cols, log, scale, causal, .. }, [Out::F(y)], [In::F(x)]) => {
                let n = |r: usize| if causal { r % cols + 1 } else { cols };
                softmax(par, cols, log, scale, n, y, x)
            }
            (Softmax::Upto { cols, scale, queries, .. }, [Out::F(y)], [In::F(x), In::U(pos)]) => {
                let n = |r: usize| (pos[r % queries] as usize).min(cols - 1) + 1;
                softmax(par, cols, false, scale, n, y, x)
            }
            (Softmax::Backward { cols, log, scale, .. }, [Out::F(dx)], [In::F(y), In::F(dy)]) => {
                softmax_grad(par, cols, log, scale, dx, y, dy)
            }
            _ => mismatch(self.name()),
        }
    }
}

/// `max(row)` and `sum(exp(row - max))`, the stable pieces of softmax and logsumexp.
#[inline(always)]
pub(crate) fn max_and_sum_exp(row: &[f32]) -> (f32, f64) {
    let m = row_max(row);
    (m, sum_exp(row, m))
}

/// The largest entry of `row` (NaNs skipped, as `f32::max` does; -inf if empty), 16 lanes at a
/// time: max is exact, so the lane order changes nothing.
#[inline(always)]
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = row.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    lanes.iter().chain(rest).copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `sum(exp(row - m))` in f64 ([`sum_f64`]'s fixed order); the exponentials (`fast_exp`, within 2
/// ulp) are computed a block at a time so they vectorize.
#[inline(always)]
pub(crate) fn sum_exp(row: &[f32], m: f32) -> f64 {
    let mut block = [0f32; 64];
    let mut s = 0f64;
    for c in row.chunks(64) {
        let e = &mut block[..c.len()];
        for (o, &v) in e.iter_mut().zip(c) {
            *o = fast_exp(v - m);
        }
        s += sum_f64(e.len(), |i| e[i] as f64);
    }
    s
}

/// Softmax (or log-softmax) of each row of `scale * x`, shifted by the row max so nothing
/// overflows. Row `r` takes its first `row_len(r)` entries (all of them, or those a mask keeps)
/// and the rest are 0.
fn softmax(
    par: Par,
    cols: usize,
    log: bool,
    scale: f32,
    row_len: impl Fn(usize) -> usize + Sync,
    y: &mut [f32],
    x: &[f32],
) {
    rows(
        par.heavy(y.len()),
        cols,
        y,
        x,
        x,
        #[inline(always)]
        |r, y, x, _| {
            let n = row_len(r);
            // scale * x goes to the output row first, then is transformed in place
            let (y, masked) = y.split_at_mut(n);
            y.iter_mut().zip(x).for_each(|(o, &a)| *o = scale * a);
            let m = row_max(y);
            if log {
                let lse = m as f64 + sum_exp(y, m).ln();
                y.iter_mut().for_each(|v| *v = (*v as f64 - lse) as f32);
            } else {
                y.iter_mut().for_each(|v| *v = fast_exp(*v - m));
                let s = sum_f64(y.len(), |i| y[i] as f64);
                let inv = (1.0 / s) as f32;
                y.iter_mut().for_each(|v| *v *= inv);
            }
            masked.fill(0.0);
        },
    )
}

/// Softmax: `dx = scale * y * (dy - sum(dy * y))`; log-softmax: `dx = scale * (dy - exp(y) * sum(dy))`.
fn softmax_grad(par: Par, cols: usize, log: bool, scale: f32, dx: &mut [f32], y: &[f32], dy: &[f32]) {
    rows(
        if log { par.heavy(dx.len()) } else { par.light(dx.len()) },
        cols,
        dx,
        y,
        dy,
        #[inline(always)]
        |_, dx, y, dy| {
            if log {
                let s = sum_f64(dy.len(), |i| dy[i] as f64) as f32;
                for ((out, &yv), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *out = scale * (g - fast_exp(yv) * s);
                }
            } else {
                let dot = sum_f64(y.len(), |i| y[i] as f64 * dy[i] as f64) as f32;
                for ((out, &yv), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *out = scale * yv * (g - dot);
                }
            }
        },
    )
}
