//! Running statistics (BatchNorm's running mean and variance, its batch counter): persistent
//! tensors that a training step updates in place on the device, in the same plan as the optimizer
//! updates, with no read-back. They are not trained: they get no gradient and no optimizer update,
//! and evaluation plans neither run nor need their updates.

use kiln_device::DType;

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::shape::Shape;

impl Graph {
    /// In every training step: `target = (1 - momentum) target + momentum value`, in place, where
    /// `target` is a parameter or state (the buffer of a running statistic) and `value` this step's
    /// statistic of the same shape. With `unbiased_per_row: Some(p)`, `value` is a biased (divide
    /// by n) variance over `n = batch * p` values per element and is scaled by PyTorch's unbiased
    /// factor `n / (n - 1)` first; each plan (one per batch size) gets its own factor, and a batch
    /// with n < 2 fails to compile. Returns the update node (no output); `Session::train` runs it.
    ///
    /// The update runs after every reader of `target` in the step (they see the value from before
    /// the step) and never in `Session::run`. `target` may not also be trained: `gradients` and
    /// `optimize` refuse it.
    pub fn running_update(
        &self,
        target: NodeId,
        value: NodeId,
        momentum: f32,
        unbiased_per_row: Option<usize>,
    ) -> NodeId {
        if !(0.0..=1.0).contains(&momentum) {
            return self
                .fail(Error::shape("running_update", format!("momentum {momentum} is not in [0, 1]")));
        }
        if unbiased_per_row == Some(0) {
            return self.fail(Error::shape("running_update", "an unbiased variance needs per_row >= 1"));
        }
        self.running_op(target, value, 1.0 - momentum, momentum, unbiased_per_row)
    }

    /// In every training step: `target += 1`, in place (`num_batches_tracked`). Returns the update
    /// node.
    pub fn count_steps(&self, target: NodeId) -> NodeId {
        let one = self.fill(self.shape(target), 1.0);
        self.running_op(target, one, 1.0, 1.0, None)
    }

    /// The targets of every running update, in graph order.
    pub fn running_targets(&self) -> Vec<NodeId> {
        self.nodes()
            .iter()
            .filter(|n| matches!(n.op, Op::RunningUpdate { .. }))
            .map(|n| n.inputs[0])
            .collect()
    }

    fn running_op(
        &self,
        target: NodeId,
        value: NodeId,
        keep: f32,
        gain: f32,
        unbiased_per_row: Option<usize>,
    ) -> NodeId {
        let name = self.name_of(target).unwrap_or_else(|| format!("node {}", target.index()));
        let clash = {
            let nodes = self.nodes();
            nodes.iter().find_map(|n| match n.op {
                Op::RunningUpdate { .. } if n.inputs[0] == target => Some("already has a running update"),
                Op::Update { .. } if n.inputs[0] == target => Some("is trained by the optimizer"),
                _ => None,
            })
        };
        if let Some(why) = clash {
            return self.fail(Error::name("running statistic", &name, why));
        }
        if target == value {
            return self.fail(Error::name("running statistic", &name, "cannot be its own value"));
        }
        let op = Op::RunningUpdate { keep, gain, unbiased_per_row };
        self.build(op, &[target, value], |n| {
            if !matches!(n[0].op, Op::Param { .. } | Op::State { .. }) {
                return Err(Error::shape(
                    "running_update",
                    format!("the target must be a parameter or state, got a {} node", n[0].op.name()),
                ));
            }
            if n[1].op.is_update() {
                return Err(Error::shape("running_update", "the value is an update, which has no output"));
            }
            if n[0].dtype != DType::F32 || n[1].dtype != DType::F32 {
                return Err(Error::shape("running_update", "target and value must be f32"));
            }
            if n[0].shape != n[1].shape {
                return Err(Error::shape(
                    "running_update",
                    format!("'{name}' is {} but its value is {}", n[0].shape, n[1].shape),
                ));
            }
            Ok((Shape::scalar(), DType::F32))
        })
    }

    /// Errors when any of `params` is the target of a running update (`what` names the caller).
    pub(crate) fn refuse_running_targets(&self, params: &[NodeId], what: &'static str) -> Result<()> {
        let targets = self.running_targets();
        match params.iter().find(|p| targets.contains(p)) {
            None => Ok(()),
            Some(&p) => {
                let name = self.name_of(p).unwrap_or_else(|| format!("node {}", p.index()));
                let detail = format!(
                    "'{name}' is a running statistic (updated in place by running_update), not a \
                     trainable parameter"
                );
                Err(match what {
                    "gradients" => Error::no_grad(what, detail),
                    _ => Error::shape(what, detail),
                })
            }
        }
    }
}
