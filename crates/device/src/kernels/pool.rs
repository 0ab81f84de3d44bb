//! Max pooling over NCHW images (`shaders/pool.wgsl`), as PyTorch's `max_pool2d`: each window's
//! first largest element in (ky, kx) order wins (a NaN wins over numbers), padding is never
//! picked, and the backward hands each window's gradient to that element alone. The window
//! geometry is convolution's ([`Window2d`]). The WGSL backward is written in gather form (each
//! image element sums, in (ky, kx) order, the gradients of the windows it won), so no two
//! invocations write one element; the CPU twin scatters in the order that gives the same sums.

use rayon::prelude::*;

use super::conv::{ConvParams, Window2d};
use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot};
use crate::error::Result;
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// The kernels of the pooling family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pooling {
    /// `out [n, c, oh, ow]`: the largest element of each window of `x [n, c, h, w]`.
    MaxPool {
        /// The window geometry.
        win: Window2d,
    },
    /// `dx [n, c, h, w]` from `x` and `gy [n, c, oh, ow]`: each window's gradient goes to the
    /// element the forward picked.
    MaxPoolGrad {
        /// The window geometry.
        win: Window2d,
    },
}

impl Pooling {
    fn win(&self) -> Window2d {
        match *self {
            Pooling::MaxPool { win } | Pooling::MaxPoolGrad { win } => win,
        }
    }

    fn out_len(&self) -> usize {
        let win = self.win();
        win.n * win.c * win.oh().unwrap_or(0) * win.ow().unwrap_or(0)
    }
}

impl Family for Pooling {
    const SHADER: &'static str = "pool";
    const SOURCE: &'static str = shader!("pool");
    /// The window's geometry, as convolution's (`pad_value` unused).
    type Params = ConvParams;

