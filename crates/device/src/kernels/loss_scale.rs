//! Dynamic loss scaling on the device, with PyTorch `GradScaler` semantics
//! (`shaders/loss_scale.wgsl`): the decision to skip an update is taken inside the training step,
//! with no read-back.
//!
//! Two persistent buffers hold the scaler: `scale` (one word, the factor the loss gradient was
//! multiplied by) and `tracker` ([`TRACKER_LEN`] words, laid out by the `TRACKER_*` indices).
//! [`LossScale::Unscale`] divides one gradient by the scale and raises the tracker's found-inf flag
//! when any element is inf or NaN; [`LossScale::Update`], after every gradient is unscaled, reads
//! the flag: on overflow it halves the scale (`backoff`), counts a skipped step and sets the hyper
//! buffer's skip word, which every optimizer kernel checks first (so the parameters and the
//! optimizer state stay as they were); otherwise it counts an applied update, doubles the scale
//! (`growth`) after `interval` updates in a row without overflow (when the doubled scale is
//! finite), and, for Adam and AdamW, rewrites the hyper buffer's bias corrections for the applied
//! count (a skipped step does not advance Adam's step, as in PyTorch, where `GradScaler.step`
//! does not call `optimizer.step`). It then clears the flag for the next step.
//!
//! The tracker's words are f32 (counts are exact to 2^24); the flag is 0.0 or 1.0 (the GPU sets it
//! with an atomic OR of 1.0's bits). The bias corrections `1 - beta^n` are computed in f32 as
//! PyTorch's capturable Adam computes its step on the device, but without the cancellation of
//! `1 - pow(beta, n)` when `beta^n` is near 1 (Adam's `1 - 0.999^n` for small `n`): see
//! [`bias_correction`]; within a few f32 ulps of the exact value, and the same formula on both
//! sides (the GPU's `exp` may differ from the CPU's by ulps). Everything else is bit for bit.

use super::{nonzero, per_element, slot, Access::*, Family, Slot, HYPER_LEN};
use crate::error::{Error, Result};
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// Words of the scaler's tracker buffer.
pub const TRACKER_LEN: usize = 4;
/// Tracker word: updates in a row without overflow since the scale last changed.
pub const TRACKER_GOOD: usize = 0;
/// Tracker word: steps skipped because a gradient overflowed, in all.
pub const TRACKER_SKIPPED: usize = 1;
/// Tracker word: 1.0 when a gradient of this step was inf or NaN (cleared by the update).
pub const TRACKER_FOUND: usize = 2;
/// Tracker word: updates applied, in all (Adam's step count under loss scaling).
pub const TRACKER_APPLIED: usize = 3;
/// The hyper buffer's word that, when nonzero, makes every optimizer kernel skip its update.
pub const HYPER_SKIP: usize = HYPER_LEN - 1;

/// The kernels of the loss-scaling family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossScale {
    /// `out = grad * (1 / scale)`, and the tracker's found-inf flag raised when an element of
    /// `grad` is inf or NaN.
    Unscale {
        /// Elements of the gradient.
        len: usize,
    },
    /// The scaler's step, once per training step after every [`LossScale::Unscale`] and before
    /// the optimizer kernels (see the module docs).
    Update {
        /// Factor of the scale after `interval` good updates (PyTorch: 2).
        growth: f32,
        /// Factor of the scale after an overflow (PyTorch: 0.5).
        backoff: f32,
        /// Good updates in a row before the scale grows (PyTorch: 2000).
        interval: u32,
        /// Rewrite the hyper buffer's Adam bias corrections (words 5 and 6, from the betas in
        /// words 1 and 2) for the applied count.
        adam: bool,
    },
}

/// `Params` in `shaders/loss_scale.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossScaleParams {
    /// Elements of the gradient (`unscale`).
    pub len: u32,
    /// Good updates in a row before the scale grows (`scale_update`).
    pub interval: u32,
    /// Growth factor.
    pub growth: f32,
    /// Backoff factor.
    pub backoff: f32,
    /// 1: rewrite Adam's bias corrections.
    pub adam: u32,
}

impl Family for LossScale {
    const SHADER: &'static str = "loss_scale";
    const SOURCE: &'static str = shader!("loss_scale");
    type Params = LossScaleParams;

