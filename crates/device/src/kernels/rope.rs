//! Rotary position embedding (`shaders/rope.wgsl`), Hugging Face's non-interleaved convention
//! ("rotate_half"), and its inverse rotation, which is its backward.

use super::{nonzero, per_element, slot, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// Rotates `x [rows, heads, 2 * half]` (`rows` = B * T flattened) by the tables
/// `cos, sin [table_rows, half]`; row `r` uses table row `r % table_rows` (so a `[T, half]` table
/// serves every batch entry of `[B, T, ..]`, and a `[B, half]` one each row of `[B, 1, ..]`).
/// For `i < half`: `y[i] = x[i] c - x[i + half] s`, `y[i + half] = x[i + half] c + x[i] s`, where
/// `s` is the table's sine, or its negation when `inverse` (the rotation back: the backward).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope {
    /// Rows of `x` (its leading dimensions before the heads, flattened).
    pub rows: usize,
    /// Heads per row.
    pub heads: usize,
    /// Half the head dimension (the tables' row length).
    pub half: usize,
    /// Rows of the tables; must divide `rows`.
    pub table_rows: usize,
    /// Rotate by the opposite angle (sine negated).
    pub inverse: bool,
}

/// `Params` in `shaders/rope.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RopeParams {
    /// Rows of x.
    pub rows: u32,
    /// Heads per row.
    pub heads: u32,
    /// Half the head dimension.
    pub half: u32,
    /// Rows of the tables.
    pub table_rows: u32,
    /// 1: sine negated.
    pub inverse: u32,
}

impl Family for Rope {
    const SHADER: &'static str = "rope";
    const SOURCE: &'static str = shader!("rope");
    type Params = RopeParams;

    fn name(&self) -> &'static str {
        "rope"
    }

    fn slots(&self) -> Vec<Slot> {
        let (n, t) = (self.rows * self.heads * 2 * self.half, self.table_rows * self.half);
        vec![
            slot(1, "y", F32, n, Write),
            slot(2, "x", F32, n, Read),
            slot(3, "cos", F32, t, Read),
            slot(4, "sin", F32, t, Read),
        ]
    }

    fn validate(&self) -> Result<()> {
        nonzero(self.name(), &[self.rows, self.heads, self.half, self.table_rows])?;
        if !self.rows.is_multiple_of(self.table_rows) {
            return Err(Error::shape(
                self.name(),
                format!("{} table rows do not divide the {} rows of x", self.table_rows, self.rows),
            ));
        }
        Ok(())
    }

    fn params(&self) -> RopeParams {
        let u = |x: usize| x as u32;
        RopeParams {
            rows: u(self.rows),
            heads: u(self.heads),
            half: u(self.half),
            table_rows: u(self.table_rows),
            inverse: self.inverse as u32,
        }
    }

    fn workgroups(&self) -> [u32; 3] {
        per_element(self.rows * self.heads * self.half)
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], _par: Par) {
        match (outs, ins) {
            ([Out::F(y)], [In::F(x), In::F(cos), In::F(sin)]) => rope(self, y, x, cos, sin),
            _ => mismatch(self.name()),
        }
    }
}

/// The rotation of every `(row, head)` vector of `x`, as the shader computes it.
fn rope(k: &Rope, y: &mut [f32], x: &[f32], cos: &[f32], sin: &[f32]) {
    let (half, d) = (k.half, 2 * k.half);
    for (v, (yv, xv)) in y.chunks_mut(d).zip(x.chunks(d)).enumerate() {
        let t = (v / k.heads % k.table_rows) * half;
        for i in 0..half {
            let (c, s) = (cos[t + i], if k.inverse { -sin[t + i] } else { sin[t + i] });
            let (a, b) = (xv[i], xv[i + half]);
            yv[i] = a * c - b * s;
            yv[i + half] = b * c + a * s;
        }
    }
}
