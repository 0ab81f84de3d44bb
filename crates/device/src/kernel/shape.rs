//! Broadcasting between two shapes, resolved once into strides so kernels need no shape logic.

use crate::error::{Error, Result};

/// The most dimensions a broadcast binary op supports.
pub const MAX_RANK: usize = 4;

/// numpy-style broadcasting of `a` and `b`, right-aligned and padded to [`MAX_RANK`] dimensions.
/// A stride of 0 repeats an operand along that dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Broadcast {
    pub out: [usize; MAX_RANK],
    pub a_strides: [usize; MAX_RANK],
    pub b_strides: [usize; MAX_RANK],
    pub a_len: usize,
    pub b_len: usize,
}

impl Broadcast {
    /// Same-shape operands of `len` elements.
    pub fn same(len: usize) -> Self {
        Broadcast {
            out: [1, 1, 1, len],
            a_strides: [0, 0, 0, 1],
            b_strides: [0, 0, 0, 1],
            a_len: len,
            b_len: len,
        }
    }

    /// Resolves the broadcast of two shapes; `op` names the caller in the error.
    pub fn new(op: &'static str, a: &[usize], b: &[usize]) -> Result<Self> {
        if a.len() > MAX_RANK || b.len() > MAX_RANK {
            return Err(Error::shape(op, format!("{a:?} and {b:?}: at most {MAX_RANK} dimensions")));
        }
        let pad = |s: &[usize]| {
            let mut p = [1usize; MAX_RANK];
            p[MAX_RANK - s.len()..].copy_from_slice(s);
            p
        };
        let (pa, pb) = (pad(a), pad(b));
        let mut out = [1usize; MAX_RANK];
        for d in 0..MAX_RANK {
            out[d] = match (pa[d], pb[d]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => {
                    return Err(Error::shape(op, format!("shapes {a:?} and {b:?} do not broadcast")));
                }
            };
        }
        let strides = |p: [usize; MAX_RANK]| {
            let mut s = [0usize; MAX_RANK];
            let mut acc = 1;
            for d in (0..MAX_RANK).rev() {
                s[d] = if p[d] == 1 { 0 } else { acc };
                acc *= p[d];
            }
            s
        };
        Ok(Broadcast {
            out,
            a_strides: strides(pa),
            b_strides: strides(pb),
            a_len: pa.iter().product(),
            b_len: pb.iter().product(),
        })
    }

    /// Number of output elements.
    pub fn len(&self) -> usize {
        self.out.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the result, without the leading padding.
    pub fn out_shape(&self, rank: usize) -> Vec<usize> {
        self.out[MAX_RANK - rank..].to_vec()
    }

    /// Offsets into `a` and `b` of output element `i`.
    #[inline]
    pub fn offsets(&self, mut i: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for d in (0..MAX_RANK).rev() {
            let c = i % self.out[d];
            i /= self.out[d];
            oa += c * self.a_strides[d];
            ob += c * self.b_strides[d];
        }
        (oa, ob)
    }
}
