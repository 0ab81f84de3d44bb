//! Optimizer updates, in place over flat parameter buffers, with PyTorch's update rules
//! (`shaders/optim.wgsl`).
//!
//! Hyper-parameters live in a small f32 buffer (`hyper`, [`HYPER_LEN`] words) that the host
//! rewrites every step, so a schedule or Adam's bias correction never rebuilds a plan. Its layout is
//! one of the typed structs below ([`SgdHyper`], [`AdamHyper`], [`RmspropHyper`]), mirrored by the
//! WGSL structs of the same name; `words()` gives the buffer's contents.
//!
//! The last word of every layout is `skip`: when it is nonzero the kernel leaves the parameter
//! and its state untouched. The host writes 0; dynamic loss scaling sets it on the device when a
//! gradient overflowed (`kernels/loss_scale.rs`), so the skip needs no read-back.
//!
//! Every kernel has a `decayed` attribute (in [`OptimParams`]): only its first `decayed` elements
//! take the hyper buffer's weight decay, the rest are exempt (biases and norm weights in AdamW
//! param groups). One launch per parameter sets it to all or none of them; one launch over flat
//! parameter memory (every parameter a view of one buffer, the decayed ones first) updates both
//! groups at once.

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot};
use crate::error::Result;
use crate::kernels::twin::{mismatch, In, Out, Par};
use crate::DType::F32;

/// Words in the hyper-parameter buffer every update kernel reads.
pub const HYPER_LEN: usize = 8;

/// SGD's hyper-parameters (PyTorch's `SGD`, dampening 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0: none).
    pub momentum: f32,
    /// Weight decay (0: none).
    pub weight_decay: f32,
    /// 1.0 for Nesterov momentum, else 0.0.
    pub nesterov: f32,
    /// Padding to the hyper buffer's length.
    pub padding: [f32; 3],
    /// Nonzero: skip this update (set on the device by loss scaling, see [`crate::LossScale`]).
    pub skip: f32,
}

/// Adam's and AdamW's hyper-parameters for one step `t` (1-based).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay (0: none).
    pub weight_decay: f32,
    /// `1 - beta1^t`.
    pub bias_correction1: f32,
    /// `1 - beta2^t`.
    pub bias_correction2: f32,
    /// Nonzero: skip this update (set on the device by loss scaling, see [`crate::LossScale`]).
    pub skip: f32,
}

/// RMSprop's hyper-parameters (no momentum, not centered).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RmspropHyper {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the squared-gradient average.
    pub alpha: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay (0: none).
    pub weight_decay: f32,
    /// Padding to the hyper buffer's length.
    pub padding: [f32; 3],
    /// Nonzero: skip this update (set on the device by loss scaling, see [`crate::LossScale`]).
    pub skip: f32,
}

macro_rules! hyper_words {
    ($($t:ident),*) => {$(
        const _: () = assert!(std::mem::size_of::<$t>() == 4 * HYPER_LEN);
        impl $t {
            /// The hyper buffer's contents.
            pub fn words(self) -> [f32; HYPER_LEN] {
                bytemuck::cast(self)
            }
        }
    )*};
}
hyper_words!(SgdHyper, AdamHyper, RmspropHyper);

/// The typed view of a hyper buffer.
fn hyper<H: bytemuck::Pod>(words: &[f32]) -> H {
    bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words[..HYPER_LEN]))
}

/// The kernels of the optimizer family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Optim {
    /// In-place SGD with momentum, Nesterov and L2 weight decay ([`SgdHyper`]).
    Sgd {
        /// Elements.
        len: usize,
        /// Leading elements that take the hyper buffer's weight decay (the rest are exempt).
        decayed: usize,
    },
    /// In-place Adam (L2 weight decay) or AdamW (`decoupled`: decoupled weight decay) ([`AdamHyper`]).
    Adam {
        /// Elements.
        len: usize,
        /// AdamW: decay the weights directly instead of adding to the gradient.
        decoupled: bool,
        /// Leading elements that take the hyper buffer's weight decay (the rest are exempt).
        decayed: usize,
    },
    /// In-place RMSprop ([`RmspropHyper`]).
    Rmsprop {
        /// Elements.
        len: usize,
        /// Leading elements that take the hyper buffer's weight decay (the rest are exempt).
        decayed: usize,
    },
}

/// `Params` in `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimParams {
    /// Elements of the parameter.
    pub len: u32,
    /// Leading elements that take the weight decay.
    pub decayed: u32,
}

impl Optim {
    fn len(&self) -> usize {
        match *self {
            Optim::Sgd { len, .. } | Optim::Adam { len, .. } | Optim::Rmsprop { len, .. } => len,
        }
    }

    /// Leading elements that take the weight decay.
    pub fn decayed(&self) -> usize {
        match *self {
            Optim::Sgd { decayed, .. } | Optim::Adam { decayed, .. } | Optim::Rmsprop { decayed, .. } => {
                decayed
            }
        }
    }

    /// The typed hyper buffer for the decayed elements and for the exempt ones (weight decay 0).
    fn hypers<H: bytemuck::Pod>(&self, words: &[f32], weight_decay: impl Fn(&mut H) -> &mut f32) -> [H; 2] {
        let h: H = hyper(words);
        let mut exempt = h;
        *weight_decay(&mut exempt) = 0.0;
        [h, exempt]
    }
}

impl Family for Optim {
    const SHADER: &'static str = "optim";
    const SOURCE: &'static str = shader!("optim");
    type Params = OptimParams;

