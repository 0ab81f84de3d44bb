//! The sliding 2-D window of convolution and pooling over NCHW images (`shaders/conv.wgsl`):
//! im2col lays every window out as a column (so a convolution is one batched matmul), col2im is its
//! adjoint (the convolution's input gradient).

use rayon::prelude::*;

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::simd::wide_fn;
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// The kernels of the conv family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Conv {
    /// `cols[n, (c kh + ky) kw + kx, oy ow + ox] = x[n, c, oy sh - ph + ky dh, ox sw - pw + kx dw]`,
    /// `pad_value` where that falls outside the image (0 for convolution, -inf-like for max pooling).
    Im2col {
        /// The window geometry.
        win: Window2d,
        /// Value read outside the image.
        pad_value: f32,
    },
    /// The adjoint of `Im2col`: each image element sums the column entries that read it.
    Col2im {
        /// The window geometry.
        win: Window2d,
    },
}

/// `Params` in `shaders/conv.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    /// Images in the batch.
    pub n: u32,
    /// Channels.
    pub c: u32,
    /// Image height.
    pub h: u32,
    /// Image width.
    pub w: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Vertical stride.
    pub sh: u32,
    /// Horizontal stride.
    pub sw: u32,
    /// Zero padding at top and bottom.
    pub ph: u32,
    /// Zero padding at left and right.
    pub pw: u32,
    /// Vertical dilation.
    pub dh: u32,
    /// Horizontal dilation.
    pub dw: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// im2col: what positions outside the image read.
    pub pad_value: f32,
}

impl Conv {
    fn win(&self) -> Window2d {
        match *self {
            Conv::Im2col { win, .. } | Conv::Col2im { win } => win,
        }
    }
}

impl Family for Conv {
    const SHADER: &'static str = "conv";
    const SOURCE: &'static str = shader!("conv");
    type Params = ConvParams;

    fn name(&self) -> &'static str {
        match self {
            Conv::Im2col { .. } => "im2col",
            Conv::Col2im { .. } => "col2im",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        let win = self.win();
        match self {
            Conv::Im2col { .. } => {
                vec![slot(1, "cols", F32, win.cols_len(), Write), slot(2, "x", F32, win.image_len(), Read)]
            }
            Conv::Col2im { .. } => {
                vec![slot(1, "x", F32, win.image_len(), Write), slot(2, "cols", F32, win.cols_len(), Read)]
            }
        }
    }

    fn validate(&self) -> Result<()> {
        self.win().check(self.name())?;
        nonzero(self.name(), &slot_lens(&self.slots()))
    }

    fn params(&self) -> ConvParams {
        let pad_value = match *self {
            Conv::Im2col { pad_value, .. } => pad_value,
            Conv::Col2im { .. } => 0.0,
        };
        self.win().params(pad_value)
    }

    /// One invocation per column entry (im2col) or image element (col2im).
    fn workgroups(&self) -> [u32; 3] {
        match self {
            Conv::Im2col { win, .. } => per_element(win.cols_len()),
            Conv::Col2im { win } => per_element(win.image_len()),
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        match (*self, outs, ins) {
            (Conv::Im2col { win, pad_value }, [Out::F(cols)], [In::F(x)]) => {
                im2col(par, &win, pad_value, cols, x)
            }
            (Conv::Col2im { win }, [Out::F(x)], [In::F(cols)]) => col2im(par, &win, x, cols),
            _ => mismatch(self.name()),
        }
    }
}

/// A 2-D sliding window over an NCHW image batch `[n, c, h, w]` (PyTorch's `Conv2d` geometry):
/// kernel `kh x kw`, stride, zero padding and dilation per spatial axis. Output positions are
/// `oh = (h + 2 ph - dh (kh - 1) - 1) / sh + 1` (and the same for `ow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window2d {
    /// Images in the batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero padding at top and bottom.
    pub ph: usize,
    /// Zero padding at left and right.
    pub pw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
}

impl Window2d {
    /// A square window with the same stride, padding and dilation on both axes.
    #[allow(clippy::too_many_arguments)] // NCHW, kernel, stride, padding, dilation: the geometry itself
    pub fn square(
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
    ) -> Self {
        Window2d { n, c, h, w, kh: k, kw: k, sh: stride, sw: stride, ph: pad, pw: pad, dh: dil, dw: dil }
    }

    fn out_len(len: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
        let span = d.checked_mul(k.checked_sub(1)?)? + 1;
        let padded = len + 2 * p;
        (s > 0 && padded >= span).then(|| (padded - span) / s + 1)
    }

    /// Output height, or `None` when the window does not fit (or a stride, kernel or dilation is 0).
    pub fn oh(&self) -> Option<usize> {
        Self::out_len(self.h, self.kh, self.sh, self.ph, self.dh).filter(|_| self.dh > 0)
    }

    /// Output width, `None` when the window does not fit.
    pub fn ow(&self) -> Option<usize> {
        Self::out_len(self.w, self.kw, self.sw, self.pw, self.dw).filter(|_| self.dw > 0)
    }

