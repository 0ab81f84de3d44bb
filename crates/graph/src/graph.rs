//! The IR: a graph of primitive ops over shaped f32 (and u32) tensors, built in topological order
//! (a node only refers to nodes made before it, so ascending ids are a valid schedule).

use std::cell::{Ref, RefCell};

use kiln_device::{DType, Prim, UpdateRule};

use crate::error::{Error, Result};
use crate::optimizer::Optimizer;
use crate::shape::Shape;

/// A node of a [`Graph`]. Cheap to copy; only meaningful with the graph that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// The node's position in the graph (0-based, in creation order).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a node computes. Leaves first (no inputs), then the primitives, each mapping to one device
/// kernel, then the backward-only primitives autodiff emits, then optimizer updates.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Fed by the caller every step; its leading dimension is the batch.
    Input {
        /// The name a feed gives it.
        name: String,
    },
    /// A trainable tensor that persists across steps.
    Param {
        /// Its state-dict name.
        name: String,
    },
    /// Optimizer state (momentum, Adam moments): persistent, not trainable.
    State {
        /// Its name (`<param>.<slot>`).
        name: String,
    },
    /// A persistent tensor holding the node's `init` data.
    Const,
    /// The optimizer's hyper-parameter buffer, rewritten by the session every step.
    Hyper,
    /// A tensor of one value (divided by the batch size when `per_batch`), written once per plan.
    Fill {
        /// The value of every element.
        value: f32,
        /// Divide `value` by the batch size of the plan.
        per_batch: bool,
    },
    /// The same data under another shape: no kernel, the buffer is shared.
    Reshape,
    /// Stands in for an op that failed to build; the graph's first error says why.
    Invalid,
    /// A primitive: one device kernel, named, validated and lowered by `kiln_device::Prim`.
    Prim(Prim),
    /// In-place optimizer step. Inputs `[param, grad, hyper, state...]`; no output. The node
    /// carries only the rule and whether the weight decay applies; the hyper-parameters are the
    /// session's (see [`crate::Optimizer`]).
    Update {
        /// The update rule (picks the kernel).
        rule: UpdateRule,
        /// Apply the optimizer's weight decay to this parameter (false: exempt, see
        /// [`Graph::optimize_with`]).
        decay: bool,
    },
    /// In-place running statistic, run by training plans only (after the value is computed and
    /// after every reader of the target). Inputs `[target, value]`; no output. `target = keep *
    /// target + gain * (value * scale)`, where `scale` is 1, or with `unbiased_per_row: Some(p)`
    /// the unbiased factor `n / (n - 1)` for `n = batch * p` (each plan is compiled for one batch
    /// size, so a short last batch gets its own factor). See [`Graph::running_update`].
    RunningUpdate {
        /// Weight of the old target.
        keep: f32,
        /// Weight of the new value.
        gain: f32,
        /// `Some(p)`: scale the value by `n / (n - 1)` for `n = batch * p`.
        unbiased_per_row: Option<usize>,
    },
    /// In-place row write into a persistent cache, run by every plan that needs its result.
    /// Inputs `[cache, rows, positions (u32)]`; the node IS the cache after the write (same
    /// buffer, no copy, like a reshape). See [`Graph::cache_write`].
    CacheWrite,
    /// A persistent gradient accumulator (or the accumulation weight), made by
    /// [`Graph::accumulate_gradients`]: session-owned like optimizer state but neither trained
    /// nor saved (it is empty at every optimizer update).
    Accumulator {
        /// Its name (`<param>.grad_accum`, or `grad_accum.weight`).
        name: String,
    },
    /// In-place gradient accumulation. Inputs `[accumulator, value]`; no output. An accumulate
    /// step ([`Session::accumulate`](crate::Session::accumulate)) adds `value` into the
    /// accumulator; a training step reads the accumulator (the summed gradient) and then zeroes
    /// it. See [`Graph::accumulate_gradients`].
    Accumulate,
    /// A gradient divided by the loss scale. Inputs `[grad, scale, tracker]`; raises the
    /// tracker's overflow flag in place when the gradient holds inf or NaN. See
    /// [`Graph::unscale_gradients`].
    Unscale,
    /// The loss scaler's step, in training plans, after every [`Op::Unscale`] and before the
    /// optimizer updates. Inputs `[scale, tracker, hyper]`, all written in place; the node IS the
    /// hyper buffer after the write (same buffer, like a cache write), which the updates read.
    /// See `loss_scale.rs`.
    ScaleUpdate {
        /// Factor of the scale after `interval` good updates.
        growth: f32,
        /// Factor of the scale after an overflow.
        backoff: f32,
        /// Good updates in a row before the scale grows.
        interval: u32,
        /// Rewrite Adam's bias corrections for the applied count.
        adam: bool,
    },
}

