//! Optimizer update nodes, appended after the backward pass so forward + backward + update run as
//! one plan, and gradient clipping. An update node carries only its rule (`kiln_device::UpdateRule`,
//! which picks the kernel); the hyper-parameters stay out of the IR, in the session's
//! [`Optimizer`] (`optimizer.rs`).

use kiln_device::{DType, HYPER_LEN};

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::optimizer::Optimizer;
use crate::shape::Shape;

impl Graph {
    /// Appends one in-place update per parameter (with its persistent state and the shared hyper
    /// buffer). Returns the update nodes; run them with `Session::train`. Call once per graph.
    pub fn optimize(&self, params: &[NodeId], grads: &[NodeId], opt: Optimizer) -> Result<Vec<NodeId>> {
        self.check()?;
        if params.len() != grads.len() {
            return Err(Error::shape(
                opt.name(),
                format!("{} parameters, {} gradients", params.len(), grads.len()),
            ));
        }
        if self.optimizer().is_some() || self.nodes().iter().any(|n| n.op == Op::Hyper) {
            return Err(Error::name("optimizer", opt.name(), "the graph already has an optimizer"));
        }
        self.refuse_running_targets(params, opt.name())?;
        let hyper = self.push(Op::Hyper, &[], Shape::fixed(&[HYPER_LEN]), DType::F32);
        let mut updates = Vec::new();
        for (&p, &gr) in params.iter().zip(grads) {
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
            updates.push(self.push(Op::Update(opt.rule()), &inputs, Shape::scalar(), DType::F32));
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
