//! Data-layout kernels: im2col / col2im (convolution and pooling), permute, and axis windows
//! (slice / pad). CPU twins of `shaders/conv.wgsl` and `shaders/layout.wgsl`, same loop order.

use crate::kernel::{Permute, Window2d};

/// Image row `iy` (or column) read by output position `o` at kernel tap `k`, if inside the image.
#[inline]
fn tap(o: usize, k: usize, stride: usize, pad: usize, dil: usize, len: usize) -> Option<usize> {
    (o * stride + k * dil).checked_sub(pad).filter(|&i| i < len)
}

/// The output position whose tap `k` reads image position `i`, if any (the inverse of `tap`).
#[inline]
fn untap(i: usize, k: usize, stride: usize, pad: usize, dil: usize, out_len: usize) -> Option<usize> {
    let t = (i + pad).checked_sub(k * dil)?;
    (t % stride == 0 && t / stride < out_len).then_some(t / stride)
}

/// `cols [n, c*kh*kw, oh*ow]` from `x [n, c, h, w]`; outside the image reads `pad_value`.
pub(crate) fn im2col(win: &Window2d, pad_value: f32, cols: &mut [f32], x: &[f32]) {
    let Window2d { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw } = *win;
    let (oh, ow) = (win.oh().expect("validated"), win.ow().expect("validated"));
    let l = oh * ow;
    for b in 0..n {
        for ch in 0..c {
            let img = &x[(b * c + ch) * h * w..][..h * w];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = (ch * kh + ky) * kw + kx;
                    let dst = &mut cols[(b * c * kh * kw + row) * l..][..l];
                    for oy in 0..oh {
                        let iy = tap(oy, ky, sh, ph, dh, h);
                        for ox in 0..ow {
                            dst[oy * ow + ox] = match (iy, tap(ox, kx, sw, pw, dw, w)) {
                                (Some(iy), Some(ix)) => img[iy * w + ix],
                                _ => pad_value,
                            };
                        }
                    }
                }
            }
        }
    }
}

/// `x [n, c, h, w]` as the sum of the column entries that read each element (gather form: no
/// write conflicts, and the same summation order as the WGSL kernel).
pub(crate) fn col2im(win: &Window2d, x: &mut [f32], cols: &[f32]) {
    let Window2d { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw } = *win;
    let (oh, ow) = (win.oh().expect("validated"), win.ow().expect("validated"));
    let l = oh * ow;
    for b in 0..n {
        for ch in 0..c {
            for iy in 0..h {
                for ix in 0..w {
                    let mut acc = 0.0f32;
                    for ky in 0..kh {
                        let Some(oy) = untap(iy, ky, sh, ph, dh, oh) else { continue };
                        for kx in 0..kw {
                            let Some(ox) = untap(ix, kx, sw, pw, dw, ow) else { continue };
                            let row = (ch * kh + ky) * kw + kx;
                            acc += cols[(b * c * kh * kw + row) * l + oy * ow + ox];
                        }
                    }
                    x[((b * c + ch) * h + iy) * w + ix] = acc;
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
