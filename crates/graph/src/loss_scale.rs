//! Dynamic loss scaling, as PyTorch's `torch.amp.GradScaler`, decided on the device.
//!
//! [`Graph::grad_scaler`] declares the scaler's two persistent tensors ([`LOSS_SCALE`], the
//! factor, and [`LOSS_SCALE_TRACKER`], its counters and overflow flag; see
//! `kiln_device::kernels::loss_scale`). From then on [`Graph::gradients`] seeds the backward pass
//! with the scale instead of 1, so every gradient is `scale` times the true one (half-precision
//! gradients keep small values out of f16's subnormals); [`Graph::unscale_gradients`] divides them
//! back, each raising the overflow flag on inf or NaN; and [`Graph::optimize`] puts the scaler's
//! step between the last unscale and the first optimizer update: on overflow every update of the
//! step is skipped on the device (parameters and optimizer state untouched, Adam's step count not
//! advanced) and the scale halves; after `growth_interval` updates in a row without one it
//! doubles. Nothing is read back to decide it: the training step stays one submit.
//!
//! Both tensors are session state, so they are saved with the optimizer state and an exact resume
//! continues with the same scale. Read them with `Session::get_state` (see [`ScalerState`]).

use kiln_device::{DType, HYPER_LEN};

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::shape::Shape;

/// The state name of the loss scale (one f32).
pub const LOSS_SCALE: &str = "loss_scale";
/// The state name of the scaler's counters ([`ScalerState::from_words`] reads them).
pub const LOSS_SCALE_TRACKER: &str = "loss_scale.tracker";

/// `torch.amp.GradScaler`'s settings, with its defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradScaler {
    /// The scale of the first step (default 2^16).
    pub init_scale: f32,
    /// Factor of the scale after `growth_interval` updates in a row without overflow (default 2).
    pub growth_factor: f32,
    /// Factor of the scale after an overflow (default 0.5).
    pub backoff_factor: f32,
    /// Updates in a row without overflow before the scale grows (default 2000).
    pub growth_interval: u32,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler { init_scale: 65536.0, growth_factor: 2.0, backoff_factor: 0.5, growth_interval: 2000 }
    }
}

impl GradScaler {
    /// The defaults with another initial scale.
    pub fn with_init_scale(init_scale: f32) -> Self {
        GradScaler { init_scale, ..GradScaler::default() }
    }

    fn check(&self) -> Result<()> {
        let ok = self.init_scale.is_finite()
            && self.init_scale > 0.0
            && self.growth_factor.is_finite()
            && self.growth_factor > 1.0
            && self.backoff_factor > 0.0
            && self.backoff_factor < 1.0
            && self.growth_interval > 0;
        if ok {
            return Ok(());
        }
        Err(Error::shape(
            "grad_scaler",
            format!(
                "init_scale {} (must be finite and > 0), growth_factor {} (> 1), backoff_factor {} \
                 (in (0, 1)), growth_interval {} (at least 1)",
                self.init_scale, self.growth_factor, self.backoff_factor, self.growth_interval
            ),
        ))
    }
}

/// The scaler's nodes in a graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaler {
    /// The scale, `[1]`.
    pub scale: NodeId,
    /// The counters and the overflow flag, `[TRACKER_LEN]`.
    pub tracker: NodeId,
    /// The settings it was declared with.
    pub config: GradScaler,
}

/// What the scaler's tensors say, as read back from a session.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScalerState {
    /// The scale the next step multiplies the loss gradient by.
    pub scale: f32,
    /// Steps skipped because a gradient overflowed, in all.
    pub skipped: u64,
    /// Updates applied, in all.
    pub applied: u64,
    /// Updates in a row without overflow since the scale last changed.
    pub good: u64,
}

