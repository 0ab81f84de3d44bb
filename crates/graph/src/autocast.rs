//! Autocast (mixed precision as PyTorch's `torch.autocast`): while a half type is set on the
//! graph, the model-level matmuls the builders make ([`Graph::linear`], the attention score and
//! context matmuls) read half copies of their f32 operands: `cast(x, half) @ cast(w, half)^T`,
//! with f32 accumulation and an f32 result. A parameter stays f32 (the master weight): its half
//! copy is cast from it each step, and the cast's backward hands an f32 gradient back to it, so
//! gradients and optimizer state stay f32. What the backward of such a matmul keeps is the half
//! copies of the activations, half the bytes of its f32 operands; a weight's copy is cast again
//! in the backward (from the master) rather than kept. Everything else (norms, softmax, losses, the
//! elementwise ops, convolutions, the matmuls autodiff builds) runs in f32 as before.
//!
//! What the backward keeps of those f32 ops is half too, as PyTorch's autocast keeps the half
//! outputs of its linear layers ([`Graph::saved_in_half`]): the attention probabilities, the
//! SwiGLU gate and up projections, the inputs of products and activations are saved as half
//! copies (cast right after they are computed, so the f32 tensor dies after its forward readers)
//! and cast back to f32 for the backward rule. Norms and losses keep their f32 inputs.

use std::collections::HashMap;

use kiln_device::{BinaryOp, DType, Prim, Saved};

use crate::error::Error;
use crate::graph::{Graph, Node, NodeId, Op};

impl Graph {
    /// Sets the half type the builders' matmuls read their operands in from now on (`None`:
    /// f32, the default). Only `F16` and `BF16` are accepted; another type marks the graph
    /// failed (reported by [`Graph::check`]).
    ///
    /// ```
    /// use kiln_graph::{DType, Graph};
    /// let g = Graph::new();
    /// g.set_autocast(Some(DType::BF16));
    /// let x = g.input("x", &[3]);
    /// let w = g.param("w", &[2, 3]);
    /// let y = g.linear(x, w, None);
    /// assert_eq!(g.dtype(y), DType::F32); // f32 out, from bf16 operands
    /// ```
    pub fn set_autocast(&self, half: Option<DType>) {
        if let Some(t) = half.filter(|t| !t.is_half()) {
            self.fail(Error::shape("autocast", format!("matmuls autocast to f16 or bf16, not {t}")));
            return;
        }
        self.inner.borrow_mut().autocast = half;
    }

    /// The half type the builders' matmuls read their operands in (`None`: f32).
    pub fn autocast(&self) -> Option<DType> {
        self.inner.borrow().autocast
    }

    /// The node whose backward rule stands for `node` (see [`Graph::gradients`]): a matmul that
    /// reads half copies of parameters (casts among the first `forward` nodes) is given fresh
    /// casts of them, made once per parameter in `recast`, so the backward casts each weight
    /// again from its master instead of keeping the forward's copy alive until then: autocast's
    /// weight copies take no activation memory.
    pub(crate) fn recast_weights(
        &self,
        node: NodeId,
        forward: usize,
        recast: &mut HashMap<NodeId, NodeId>,
    ) -> NodeId {
        let n = self.node(node);
        if !matches!(n.op, Op::Prim(Prim::Matmul { .. })) {
            return node;
        }
        let weight_copy = |x: NodeId| {
            let c = self.node(x);
            x.index() < forward
                && matches!(c.op, Op::Prim(Prim::Cast { .. }))
                && matches!(self.node(c.inputs[0]).op, Op::Param { .. })
        };
        if !n.inputs.iter().any(|&x| weight_copy(x)) {
            return node;
        }
        let inputs = n
            .inputs
            .iter()
            .map(|&x| match weight_copy(x) {
                true => *recast.entry(x).or_insert_with(|| {
                    let c = self.node(x);
                    self.push_node(Node { init: None, ..c })
                }),
                false => x,
            })
            .collect();
        self.push_node(Node { inputs, init: None, ..n })
    }

