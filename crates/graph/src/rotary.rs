//! Rotary position embedding (RoPE) as Hugging Face's Llama applies it: the non-interleaved
//! ("rotate_half") convention, tables computed as `transformers` computes them in f32.

use kiln_device::{DType, Prim};

use crate::error::Error;
use crate::graph::{Graph, NodeId};
use crate::shape::{Dim, Shape};

/// The `cos` and `sin` tables `[positions, head_dim / 2]` (row-major) of rotary embedding with
/// base `theta`, as `transformers` computes them (default rope type, attention scaling 1), all in
/// f32: `inv_freq[i] = 1.0 / theta.powf((2 i) as f32 / head_dim as f32)` (torch:
/// `1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))`), the angle
/// `(t as f32) * inv_freq[i]` rounded to f32 (torch's `inv_freq @ position_ids` with an inner
/// dimension of 1), then the cosine and sine of that f32 angle computed in f64 and rounded to f32
/// (correctly rounded; torch's f32 `cos` / `sin` may differ from it by an ulp, as Rust's f32
/// `powf` may from torch's `pow`). Hugging Face duplicates each row (`cat(freqs, freqs)`); these
/// tables hold one half, which [`Graph::rope`] applies to both halves of a head.
///
/// Panics if `head_dim` is odd or zero.
pub fn rope_tables(positions: usize, head_dim: usize, theta: f32) -> (Vec<f32>, Vec<f32>) {
    assert!(head_dim > 0 && head_dim.is_multiple_of(2), "rope_tables: head_dim must be even, got {head_dim}");
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
    let (mut cos, mut sin) = (Vec::with_capacity(positions * half), Vec::with_capacity(positions * half));
    for t in 0..positions {
        for &f in &inv_freq {
            let angle = ((t as f32) * f) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

impl Graph {
    /// Rotary embedding of `x [B, T, H, D]` (D even) by tables `cos, sin [T, D / 2]` (graph
    /// constants, e.g. from [`rope_tables`]), Hugging Face's `rotate_half` convention: for
    /// `i < D / 2`, `y[i] = x[i] cos[t, i] - x[i + D/2] sin[t, i]` and
    /// `y[i + D/2] = x[i + D/2] cos[t, i] + x[i] sin[t, i]`. The gradient goes to `x` only (the
    /// inverse rotation); the tables get none.
    ///
    /// For a decode step (`T = 1`), the tables may instead be `[B, D / 2]`, one row per batch
    /// entry: `gather(cos_table, positions, 0)` of a `[Tmax, D / 2]` constant by a u32 input
    /// `positions [B]` picks each row's position.
    pub fn rope(&self, x: NodeId, cos: NodeId, sin: NodeId) -> NodeId {
        self.rope_op(x, cos, sin, false)
    }

    pub(crate) fn rope_op(&self, x: NodeId, cos: NodeId, sin: NodeId, inverse: bool) -> NodeId {
        self.prim(Prim::Rope { inverse }, &[x, cos, sin], |n| {
            let (sx, sc) = (&n[0].shape, &n[1].shape);
            let err = |why: String| Err(Error::shape("rope", format!("x {sx}, cos {sc}: {why}")));
            if n.iter().any(|m| m.dtype != DType::F32) {
                return err("x, cos and sin must be f32".into());
            }
            if sc != &n[2].shape {
                return err(format!("sin is {}", n[2].shape));
            }
            if sx.rank() != 4 || sc.rank() != 2 {
                return err("x must be [B, T, H, D] and the tables [T, D / 2]".into());
            }
            let Dim::Fixed(d) = sx.0[3] else { return err("the head dimension must be fixed".into()) };
            if !d.is_multiple_of(2) || sc.0[1] != Dim::Fixed(d / 2) {
                return err(format!("the tables' rows must hold D / 2 = {} of an even D", d / 2));
            }
            let per_step = sc.0[0] == sx.0[1];
            let per_row = sx.0[1] == Dim::Fixed(1) && sc.0[0] == sx.0[0];
            if !per_step && !per_row {
                return err("the tables need a row per position T (or, when T = 1, per batch entry)".into());
            }
            Ok((Shape(sx.0.clone()), DType::F32))
        })
    }
}