    /// Elements of the image `[n, c, h, w]`.
    pub fn image_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the columns `[n, c * kh * kw, oh * ow]`.
    /// For every column entry (im2col's output order), the image offset it reads (`None`:
    /// padding). Written in scatter form from the definition, for the reference implementations
    /// (the graph's float64 interpreter and the device tests); the kernels use the gather form.
    pub fn taps(&self) -> Vec<Option<usize>> {
        let win = self;
        let (oh, ow) = (win.oh().unwrap_or(0) as i64, win.ow().unwrap_or(0) as i64);
        let mut out = Vec::with_capacity(win.cols_len());
        for b in 0..win.n {
            for c in 0..win.c {
                for ky in 0..win.kh {
                    for kx in 0..win.kw {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let iy = oy * win.sh as i64 + (ky * win.dh) as i64 - win.ph as i64;
                                let ix = ox * win.sw as i64 + (kx * win.dw) as i64 - win.pw as i64;
                                let inside = iy >= 0 && ix >= 0 && iy < win.h as i64 && ix < win.w as i64;
                                out.push(
                                    inside.then(|| {
                                        ((b * win.c + c) * win.h + iy as usize) * win.w + ix as usize
                                    }),
                                );
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Elements of the im2col matrix `[n, c kh kw, oh ow]`.
    pub fn cols_len(&self) -> usize {
        self.n * self.c * self.kh * self.kw * self.oh().unwrap_or(0) * self.ow().unwrap_or(0)
    }

    /// The window as the uniform block of the conv and pool shaders (`ConvParams`).
    pub(crate) fn params(&self, pad_value: f32) -> ConvParams {
        let u = |x: usize| x as u32;
        ConvParams {
            n: u(self.n),
            c: u(self.c),
            h: u(self.h),
            w: u(self.w),
            kh: u(self.kh),
            kw: u(self.kw),
            sh: u(self.sh),
            sw: u(self.sw),
            ph: u(self.ph),
            pw: u(self.pw),
            dh: u(self.dh),
            dw: u(self.dw),
            oh: u(self.oh().unwrap_or(0)),
            ow: u(self.ow().unwrap_or(0)),
            pad_value,
        }
    }

    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        let dims = [self.n, self.c, self.h, self.w, self.kh, self.kw, self.sh, self.sw, self.dh, self.dw];
        if dims.contains(&0) {
            return Err(Error::shape(op, format!("zero-sized or zero-stride window {self:?}")));
        }
        if self.oh().is_none() || self.ow().is_none() {
            return Err(Error::shape(op, format!("window larger than the padded image: {self:?}")));
        }
        Ok(())
    }
}

/// Image planes per rayon task.
const PLANES_PER_TASK: usize = 8;

/// `cols [n, c*kh*kw, oh*ow]` from `x [n, c, h, w]`; outside the image reads `pad_value`. Image
/// planes are independent, so large inputs split over threads a few planes per task.
fn im2col(par: Par, win: &Window2d, pad_value: f32, cols: &mut [f32], x: &[f32]) {
    let (plane_cols, plane) = (win.cols_len() / (win.n * win.c).max(1), win.h * win.w);
    if plane_cols == 0 || plane == 0 {
        return;
    }
    let table = tap_table(win);
    let one = |(dst, img): (&mut [f32], &[f32])| gather_plane(dst, img, &table, pad_value);
    if par.light(cols.len()) {
        cols.par_chunks_mut(plane_cols).zip(x.par_chunks(plane)).with_min_len(PLANES_PER_TASK).for_each(one);
    } else {
        cols.chunks_exact_mut(plane_cols).zip(x.chunks_exact(plane)).for_each(one);
    }
}

/// Marks a column entry that reads padding in a [`tap_table`].
const PAD: u32 = u32::MAX;

/// For every column entry of one plane (tap-major: `(ky, kx)` then the output position), the index
/// of the image element it reads, or [`PAD`]. Built once per launch and shared by every plane:
/// small images (an 8x8 plane has 9 x 64 entries) then cost a table lookup per element instead of
/// a copy call per image row.
fn tap_table(win: &Window2d) -> Vec<u32> {
    let Window2d { h, w, kh, kw, sh, sw, ph, pw, dh, dw, .. } = *win;
    let (oh, ow) = (win.oh().expect("validated"), win.ow().expect("validated"));
    let mut t = Vec::with_capacity(kh * kw * oh * ow);
    for ky in 0..kh {
        for kx in 0..kw {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (iy, ix) =
                        ((oy * sh + ky * dh).wrapping_sub(ph), (ox * sw + kx * dw).wrapping_sub(pw));
                    t.push(if iy < h && ix < w { (iy * w + ix) as u32 } else { PAD });
                }
            }
        }
    }
    t
}

wide_fn! {
    /// One plane's columns from its image through the tap table.
    fn gather_plane(dst: &mut [f32], img: &[f32], table: &[u32], pad: f32) = gather_loop
}

#[inline(always)]
fn gather_loop(dst: &mut [f32], img: &[f32], table: &[u32], pad: f32) {
    for (d, &t) in dst.iter_mut().zip(table) {
        *d = img.get(t as usize).copied().unwrap_or(pad);
    }
}

/// `x [n, c, h, w]` as the sum of the column entries that read each element.
fn col2im(par: Par, win: &Window2d, x: &mut [f32], cols: &[f32]) {
    let (plane_cols, plane) = (win.cols_len() / (win.n * win.c).max(1), win.h * win.w);
    if plane_cols == 0 || plane == 0 {
        return;
    }
    let table = tap_table(win);
    let one = |(img, src): (&mut [f32], &[f32])| scatter_plane(img, src, &table);
    if par.light(cols.len()) {
        x.par_chunks_mut(plane).zip(cols.par_chunks(plane_cols)).with_min_len(PLANES_PER_TASK).for_each(one);
    } else {
        x.chunks_exact_mut(plane).zip(cols.chunks_exact(plane_cols)).for_each(one);
    }
}

/// Scatter form within one image plane (no write conflicts): every element receives its terms in
/// kernel-tap order (ky, then kx: the table's order), the same summation order as the WGSL
/// kernel's gather.
fn scatter_plane(img: &mut [f32], src_plane: &[f32], table: &[u32]) {
    img.fill(0.0);
    for (&v, &t) in src_plane.iter().zip(table) {
        if let Some(d) = img.get_mut(t as usize) {
            *d += v;
        }
    }
}