    /// Under autocast, the node whose backward rule stands for `b` and the value it reads for
    /// `b`'s output, with the tensors the rule saves from the forward replaced by f32 casts of
    /// half copies: the output of a softmax or of an activation that saves its output, the
    /// batch-sized inputs of an activation that saves its input, of a product and of SwiGLU.
    /// A half copy is shared with the matmul that reads it (autocast's own copy) or made for
    /// the purpose and scheduled right after its tensor ([`Graph::is_early`]), so the f32
    /// tensor lives only through its forward readers. `restored` memoizes the f32 casts, one per
    /// tensor. The same casts of the same values in a recomputed segment give the same bits.
    pub(crate) fn saved_in_half(
        &self,
        b: NodeId,
        restored: &mut HashMap<NodeId, NodeId>,
    ) -> (NodeId, NodeId) {
        let Some(half) = self.autocast() else { return (b, b) };
        let node = self.node(b);
        let Op::Prim(prim) = &node.op else { return (b, b) };
        let (inputs, output) = match prim {
            Prim::Softmax { .. } | Prim::SoftmaxUpto { .. } => (false, true),
            Prim::Unary { op, .. } => (op.saved() == Saved::Input, op.saved() == Saved::Output),
            Prim::Swiglu | Prim::Binary(BinaryOp::Mul) => (true, false),
            _ => return (b, b),
        };
        // activations of the batch, computed by a primitive (not leaves, not casts back from half)
        let kept = |t: NodeId| {
            let n = self.node(t);
            n.dtype == DType::F32
                && n.shape.symbolic_numel().1 > 0
                && matches!(n.op, Op::Prim(ref p) if !matches!(p, Prim::Cast { .. }))
        };
        let mut restore = |t: NodeId| {
            *restored.entry(t).or_insert_with(|| {
                let copy = self.half_copy(t, half);
                self.cast(copy, DType::F32)
            })
        };
        let out = if output && kept(b) { restore(b) } else { b };
        if !inputs || !node.inputs.iter().any(|&x| kept(x)) {
            return (b, out);
        }
        let inputs = node.inputs.iter().map(|&x| if kept(x) { restore(x) } else { x }).collect();
        (self.push_node(Node { inputs, init: None, ..node }), out)
    }

    /// A half copy of `t`: autocast's own (made for a matmul in the forward) or a new cast,
    /// scheduled right after `t`.
    fn half_copy(&self, t: NodeId, half: DType) -> NodeId {
        let existing =
            self.inner.borrow().autocast_copies.iter().find(|((x, _), _)| *x == t).map(|(_, &c)| c);
        if let Some(copy) = existing.filter(|&c| self.dtype(c) == half) {
            return copy;
        }
        let copy = self.cast(t, half);
        self.inner.borrow_mut().early.insert(copy);
        copy
    }

    /// Whether the compiler schedules `node` right after its first input instead of at its id
    /// (the half copies of saved activations that autocast makes while building the backward).
    pub fn is_early(&self, node: NodeId) -> bool {
        self.inner.borrow().early.contains(&node)
    }

    /// `x` as a matmul operand under autocast: its half copy when autocast is on and `x` is f32,
    /// else `x` itself. One copy per tensor (within one recomputed segment), however many
    /// matmuls read it.
    pub(crate) fn autocast_operand(&self, x: NodeId) -> NodeId {
        let Some(half) = self.autocast().filter(|_| self.dtype(x) == DType::F32) else {
            return x;
        };
        let key = (x, self.inner.borrow().open_segment);
        if let Some(&copy) = self.inner.borrow().autocast_copies.get(&key) {
            return copy;
        }
        let copy = self.cast(x, half);
        self.inner.borrow_mut().autocast_copies.insert(key, copy);
        copy
    }
}
