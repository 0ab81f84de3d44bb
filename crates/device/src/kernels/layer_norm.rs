//! LayerNorm and RMSNorm over the last axis of `[rows, cols]`, without or with their affine (the
//! weight, and LayerNorm's bias, applied in the same launch), and their backward to the input
//! (`shaders/layer_norm.wgsl`). RMSNorm shares the family: same parameters, slots and
//! one-workgroup-per-row reduction, only the row statistic differs (no mean). On the CPU row statistics accumulate in f64 and the variance is a
//! second pass over the centered row, so the reference stays exact to f32 rounding however long or
//! offset a row is.

use super::{nonzero, slot, spread, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::twin::{mismatch, rows, sum_f64, In, Out, Par};
use crate::DType::F32;

/// The kernels of the layer-norm family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerNorm {
    /// `y = (x - mean) / sqrt(var + eps)` per row, biased variance (PyTorch's).
    Forward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// Backward from the input x (the row statistics are recomputed):
    /// `dx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))`, `xhat = (x - mean) * rstd`.
    Backward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// RMSNorm (Hugging Face `LlamaRMSNorm` without the weight): `y = x / sqrt(mean(x^2) + eps)`
    /// per row.
    RmsForward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the mean square before the square root (> 0).
        eps: f32,
    },
    /// Backward of [`LayerNorm::RmsForward`] from x (the statistic is recomputed):
    /// `dx = rstd * (dy - xhat * mean(dy * xhat))`, `xhat = x * rstd`.
    RmsBackward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the mean square before the square root (> 0).
        eps: f32,
    },
    /// LayerNorm with its affine in the same launch, `y = xhat * w + b` (`w`, `b`: `[cols]`,
    /// PyTorch's `nn.LayerNorm`); with `rms`, RMSNorm with its weight, `y = xhat * w` (Hugging
    /// Face `LlamaRMSNorm`). The same values as the normalization, a mul and an add.
    AffineForward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the variance (to the mean square, > 0, for RMSNorm).
        eps: f32,
        /// RMSNorm (no mean, no bias) instead of LayerNorm.
        rms: bool,
    },
    /// Backward of [`LayerNorm::AffineForward`] to x: the backward without the affine of
    /// `dy * w` (the weight's and bias's gradients are row sums, left to the caller).
    AffineBackward {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the variance (to the mean square, > 0, for RMSNorm).
        eps: f32,
        /// RMSNorm instead of LayerNorm.
        rms: bool,
    },
    /// `dy * xhat` elementwise, `xhat` the normalized input recomputed from x: what the
    /// weight's gradient of [`LayerNorm::AffineForward`] sums over the rows.
    DyXhat {
        /// Rows (the leading dimensions flattened).
        rows: usize,
        /// Length of the last axis.
        cols: usize,
        /// Added to the variance (to the mean square, > 0, for RMSNorm).
        eps: f32,
        /// RMSNorm instead of LayerNorm.
        rms: bool,
    },
}

/// `Params` in `shaders/layer_norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayerNormParams {
    /// Rows.
    pub rows: u32,
    /// Length of each row.
    pub cols: u32,
    /// Added to the variance.
    pub eps: f32,
}

impl LayerNorm {
    fn dims(&self) -> (usize, usize, f32) {
        match *self {
            LayerNorm::Forward { rows, cols, eps }
            | LayerNorm::Backward { rows, cols, eps }
            | LayerNorm::RmsForward { rows, cols, eps }
            | LayerNorm::RmsBackward { rows, cols, eps }
            | LayerNorm::AffineForward { rows, cols, eps, .. }
            | LayerNorm::AffineBackward { rows, cols, eps, .. }
            | LayerNorm::DyXhat { rows, cols, eps, .. } => (rows, cols, eps),
        }
    }

