//! Reductions over the middle axis of `[outer, len, inner]`, and softmax / log-softmax over rows.
//! Sums accumulate in f64, so the CPU reference is exact to f32 rounding whatever the length.

use rayon::prelude::*;

use crate::kernel::ReduceOp;

use super::Par;

/// Inner positions handled together, accumulated in a stack array.
const TILE: usize = 64;

/// Sum, mean or max: `y[o, i] = reduce over l of x[o, l, i]`.
pub(crate) fn reduce(
    par: Par,
    op: ReduceOp,
    outer: usize,
    len: usize,
    inner: usize,
    y: &mut [f32],
    x: &[f32],
) {
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
pub(crate) fn argmax(outer: usize, len: usize, inner: usize, idx: &mut [u32], x: &[f32]) {
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

/// Row-parallel helper: `f(row_index, out_row, in_row, other_row)` over rows of `cols`.
pub(super) fn rows(
    parallel: bool,
    cols: usize,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: impl Fn(usize, &mut [f32], &[f32], &[f32]) + Sync,
) {
    if parallel && out.len() > cols {
        out.par_chunks_mut(cols)
            .zip(a.par_chunks(cols).zip(b.par_chunks(cols)))
            .enumerate()
            .for_each(|(r, (o, (a, b)))| f(r, o, a, b));
    } else {
        out.chunks_mut(cols)
            .zip(a.chunks(cols).zip(b.chunks(cols)))
            .enumerate()
            .for_each(|(r, (o, (a, b)))| f(r, o, a, b));
    }
}

/// `max(row)` and `sum(exp(row - max))`, the stable pieces of softmax and logsumexp.
pub(crate) fn max_and_sum_exp(row: &[f32]) -> (f32, f64) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s = row.iter().map(|&v| (v - m).exp() as f64).sum();
    (m, s)
}

/// Softmax (or log-softmax) of each row of `scale * x`, shifted by the row max so nothing
/// overflows. With `causal`, row `r` takes its first `r % cols + 1` entries and the rest are 0.
pub(crate) fn softmax(par: Par, cols: usize, log: bool, scale: f32, causal: bool, y: &mut [f32], x: &[f32]) {
    rows(par.heavy(y.len()), cols, y, x, x, |r, y, x, _| {
        let n = if causal { r % cols + 1 } else { cols };
        // scale * x goes to the output row first, then is transformed in place
        let (y, masked) = y.split_at_mut(n);
        y.iter_mut().zip(x).for_each(|(o, &a)| *o = scale * a);
        let (m, s) = max_and_sum_exp(y);
        if log {
            let lse = m as f64 + s.ln();
            y.iter_mut().for_each(|v| *v = (*v as f64 - lse) as f32);
        } else {
            let inv = (1.0 / s) as f32;
            y.iter_mut().for_each(|v| *v = (*v - m).exp() * inv);
        }
        masked.fill(0.0);
    })
}

/// Softmax: `dx = scale * y * (dy - sum(dy * y))`; log-softmax: `dx = scale * (dy - exp(y) * sum(dy))`.
pub(crate) fn softmax_grad(
    par: Par,
    cols: usize,
    log: bool,
    scale: f32,
    dx: &mut [f32],
    y: &[f32],
    dy: &[f32],
) {
    rows(if log { par.heavy(dx.len()) } else { par.light(dx.len()) }, cols, dx, y, dy, |_, dx, y, dy| {
        if log {
            let s = dy.iter().map(|&g| g as f64).sum::<f64>() as f32;
            for ((out, &yv), &g) in dx.iter_mut().zip(y).zip(dy) {
                *out = scale * (g - yv.exp() * s);
            }
        } else {
            let dot = y.iter().zip(dy).map(|(&yv, &g)| yv as f64 * g as f64).sum::<f64>() as f32;
            for ((out, &yv), &g) in dx.iter_mut().zip(y).zip(dy) {
                *out = scale * yv * (g - dot);
            }
        }
    })
}
