//! Losses (the mean over the batch, written to a 1-element buffer) and their gradients, each
//! scaled by the incoming 1-element `dloss` (`shaders/loss.wgsl`). On the CPU means accumulate in
//! f64.

use rayon::prelude::*;

use super::simd::run_wide;
use super::softmax::{max_and_sum_exp, row_max};
use super::unary::fast_exp;
use super::unary::sigmoid;
use super::{nonzero, per_element, slot, slot_lens, spread, Access::*, Family, Slot};
use crate::error::Result;
use crate::kernels::twin::{mismatch, rows, In, Out, Par, PAR_CHUNK};
use crate::DType::{F32, U32};

/// The kernels of the loss family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// `loss = mean((p - t)^2)` over `n` elements.
    MseLoss {
        /// Elements of the prediction (and target).
        n: usize,
    },
    /// `dp = 2 (p - t) / n * dloss`.
    MseGrad {
        /// Elements of the prediction (and target).
        n: usize,
    },
    /// `loss = mean(max(z, 0) - z t + log(1 + exp(-|z|)))`: binary cross-entropy from logits z.
    BceLogitsLoss {
        /// Elements of the prediction (and target).
        n: usize,
    },
    /// `dz = (sigmoid(z) - t) / n * dloss`.
    BceLogitsGrad {
        /// Elements of the prediction (and target).
        n: usize,
    },
    /// `loss = mean over rows of (logsumexp(z_row) - z_row[label])`, integer labels.
    /// Kernels cannot fail, so a label `>= cols` has an all-zero one-hot: that row adds
    /// `logsumexp(z_row)` (the label term is skipped) and the mean still divides by `rows`. The
    /// trainer validates labels on the host before they get here.
    SoftmaxCeLoss {
        /// Rows (examples).
        rows: usize,
        /// Classes.
        cols: usize,
    },
    /// `dz = (softmax(z) - onehot(label)) / rows * dloss`; a label `>= cols` has an all-zero
    /// one-hot (its row is `softmax(z_row) / rows * dloss`), consistent with the loss above.
    SoftmaxCeGrad {
        /// Rows (examples).
        rows: usize,
        /// Classes.
        cols: usize,
    },
}

/// `Params` in `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossParams {
    /// Elements (mse, bce) or rows (softmax cross-entropy).
    pub n: u32,
    /// Classes (softmax cross-entropy).
    pub cols: u32,
}

impl Family for Loss {
    const SHADER: &'static str = "loss";
    const SOURCE: &'static str = shader!("loss");
    type Params = LossParams;

