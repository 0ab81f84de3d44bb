//! The memory a Llama's training step plans, before anything is allocated: the compiled plan's
//! persistent tensors (parameters, optimizer state, constants) and its activation slots, by kind;
//! and the largest batch whose plan fits a memory budget.

use kiln_graph::{Graph, NodeId};

use super::{Llama, LlamaConfig};
use crate::error::{Error, Result};
use crate::trainable::{training_graph, Compile, Core};

/// Planned bytes of one training step, by kind (half tensors at 2 bytes an element under
/// [`Compile::precision`]; parameters and optimizer state are f32 in every precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Trainable values.
    pub parameters: usize,
    /// Bytes of the parameters.
    pub parameter_bytes: u64,
    /// Bytes of the optimizer state (AdamW: two moments per value).
    pub optimizer_bytes: u64,
    /// Bytes of the activations the forward keeps for the backward: the tensors alive when the
    /// loss has been computed (logits included). Activation checkpointing
    /// ([`Compile::recompute`]) keeps only each block's input.
    pub activation_bytes: u64,
    /// Bytes of everything else the step needs: the backward's gradients and transient buffers
    /// (the activation slots beyond the kept activations, recomputed blocks included), inputs,
    /// constants, and with `accumulate > 1` the gradient accumulators (one more copy of the
    /// parameters).
    pub workspace_bytes: u64,
    /// Bytes of the largest single buffer (what a GPU's `max_buffer_size` and
    /// `max_storage_buffer_binding_size` bound).
    pub largest_buffer_bytes: u64,
    /// Kernel launches per step.
    pub launches: usize,
}

impl MemoryPlan {
    /// Everything the step needs.
    pub fn total_bytes(&self) -> u64 {
        self.parameter_bytes + self.optimizer_bytes + self.activation_bytes + self.workspace_bytes
    }
}

/// Where [`Llama::largest_batch`] stops doubling.
const MAX_BATCH: usize = 1 << 20;

/// The training graph of one configuration, planned at any batch size without allocating.
struct Planner {
    graph: Graph,
    loss: NodeId,
    parameters: usize,
    optimizer_values: u64,
}

impl Planner {
    fn new(config: &LlamaConfig, context: usize, training: &Compile) -> Result<Self> {
        config.check()?;
        if context == 0 {
            return Err(Error::InvalidArgument("a context of 0 tokens".into()));
        }
        let net = Llama {
            config: config.clone(),
            context,
            seed: 0,
            tokenizer: None,
            init: false,
            core: Core::default(),
        };
        let (graph, heads) = training_graph(&net, training)?;
        let per_value = training.optimizer.state_names().len() as u64;
        let parameters = config.parameters();
        Ok(Planner {
            graph,
            loss: heads.loss_train,
            parameters,
            optimizer_values: per_value * parameters as u64,
        })
    }

    fn plan(&self, batch: usize) -> Result<MemoryPlan> {
        let plan = kiln_graph::compile(&self.graph, &[self.loss], true, batch)?;
        let parameter_bytes = 4 * self.parameters as u64;
        let optimizer_bytes = 4 * self.optimizer_values;
        let activation_bytes = plan.live_bytes_after(self.loss).unwrap_or(0);
        let workspace_bytes =
            plan.peak_bytes().saturating_sub(parameter_bytes + optimizer_bytes + activation_bytes);
        let temps =
            plan.temps.iter().map(|t| t.0.bytes(t.1)).chain(plan.inputs.iter().map(|i| i.1.bytes(i.2)));
        let largest = temps.chain(plan.persistent.iter().map(|p| 4 * p.1 as u64)).max().unwrap_or(0);
        Ok(MemoryPlan {
            parameters: self.parameters,
            parameter_bytes,
            optimizer_bytes,
            activation_bytes,
            workspace_bytes,
            largest_buffer_bytes: largest,
            launches: plan.launches(),
        })
    }
}

impl Llama {
    /// Compiles (without allocating) the training step of `config` for `batch` sequences of
    /// `context` tokens with `training`'s optimizer (and its `recompute` and `precision` settings), and reports
    /// its memory.
    pub fn plan_memory(
        config: &LlamaConfig,
        context: usize,
        batch: usize,
        training: &Compile,
    ) -> Result<MemoryPlan> {
        Planner::new(config, context, training)?.plan(batch)
    }

    /// The largest batch of `context`-token sequences whose planned training step (see
    /// [`Llama::plan_memory`]) needs at most `budget` bytes, with its plan; `None` when not even
    /// one sequence fits (the search stops at 2^19 sequences). The graph is built once and planned at doubling batch sizes, then
    /// bisected (the plan grows with the batch); nothing is allocated.
    pub fn largest_batch(
        config: &LlamaConfig,
        context: usize,
        training: &Compile,
        budget: u64,
    ) -> Result<Option<(usize, MemoryPlan)>> {
        let planner = Planner::new(config, context, training)?;
        let fits = |batch: usize| -> Result<Option<MemoryPlan>> {
            let p = planner.plan(batch)?;
            Ok((p.total_bytes() <= budget).then_some(p))
        };
        let Some(mut best) = fits(1)? else { return Ok(None) };
        let (mut lo, mut hi) = (1, 2); // lo fits; hi is the first size not known to fit
        while let Some(p) = fits(hi)? {
            (lo, best, hi) = (hi, p, hi * 2);
            if hi > MAX_BATCH {
                return Ok(Some((lo, best)));
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match fits(mid)? {
                Some(p) => (lo, best) = (mid, p),
                None => hi = mid,
            }
        }
        Ok(Some((lo, best)))
    }
}
