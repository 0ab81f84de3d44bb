//! Optimizer update nodes, appended after the backward pass so forward + backward + update run as
//! one plan, and gradient clipping. An update node carries only its rule (`kiln_device::UpdateRule`,
//! which picks the kernel) and its decay flag (the kernel's decay attribute); the hyper-parameters stay out of the IR, in the session's
//! [`Optimizer`] (`optimizer.rs`).

use kiln_device::{DType, HYPER_LEN};

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::optimizer::Optimizer;
use crate::shape::Shape;

impl Graph {
    /// Appends one in-place update per parameter (with its persistent state and the shared hyper
    /// buffer). Returns the update nodes; run them with `Session::train`. Call once per graph.
    /// Every parameter gets the optimizer's weight decay; [`Graph::optimize_with`] exempts some.
    pub fn optimize(&self, params: &[NodeId], grads: &[NodeId], opt: Optimizer) -> Result<Vec<NodeId>> {
        self.optimize_with(params, grads, opt, &vec![true; params.len()])
    }

    /// [`Graph::optimize`] with two parameter groups: `decay[i]` says whether `params[i]` gets the
    /// optimizer's weight decay (PyTorch's param groups with `weight_decay=0` for biases and norm
    /// weights, as nanoGPT and Hugging Face trainers set up AdamW). An exempt parameter runs the
    /// same update kernel with its decay switched off: AdamW without decay is Adam without decay.
    pub fn optimize_with(
        &self,
        params: &[NodeId],
        grads: &[NodeId],
        opt: Optimizer,
        decay: &[bool],
    ) -> Result<Vec<NodeId>> {
        self.check()?;
        if params.len() != grads.len() || params.len() != decay.len() {
            return Err(Error::shape(
                opt.name(),
                format!(
                    "{} parameters, {} gradients, {} decay flags",
                    params.len(),
                    grads.len(),
                    decay.len()
                ),
            ));
        }
        if self.optimizer().is_some() || self.nodes().iter().any(|n| n.op == Op::Hyper) {
            return Err(Error::name("optimizer", opt.name(), "the graph already has an optimizer"));
        }
        self.refuse_running_targets(params, opt.name())?;
        let hyper = self.push(Op::Hyper, &[], Shape::fixed(&[HYPER_LEN]), DType::F32);
        // with a loss scaler, the updates read the hyper buffer after its step (skip word set)
        let adam = matches!(opt, Optimizer::Adam { .. } | Optimizer::AdamW { .. });
        let hyper = self.scale_update(hyper, adam)?;
        let mut updates = Vec::new();
        for ((&p, &gr), &decay) in params.iter().zip(grads).zip(decay) {
            let Some(name) = self.name_of(p).filter(|_| matches!(self.node(p).op, Op::Param { .. })) else {
                return Err(Error::shape(opt.name(), format!("node {} is not a parameter", p.index())));
            };
            let shape = self.shape(p);
            if self.shape(gr) != shape {
                return Err(Error::shape(
                    opt.name(),
                    format!("parameter '{name}' is {shape} but its gradient is {}", self.shape(gr)),
                ));
            }
            let mut inputs = vec![p, gr, hyper];
            for suffix in opt.state_names() {
                inputs.push(self.state(&format!("{name}.{suffix}"), shape.clone()));
            }
            self.check()?;
            updates.push(self.push(
                Op::Update { rule: opt.rule(), decay },
                &inputs,
                Shape::scalar(),
                DType::F32,
            ));
        }
        self.set_optimizer(opt);
        Ok(updates)
    }

    /// Clipping by global norm, on the device: returns the clipped gradients and the global norm
    /// (before clipping). `g * min(1, max_norm / (norm + 1e-6))`, as `clip_grad_norm_` does.
    pub fn clip_grad_norm(&self, grads: &[NodeId], max_norm: f32) -> (Vec<NodeId>, NodeId) {
        let mut total: Option<NodeId> = None;
        for &gr in grads {
            let sq = self.sum_all(self.mul(gr, gr));
            total = Some(match total {
                None => sq,
                Some(t) => self.add(t, sq),
            });
        }
        let norm = self.sqrt(total.unwrap_or_else(|| self.scalar(0.0)));
        let ratio = self.div(self.scalar(max_norm), self.add(norm, self.scalar(1e-6)));
        let scale = self.minimum(ratio, self.scalar(1.0));
        (grads.iter().map(|&gr| self.mul(gr, scale)).collect(), norm)
    }
}