    /// Whether this is an RMSNorm kernel (its eps must be > 0).
    fn is_rms(&self) -> bool {
        match *self {
            LayerNorm::RmsForward { .. } | LayerNorm::RmsBackward { .. } => true,
            LayerNorm::AffineForward { rms, .. }
            | LayerNorm::AffineBackward { rms, .. }
            | LayerNorm::DyXhat { rms, .. } => rms,
            LayerNorm::Forward { .. } | LayerNorm::Backward { .. } => false,
        }
    }
}

impl Family for LayerNorm {
    const SHADER: &'static str = "layer_norm";
    const SOURCE: &'static str = shader!("layer_norm");
    type Params = LayerNormParams;

    fn name(&self) -> &'static str {
        match self {
            LayerNorm::Forward { .. } => "layer_norm",
            LayerNorm::Backward { .. } => "layer_norm_grad",
            LayerNorm::RmsForward { .. } => "rms_norm",
            LayerNorm::RmsBackward { .. } => "rms_norm_grad",
            LayerNorm::AffineForward { rms: false, .. } => "layer_norm_affine",
            LayerNorm::AffineBackward { rms: false, .. } => "layer_norm_affine_grad",
            LayerNorm::AffineForward { rms: true, .. } => "rms_norm_affine",
            LayerNorm::AffineBackward { rms: true, .. } => "rms_norm_affine_grad",
            LayerNorm::DyXhat { rms: false, .. } => "layer_norm_dy_xhat",
            LayerNorm::DyXhat { rms: true, .. } => "rms_norm_dy_xhat",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        let (rows, cols, _) = self.dims();
        match self {
            LayerNorm::Forward { .. } | LayerNorm::RmsForward { .. } => {
                vec![slot(1, "y", F32, rows * cols, Write), slot(2, "x", F32, rows * cols, Read)]
            }
            LayerNorm::Backward { .. } | LayerNorm::RmsBackward { .. } | LayerNorm::DyXhat { .. } => vec![
                slot(1, "dx", F32, rows * cols, Write),
                slot(2, "x", F32, rows * cols, Read),
                slot(3, "dy", F32, rows * cols, Read),
            ],
            LayerNorm::AffineForward { rms, .. } => {
                let mut v = vec![
                    slot(1, "y", F32, rows * cols, Write),
                    slot(2, "x", F32, rows * cols, Read),
                    slot(4, "w", F32, cols, Read),
                ];
                if !rms {
                    v.push(slot(5, "b", F32, cols, Read));
                }
                v
            }
            LayerNorm::AffineBackward { .. } => vec![
                slot(1, "dx", F32, rows * cols, Write),
                slot(2, "x", F32, rows * cols, Read),
                slot(3, "dy", F32, rows * cols, Read),
                slot(4, "w", F32, cols, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        let (rows, cols, eps) = self.dims();
        nonzero(self.name(), &[rows, cols])?;
        if !eps.is_finite() || eps < 0.0 {
            return Err(Error::shape(self.name(), format!("eps must be finite and >= 0, got {eps}")));
        }
        if self.is_rms() && eps <= 0.0 {
            return Err(Error::shape(self.name(), format!("eps must be > 0, got {eps}")));
        }
        Ok(())
    }

    fn params(&self) -> LayerNormParams {
        let (rows, cols, eps) = self.dims();
        LayerNormParams { rows: rows as u32, cols: cols as u32, eps }
    }

    /// The backward without the affine shares its code with the weighted one, which reads `w`
    /// (binding 4): a placeholder is bound there.
    fn unused_bindings(&self) -> Vec<u32> {
        match self {
            LayerNorm::Backward { .. } | LayerNorm::RmsBackward { .. } => vec![4],
            _ => Vec::new(),
        }
    }

    /// One 64-wide workgroup per row.
    fn workgroups(&self) -> [u32; 3] {
        spread(self.dims().0)
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        use LayerNorm as L;
        match (*self, outs, ins) {
            (L::Forward { cols, eps, .. }, [Out::F(y)], [In::F(x)]) => layer_norm(par, cols, eps, y, x, None),
            (L::Backward { cols, eps, .. }, [Out::F(dx)], [In::F(x), In::F(dy)]) => {
                layer_norm_grad(par, cols, eps, dx, x, dy, None)
            }
            (L::RmsForward { cols, eps, .. }, [Out::F(y)], [In::F(x)]) => {
                rms_norm(par, cols, eps, y, x, None)
            }
            (L::RmsBackward { cols, eps, .. }, [Out::F(dx)], [In::F(x), In::F(dy)]) => {
                rms_norm_grad(par, cols, eps, dx, x, dy, None)
            }
            (L::AffineForward { cols, eps, rms: false, .. }, [Out::F(y)], [In::F(x), In::F(w), In::F(b)]) => {
                layer_norm(par, cols, eps, y, x, Some((w, b)))
            }
            (L::AffineForward { cols, eps, rms: true, .. }, [Out::F(y)], [In::F(x), In::F(w)]) => {
                rms_norm(par, cols, eps, y, x, Some(w))
            }
            (L::DyXhat { cols, eps, rms, .. }, [Out::F(p)], [In::F(x), In::F(dy)]) => {
                dy_xhat(par, cols, eps, rms, p, x, dy)
            }
            (L::AffineBackward { cols, eps, rms, .. }, [Out::F(dx)], [In::F(x), In::F(dy), In::F(w)]) => {
                if rms {
                    rms_norm_grad(par, cols, eps, dx, x, dy, Some(w))
                } else {
                    layer_norm_grad(par, cols, eps, dx, x, dy, Some(w))
                }
            }
            _ => mismatch(self.name()),
        }
    }
}

/// `(mean, rstd)` of one row, `rstd = 1 / sqrt(var + eps)` with the biased variance.
#[inline(always)]
fn stats(x: &[f32], eps: f32) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = sum_f64(x.len(), |i| x[i] as f64) / n;
    let var = sum_f64(x.len(), |i| (x[i] as f64 - mean).powi(2)) / n;
    (mean, 1.0 / (var + eps as f64).sqrt())
}

/// `y = (x - mean) * rstd` for each row of `cols`; with `affine = (w, b)`, then `y * w + b`
/// (rounded to f32 at each step, as separate mul and add kernels would).
fn layer_norm(par: Par, cols: usize, eps: f32, y: &mut [f32], x: &[f32], affine: Option<(&[f32], &[f32])>) {
    rows(
        par.heavy(y.len()),
        cols,
        y,
        x,
        x,
        #[inline(always)]
        |_, y, x, _| {
            let (mean, rstd) = stats(x, eps);
            for (out, &v) in y.iter_mut().zip(x) {
                *out = ((v as f64 - mean) * rstd) as f32;
            }
            if let Some((w, b)) = affine {
                for ((out, &w), &b) in y.iter_mut().zip(w).zip(b) {
                    *out = *out * w + b;
                }
            }
        },
    )
}

/// `dx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))` for each row of `cols`; with a weight
/// `w`, of `dy * w` (rounded to f32, as a separate mul would) instead of `dy`.
fn layer_norm_grad(
    par: Par,
    cols: usize,
    eps: f32,
    dx: &mut [f32],
    x: &[f32],
    dy: &[f32],
    w: Option<&[f32]>,
) {
    rows(
        par.heavy(dx.len()),
        cols,
        dx,
        x,
        dy,
        #[inline(always)]
        |_, dx, x, dy| match w {
            None => layer_norm_grad_row(eps, dx, x, |i| dy[i]),
            Some(w) => layer_norm_grad_row(eps, dx, x, |i| dy[i] * w[i]),
        },
    )
}

/// `rstd = 1 / sqrt(mean(x^2) + eps)` of one row, accumulated in f64.
#[inline(always)]
fn rms_stat(x: &[f32], eps: f32) -> f64 {
    let ms = sum_f64(x.len(), |i| (x[i] as f64).powi(2)) / x.len() as f64;
    1.0 / (ms + eps as f64).sqrt()
}

/// `y = x * rstd` for each row of `cols`; with a weight `w`, then `y * w` (rounded to f32 at
/// each step, as a separate mul would).
fn rms_norm(par: Par, cols: usize, eps: f32, y: &mut [f32], x: &[f32], w: Option<&[f32]>) {
    rows(
        par.heavy(y.len()),
        cols,
        y,
        x,
        x,
        #[inline(always)]
        |_, y, x, _| {
            let rstd = rms_stat(x, eps);
            for (out, &v) in y.iter_mut().zip(x) {
                *out = (v as f64 * rstd) as f32;
            }
            if let Some(w) = w {
                y.iter_mut().zip(w).for_each(|(out, &w)| *out *= w);
            }
        },
    )
}

/// `dx = rstd * (dy - xhat * mean(dy * xhat))` for each row of `cols`; with a weight `w`, of
/// `dy * w` instead of `dy`.
fn rms_norm_grad(par: Par, cols: usize, eps: f32, dx: &mut [f32], x: &[f32], dy: &[f32], w: Option<&[f32]>) {
    rows(
        par.heavy(dx.len()),
        cols,
        dx,
        x,
        dy,
        #[inline(always)]
        |_, dx, x, dy| match w {
            None => rms_norm_grad_row(eps, dx, x, |i| dy[i]),
            Some(w) => rms_norm_grad_row(eps, dx, x, |i| dy[i] * w[i]),
        },
    )
}

/// `p = dy * xhat` for each row of `cols` (each factor rounded to f32 first, as the normalization
/// and a separate mul would).
fn dy_xhat(par: Par, cols: usize, eps: f32, rms: bool, p: &mut [f32], x: &[f32], dy: &[f32]) {
    rows(
        par.light(p.len()),
        cols,
        p,
        x,
        dy,
        #[inline(always)]
        |_, p, x, dy| {
            let (mean, rstd) = if rms { (0.0, rms_stat(x, eps)) } else { stats(x, eps) };
            for ((out, &v), &g) in p.iter_mut().zip(x).zip(dy) {
                *out = g * ((v as f64 - mean) * rstd) as f32;
            }
        },
    )
}

/// One row of [`layer_norm_grad`]: `g(i)` is element i of the incoming gradient (`dy`, or
/// `dy * w` rounded to f32 as a separate mul would).
#[inline(always)]
fn layer_norm_grad_row(eps: f32, dx: &mut [f32], x: &[f32], g: impl Fn(usize) -> f32) {
    let (mean, rstd) = stats(x, eps);
    let n = x.len() as f64;
    let sg = sum_f64(x.len(), |i| g(i) as f64);
    let sgx = sum_f64(x.len(), |i| g(i) as f64 * (x[i] as f64 - mean) * rstd);
    let (mg, mgx) = (sg / n, sgx / n);
    for (i, (out, &v)) in dx.iter_mut().zip(x).enumerate() {
        let xhat = (v as f64 - mean) * rstd;
        *out = (rstd * (g(i) as f64 - mg - xhat * mgx)) as f32;
    }
}

/// One row of [`rms_norm_grad`], `g` as in [`layer_norm_grad_row`].
#[inline(always)]
fn rms_norm_grad_row(eps: f32, dx: &mut [f32], x: &[f32], g: impl Fn(usize) -> f32) {
    let rstd = rms_stat(x, eps);
    let mgx = sum_f64(x.len(), |i| g(i) as f64 * x[i] as f64 * rstd) / x.len() as f64;
    for (i, (out, &v)) in dx.iter_mut().zip(x).enumerate() {
        *out = (rstd * (g(i) as f64 - v as f64 * rstd * mgx)) as f32;
    }
}
