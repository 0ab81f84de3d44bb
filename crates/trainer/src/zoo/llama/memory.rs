//! The memory a Llama's training step plans, before anything is allocated: the compiled plan's
//! persistent tensors (parameters, optimizer state, constants) and its activation slots.

use super::{Llama, LlamaConfig};
use crate::error::Result;
use crate::trainable::{training_graph, Compile, Core};

/// Planned bytes of one training step (f32 everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Trainable values.
    pub parameters: usize,
    /// Bytes of the parameters.
    pub parameter_bytes: u64,
    /// Bytes of the optimizer state (AdamW: two moments per value).
    pub optimizer_bytes: u64,
    /// Bytes of everything else the step keeps: activations saved for the backward, gradients,
    /// workspace, inputs, constants (after the plan's buffer reuse), and with `accumulate > 1`
    /// the gradient accumulators (one more copy of the parameters).
    pub activation_bytes: u64,
    /// Bytes of the largest single buffer (what a GPU's `max_buffer_size` and
    /// `max_storage_buffer_binding_size` bound).
    pub largest_buffer_bytes: u64,
    /// Kernel launches per step.
    pub launches: usize,
}

impl MemoryPlan {
    /// Everything the step needs.
    pub fn total_bytes(&self) -> u64 {
        self.parameter_bytes + self.optimizer_bytes + self.activation_bytes
    }
}

impl Llama {
    /// Compiles (without allocating) the training step of `config` for `batch` sequences of
    /// `context` tokens with `training`'s optimizer, and reports its memory.
    pub fn plan_memory(
        config: &LlamaConfig,
        context: usize,
        batch: usize,
        training: &Compile,
    ) -> Result<MemoryPlan> {
        config.check()?;
        let net = Llama {
            config: config.clone(),
            context,
            seed: 0,
            tokenizer: None,
            init: false,
            core: Core::default(),
        };
        let (g, heads) = training_graph(&net, training)?;
        let plan = kiln_graph::compile(&g, &[heads.loss_train], true, batch)?;
        let parameters = config.parameters();
        let parameter_bytes = 4 * parameters as u64;
        let per_value = training.optimizer.state_names().len() as u64;
        let optimizer_bytes = 4 * per_value * parameters as u64;
        let activation_bytes = plan.peak_bytes().saturating_sub(parameter_bytes + optimizer_bytes);
        let lens = plan.temps.iter().map(|t| t.1).chain(plan.inputs.iter().map(|i| i.2));
        let largest = lens.chain(plan.persistent.iter().map(|p| p.1)).max().unwrap_or(0);
        Ok(MemoryPlan {
            parameters,
            parameter_bytes,
            optimizer_bytes,
            activation_bytes,
            largest_buffer_bytes: 4 * largest as u64,
            launches: plan.launches(),
        })
    }
}
