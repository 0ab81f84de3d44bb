//! Elementwise kernels: unary ops and their gradients, the fused bias + activation, and binary ops
//! with broadcasting. Every formula is the scalar `eval`/`grad` in `kernel::ops`; this file only
//! decides how to loop.

use rayon::prelude::*;

use crate::kernel::{BinaryOp, Broadcast, UnaryOp};

use super::{Par, PAR_CHUNK};

/// Calls `$body` with `$o` bound to each op of the enum, so `$o.eval(..)` inlines to one formula
/// per loop instead of a `match` per element. `$o` is a `const`, not a local: a closure in `$body`
/// would capture a local by reference, LLVM then folds the identical per-op closures into one, and
/// the `match` comes back inside the loop as a jump per element (seen in `perf annotate`: relu's
/// backward at ~2.5 ns/element).
macro_rules! for_op {
    ($op:expr, $o:ident: $t:ty => $body:expr, [$($v:path),*]) => {
        match $op { $($v => {
            #[allow(non_upper_case_globals)]
            const $o: $t = $v;
            $body
        })* }
    };
}

macro_rules! with_unary {
    ($op:expr, $o:ident => $body:expr) => {
        for_op!($op, $o: UnaryOp => $body, [UnaryOp::Neg, UnaryOp::Exp, UnaryOp::Log, UnaryOp::Sqrt,
            UnaryOp::Reciprocal, UnaryOp::Abs, UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Sigmoid,
            UnaryOp::Tanh, UnaryOp::Gelu])
    };
}

macro_rules! with_binary {
    ($op:expr, $o:ident => $body:expr) => {
        for_op!($op, $o: BinaryOp => $body, [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div,
            BinaryOp::Max, BinaryOp::Min, BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le,
            BinaryOp::Gt, BinaryOp::Ge])
    };
}

/// Whether an op is transcendental (worth threads sooner) or memory-bound.
fn heavy(op: UnaryOp) -> bool {
    !matches!(op, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::LeakyRelu | UnaryOp::Reciprocal)
}

fn parallel(par: Par, op: UnaryOp, len: usize) -> bool {
    if heavy(op) {
        par.heavy(len)
    } else {
        par.light(len)
    }
}

/// `out[i] = f(a[i], b[i])` over equal-length slices, split over rayon when `parallel`.
fn map2(parallel: bool, out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    let run = |out: &mut [f32], a: &[f32], b: &[f32]| {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    };
    if parallel {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)))
            .for_each(|(o, (a, b))| run(o, a, b));
    } else {
        run(out, a, b);
    }
}

/// `y = op(x)`.
pub(crate) fn unary(par: Par, op: UnaryOp, alpha: f32, y: &mut [f32], x: &[f32]) {
    let parallel = parallel(par, op, y.len());
    with_unary!(op, o => map2(parallel, y, x, x, |v, _| o.eval(v, alpha)))
}

/// `dx = op'(saved) * dy`.
pub(crate) fn unary_grad(par: Par, op: UnaryOp, alpha: f32, dx: &mut [f32], saved: &[f32], dy: &[f32]) {
    let parallel = parallel(par, op, dx.len());
    with_unary!(op, o => map2(parallel, dx, saved, dy, |s, g| o.grad(s, g, alpha)))
}

/// `y[r, c] = op(x[r, c] + bias[c])` for `x` of `[rows, cols]`.
pub(crate) fn bias_act(
    par: Par,
    op: UnaryOp,
    alpha: f32,
    cols: usize,
    y: &mut [f32],
    x: &[f32],
    bias: &[f32],
) {
    with_unary!(op, o => {
        let run = |y: &mut [f32], x: &[f32]| {
            for (y_row, x_row) in y.chunks_mut(cols).zip(x.chunks(cols)) {
                for ((out, &v), &b) in y_row.iter_mut().zip(x_row).zip(bias) {
                    *out = o.eval(v + b, alpha);
                }
            }
        };
        if parallel(par, op, y.len()) {
            let chunk = cols * (PAR_CHUNK / cols).max(1);
            y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(y, x)| run(y, x))
        } else {
            run(y, x)
        }
    })
}

/// `c = a op b` with the broadcast resolved in `bc`.
pub(crate) fn binary(par: Par, op: BinaryOp, bc: &Broadcast, c: &mut [f32], a: &[f32], b: &[f32]) {
    if a.len() == c.len() && b.len() == c.len() {
        // Same shape: strides are the identity.
        return with_binary!(op, o => map2(par.light(c.len()), c, a, b, |x, y| o.eval(x, y)));
    }
    with_binary!(op, o => {
        let run = |start: usize, c: &mut [f32]| broadcast_range(bc, start, c, a, b, |x, y| o.eval(x, y));
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
        for (j, out) in c[done..done + n].iter_mut().enumerate() {
            *out = f(a[oa + j * sa], b[ob + j * sb]);
        }
        done += n;
    }
}
