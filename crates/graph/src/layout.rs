//! Builder methods of the layout primitives (im2col / col2im, permute, window) and the plain
//! f64-side index helpers the reference interpreter uses for them.

use kiln_device::{DType, Patches, Prim};

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, NodeId};
use crate::shape::{Dim, Fixed, Shape};

fn fixed(op: &'static str, s: &Shape, axes: std::ops::Range<usize>) -> Result<Vec<usize>> {
    axes.map(|a| match s.0[a] {
        Fixed(n) => Ok(n),
        Dim::Batch(_) => Err(Error::shape(op, format!("axis {a} of {s} must not hold the batch"))),
    })
    .collect()
}

fn want_f32(op: &'static str, n: &Node) -> Result<()> {
    if n.dtype != DType::F32 {
        return Err(Error::shape(op, format!("expects F32, got a {:?} tensor {}", n.dtype, n.shape)));
    }
    Ok(())
}

/// `(oh, ow)` of `p` over an image `[c, h, w]`, or a shape error naming the op.
fn out_hw(op: &'static str, p: &Patches, chw: &[usize]) -> Result<(usize, usize)> {
    let win = p.window(&[1, chw[0], chw[1], chw[2]]);
    match (win.oh(), win.ow()) {
        (Some(oh), Some(ow)) if p.kernel[0] * p.kernel[1] * p.stride[0] * p.stride[1] > 0 => Ok((oh, ow)),
        _ => Err(Error::shape(op, format!("window {p:?} does not fit an image [C, H, W] = {chw:?}"))),
    }
}

impl Graph {
    /// `[N, C, H, W]` -> `[N, C*kh*kw, OH*OW]`: every window of `p` as a column.
    pub fn im2col(&self, x: NodeId, p: Patches) -> NodeId {
        self.prim(Prim::Im2col(p), &[x], |n| {
            want_f32("im2col", n[0])?;
            let s = &n[0].shape;
            if s.rank() != 4 {
                return Err(Error::shape("im2col", format!("expects [N, C, H, W], got {s}")));
            }
            let chw = fixed("im2col", s, 1..4)?;
            let (oh, ow) = out_hw("im2col", &p, &chw)?;
            Ok((Shape(vec![s.0[0], Fixed(chw[0] * p.kernel[0] * p.kernel[1]), Fixed(oh * ow)]), DType::F32))
        })
    }

    /// Max pooling over every window of `p`: `[N, C, H, W]` -> `[N, C, OH, OW]`, one kernel (see
    /// [`Graph::max_pool2d`]).
    pub fn max_pool(&self, x: NodeId, p: Patches) -> NodeId {
        self.prim(Prim::MaxPool(p), &[x], |n| {
            want_f32("max_pool", n[0])?;
            let s = &n[0].shape;
            if s.rank() != 4 {
                return Err(Error::shape("max_pool", format!("expects [N, C, H, W], got {s}")));
            }
            let chw = fixed("max_pool", s, 1..4)?;
            let (oh, ow) = out_hw("max_pool", &p, &chw)?;
            if 2 * p.padding[0] > p.kernel[0] || 2 * p.padding[1] > p.kernel[1] {
                return Err(Error::shape(
                    "max_pool",
                    format!("padding {:?} must be at most half the kernel {:?}", p.padding, p.kernel),
                ));
            }
            Ok((Shape(vec![s.0[0], Fixed(chw[0]), Fixed(oh), Fixed(ow)]), DType::F32))
        })
    }

    /// Max pooling's backward: `gy [N, C, OH, OW]` to the winners in `x [N, C, H, W]`.
    pub(crate) fn max_pool_grad(&self, x: NodeId, gy: NodeId, p: Patches) -> NodeId {
        self.prim(Prim::MaxPoolGrad(p), &[x, gy], |n| Ok((n[0].shape.clone(), DType::F32)))
    }

    /// The adjoint of [`Graph::im2col`]: columns `[N, C*kh*kw, OH*OW]` summed into `image`
    /// (`[N, C, H, W]`).
    pub fn col2im(&self, cols: NodeId, p: Patches, image: &Shape) -> NodeId {
        let image = image.clone();
        self.prim(Prim::Col2im(p), &[cols], |n| {
            want_f32("col2im", n[0])?;
            if image.rank() != 4 {
                return Err(Error::shape("col2im", format!("image must be [N, C, H, W], got {image}")));
            }
            let chw = fixed("col2im", &image, 1..4)?;
            let (oh, ow) = out_hw("col2im", &p, &chw)?;
            let want = Shape(vec![image.0[0], Fixed(chw[0] * p.kernel[0] * p.kernel[1]), Fixed(oh * ow)]);
            if n[0].shape != want {
                return Err(Error::shape(
                    "col2im",
                    format!("columns {} do not fit image {image} (want {want})", n[0].shape),
                ));
            }
            Ok((image.clone(), DType::F32))
        })
    }