impl Op {
    /// The op's name in errors (the device kernel's name where there is one).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Param { .. } => "param",
            Op::State { .. } => "state",
            Op::Const => "const",
            Op::Hyper => "hyper",
            Op::Fill { .. } => "fill",
            Op::Reshape => "reshape",
            Op::Invalid => "invalid",
            Op::Prim(p) => p.name(),
            Op::Update { rule, .. } => rule.name(),
            Op::RunningUpdate { .. } => "running_update",
            Op::CacheWrite => "cache_write",
            Op::Accumulator { .. } => "accumulator",
            Op::Accumulate => "accumulate",
            Op::Unscale => "unscale",
            Op::ScaleUpdate { .. } => "scale_update",
        }
    }

    /// Whether the node writes a persistent tensor in place in training plans (an optimizer
    /// update or a running statistic) instead of producing an output.
    pub fn is_update(&self) -> bool {
        matches!(self, Op::Update { .. } | Op::RunningUpdate { .. } | Op::Accumulate)
    }

    /// Whether the node's buffer lives across steps (owned by the session, not by a plan).
    pub fn is_persistent(&self) -> bool {
        matches!(self, Op::Param { .. } | Op::State { .. } | Op::Const | Op::Hyper | Op::Accumulator { .. })
    }
}

/// A snapshot of one node: what it computes, its inputs, its shape and type.
#[derive(Clone, Debug)]
pub struct Node {
    /// What the node computes.
    pub op: Op,
    /// Its operands, in the op's order.
    pub inputs: Vec<NodeId>,
    /// Its output shape (the batch dimension symbolic).
    pub shape: Shape,
    /// Its element type (`F32`, or `U32` for labels, token ids and argmax).
    pub dtype: DType,
    /// Initial contents of a parameter or constant.
    pub init: Option<Vec<f32>>,
}

/// A tensor graph under construction. Builder methods take `&self` and never fail: the first shape
/// error is recorded (naming the op and the shapes) and returned by [`Graph::check`], which
/// `gradients`, `optimize` and `Session::new` call, so math reads like math:
/// `let h = g.relu(g.add(g.matmul(x, w1), b1));`
///
/// Shapes are checked as the graph is built, with the batch dimension symbolic; no device is
/// needed until a [`Session`](crate::Session) runs it:
///
/// ```
/// use kiln_graph::Graph;
///
/// let g = Graph::new();
/// let x = g.input("x", &[4]); // [B, 4]
/// let w = g.param("w", &[4, 3]);
/// let y = g.relu(g.matmul(x, w));
/// assert_eq!(g.shape(y).resolve(32), [32, 3]);
/// assert!(g.check().is_ok());
///
/// // A shape error does not panic: the graph records the first one and `check` returns it.
/// g.matmul(y, w); // [B, 3] @ [4, 3]
/// assert!(g.check().is_err());
/// ```
#[derive(Default)]
pub struct Graph {
    pub(crate) inner: RefCell<Inner>,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub nodes: Vec<Node>,
    pub error: Option<Error>,
    /// The hyper-parameters [`Graph::optimize`] was given: the session starts from them. Not
    /// part of the IR (update nodes carry only their rule).
    pub optimizer: Option<Optimizer>,
    /// Recomputed segments ([`Graph::checkpoint`]): ranges of node indices.
    pub segments: Vec<std::ops::Range<usize>>,
    /// Where the segment being built starts, while [`Graph::checkpoint`] runs.
    pub open_segment: Option<usize>,
    /// The half type the builders' matmuls read their operands in ([`Graph::set_autocast`]).
    pub autocast: Option<kiln_device::DType>,
    /// Casts scheduled right after their input ([`Graph::is_early`]).
    pub early: std::collections::HashSet<NodeId>,
    /// The loss scaler ([`Graph::grad_scaler`]).
    pub scaler: Option<crate::loss_scale::Scaler>,
    /// The half copies autocast made, by tensor and open segment, so that a tensor several
    /// matmuls read (the normed input of q, k and v) is cast once.
    pub autocast_copies: std::collections::HashMap<(NodeId, Option<usize>), NodeId>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Self {
        Graph::default()
    }

    /// The optimizer settings given to [`Graph::optimize`], if it was called.
    pub fn optimizer(&self) -> Option<Optimizer> {
        self.inner.borrow().optimizer
    }

    pub(crate) fn set_optimizer(&self, opt: Optimizer) {
        self.inner.borrow_mut().optimizer = Some(opt);
    }

