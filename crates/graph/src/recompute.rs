//! Activation checkpointing (`torch.utils.checkpoint`): segments of the forward graph whose inner
//! activations are not kept for the backward but recomputed from the segment's inputs.
//!
//! [`Graph::checkpoint`] marks the nodes a closure builds as one segment. When
//! [`Graph::gradients`] reaches the segment's backward, it first appends a copy of the segment's
//! forward nodes (their inputs from outside the segment shared, those inside it redirected to the
//! copies), then builds the segment's backward rules over the copies. The copies' ids fall right
//! before their segment's backward nodes, and the compiler schedules in id order, so the
//! recomputation runs just before the backward that reads it, after the backward of every later
//! segment: the forward's own inner tensors die as soon as the forward has read them, and only a
//! segment's inputs (and what the loss tail reads) live until the backward. The copies run the
//! same kernels on the same inputs in the same order, so the gradients are unchanged.
//!
//! Nothing in a graph draws random numbers on the device: a dropout mask is an input the host
//! feeds each step, so a recomputed segment reads the very mask its forward read.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, NodeId, Op};

impl Graph {
    /// Builds the nodes `f` makes as one recomputed segment and returns what `f` returns: the
    /// backward ([`Graph::gradients`]) recomputes the segment's forward from its inputs instead of
    /// keeping its inner activations alive from the forward to the backward (activation
    /// checkpointing; typically one transformer block per segment). Parameters declared inside
    /// are ordinary parameters. Segments do not nest (marking one inside another is a build
    /// error, see [`Graph::check`]); a segment that makes no node is no segment.
    ///
    /// ```
    /// use kiln_graph::{compile, Graph};
    ///
    /// # fn main() -> kiln_graph::Result<()> {
    /// let plan_bytes = |recompute: bool| -> kiln_graph::Result<u64> {
    ///     let g = Graph::new();
    ///     let mut h = g.input("x", &[16]);
    ///     let mut params = Vec::new();
    ///     for i in 0..4 {
    ///         let w = g.param_init(&format!("{i}.w"), &[16, 16], vec![0.1; 256]);
    ///         params.push(w);
    ///         let block = |h| g.add(h, g.gelu(g.gelu(g.matmul(h, w))));
    ///         h = if recompute { g.checkpoint(|| block(h)) } else { block(h) };
    ///     }
    ///     let loss = g.sum_all(h);
    ///     let grads = g.gradients(loss, &params)?;
    ///     Ok(compile(&g, &grads, false, 64)?.peak_live_bytes())
    /// };
    /// assert!(plan_bytes(true)? < plan_bytes(false)?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkpoint<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = self.len();
        let nested = {
            let mut inner = self.inner.borrow_mut();
            let open = inner.open_segment.is_some();
            if !open {
                inner.open_segment = Some(start);
            }
            open
        };
        if nested {
            self.fail(Error::shape("checkpoint", "segments do not nest: this one is inside another"));
            return f();
        }
        let r = f();
        let mut inner = self.inner.borrow_mut();
        inner.open_segment = None;
        let end = inner.nodes.len();
        if end > start {
            inner.segments.push(start..end);
        }
        r
    }

    /// The recomputed segments marked so far (ranges of node indices, in creation order).
    pub fn segments(&self) -> Vec<Range<usize>> {
        self.inner.borrow().segments.clone()
    }
}

/// What [`Graph::gradients`] needs to recompute segments: which segment each node is in, and
/// the copy of each node of a segment already recomputed.
pub(crate) struct Recompute {
    segments: Vec<Range<usize>>,
    segment_of: Vec<Option<usize>>,
    done: Vec<bool>,
    copy: Vec<Option<NodeId>>,
}

impl Recompute {
    /// The segments of `g` among its first `n` nodes (those the loss can depend on).
    pub fn new(g: &Graph, n: usize) -> Result<Self> {
        if g.inner.borrow().open_segment.is_some() {
            return Err(Error::shape("gradients", "called inside a checkpoint segment (it is still open)"));
        }
        let segments = g.segments();
        let mut segment_of = vec![None; n];
        for (s, r) in segments.iter().enumerate() {
            segment_of[r.start.min(n)..r.end.min(n)].iter_mut().for_each(|x| *x = Some(s));
        }
        Ok(Recompute { done: vec![false; segments.len()], segments, segment_of, copy: vec![None; n] })
    }

    /// The node whose backward rule stands for node `i`: `i` itself outside segments, else its
    /// recomputed copy (the whole segment is copied the first time one of its nodes is asked for).
    pub fn backward_node(&mut self, g: &Graph, i: usize) -> NodeId {
        let Some(s) = self.segment_of[i] else { return NodeId(i as u32) };
        if !self.done[s] {
            self.done[s] = true;
            let r = self.segments[s].clone();
            for j in r.start..r.end.min(self.copy.len()) {
                let node = g.node(NodeId(j as u32));
                // leaves (parameters, inputs such as dropout masks, constants) are shared, and
                // in-place writes are not repeated
                if !matches!(node.op, Op::Prim(_) | Op::Reshape) {
                    continue;
                }
                let inputs = node.inputs.iter().map(|&x| self.copy[x.index()].unwrap_or(x)).collect();
                self.copy[j] = Some(g.push_node(Node { inputs, init: None, ..node }));
            }
        }
        self.copy[i].unwrap_or(NodeId(i as u32))
    }
}
