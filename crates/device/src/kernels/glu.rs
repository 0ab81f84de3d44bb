//! Gated linear units (`shaders/glu.wgsl`): the SwiGLU product of a Llama MLP,
//! `y = silu(gate) * up` elementwise over two tensors of the same shape, and its backward, one
//! kernel per input: `dgate = dy * up * silu'(gate)`, `dup = dy * silu(gate)`, with
//! `silu'(g) = s + g s (1 - s)`, `s = sigmoid(g)` (the overflow-free [`sigmoid`]).

use rayon::prelude::*;

use super::{nonzero, per_element, slot, Access::*, Family, Slot};
use crate::error::Result;
use crate::kernels::simd::run_wide;
use crate::kernels::twin::{map2, mismatch, In, Out, Par, PAR_CHUNK};
use crate::kernels::unary::sigmoid;
use crate::DType::F32;

/// The kernels of the gated-linear-unit family, over `len` elements each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Glu {
    /// `y = silu(gate) * up`.
    Swiglu {
        /// Elements.
        len: usize,
    },
    /// `dgate = dy * up * silu'(gate)`.
    SwigluGradGate {
        /// Elements.
        len: usize,
    },
    /// `dup = dy * silu(gate)`.
    SwigluGradUp {
        /// Elements.
        len: usize,
    },
}

/// `Params` in `shaders/glu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GluParams {
    /// Elements.
    pub len: u32,
}

impl Glu {
    fn len(&self) -> usize {
        match *self {
            Glu::Swiglu { len } | Glu::SwigluGradGate { len } | Glu::SwigluGradUp { len } => len,
        }
    }
}

/// `silu(g) = g * sigmoid(g)`.
#[inline(always)]
pub fn silu(g: f32) -> f32 {
    g * sigmoid(g)
}

/// `silu'(g) = s + g s (1 - s)`, `s = sigmoid(g)`.
#[inline(always)]
pub fn silu_grad(g: f32) -> f32 {
    let s = sigmoid(g);
    s + g * s * (1.0 - s)
}

impl Family for Glu {
    const SHADER: &'static str = "glu";
    const SOURCE: &'static str = shader!("glu");
    type Params = GluParams;

    fn name(&self) -> &'static str {
        match self {
            Glu::Swiglu { .. } => "swiglu",
            Glu::SwigluGradGate { .. } => "swiglu_grad_gate",
            Glu::SwigluGradUp { .. } => "swiglu_grad_up",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        let len = self.len();
        match self {
            Glu::Swiglu { .. } => vec![
                slot(1, "y", F32, len, Write),
                slot(2, "gate", F32, len, Read),
                slot(3, "up", F32, len, Read),
            ],
            Glu::SwigluGradGate { .. } => vec![
                slot(1, "dgate", F32, len, Write),
                slot(2, "gate", F32, len, Read),
                slot(3, "up", F32, len, Read),
                slot(4, "dy", F32, len, Read),
            ],
            Glu::SwigluGradUp { .. } => vec![
                slot(1, "dup", F32, len, Write),
                slot(2, "gate", F32, len, Read),
                slot(4, "dy", F32, len, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        nonzero(self.name(), &[self.len()])
    }

    fn params(&self) -> GluParams {
        GluParams { len: self.len() as u32 }
    }

    fn workgroups(&self) -> [u32; 3] {
        per_element(self.len())
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        let heavy = par.heavy(self.len());
        match (*self, outs, ins) {
            (Glu::Swiglu { .. }, [Out::F(y)], [In::F(gate), In::F(up)]) => map2(
                heavy,
                y,
                gate,
                up,
                #[inline(always)]
                |g, u| silu(g) * u,
            ),
            (Glu::SwigluGradGate { .. }, [Out::F(dg)], [In::F(gate), In::F(up), In::F(dy)]) => {
                swiglu_grad_gate(heavy, dg, gate, up, dy)
            }
            (Glu::SwigluGradUp { .. }, [Out::F(du)], [In::F(gate), In::F(dy)]) => map2(
                heavy,
                du,
                gate,
                dy,
                #[inline(always)]
                |g, d| d * silu(g),
            ),
            _ => mismatch(self.name()),
        }
    }
}

/// `dgate = dy * up * silu'(gate)`, split over rayon when `parallel`.
fn swiglu_grad_gate(parallel: bool, dg: &mut [f32], gate: &[f32], up: &[f32], dy: &[f32]) {
    let run = |dg: &mut [f32], gate: &[f32], up: &[f32], dy: &[f32]| {
        run_wide(
            #[inline(always)]
            || {
                for (((o, &g), &u), &d) in dg.iter_mut().zip(gate.iter()).zip(up).zip(dy) {
                    *o = d * u * silu_grad(g);
                }
            },
        )
    };
    if parallel {
        dg.par_chunks_mut(PAR_CHUNK)
            .zip(gate.par_chunks(PAR_CHUNK))
            .zip(up.par_chunks(PAR_CHUNK).zip(dy.par_chunks(PAR_CHUNK)))
            .for_each(|((o, g), (u, d))| run(o, g, u, d));
    } else {
        run(dg, gate, up, dy);
    }
}

/// The float64 references (device tests and the graph's float64 interpreter).
impl Glu {
    /// `silu(g) * u` in f64.
    pub fn swiglu_f64(g: f64, u: f64) -> f64 {
        g / (1.0 + (-g).exp()) * u
    }

    /// `(d/dgate, d/dup)` of `silu(g) * u` in f64.
    pub fn swiglu_grad_f64(g: f64, u: f64) -> (f64, f64) {
        let s = 1.0 / (1.0 + (-g).exp());
        (u * (s + g * s * (1.0 - s)), g * s)
    }
}