    fn name(&self) -> &'static str {
        match self {
            Optim::Sgd { .. } => "sgd",
            Optim::Adam { decoupled: false, .. } => "adam",
            Optim::Adam { decoupled: true, .. } => "adamw",
            Optim::Rmsprop { .. } => "rmsprop",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        let len = self.len();
        match self {
            Optim::Sgd { .. } | Optim::Rmsprop { .. } => vec![
                slot(1, "param", F32, len, Write),
                slot(2, "grad", F32, len, Read),
                slot(3, "hyper", F32, HYPER_LEN, Read),
                slot(4, "state", F32, len, Write),
            ],
            Optim::Adam { .. } => vec![
                slot(1, "param", F32, len, Write),
                slot(2, "grad", F32, len, Read),
                slot(3, "hyper", F32, HYPER_LEN, Read),
                slot(4, "m", F32, len, Write),
                slot(5, "v", F32, len, Write),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        nonzero(self.name(), &slot_lens(&self.slots()))?;
        if self.decayed() > self.len() {
            let detail = format!("{} decayed elements of {}", self.decayed(), self.len());
            return Err(crate::Error::shape(self.name(), detail));
        }
        Ok(())
    }

    fn params(&self) -> OptimParams {
        OptimParams { len: self.len() as u32, decayed: self.decayed() as u32 }
    }

    fn workgroups(&self) -> [u32; 3] {
        per_element(self.len())
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], _par: Par) {
        if let [_, In::F(h)] = ins {
            if h[HYPER_LEN - 1] != 0.0 {
                return; // skipped (an overflow under loss scaling)
            }
        }
        // the decayed elements, then the exempt ones
        let d = self.decayed();
        match (*self, outs, ins) {
            (Optim::Sgd { .. }, [Out::F(p), Out::F(v)], [In::F(g), In::F(h)]) => {
                let [with, without] = self.hypers(h, |h: &mut SgdHyper| &mut h.weight_decay);
                let ((p0, p1), (v0, v1), (g0, g1)) = (p.split_at_mut(d), v.split_at_mut(d), g.split_at(d));
                sgd(p0, v0, g0, &with);
                sgd(p1, v1, g1, &without);
            }
            (Optim::Adam { decoupled, .. }, [Out::F(p), Out::F(m), Out::F(v)], [In::F(g), In::F(h)]) => {
                let [with, without] = self.hypers(h, |h: &mut AdamHyper| &mut h.weight_decay);
                let (p, m, v) = (p.split_at_mut(d), m.split_at_mut(d), v.split_at_mut(d));
                let g = g.split_at(d);
                adam(decoupled, p.0, m.0, v.0, g.0, &with);
                adam(decoupled, p.1, m.1, v.1, g.1, &without);
            }
            (Optim::Rmsprop { .. }, [Out::F(p), Out::F(sq)], [In::F(g), In::F(h)]) => {
                let [with, without] = self.hypers(h, |h: &mut RmspropHyper| &mut h.weight_decay);
                let ((p0, p1), (s0, s1), (g0, g1)) = (p.split_at_mut(d), sq.split_at_mut(d), g.split_at(d));
                rmsprop(p0, s0, g0, &with);
                rmsprop(p1, s1, g1, &without);
            }
            _ => mismatch(self.name()),
        }
    }
}

/// SGD (dampening 0): `g = grad + wd p; v = momentum v + g;`
/// `g = nesterov ? g + momentum v : (momentum != 0 ? v : g); p -= lr g`.
fn sgd(p: &mut [f32], v: &mut [f32], grad: &[f32], h: &SgdHyper) {
    let (lr, momentum, wd, nesterov) = (h.lr, h.momentum, h.weight_decay, h.nesterov != 0.0);
    for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(grad) {
        let g = g + wd * *p;
        *v = momentum * *v + g;
        let step = if nesterov {
            g + momentum * *v
        } else if momentum != 0.0 {
            *v
        } else {
            g
        };
        *p -= lr * step;
    }
}

/// Adam (L2 weight decay added to the gradient) or AdamW (`decoupled`: `p *= 1 - lr wd` first):
/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / bc1) / (sqrt(v / bc2) + eps)`.
///
/// On CPUs with AVX the same loop is compiled for 8 lanes instead of SSE's 4: its three divisions
/// and square root per element dominate, and the results are bit-identical (IEEE division and
/// square root, no FMA contraction in Rust).
fn adam(decoupled: bool, p: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], h: &AdamHyper) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        return unsafe { adam_avx(decoupled, p, m, v, grad, h) };
    }
    adam_loop(decoupled, p, m, v, grad, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn adam_avx(
    decoupled: bool,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    h: &AdamHyper,
) {
    adam_loop(decoupled, p, m, v, grad, h)
}

#[inline(always)]
fn adam_loop(decoupled: bool, p: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], h: &AdamHyper) {
    let (lr, b1, b2, eps, wd, bc1, bc2) =
        (h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.bias_correction1, h.bias_correction2);
    let (l2, decay) = if decoupled { (0.0, 1.0 - lr * wd) } else { (wd, 1.0) };
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
        *p *= decay;
        let g = g + l2 * *p;
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        *p -= lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
    }
}

/// RMSprop (not centered, no momentum): `g = grad + wd p; sq = alpha sq + (1 - alpha) g^2;`
/// `p -= lr g / (sqrt(sq) + eps)`.
fn rmsprop(p: &mut [f32], sq: &mut [f32], grad: &[f32], h: &RmspropHyper) {
    let (lr, alpha, eps, wd) = (h.lr, h.alpha, h.eps, h.weight_decay);
    for ((p, sq), &g) in p.iter_mut().zip(sq.iter_mut()).zip(grad) {
        let g = g + wd * *p;
        *sq = alpha * *sq + (1.0 - alpha) * g * g;
        *p -= lr * g / (sq.sqrt() + eps);
    }
}
