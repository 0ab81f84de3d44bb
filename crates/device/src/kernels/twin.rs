//! What a family's CPU twin works with: its buffers as typed slice views (checked against the
//! kernel's slots by the CPU backend before any launch), and when and how to split the work over
//! rayon's threads. The CPU backend (`crate::cpu`) builds these; the twins live beside their
//! kernels in `crate::kernels`, so neither imports the other's internals.

use rayon::prelude::*;

use super::simd::wide_fn;

/// A written buffer, sliced to the length its slot needs. `H` holds f16 or bf16 bits (the slot's
/// dtype says which).
pub(crate) enum Out<'a> {
    F(&'a mut [f32]),
    U(&'a mut [u32]),
    H(&'a mut [u16]),
}

/// A read buffer, sliced to the length its slot needs. `H` holds f16 or bf16 bits (the slot's
/// dtype says which).
#[derive(Clone, Copy)]
pub(crate) enum In<'a> {
    F(&'a [f32]),
    U(&'a [u32]),
    H(&'a [u16]),
}

/// What a CPU twin does when its buffer views do not match its slots: `prepare` checked their
/// count, dtype and length, so this is a bug in the family module.
#[cold]
pub(crate) fn mismatch(kernel: &str) -> ! {
    unreachable!("{kernel}: buffers do not match its slots")
}

/// Memory-bound work (add, relu, sums, copies) goes parallel only past this many times the minimum.
const LIGHT_FACTOR: usize = 4;

/// Elements per rayon task once a kernel does go parallel.
pub(crate) const PAR_CHUNK: usize = 8 * 1024;

/// When a kernel splits its work over rayon's threads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Par {
    pub(crate) min: usize,
}

impl Par {
    /// For `len` elements of transcendental work (exp, erf, softmax).
    pub fn heavy(self, len: usize) -> bool {
        len >= self.min
    }
    /// For `len` elements of memory-bound work.
    pub fn light(self, len: usize) -> bool {
        len >= self.min.saturating_mul(LIGHT_FACTOR)
    }
}

/// `out[i] = f(a[i], b[i])` over equal-length slices, split over rayon when `parallel`.
pub(crate) fn map2(
    parallel: bool,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32 + Sync,
) {
    let run = |out: &mut [f32], a: &[f32], b: &[f32]| zip2_wide(out, a, b, &f);
    if parallel {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)))
            .for_each(|(o, (a, b))| run(o, a, b));
    } else {
        run(out, a, b);
    }
}

wide_fn! {
    /// `out[i] = f(a[i], b[i])` on one thread, as wide as the CPU allows.
    pub(crate) fn zip2_wide<F>(out: &mut [f32], a: &[f32], b: &[f32], f: &F) where [Fn(f32, f32) -> f32] = zip2
}

wide_fn! {
    /// `out[i] = f(a[i])` on one thread, as wide as the CPU allows.
    pub(crate) fn map_wide<F>(out: &mut [f32], a: &[f32], f: F) where [Fn(f32) -> f32] = map_loop
}

#[inline(always)]
fn map_loop<F: Fn(f32) -> f32>(out: &mut [f32], a: &[f32], f: F) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = f(x);
    }
}

#[inline(always)]
fn zip2<F: Fn(f32, f32) -> f32>(out: &mut [f32], a: &[f32], b: &[f32], f: &F) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// Row-parallel helper: `f(row_index, out_row, in_row, other_row)` over rows of `cols`, as wide
/// as the CPU allows (`f` must be an `#[inline(always)]` closure for that), split over rayon in
/// tasks of whole rows when `parallel`.
pub(crate) fn rows<F: Fn(usize, &mut [f32], &[f32], &[f32]) + Sync>(
    parallel: bool,
    cols: usize,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: F,
) {
    let per_task = (PAR_CHUNK / cols.max(1)).max(1);
    if parallel && out.len() > cols * per_task {
        let chunk = cols * per_task;
        out.par_chunks_mut(chunk)
            .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
            .enumerate()
            .for_each(|(t, (o, (a, b)))| rows_wide(cols, t * per_task, o, a, b, &f));
    } else {
        rows_wide(cols, 0, out, a, b, &f);
    }
}

wide_fn! {
    /// Rows `first..` of `rows`, on one thread.
    fn rows_wide<F>(cols: usize, first: usize, out: &mut [f32], a: &[f32], b: &[f32], f: &F)
        where [Fn(usize, &mut [f32], &[f32], &[f32])] = rows_loop
}

#[inline(always)]
fn rows_loop<F: Fn(usize, &mut [f32], &[f32], &[f32])>(
    cols: usize,
    first: usize,
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: &F,
) {
    for (r, (o, (a, b))) in out.chunks_mut(cols).zip(a.chunks(cols).zip(b.chunks(cols))).enumerate() {
        f(first + r, o, a, b);
    }
}

/// `out[i] = f(x[i])` over equal-length slices of any element types, split over rayon when
/// `parallel`.
pub(crate) fn map1<A: Copy + Sync, B: Send>(
    parallel: bool,
    out: &mut [B],
    x: &[A],
    f: impl Fn(A) -> B + Sync,
) {
    let run = |out: &mut [B], x: &[A]| {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f(v);
        }
    };
    if parallel {
        out.par_chunks_mut(PAR_CHUNK).zip(x.par_chunks(PAR_CHUNK)).for_each(|(o, x)| run(o, x));
    } else {
        run(out, x);
    }
}

/// Lanes of [`sum_f64`]'s partial sums.
const LANES: usize = 8;

/// `sum f(i)` for `i` in `0..n`, in f64 over 8 partial sums (element `i` into sum `i % 8`, then
/// combined pairwise): a fixed order, so the same bits at every vector level, with the additions
/// independent across the 8 sums (a single running sum is one long chain of dependent adds).
#[inline(always)]
pub(crate) fn sum_f64(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let whole = n / LANES * LANES;
    for i in (0..whole).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
    }
    for (l, i) in (whole..n).enumerate() {
        acc[l] += f(i);
    }
    let quad = [acc[0] + acc[4], acc[1] + acc[5], acc[2] + acc[6], acc[3] + acc[7]];
    (quad[0] + quad[2]) + (quad[1] + quad[3])
}
