//! Geometry of the data-layout kernels: the sliding 2-D window of convolution and pooling
//! (`im2col` / `col2im`), axis permutation, and windows along one axis (slice, pad, concat).

use super::shape::MAX_RANK;
use crate::error::{Error, Result};

/// A 2-D sliding window over an NCHW image batch `[n, c, h, w]` (PyTorch's `Conv2d` geometry):
/// kernel `kh x kw`, stride, zero padding and dilation per spatial axis. Output positions are
/// `oh = (h + 2 ph - dh (kh - 1) - 1) / sh + 1` (and the same for `ow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
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

    pub fn cols_len(&self) -> usize {
        self.n * self.c * self.kh * self.kw * self.oh().unwrap_or(0) * self.ow().unwrap_or(0)
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

/// `out = x.permute(perm)` for `x` of rank <= 4, resolved into the output's dimensions (padded
/// on the left with 1s to rank 4) and, per output dimension, the stride of `x` it walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permute {
    pub out: [usize; MAX_RANK],
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

    pub fn len(&self) -> usize {
        self.out.iter().product()
    }

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