    /// The first error met while building, if any.
    pub fn check(&self) -> Result<()> {
        match &self.inner.borrow().error {
            None => Ok(()),
            Some(e) => Err(Error::shape("graph", format!("built with an error: {e}"))),
        }
    }

    /// Takes the first build error out of the graph (for callers that want the original variant).
    pub fn take_error(&self) -> Option<Error> {
        self.inner.borrow_mut().error.take()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of node `id` (it must come from this graph).
    pub fn node(&self, id: NodeId) -> Node {
        self.inner.borrow().nodes[id.index()].clone()
    }

    /// The shape of node `id`.
    pub fn shape(&self, id: NodeId) -> Shape {
        self.inner.borrow().nodes[id.index()].shape.clone()
    }

    /// The element type of node `id`.
    pub fn dtype(&self, id: NodeId) -> DType {
        self.inner.borrow().nodes[id.index()].dtype
    }

    pub(crate) fn nodes(&self) -> Ref<'_, Vec<Node>> {
        Ref::map(self.inner.borrow(), |i| &i.nodes)
    }

    /// Parameters in the order they were declared.
    pub fn params(&self) -> Vec<NodeId> {
        self.ids_where(|op| matches!(op, Op::Param { .. }))
    }

    /// Inputs in the order they were declared.
    pub fn inputs(&self) -> Vec<NodeId> {
        self.ids_where(|op| matches!(op, Op::Input { .. }))
    }

    fn ids_where(&self, f: impl Fn(&Op) -> bool) -> Vec<NodeId> {
        let inner = self.inner.borrow();
        (0..inner.nodes.len()).filter(|&i| f(&inner.nodes[i].op)).map(|i| NodeId(i as u32)).collect()
    }

    /// The input, parameter or state node of this name.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        let inner = self.inner.borrow();
        inner
            .nodes
            .iter()
            .position(|n| match &n.op {
                Op::Input { name: m } | Op::Param { name: m } | Op::State { name: m } => m == name,
                _ => false,
            })
            .map(|i| NodeId(i as u32))
    }

    /// The name of an input, parameter or state node.
    pub fn name_of(&self, id: NodeId) -> Option<String> {
        match &self.inner.borrow().nodes[id.index()].op {
            Op::Input { name } | Op::Param { name } | Op::State { name } => Some(name.clone()),
            _ => None,
        }
    }

    pub(crate) fn push_node(&self, node: Node) -> NodeId {
        let mut inner = self.inner.borrow_mut();
        inner.nodes.push(node);
        NodeId(inner.nodes.len() as u32 - 1)
    }

    pub(crate) fn push(&self, op: Op, inputs: &[NodeId], shape: Shape, dtype: DType) -> NodeId {
        self.push_node(Node { op, inputs: inputs.to_vec(), shape, dtype, init: None })
    }

    /// Records `err` (unless an earlier error is already recorded) and returns an invalid node.
    pub(crate) fn fail(&self, err: Error) -> NodeId {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.error.is_none() {
                inner.error = Some(err);
            }
        }
        self.push(Op::Invalid, &[], Shape::scalar(), DType::F32)
    }

    /// Builds one node: `rule` sees the inputs' nodes and returns the output shape and type, or an
    /// error. Inputs that are already invalid propagate silently (the first error is kept).
    pub(crate) fn build(
        &self,
        op: Op,
        inputs: &[NodeId],
        rule: impl FnOnce(&[&Node]) -> Result<(Shape, DType)>,
    ) -> NodeId {
        let result = {
            let inner = self.inner.borrow();
            let nodes: Vec<&Node> = inputs.iter().map(|i| &inner.nodes[i.index()]).collect();
            if nodes.iter().any(|n| n.op == Op::Invalid) {
                None
            } else {
                Some(rule(&nodes))
            }
        };
        match result {
            None => self.push(Op::Invalid, &[], Shape::scalar(), DType::F32),
            Some(Ok((shape, dtype))) => self.push(op, inputs, shape, dtype),
            Some(Err(e)) => self.fail(e),
        }
    }

    /// Builds one primitive node: its attributes are validated by the device's vocabulary
    /// ([`Prim::validate`]), then `rule` gives the output shape and type as in [`Graph::build`].
    pub(crate) fn prim(
        &self,
        prim: Prim,
        inputs: &[NodeId],
        rule: impl FnOnce(&[&Node]) -> Result<(Shape, DType)>,
    ) -> NodeId {
        let checked = prim.validate();
        self.build(Op::Prim(prim), inputs, |n| {
            checked?;
            rule(n)
        })
    }
}
