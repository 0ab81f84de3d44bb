//! Optimizers: the typed hyper-parameters, written once. The session owns the live
//! [`Optimizer`] (a schedule changes its learning rate) and writes it to one small device buffer
//! every step ([`Optimizer::hyper`]), so a plan is never rebuilt for them; the graph's update
//! nodes carry only the [`UpdateRule`] (see `optim.rs`).

use kiln_device::{UpdateRule, HYPER_LEN};

/// An optimizer with PyTorch's semantics and defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `torch.optim.SGD` (dampening 0).
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (0: plain SGD).
        momentum: f32,
        /// Weight decay (0: none).
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first-moment estimate (default 0.9).
        beta1: f32,
        /// Decay of the second-moment estimate (default 0.999).
        beta2: f32,
        /// Added to the denominator for stability (default 1e-8).
        eps: f32,
        /// Weight decay (0: none).
        weight_decay: f32,
    },
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW {
        /// Learning rate.
        lr: f32,
        /// Decay of the first-moment estimate (default 0.9).
        beta1: f32,
        /// Decay of the second-moment estimate (default 0.999).
        beta2: f32,
        /// Added to the denominator for stability (default 1e-8).
        eps: f32,
        /// Weight decay (0: none).
        weight_decay: f32,
    },
    /// `torch.optim.RMSprop` (no momentum, not centered).
    Rmsprop {
        /// Learning rate.
        lr: f32,
        /// Decay of the squared-gradient average (default 0.99).
        alpha: f32,
        /// Added to the denominator for stability (default 1e-8).
        eps: f32,
        /// Weight decay (0: none).
        weight_decay: f32,
    },
}

impl Optimizer {
    /// SGD at rate `lr`: no momentum, no weight decay.
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd { lr, momentum: 0.0, weight_decay: 0.0, nesterov: false }
    }
    /// Adam at rate `lr`, PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
    /// AdamW at rate `lr`, PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn adamw(lr: f32) -> Self {
        Optimizer::AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
    /// RMSprop at rate `lr`, PyTorch's defaults: alpha 0.99, eps 1e-8, no weight decay.
    pub fn rmsprop(lr: f32) -> Self {
        Optimizer::Rmsprop { lr, alpha: 0.99, eps: 1e-8, weight_decay: 0.0 }
    }

    /// The update rule (kernel) this optimizer runs.
    pub fn rule(&self) -> UpdateRule {
        match self {
            Optimizer::Sgd { .. } => UpdateRule::Sgd,
            Optimizer::Adam { .. } => UpdateRule::Adam,
            Optimizer::AdamW { .. } => UpdateRule::AdamW,
            Optimizer::Rmsprop { .. } => UpdateRule::Rmsprop,
        }
    }

    /// The update rule's name (`"sgd"`, `"adam"`, ...).
    pub fn name(&self) -> &'static str {
        self.rule().name()
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. }
            | Optimizer::Rmsprop { lr, .. } => lr,
        }
    }

    /// The same optimizer at another learning rate (a schedule's value for the next step).
    pub fn with_lr(mut self, new: f32) -> Self {
        match &mut self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::AdamW { lr, .. }
            | Optimizer::Rmsprop { lr, .. } => *lr = new,
        }
        self
    }

    /// PyTorch's names for the per-parameter state (`{param}.{suffix}`), in kernel slot order.
    pub fn state_names(&self) -> &'static [&'static str] {
        self.rule().state_names()
    }

    /// The hyper buffer for step `t` (1-based) at learning rate `lr`, in the layout the device's
    /// update kernels read (see `kiln_device::HYPER_LEN`).
    pub fn hyper(&self, lr: f32, t: u64) -> [f32; HYPER_LEN] {
        use kiln_device::{AdamHyper, RmspropHyper, SgdHyper};
        match *self {
            Optimizer::Sgd { momentum, weight_decay, nesterov, .. } => SgdHyper {
                lr,
                momentum,
                weight_decay,
                nesterov: nesterov as u32 as f32,
                padding: [0.0; 3],
                skip: 0.0,
            }
            .words(),
            Optimizer::Adam { beta1, beta2, eps, weight_decay, .. }
            | Optimizer::AdamW { beta1, beta2, eps, weight_decay, .. } => {
                let t = t.min(i32::MAX as u64) as i32;
                AdamHyper {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    bias_correction1: (1.0 - (beta1 as f64).powi(t)) as f32,
                    bias_correction2: (1.0 - (beta2 as f64).powi(t)) as f32,
                    skip: 0.0,
                }
                .words()
            }
            Optimizer::Rmsprop { alpha, eps, weight_decay, .. } => {
                RmspropHyper { lr, alpha, eps, weight_decay, padding: [0.0; 3], skip: 0.0 }.words()
            }
        }
    }
}
