//! Gradient accumulation on the device: persistent accumulators that micro-steps add weighted
//! gradients into, and a training step whose optimizer (and clipping) sees their sum. Nothing is
//! read back: the host only writes the next micro-batch's weight (one float) when it changes.

use kiln_device::DType;

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, NodeId, Op};
use crate::shape::Shape;

/// The name of the accumulation weight ([`Graph::accumulate_gradients`]).
pub const GRAD_WEIGHT: &str = "grad_accum.weight";

impl Graph {
    /// Accumulates `grads` (of `params`, same order) over micro-steps: returns the summed
    /// gradients, to clip and hand to [`Graph::optimize`] in place of `grads`.
    ///
    /// Each step weights its gradients by the accumulation weight (a persistent scalar, initially
    /// `1 / micro_batches`; [`Session::set_grad_weight`](crate::Session::set_grad_weight) changes
    /// it, e.g. to `rows / window_rows` for a short batch). A
    /// [`Session::accumulate`](crate::Session::accumulate) micro-step adds `weight * grad` into
    /// each parameter's accumulator (`<param>.grad_accum`, zero at first) and updates no
    /// parameter; a [`Session::train`](crate::Session::train) step feeds `accumulator + weight *
    /// grad` to what follows (clipping, the optimizer) and zeroes the accumulators. So `N - 1`
    /// accumulate steps and one train step over micro-batches of a mean-reduced loss, weights
    /// `1 / N`, take the optimizer step of the mean over all their rows.
    pub fn accumulate_gradients(
        &self,
        params: &[NodeId],
        grads: &[NodeId],
        micro_batches: usize,
    ) -> Result<Vec<NodeId>> {
        self.check()?;
        if micro_batches == 0 {
            return Err(Error::shape("accumulate", "micro_batches must be at least 1"));
        }
        if params.len() != grads.len() {
            return Err(Error::shape(
                "accumulate",
                format!("{} parameters, {} gradients", params.len(), grads.len()),
            ));
        }
        if self.nodes().iter().any(|n| matches!(n.op, Op::Accumulator { .. })) {
            return Err(Error::name("accumulate", GRAD_WEIGHT, "the graph already accumulates gradients"));
        }
        let weight = self.push_node(Node {
            op: Op::Accumulator { name: GRAD_WEIGHT.into() },
            inputs: Vec::new(),
            shape: Shape::scalar(),
            dtype: DType::F32,
            init: Some(vec![1.0 / micro_batches as f32]),
        });
        let mut summed = Vec::with_capacity(grads.len());
        for (&p, &gr) in params.iter().zip(grads) {
            let name = self.name_of(p).unwrap_or_else(|| format!("node{}", p.index()));
            let shape = self.shape(gr);
            if shape != self.shape(p) {
                return Err(Error::shape(
                    "accumulate",
                    format!("parameter '{name}' is {} but its gradient is {shape}", self.shape(p)),
                ));
            }
            let acc = self.push(
                Op::Accumulator { name: format!("{name}.grad_accum") },
                &[],
                shape.clone(),
                DType::F32,
            );
            let value = self.mul(gr, weight);
            self.push(Op::Accumulate, &[acc, value], Shape::scalar(), DType::F32);
            summed.push(self.add(acc, value));
        }
        self.check()?;
        Ok(summed)
    }

    /// The accumulation weight's node, when the graph accumulates gradients.
    pub fn grad_weight(&self) -> Option<NodeId> {
        self.nodes()
            .iter()
            .position(|n| matches!(&n.op, Op::Accumulator { name } if name == GRAD_WEIGHT))
            .map(|i| NodeId(i as u32))
    }
}