    fn name(&self) -> &'static str {
        match self {
            Pooling::MaxPool { .. } => "max_pool",
            Pooling::MaxPoolGrad { .. } => "max_pool_grad",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        let (image, out) = (self.win().image_len(), self.out_len());
        match self {
            Pooling::MaxPool { .. } => vec![slot(1, "out", F32, out, Write), slot(2, "x", F32, image, Read)],
            Pooling::MaxPoolGrad { .. } => vec![
                slot(1, "dx", F32, image, Write),
                slot(2, "x", F32, image, Read),
                slot(3, "gy", F32, out, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        self.win().check(self.name())?;
        nonzero(self.name(), &slot_lens(&self.slots()))
    }

    fn params(&self) -> ConvParams {
        self.win().params(0.0)
    }

    /// One invocation per output (forward) or image element (backward).
    fn workgroups(&self) -> [u32; 3] {
        match self {
            Pooling::MaxPool { .. } => per_element(self.out_len()),
            Pooling::MaxPoolGrad { win } => per_element(win.image_len()),
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        let win = self.win();
        let (plane, out_plane) = (win.h * win.w, win.oh().unwrap_or(0) * win.ow().unwrap_or(0));
        if plane == 0 || out_plane == 0 {
            return;
        }
        let blocks = Blocks::new(&win);
        let (image_block, out_block) = (blocks.planes * plane, blocks.planes * out_plane);
        match (*self, outs, ins) {
            (Pooling::MaxPool { .. }, [Out::F(out)], [In::F(x)]) => {
                let one = |idx: &mut Vec<u32>, (o, img): (&mut [f32], &[f32])| {
                    idx.resize(o.len(), 0);
                    blocks.winners(&win, img, o, idx);
                };
                if par.light(x.len()) {
                    out.par_chunks_mut(out_block).zip(x.par_chunks(image_block)).for_each_init(Vec::new, one);
                } else {
                    let mut idx = Vec::new();
                    out.chunks_mut(out_block).zip(x.chunks(image_block)).for_each(|p| one(&mut idx, p));
                }
            }
            (Pooling::MaxPoolGrad { .. }, [Out::F(dx)], [In::F(x), In::F(gy)]) => {
                let one = |buf: &mut (Vec<f32>, Vec<u32>), ((d, img), g): ((&mut [f32], &[f32]), &[f32])| {
                    let (vals, idx) = buf;
                    vals.resize(g.len(), 0.0);
                    idx.resize(g.len(), 0);
                    blocks.winners(&win, img, vals, idx);
                    // windows in reverse order: each element receives its terms in the order of
                    // the WGSL kernel's gather (taps ky, then kx, ascending, which meet the
                    // windows in descending order), from 0, so the sums have the same bits
                    d.fill(0.0);
                    for (&w, &g) in idx.iter().zip(g.iter()).rev() {
                        d[w as usize] += g;
                    }
                };
                if par.light(x.len()) {
                    dx.par_chunks_mut(image_block)
                        .zip(x.par_chunks(image_block))
                        .zip(gy.par_chunks(out_block))
                        .for_each_init(Default::default, one);
                } else {
                    let mut buf = Default::default();
                    dx.chunks_mut(image_block)
                        .zip(x.chunks(image_block))
                        .zip(gy.chunks(out_block))
                        .for_each(|p| one(&mut buf, p));
                }
            }
            _ => mismatch(self.name()),
        }
    }
}

/// Image elements a block of planes spans at least: enough windows per tap for long loops.
const BLOCK_ELEMENTS: usize = 1024;

/// Planes processed together, tap by tap: for each window tap, the index every window of the
/// block reads (relative to the block's first element), built once per launch. Small images
/// (the 4 x 4 windows of an 8 x 8 plane) then give loops of hundreds of windows instead of 4.
/// Only without padding (every tap inside the image); with padding, window by window.
struct Blocks {
    planes: usize,
    /// `[taps][planes * oh * ow]`, empty with padding.
    table: Vec<u32>,
}

impl Blocks {
    fn new(win: &Window2d) -> Blocks {
        let (plane, (oh, ow)) = (win.h * win.w, (win.oh().unwrap_or(0), win.ow().unwrap_or(0)));
        let planes = BLOCK_ELEMENTS.div_ceil(plane).max(1);
        if win.ph != 0 || win.pw != 0 {
            return Blocks { planes, table: Vec::new() };
        }
        let mut table = Vec::with_capacity(win.kh * win.kw * planes * oh * ow);
        for ky in 0..win.kh {
            for kx in 0..win.kw {
                for p in 0..planes {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (iy, ix) = (oy * win.sh + ky * win.dh, ox * win.sw + kx * win.dw);
                            table.push((p * plane + iy * win.w + ix) as u32);
                        }
                    }
                }
            }
        }
        Blocks { planes, table }
    }

    /// The winners of every window of a block of planes (`img`, possibly a short last block):
    /// values and indices relative to the block's first element.
    fn winners(&self, win: &Window2d, img: &[f32], vals: &mut [f32], idx: &mut [u32]) {
        let (plane, ow) = (win.h * win.w, win.ow().expect("validated"));
        let out_plane = win.oh().expect("validated") * ow;
        if self.table.is_empty() {
            for (p, (v, i)) in vals.chunks_mut(out_plane).zip(idx.chunks_mut(out_plane)).enumerate() {
                let img = &img[p * plane..(p + 1) * plane];
                for (k, (v, i)) in v.iter_mut().zip(i.iter_mut()).enumerate() {
                    let (best, value) = window_max(win, img, k / ow, k % ow);
                    (*v, *i) = (value, (p * plane + best) as u32);
                }
            }
            return;
        }
        let per_tap = self.planes * out_plane;
        let n = vals.len();
        vals.fill(f32::NEG_INFINITY);
        idx.copy_from_slice(&self.table[..n]); // the first tap: every tap is inside
        for tap in self.table.chunks_exact(per_tap) {
            tap_step(img, &tap[..n], vals, idx);
        }
    }
}

/// One tap of every window of a block: a larger value or a NaN takes the window. The table
/// lookups make the AVX-512 form gather (fast there); on AVX2 and below the values are loaded one
/// by one into 8-wide groups whose choices are then made as vector blends (AVX2's gathers,
/// microcoded on AMD, and a compiler that turns scalar blends back into branches, mispredicted on
/// data, each ran it 8-9x slower: 146-156 vs 17 us per launch in the cnn step).
fn tap_step(img: &[f32], tap: &[u32], vals: &mut [f32], idx: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::kernels::simd::{level, Level};
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(img: &[f32], tap: &[u32], vals: &mut [f32], idx: &mut [u32]) {
            tap_loop(img, tap, vals, idx)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(img: &[f32], tap: &[u32], vals: &mut [f32], idx: &mut [u32]) {
            tap_groups(img, tap, vals, idx)
        }
        match level() {
            // SAFETY: `level` never exceeds what the CPU has.
            Level::Avx512 => return unsafe { avx512(img, tap, vals, idx) },
            // SAFETY: as above.
            Level::Avx2 => return unsafe { avx2(img, tap, vals, idx) },
            Level::Base => {}
        }
    }
    tap_groups(img, tap, vals, idx)
}

/// The choice for one window: `x` takes it when larger than `v` or NaN.
#[inline(always)]
fn take(x: f32, v: &mut f32, t: u32, i: &mut u32) {
    let m = (((x > *v) | x.is_nan()) as u32).wrapping_neg();
    *v = f32::from_bits((x.to_bits() & m) | (v.to_bits() & !m));
    *i = (t & m) | (*i & !m);
}

#[inline(always)]
fn load(img: &[f32], t: u32) -> f32 {
    img.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY)
}

#[inline(always)]
fn tap_loop(img: &[f32], tap: &[u32], vals: &mut [f32], idx: &mut [u32]) {
    for ((v, i), &t) in vals.iter_mut().zip(idx.iter_mut()).zip(tap) {
        take(load(img, t), v, t, i);
    }
}

#[inline(always)]
fn tap_groups(img: &[f32], tap: &[u32], vals: &mut [f32], idx: &mut [u32]) {
    const L: usize = 8;
    let n = vals.len() / L * L;
    let groups =
        vals[..n].chunks_exact_mut(L).zip(idx[..n].chunks_exact_mut(L)).zip(tap[..n].chunks_exact(L));
    for ((v, i), t) in groups {
        let x: [f32; L] = std::array::from_fn(|k| load(img, t[k]));
        for k in 0..L {
            take(x[k], &mut v[k], t[k], &mut i[k]);
        }
    }
    tap_loop(img, &tap[n..], &mut vals[n..], &mut idx[n..]);
}

/// The winner of window `(oy, ox)` in one image plane (windows with padding; [`Blocks`] walks
/// the others): its index in the plane and its value.
/// The first tap inside the image starts at -inf; a later tap wins when it is larger or NaN.
fn window_max(win: &Window2d, img: &[f32], oy: usize, ox: usize) -> (usize, f32) {
    let (mut best, mut value, mut started) = (0, f32::NEG_INFINITY, false);
    for ky in 0..win.kh {
        let iy = (oy * win.sh + ky * win.dh).wrapping_sub(win.ph);
        if iy >= win.h {
            continue;
        }
        for kx in 0..win.kw {
            let ix = (ox * win.sw + kx * win.dw).wrapping_sub(win.pw);
            if ix >= win.w {
                continue;
            }
            let (i, v) = (iy * win.w + ix, img[iy * win.w + ix]);
            if !started {
                (best, started) = (i, true);
            }
            if v > value || v.is_nan() {
                (best, value) = (i, v);
            }
        }
    }
    (best, value)
}