    /// `x.permute(perm)`: output axis `d` is input axis `perm[d]` (rank <= 4). A permutation
    /// that keeps the order of every axis longer than 1 moves no element, so it is a reshape (no
    /// copy, no kernel).
    pub fn permute(&self, x: NodeId, perm: &[usize]) -> NodeId {
        let s = self.shape(x);
        let valid = perm.len() == s.rank() && {
            let mut sorted = perm.to_vec();
            sorted.sort_unstable();
            sorted.iter().enumerate().all(|(i, &p)| i == p)
        };
        if valid {
            let moved: Vec<usize> = perm.iter().copied().filter(|&p| s.0[p] != Fixed(1)).collect();
            if moved.windows(2).all(|w| w[0] < w[1]) {
                return self.reshape(x, &perm.iter().map(|&p| s.0[p]).collect::<Vec<_>>());
            }
        }
        self.prim(Prim::Permute { perm: perm.to_vec() }, &[x], |n| {
            want_f32("permute", n[0])?;
            let s = &n[0].shape;
            let mut seen = vec![false; s.rank()];
            let ok = s.rank() <= 4
                && perm.len() == s.rank()
                && perm.iter().all(|&p| p < s.rank() && !std::mem::replace(&mut seen[p], true));
            if !ok {
                return Err(Error::shape(
                    "permute",
                    format!("{perm:?} is not a permutation of the axes of {s} (rank <= 4)"),
                ));
            }
            Ok((Shape(perm.iter().map(|&p| s.0[p]).collect()), DType::F32))
        })
    }

    /// Swaps two axes.
    pub fn transpose(&self, x: NodeId, a: usize, b: usize) -> NodeId {
        let mut perm: Vec<usize> = (0..self.shape(x).rank()).collect();
        if a < perm.len() && b < perm.len() {
            perm.swap(a, b);
        }
        self.permute(x, &perm)
    }

    /// `out[.., j, ..] = x[.., j + offset, ..]` for `j < out_len` along `axis`, 0 outside `x`.
    pub fn window(&self, x: NodeId, axis: usize, offset: i64, out_len: Dim) -> NodeId {
        self.prim(Prim::Window { axis, offset }, &[x], |n| {
            want_f32("window", n[0])?;
            let s = &n[0].shape;
            if axis >= s.rank() {
                return Err(Error::shape("window", format!("axis {axis} out of range for {s}")));
            }
            let Fixed(m) = out_len else {
                return Err(Error::shape("window", "the output length must be fixed"));
            };
            fixed("window", s, axis..axis + 1)?;
            if m == 0 || i32::try_from(offset).is_err() {
                return Err(Error::shape("window", format!("empty output or offset {offset} past i32")));
            }
            let mut out = s.clone();
            out.0[axis] = Fixed(m);
            Ok((out, DType::F32))
        })
    }

    /// `x[.., start..start + len, ..]` along `axis`.
    pub fn slice(&self, x: NodeId, axis: usize, start: usize, len: usize) -> NodeId {
        let s = self.shape(x);
        match s.0.get(axis) {
            Some(&Fixed(n)) if start == 0 && len == n => x, // the whole axis: no copy
            Some(&Fixed(n)) if start + len <= n => self.window(x, axis, start as i64, Fixed(len)),
            _ => self.fail(Error::shape(
                "slice",
                format!("{start}..{} out of range of axis {axis} of {s}", start + len),
            )),
        }
    }

    /// The tensors joined along `axis` (each padded to the full length, then added).
    pub fn concat(&self, xs: &[NodeId], axis: usize) -> NodeId {
        let lens: Vec<Option<usize>> = xs
            .iter()
            .map(|&x| match self.shape(x).0.get(axis) {
                Some(&Fixed(n)) => Some(n),
                _ => None,
            })
            .collect();
        if xs.is_empty() || lens.contains(&None) {
            return self.fail(Error::shape("concat", format!("needs tensors with a fixed axis {axis}")));
        }
        if let [x] = xs {
            return *x; // nothing to join: no copy
        }
        let total: usize = lens.iter().flatten().sum();
        let mut start = 0i64;
        let mut acc = None;
        for (&x, len) in xs.iter().zip(lens.into_iter().flatten()) {
            let padded = self.window(x, axis, -start, Fixed(total));
            acc = Some(match acc {
                None => padded,
                Some(a) => self.add(a, padded),
            });
            start += len as i64;
        }
        acc.expect("at least one tensor")
    }
}

/// The offset into `x` (dims `s`) of element `i` of `x.permute(perm)`.
pub(crate) fn permuted_offset(s: &[usize], perm: &[usize], mut i: usize) -> usize {
    let mut coord = vec![0; s.len()];
    for d in (0..s.len()).rev() {
        let n = s[perm[d]];
        coord[perm[d]] = i % n;
        i /= n;
    }
    coord.iter().zip(s).fold(0, |acc, (&c, &n)| acc * n + c)
}