    fn name(&self) -> &'static str {
        match self {
            Loss::MseLoss { .. } => "mse_loss",
            Loss::MseGrad { .. } => "mse_grad",
            Loss::BceLogitsLoss { .. } => "bce_logits_loss",
            Loss::BceLogitsGrad { .. } => "bce_logits_grad",
            Loss::SoftmaxCeLoss { .. } => "softmax_ce_loss",
            Loss::SoftmaxCeGrad { .. } => "softmax_ce_grad",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match *self {
            Loss::MseLoss { n } | Loss::BceLogitsLoss { n } => vec![
                slot(1, "loss", F32, 1, Write),
                slot(2, "pred", F32, n, Read),
                slot(3, "target", F32, n, Read),
            ],
            Loss::MseGrad { n } | Loss::BceLogitsGrad { n } => vec![
                slot(1, "dpred", F32, n, Write),
                slot(2, "pred", F32, n, Read),
                slot(3, "target", F32, n, Read),
                slot(4, "dloss", F32, 1, Read),
            ],
            Loss::SoftmaxCeLoss { rows, cols } => vec![
                slot(1, "loss", F32, 1, Write),
                slot(2, "logits", F32, rows * cols, Read),
                slot(5, "labels", U32, rows, Read),
            ],
            Loss::SoftmaxCeGrad { rows, cols } => vec![
                slot(1, "dlogits", F32, rows * cols, Write),
                slot(2, "logits", F32, rows * cols, Read),
                slot(5, "labels", U32, rows, Read),
                slot(4, "dloss", F32, 1, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Loss::SoftmaxCeLoss { rows, cols } | Loss::SoftmaxCeGrad { rows, cols } => {
                nonzero(self.name(), &[rows, cols])
            }
            _ => nonzero(self.name(), &slot_lens(&self.slots())),
        }
    }

    fn params(&self) -> LossParams {
        match *self {
            Loss::MseLoss { n }
            | Loss::MseGrad { n }
            | Loss::BceLogitsLoss { n }
            | Loss::BceLogitsGrad { n } => LossParams { n: n as u32, cols: 0 },
            Loss::SoftmaxCeLoss { rows, cols } | Loss::SoftmaxCeGrad { rows, cols } => {
                LossParams { n: rows as u32, cols: cols as u32 }
            }
        }
    }

    /// A loss is one workgroup that walks everything; a gradient is elementwise, or one 64-wide
    /// workgroup per row for softmax cross-entropy.
    fn workgroups(&self) -> [u32; 3] {
        match *self {
            Loss::MseLoss { .. } | Loss::BceLogitsLoss { .. } | Loss::SoftmaxCeLoss { .. } => [1, 1, 1],
            Loss::MseGrad { n } | Loss::BceLogitsGrad { n } => per_element(n),
            Loss::SoftmaxCeGrad { rows, .. } => spread(rows),
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        use In as I;
        use Out as O;
        match (*self, outs, ins) {
            (Loss::MseLoss { .. }, [O::F(l)], [I::F(p), I::F(t)]) => mse(l, p, t),
            (Loss::MseGrad { .. }, [O::F(dp)], [I::F(p), I::F(t), I::F(dl)]) => mse_grad(dp, p, t, dl[0]),
            (Loss::BceLogitsLoss { .. }, [O::F(l)], [I::F(z), I::F(t)]) => bce_logits(l, z, t),
            (Loss::BceLogitsGrad { .. }, [O::F(dz)], [I::F(z), I::F(t), I::F(dl)]) => {
                bce_logits_grad(dz, z, t, dl[0])
            }
            (Loss::SoftmaxCeLoss { cols, .. }, [O::F(l)], [I::F(z), I::U(lab)]) => {
                softmax_ce(par.heavy(z.len()), cols, l, z, lab)
            }
            (Loss::SoftmaxCeGrad { cols, .. }, [O::F(dz)], [I::F(z), I::U(lab), I::F(dl)]) => {
                softmax_ce_grad(par.heavy(z.len()), cols, dz, z, lab, dl[0])
            }
            _ => mismatch(self.name()),
        }
    }
}

/// `loss = mean((p - t)^2)`.
fn mse(loss: &mut [f32], p: &[f32], t: &[f32]) {
    let s: f64 = p.iter().zip(t).map(|(&p, &t)| ((p - t) as f64).powi(2)).sum();
    loss[0] = (s / p.len() as f64) as f32;
}

/// `dp = 2 (p - t) / n * dloss`.
fn mse_grad(dp: &mut [f32], p: &[f32], t: &[f32], dloss: f32) {
    let scale = 2.0 / p.len() as f32 * dloss;
    for ((out, &p), &t) in dp.iter_mut().zip(p).zip(t) {
        *out = (p - t) * scale;
    }
}

/// `loss = mean(max(z, 0) - z t + ln(1 + exp(-|z|)))`: binary cross-entropy from logits, stable
/// for any z.
fn bce_logits(loss: &mut [f32], z: &[f32], t: &[f32]) {
    let s: f64 = z.iter().zip(t).map(|(&z, &t)| (z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()) as f64).sum();
    loss[0] = (s / z.len() as f64) as f32;
}

/// `dz = (sigmoid(z) - t) / n * dloss`.
fn bce_logits_grad(dz: &mut [f32], z: &[f32], t: &[f32], dloss: f32) {
    let scale = dloss / z.len() as f32;
    for ((out, &z), &t) in dz.iter_mut().zip(z).zip(t) {
        *out = (sigmoid(z) - t) * scale;
    }
}

/// `loss = mean over rows of (logsumexp(row) - row[label])`. A label `>= cols` has an all-zero
/// one-hot: its row adds `logsumexp(row)` (the label term is skipped), matching the gradient.
/// Rows are split over rayon's threads when `parallel`, [`PAR_CHUNK`] elements' worth of rows
/// per task (a task per row cost more in scheduling than the row's work); their terms are added
/// in row order either way.
fn softmax_ce(parallel: bool, cols: usize, loss: &mut [f32], z: &[f32], labels: &[u32]) {
    let row_terms = |terms: &mut [f64], z: &[f32], labels: &[u32]| {
        run_wide(
            #[inline(always)]
            || {
                for ((t, row), &label) in terms.iter_mut().zip(z.chunks(cols)).zip(labels) {
                    let (m, s) = max_and_sum_exp(row);
                    *t = m as f64 + s.ln() - row.get(label as usize).map_or(0.0, |&p| p as f64);
                }
            },
        )
    };
    let mut terms = vec![0f64; labels.len()];
    let per_task = (PAR_CHUNK / cols.max(1)).max(1);
    if parallel && labels.len() > per_task {
        let tasks = terms.par_chunks_mut(per_task).zip(z.par_chunks(per_task * cols));
        tasks.zip(labels.par_chunks(per_task)).for_each(|((t, z), l)| row_terms(t, z, l));
    } else {
        row_terms(&mut terms, z, labels);
    }
    let total: f64 = terms.iter().sum();
    loss[0] = (total / labels.len() as f64) as f32;
}

/// `dz = (softmax(z) - onehot(label)) / rows * dloss`; a label `>= cols` subtracts nothing.
fn softmax_ce_grad(parallel: bool, cols: usize, dz: &mut [f32], z: &[f32], labels: &[u32], dloss: f32) {
    let scale = dloss / labels.len() as f32;
    rows(
        parallel,
        cols,
        dz,
        z,
        z,
        #[inline(always)]
        |r, out, row, _| {
            let m = row_max(row);
            for (o, &v) in out.iter_mut().zip(row) {
                *o = fast_exp(v - m);
            }
            let s: f64 = out.iter().map(|&v| v as f64).sum();
            let f = (1.0 / s) as f32 * scale;
            out.iter_mut().for_each(|o| *o *= f);
            if let Some(o) = out.get_mut(labels[r] as usize) {
                *o -= scale;
            }
        },
    )
}