impl ScalerState {
    /// From the contents of [`LOSS_SCALE`] and [`LOSS_SCALE_TRACKER`].
    pub fn from_words(scale: &[f32], tracker: &[f32]) -> Self {
        use kiln_device::kernels::loss_scale::{TRACKER_APPLIED, TRACKER_GOOD, TRACKER_SKIPPED};
        let count = |k: usize| tracker.get(k).map_or(0, |&v| v as u64);
        ScalerState {
            scale: scale.first().copied().unwrap_or(0.0),
            skipped: count(TRACKER_SKIPPED),
            applied: count(TRACKER_APPLIED),
            good: count(TRACKER_GOOD),
        }
    }
}

impl Graph {
    /// Declares dynamic loss scaling for this graph (see the module docs); call it before
    /// [`Graph::gradients`], then pass the gradients through [`Graph::unscale_gradients`] before
    /// clipping and [`Graph::optimize`]. Once per graph.
    pub fn grad_scaler(&self, config: GradScaler) -> Result<Scaler> {
        self.check()?;
        config.check()?;
        if self.scaler().is_some() {
            return Err(Error::name("grad_scaler", LOSS_SCALE, "the graph already has a loss scaler"));
        }
        if self.optimizer().is_some() {
            return Err(Error::name("grad_scaler", LOSS_SCALE, "declare the scaler before optimize"));
        }
        let tracker_len = kiln_device::kernels::loss_scale::TRACKER_LEN;
        let scale = self.state_init(LOSS_SCALE, &[1], vec![config.init_scale]);
        let tracker = self.state_init(LOSS_SCALE_TRACKER, &[tracker_len], vec![0.0; tracker_len]);
        self.check()?;
        let scaler = Scaler { scale, tracker, config };
        self.inner.borrow_mut().scaler = Some(scaler);
        Ok(scaler)
    }

    /// The loss scaler, when [`Graph::grad_scaler`] declared one.
    pub fn scaler(&self) -> Option<Scaler> {
        self.inner.borrow().scaler
    }

    /// Each gradient divided by the scale (f32), each raising the scaler's overflow flag when it
    /// holds an inf or NaN. What clipping and the optimizer must see.
    pub fn unscale_gradients(&self, grads: &[NodeId]) -> Result<Vec<NodeId>> {
        self.check()?;
        let Some(s) = self.scaler() else {
            return Err(Error::name("unscale", LOSS_SCALE, "the graph has no loss scaler (grad_scaler)"));
        };
        let out: Vec<NodeId> = grads
            .iter()
            .map(|&gr| {
                self.build(Op::Unscale, &[gr, s.scale, s.tracker], |n| {
                    if n[0].dtype != DType::F32 {
                        return Err(Error::shape(
                            "unscale",
                            format!("gradients are f32, got {:?}", n[0].dtype),
                        ));
                    }
                    Ok((n[0].shape.clone(), DType::F32))
                })
            })
            .collect();
        self.check()?;
        Ok(out)
    }

    /// The seed of the backward pass for `loss`: ones, or the scale when the graph scales its loss.
    pub(crate) fn backward_seed(&self, loss: NodeId) -> NodeId {
        let ones = self.fill(self.shape(loss), 1.0);
        match self.scaler() {
            None => ones,
            Some(s) => self.mul(ones, self.reshape(s.scale, &[])),
        }
    }

    /// The scaler's step before the optimizer updates (`optimize` calls it): the hyper buffer
    /// after the step wrote its skip word (and Adam's bias corrections). An error when no
    /// gradient was unscaled: the updates would apply scaled gradients.
    pub(crate) fn scale_update(&self, hyper: NodeId, adam: bool) -> Result<NodeId> {
        let Some(s) = self.scaler() else { return Ok(hyper) };
        if !self.nodes().iter().any(|n| n.op == Op::Unscale) {
            return Err(Error::name(
                "optimize",
                LOSS_SCALE,
                "the graph scales its loss but no gradient was unscaled: pass the gradients through \
                 unscale_gradients before clipping and optimize",
            ));
        }
        let c = s.config;
        let op = Op::ScaleUpdate {
            growth: c.growth_factor,
            backoff: c.backoff_factor,
            interval: c.growth_interval,
            adam,
        };
        Ok(self.push(op, &[s.scale, s.tracker, hyper], Shape::fixed(&[HYPER_LEN]), DType::F32))
    }
}
