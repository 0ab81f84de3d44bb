//! Losses, each a mean over the batch as PyTorch's defaults are. A model whose last layer is a
//! sigmoid (softmax) trained with binary (categorical) cross-entropy is trained from the logits
//! before that layer, with the fused, numerically stable kernel; its predictions stay probabilities.

use kiln_graph::{Graph, NodeId};
use serde::{Deserialize, Serialize};

use crate::layers::Activation;

/// The loss `fit` minimizes, given to `compile`. Pick it by target: [`Loss::Mse`], [`Loss::Mae`] or
/// [`Loss::Huber`] for regression values, [`Loss::BinaryCrossEntropy`] for one sigmoid output,
/// [`Loss::CrossEntropy`] for class ids against a softmax (or logits).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Loss {
    /// `mean((p - t)^2)` (`nn.MSELoss`).
    Mse,
    /// `mean(|p - t|)` (`nn.L1Loss`).
    Mae,
    /// Quadratic within `delta`, linear beyond (`nn.HuberLoss`).
    Huber {
        /// Where the quadratic part ends (PyTorch's default is 1.0).
        delta: f32,
    },
    /// From probabilities (`nn.BCELoss`; probabilities clamped to [1e-7, 1 - 1e-7]).
    BinaryCrossEntropy,
    /// From logits (`nn.BCEWithLogitsLoss`).
    BinaryCrossEntropyWithLogits,
    /// Integer class labels against logits, or against a final softmax (`nn.CrossEntropyLoss`).
    CrossEntropy,
    /// One-hot (or soft) targets `[batch, classes]` against logits or a final softmax.
    CrossEntropyOneHot,
}

/// What the loss compares the model's output with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// f32 values shaped like the output.
    Values,
    /// One u32 class id per example.
    Labels,
    /// f32 one-hot rows, `[batch, classes]`.
    OneHot,
}

const EPS: f32 = 1e-7;

impl Loss {
    /// The name used in logs, histories and saved models (`"mse"`, `"crossentropy"`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::Mae => "mae",
            Loss::Huber { .. } => "huber",
            Loss::BinaryCrossEntropy => "binary_crossentropy",
            Loss::BinaryCrossEntropyWithLogits => "binary_crossentropy_with_logits",
            Loss::CrossEntropy => "crossentropy",
            Loss::CrossEntropyOneHot => "crossentropy_onehot",
        }
    }

    /// What targets this loss needs from the data set (class ids, one-hot rows or values).
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Loss::CrossEntropy => TargetKind::Labels,
            Loss::CrossEntropyOneHot => TargetKind::OneHot,
            _ => TargetKind::Values,
        }
    }

    /// Whether this loss is computed from the logits under `last`, the model's final activation.
    pub(crate) fn fuses(&self, last: Option<Activation>) -> bool {
        matches!(
            (self, last),
            (Loss::BinaryCrossEntropy, Some(Activation::Sigmoid))
                | (Loss::CrossEntropy | Loss::CrossEntropyOneHot, Some(Activation::Softmax))
        )
    }

    /// Whether the model's output is a logit (so binary accuracy thresholds at 0, not 0.5).
    pub(crate) fn output_is_logit(&self) -> bool {
        matches!(self, Loss::BinaryCrossEntropyWithLogits)
    }

    /// The scalar loss node. `out` is the model's output; `logits` the node before its final
    /// activation when [`Loss::fuses`] says so (and `out` itself otherwise).
    pub(crate) fn build(&self, g: &Graph, out: NodeId, logits: NodeId, target: NodeId) -> NodeId {
        match *self {
            Loss::Mse => g.mse_loss(out, target),
            Loss::Mae => g.mean_all(g.abs(g.sub(out, target))),
            Loss::Huber { delta } => {
                // with a = |p - t| and m = min(a, delta): 0.5 m^2 + delta (a - m)
                let a = g.abs(g.sub(out, target));
                let m = g.minimum(a, g.scalar(delta));
                let quad = g.scale(g.mul(m, m), 0.5);
                g.mean_all(g.add(quad, g.scale(g.sub(a, m), delta)))
            }
            Loss::BinaryCrossEntropy if logits != out => g.bce_with_logits(logits, target),
            Loss::BinaryCrossEntropy => {
                // -(t log p + (1 - t) log(1 - p)), p clamped away from 0 and 1
                let p = g.minimum(g.maximum(out, g.scalar(EPS)), g.scalar(1.0 - EPS));
                let one = g.scalar(1.0);
                let pos = g.mul(target, g.log(p));
                let neg = g.mul(g.sub(one, target), g.log(g.sub(one, p)));
                g.neg(g.mean_all(g.add(pos, neg)))
            }
            Loss::BinaryCrossEntropyWithLogits => g.bce_with_logits(out, target),
            Loss::CrossEntropy => g.softmax_cross_entropy(logits, target),
            Loss::CrossEntropyOneHot => {
                // -mean over rows of sum(t * log_softmax(z))
                let per_row = g.sum(g.mul(target, g.log_softmax(logits)), 1, false);
                g.neg(g.mean(per_row, 0, false))
            }
        }
    }
}
