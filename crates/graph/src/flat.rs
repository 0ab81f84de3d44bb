//! Flat parameter memory: every optimized parameter a view of one buffer (per chunk), and its
//! gradient and optimizer state views of buffers laid out the same way, so a training step
//! updates all of them with one optimizer launch per chunk instead of one per parameter.
//!
//! [`FlatLayout::of`] lays the parameters out (the weight-decayed ones first, so one launch
//! serves both AdamW parameter groups through the kernel's `decayed` prefix; each at an offset
//! aligned to [`kiln_device::VIEW_ALIGN`]; a new chunk where one buffer would pass the device's
//! limit). The session allocates the buffers and views ([`crate::Session`]), the compiler puts
//! each gradient in its view and replaces the per-parameter updates by one launch per chunk
//! (`compile.rs`). The padding between views is zero and stays zero (a zero gradient moves
//! nothing, and decays nothing that is zero).
//!
//! The price is memory: every gradient lives until the update at the end of the step (as
//! PyTorch's `.grad` tensors do), where one update per parameter frees each gradient as soon as
//! its parameter is updated. So the layout is used when the parameters are few enough that the
//! launches matter more: up to [`FLAT_MAX_ELEMENTS`] (`KILN_FLAT_PARAMS=on|off` overrides).

use kiln_device::{DType, VIEW_ALIGN};

use crate::graph::{Graph, NodeId, Op};

/// Largest parameter count (all optimized parameters together) laid out flat by default: 16M
/// elements, 64 MB of gradients kept to the end of a step. Past it a model's launches are cheap
/// next to its work, and each gradient is freed as soon as its parameter is updated instead.
pub const FLAT_MAX_ELEMENTS: usize = 1 << 24;

/// One parameter's place in a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The parameter's update node.
    pub update: NodeId,
    /// The parameter.
    pub param: NodeId,
    /// The node whose buffer holds its gradient (the gradient's storage, through reshapes).
    pub grad: NodeId,
    /// Its optimizer state, in kernel slot order.
    pub states: Vec<NodeId>,
    /// First element in the chunk's buffers.
    pub offset: usize,
    /// Elements.
    pub len: usize,
}

/// Parameters sharing one set of buffers (parameters, gradients, each optimizer state), updated
/// by one launch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Elements of each buffer (the last member's end).
    pub len: usize,
    /// Leading elements that take the weight decay (the decayed members come first).
    pub decayed: usize,
    /// The parameters, in buffer order.
    pub members: Vec<Member>,
}

/// Where every optimized parameter lives in flat memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatLayout {
    /// The chunks, each at most the device's largest buffer.
    pub chunks: Vec<Chunk>,
}

/// Whether `KILN_FLAT_PARAMS` forces the choice (read once per process).
fn forced() -> Option<bool> {
    static FORCED: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("KILN_FLAT_PARAMS").as_deref() {
        Ok("on" | "1") => Some(true),
        Ok("off" | "0") => Some(false),
        _ => None,
    })
}

impl FlatLayout {
    /// The layout for `g`'s optimizer updates with buffers of at most `max_bytes`, or `None`
    /// when the graph has no updates, when its parameters are more than [`FLAT_MAX_ELEMENTS`]
    /// (unless `KILN_FLAT_PARAMS=on`; `off` always gives `None`), or when a gradient cannot
    /// live in a view: its storage is not computed by a kernel of its own (a leaf, such as the
    /// reduced-gradient buffers of data parallelism), is shared with another gradient, or the
    /// kernel that writes it also reads another gradient (one launch may not write a view and
    /// read its buffer elsewhere).
    pub fn of(g: &Graph, max_bytes: u64) -> Option<FlatLayout> {
        if forced() == Some(false) {
            return None;
        }
        let nodes = g.nodes();
        let root = |mut id: NodeId| {
            while nodes[id.index()].op == Op::Reshape {
                id = nodes[id.index()].inputs[0];
            }
            id
        };
        let mut members: Vec<(bool, Member)> = Vec::new();
        let mut hyper = None;
        for (i, n) in nodes.iter().enumerate() {
            let Op::Update { decay, .. } = n.op else { continue };
            let (param, grad) = (n.inputs[0], root(n.inputs[1]));
            let len = nodes[param.index()].shape.numel(1);
            let ok = nodes[grad.index()].dtype == DType::F32
                && matches!(nodes[grad.index()].op, Op::Prim(_) | Op::Unscale)
                && hyper.is_none_or(|h| h == n.inputs[2]);
            if !ok {
                return None;
            }
            hyper = Some(n.inputs[2]);
            let states = n.inputs[3..].to_vec();
            members.push((decay, Member { update: NodeId(i as u32), param, grad, states, offset: 0, len }));
        }
        let total: usize = members.iter().map(|m| m.1.len).sum();
        if members.is_empty() || (total > FLAT_MAX_ELEMENTS && forced() != Some(true)) {
            return None;
        }
        // each gradient's storage is its own, and its kernel reads no other gradient
        let mut grad_of = vec![false; nodes.len()];
        for (_, m) in &members {
            if std::mem::replace(&mut grad_of[m.grad.index()], true) {
                return None;
            }
        }
        for (_, m) in &members {
            if nodes[m.grad.index()].inputs.iter().any(|&x| grad_of[root(x).index()]) {
                return None;
            }
        }
        // the decayed parameters first, each group in graph order; chunks up to `max_bytes`
        members.sort_by_key(|m| !m.0);
        let step = VIEW_ALIGN / 4;
        let max_len = (max_bytes / 4).min(usize::MAX as u64) as usize;
        let mut chunks: Vec<Chunk> = Vec::new();
        for (decay, mut m) in members {
            let at = chunks.last().map(|c| c.len.next_multiple_of(step));
            let chunk = match at {
                Some(at) if at + m.len <= max_len => chunks.last_mut().expect("just seen"),
                _ => {
                    chunks.push(Chunk { len: 0, decayed: 0, members: Vec::new() });
                    chunks.last_mut().expect("just pushed")
                }
            };
            m.offset = chunk.len.next_multiple_of(step);
            chunk.len = m.offset + m.len;
            if decay {
                chunk.decayed = chunk.len;
            }
            chunk.members.push(m);
        }
        Some(FlatLayout { chunks })
    }

    /// The chunk and member holding the gradient stored in node `id`, if any.
    pub fn grad_place(&self, id: NodeId) -> Option<(usize, usize)> {
        self.chunks
            .iter()
            .enumerate()
            .find_map(|(c, ch)| ch.members.iter().position(|m| m.grad == id).map(|k| (c, k)))
    }

    /// Bytes of one set of buffers (what the gradients take, padding included).
    pub fn grad_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| DType::F32.bytes(c.len)).sum()
    }
}