    fn name(&self) -> &'static str {
        match self {
            LossScale::Unscale { .. } => "unscale",
            LossScale::Update { .. } => "scale_update",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match *self {
            LossScale::Unscale { len } => vec![
                slot(1, "out", F32, len, Write),
                slot(2, "grad", F32, len, Read),
                slot(3, "scale", F32, 1, Read),
                slot(4, "tracker", F32, TRACKER_LEN, Write),
            ],
            LossScale::Update { .. } => vec![
                slot(5, "scale", F32, 1, Write),
                slot(4, "tracker", F32, TRACKER_LEN, Write),
                slot(6, "hyper", F32, HYPER_LEN, Write),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            LossScale::Unscale { len } => nonzero(self.name(), &[len]),
            LossScale::Update { growth, backoff, interval, .. } => {
                let ok = growth.is_finite() && growth > 1.0 && backoff > 0.0 && backoff < 1.0 && interval > 0;
                if !ok {
                    return Err(Error::shape(
                        self.name(),
                        format!(
                            "growth {growth} (must be > 1), backoff {backoff} (in (0, 1)), interval \
                             {interval} (at least 1)"
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    fn params(&self) -> LossScaleParams {
        match *self {
            LossScale::Unscale { len } => {
                LossScaleParams { len: len as u32, interval: 0, growth: 0.0, backoff: 0.0, adam: 0 }
            }
            LossScale::Update { growth, backoff, interval, adam } => {
                LossScaleParams { len: 1, interval, growth, backoff, adam: adam as u32 }
            }
        }
    }

    fn workgroups(&self) -> [u32; 3] {
        match *self {
            LossScale::Unscale { len } => per_element(len),
            LossScale::Update { .. } => [1, 1, 1],
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], _par: Par) {
        match (*self, outs, ins) {
            (LossScale::Unscale { .. }, [Out::F(out), Out::F(tracker)], [In::F(grad), In::F(scale)]) => {
                let inv = 1.0 / scale[0];
                let mut finite = true;
                for (o, &g) in out.iter_mut().zip(grad.iter()) {
                    finite &= g.is_finite();
                    *o = g * inv;
                }
                if !finite {
                    tracker[TRACKER_FOUND] = 1.0;
                }
            }
            (
                LossScale::Update { growth, backoff, interval, adam },
                [Out::F(scale), Out::F(tracker), Out::F(hyper)],
                [],
            ) => update(scale, tracker, hyper, growth, backoff, interval, adam),
            _ => mismatch(self.name()),
        }
    }
}

/// The scaler's step (the CPU twin of `scale_update`).
fn update(
    scale: &mut [f32],
    tracker: &mut [f32],
    hyper: &mut [f32],
    growth: f32,
    backoff: f32,
    interval: u32,
    adam: bool,
) {
    let found = tracker[TRACKER_FOUND] != 0.0;
    tracker[TRACKER_FOUND] = 0.0;
    if found {
        scale[0] *= backoff;
        tracker[TRACKER_GOOD] = 0.0;
        tracker[TRACKER_SKIPPED] += 1.0;
        hyper[HYPER_SKIP] = 1.0;
        return;
    }
    hyper[HYPER_SKIP] = 0.0;
    let applied = tracker[TRACKER_APPLIED] + 1.0;
    tracker[TRACKER_APPLIED] = applied;
    let good = tracker[TRACKER_GOOD] + 1.0;
    if good >= interval as f32 {
        let grown = scale[0] * growth;
        if grown.is_finite() {
            scale[0] = grown;
        }
        tracker[TRACKER_GOOD] = 0.0;
    } else {
        tracker[TRACKER_GOOD] = good;
    }
    if adam {
        hyper[5] = bias_correction(hyper[1], applied);
        hyper[6] = bias_correction(hyper[2], applied);
    }
}

/// Adam's bias correction `1 - beta^n` in f32, a few ulps from the exact value (as
/// `scale_update` computes it). For `beta` in [0.5, 1) it is `-expm1(n ln(beta))`: `d = 1 - beta`
/// is exact there (Sterbenz), `-ln(1 - d)` is its series `d + d^2/2 + ...` (40 terms, Horner),
/// and `expm1` is its own series below 1 in magnitude (12 terms), `exp(x) - 1` beyond, where
/// nothing cancels. Below 0.5, `beta^n` falls fast and `1 - powi(beta, n)` loses nothing.
pub fn bias_correction(beta: f32, n: f32) -> f32 {
    if beta < 0.5 {
        return 1.0 - powi(beta, n as u32);
    }
    let d = 1.0 - beta;
    let mut acc = 1.0 / 40.0f32;
    for k in (1..40).rev() {
        acc = 1.0 / k as f32 + d * acc;
    }
    let x = -(n * (d * acc)); // n ln(beta), <= 0
    if x > -1.0 {
        let mut t = 1.0f32;
        for k in (2..=12).rev() {
            t = 1.0 + x * t / k as f32;
        }
        -(x * t)
    } else {
        1.0 - x.exp()
    }
}

/// `base^n` by square-and-multiply in f32, as `scale_update` computes it.
pub fn powi(base: f32, n: u32) -> f32 {
    let (mut result, mut x, mut e) = (1.0f32, base, n);
    loop {
        if e & 1 == 1 {
            result *= x;
        }
        e >>= 1;
        if e == 0 {
            return result;
        }
        x *= x;
    }
}
