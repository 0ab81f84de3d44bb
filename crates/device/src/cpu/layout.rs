//! Data-layout kernels: im2col / col2im (convolution and pooling), permute, and axis windows
//! (slice / pad). CPU twins of `shaders/conv.wgsl` and `shaders/layout.wgsl`.

use rayon::prelude::*;

use super::Par;
use crate::kernel::{Permute, Window2d};

/// Image planes per rayon task.
const PLANES_PER_TASK: usize = 8;

/// The output positions `o` in `0..out_len` whose tap `k` lands inside an image axis of `len`
/// (`o * stride + k * dil - pad` in `0..len`): a contiguous range, found without a division per
/// element.
#[inline]
fn inside(k: usize, stride: usize, pad: usize, dil: usize, len: usize, out_len: usize) -> (usize, usize) {
    let off = k * dil; // image position = o * stride + off - pad
    let lo = if off >= pad { 0 } else { (pad - off).div_ceil(stride) };
    let hi = if len + pad > off { (len + pad - off).div_ceil(stride) } else { 0 };
    (lo.min(out_len), hi.clamp(lo.min(out_len), out_len))
}

/// `cols [n, c*kh*kw, oh*ow]` from `x [n, c, h, w]`; outside the image reads `pad_value`. Image
/// planes are independent, so large inputs split over threads a few planes per task.
pub(crate) fn im2col(par: Par, win: &Window2d, pad_value: f32, cols: &mut [f32], x: &[f32]) {
    let (plane_cols, plane) = (win.cols_len() / (win.n * win.c).max(1), win.h * win.w);
    let one = |(dst, img): (&mut [f32], &[f32])| im2col_plane(win, pad_value, dst, img);
    if plane_cols == 0 || plane == 0 {
        return;
    }
    if par.light(cols.len()) {
        cols.par_chunks_mut(plane_cols).zip(x.par_chunks(plane)).with_min_len(PLANES_PER_TASK).for_each(one);
    } else {
        cols.chunks_exact_mut(plane_cols).zip(x.chunks_exact(plane)).for_each(one);
    }
}

/// One image plane's columns, a kernel row at a time: padding, then a copy (stride 1) or a
/// strided gather of the image row, then padding.
fn im2col_plane(win: &Window2d, pad_value: f32, dst_plane: &mut [f32], img: &[f32]) {
    let Window2d { h, w, kh, kw, sh, sw, ph, pw, dh, dw, .. } = *win;
    let (oh, ow) = (win.oh().expect("validated"), win.ow().expect("validated"));
    let l = oh * ow;
    for ky in 0..kh {
        let (y0, y1) = inside(ky, sh, ph, dh, h, oh);
        for kx in 0..kw {
            let (x0, x1) = inside(kx, sw, pw, dw, w, ow);
            let dst = &mut dst_plane[(ky * kw + kx) * l..][..l];
            dst[..y0 * ow].fill(pad_value);
            dst[y1 * ow..].fill(pad_value);
            for oy in y0..y1 {
                let src = &img[(oy * sh + ky * dh - ph) * w..][..w];
                let row = &mut dst[oy * ow..][..ow];
                row[..x0].fill(pad_value);
                row[x1..].fill(pad_value);
                let ix0 = x0 * sw + kx * dw - pw;
                if sw == 1 {
                    row[x0..x1].copy_from_slice(&src[ix0..ix0 + (x1 - x0)]);
                } else {
                    for (j, v) in row[x0..x1].iter_mut().enumerate() {
                        *v = src[ix0 + j * sw];
                    }
                }
            }
        }
    }
}

/// `x [n, c, h, w]` as the sum of the column entries that read each element.
pub(crate) fn col2im(par: Par, win: &Window2d, x: &mut [f32], cols: &[f32]) {
    let (plane_cols, plane) = (win.cols_len() / (win.n * win.c).max(1), win.h * win.w);
    let one = |(img, src): (&mut [f32], &[f32])| col2im_plane(win, img, src);
    if plane_cols == 0 || plane == 0 {
        return;
    }
    if par.light(cols.len()) {
        x.par_chunks_mut(plane).zip(cols.par_chunks(plane_cols)).with_min_len(PLANES_PER_TASK).for_each(one);
    } else {
        x.chunks_exact_mut(plane).zip(cols.chunks_exact(plane_cols)).for_each(one);
    }
}

/// Scatter form within one image plane (no write conflicts): every element receives its terms in
/// kernel-tap order (ky, then kx), the same summation order as the WGSL kernel's gather.
fn col2im_plane(win: &Window2d, img: &mut [f32], src_plane: &[f32]) {
    let Window2d { h, w, kh, kw, sh, sw, ph, pw, dh, dw, .. } = *win;
    let (oh, ow) = (win.oh().expect("validated"), win.ow().expect("validated"));
    let l = oh * ow;
    img.fill(0.0);
    for ky in 0..kh {
        let (y0, y1) = inside(ky, sh, ph, dh, h, oh);
        for kx in 0..kw {
            let (x0, x1) = inside(kx, sw, pw, dw, w, ow);
            let src = &src_plane[(ky * kw + kx) * l..][..l];
            for oy in y0..y1 {
                let dst = &mut img[(oy * sh + ky * dh - ph) * w..][..w];
                let row = &src[oy * ow + x0..oy * ow + x1];
                let ix0 = x0 * sw + kx * dw - pw;
                if sw == 1 {
                    for (d, &v) in dst[ix0..ix0 + row.len()].iter_mut().zip(row) {
                        *d += v;
                    }
                } else {
                    for (j, &v) in row.iter().enumerate() {
                        dst[ix0 + j * sw] += v;
                    }
                }
            }
        }
    }
}

pub(crate) fn permute(pm: &Permute, out: &mut [f32], x: &[f32]) {
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
pub(crate) fn window(
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
