//! A compiled step: a flat list of kernel launches over buffer slots, independent of any backend.
//! The session binds slots to device buffers once and submits the same launches every step.

use kiln_device::{Access, DType, Kernel};

use crate::graph::NodeId;

/// Where a tensor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Buf {
    /// Owned by the session and kept across steps and plans: parameters, optimizer state,
    /// constants, the hyper buffer.
    Persistent(NodeId),
    /// An input, written by the host before each step.
    Input(NodeId),
    /// A constant fill, written once when the plan is bound (index into [`Plan::fills`]).
    Fill(usize),
    /// An activation slot, shared by tensors whose lifetimes do not overlap (index into
    /// [`Plan::temps`]).
    Temp(usize),
    /// A whole buffer of flat parameter memory ([`crate::FlatLayout`]): chunk `chunk`'s
    /// parameters, gradients or optimizer state `k`. Owned by the session.
    Flat {
        /// The chunk.
        chunk: usize,
        /// Which of its buffers.
        part: FlatPart,
    },
    /// The gradient of member `member` of chunk `chunk`: its view of the chunk's gradient buffer.
    Grad {
        /// The chunk.
        chunk: usize,
        /// The member (parameter) within it.
        member: usize,
    },
}

/// One of a flat chunk's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlatPart {
    /// The parameters.
    Param,
    /// Their gradients.
    Grad,
    /// Optimizer state `k` (in kernel slot order: Adam's `exp_avg`, `exp_avg_sq`).
    State(usize),
}

/// One launch: the node it computes, its kernel and its buffers in [`Kernel::slots`] order.
#[derive(Clone, Debug)]
pub struct Step {
    /// The node this launch computes.
    pub node: NodeId,
    /// The sized kernel it runs.
    pub kernel: Kernel,
    /// Its buffers, one per kernel slot.
    pub bufs: Vec<Buf>,
}

/// A compiled step at one batch size: the launches in order and the buffers they use (activation
/// slots shared by liveness). [`Session`](crate::Session) builds and caches one per batch size.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The batch size the plan is sized for.
    pub batch: usize,
    /// The launches, in execution order.
    pub steps: Vec<Step>,
    /// Type and length of each activation slot (the largest tensor it holds).
    pub temps: Vec<(DType, usize)>,
    /// Length and value of each fill.
    pub fills: Vec<(usize, f32)>,
    /// Inputs the plan reads, with their lengths at this batch size.
    pub inputs: Vec<(NodeId, DType, usize)>,
    /// Session-owned buffers the plan binds, with their lengths.
    pub persistent: Vec<(NodeId, usize)>,
    /// Where each requested output lives at the end of the step.
    pub fetch: Vec<Buf>,
    /// Element count of each requested output (its slot may be larger).
    pub fetch_lens: Vec<usize>,
    /// Matmul + bias-add + activation chains fused into one `bias_act` launch.
    pub fused: usize,
    /// Adds of a bias or a residual fused into the matmul before them.
    pub fused_addends: usize,
    /// Bytes of the flat gradient buffers the plan binds (0 without flat parameter memory):
    /// every gradient, alive until the update.
    pub grad_bytes: u64,
    /// Bytes every tensor would take with a buffer of its own (no reuse, no fusion), persistent
    /// ones included.
    pub naive_bytes: u64,
    /// Bytes of the activation tensors alive after each step (one entry per step: a tensor is
    /// alive from the step that writes it to its last reader), fetched outputs included.
    pub live: Vec<u64>,
}

impl Plan {
    /// Number of kernel launches per step.
    pub fn launches(&self) -> usize {
        self.steps.len()
    }

    /// For each fetched output, the launches after which it holds its final value: one past the
    /// last launch that writes its buffer (0 for a leaf no launch writes). A fetched tensor's slot
    /// is never reused after it is computed, so reading it at that point reads what the whole
    /// step would return: in a forward + backward plan, the gradients of the last layers are
    /// ready long before those of the first.
    pub fn fetch_ready(&self) -> Vec<usize> {
        self.fetch
            .iter()
            .map(|&f| {
                let writes = |s: &Step| {
                    s.kernel
                        .slots()
                        .iter()
                        .zip(&s.bufs)
                        .any(|(slot, &b)| b == f && slot.access == Access::Write)
                };
                self.steps.iter().rposition(writes).map_or(0, |i| i + 1)
            })
            .collect()
    }

    /// Bytes of every buffer the plan uses: activation slots, fills, inputs, the persistent
    /// tensors it binds and the flat gradient buffers.
    /// Half-precision slots and inputs count 2 bytes an element (rounded up to whole words).
    pub fn peak_bytes(&self) -> u64 {
        let fills: u64 = self.fills.iter().map(|f| DType::F32.bytes(f.0)).sum();
        let inputs: u64 = self.inputs.iter().map(|i| i.1.bytes(i.2)).sum();
        self.temp_bytes() + fills + inputs + self.persistent_bytes() + self.grad_bytes
    }

    /// Bytes of the activation slots (what the plan allocates for activations, gradients and
    /// workspace; at least [`Plan::peak_live_bytes`], more where slots fragment).
    pub fn temp_bytes(&self) -> u64 {
        self.temps.iter().map(|t| t.0.bytes(t.1)).sum()
    }

    /// The most bytes of activation tensors alive at once (after any one step).
    pub fn peak_live_bytes(&self) -> u64 {
        self.live.iter().copied().max().unwrap_or(0)
    }

    /// Bytes of activation tensors alive after the step that computes `node` (`None` when no
    /// step computes it): for the loss of a training step, the forward activations kept for the
    /// backward.
    pub fn live_bytes_after(&self, node: NodeId) -> Option<u64> {
        self.steps.iter().position(|s| s.node == node).map(|p| self.live[p])
    }

    /// Bytes of the session-owned tensors the plan binds (the same with or without reuse).
    pub fn persistent_bytes(&self) -> u64 {
        4 * self.persistent.iter().map(|p| p.1 as u64).sum::<u64>()
    }
}
