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
    /// workspace, inputs, constants (after the plan's buffer reuse).
    pub activation_bytes: u64,
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
        let net = Llama { config: config.clone(), context, seed: 0, tokenizer: None, core: Core::default() };
        let (g, heads) = training_graph(&net, training)?;
        let plan = kiln_graph::compile(&g, &[heads.loss_train], true, batch)?;
        let parameters = config.parameters();
        let parameter_bytes = 4 * parameters as u64;
        let per_value = training.optimizer.state_names().len() as u64;
        let optimizer_bytes = 4 * per_value * parameters as u64;
        let activation_bytes = plan.peak_bytes().saturating_sub(parameter_bytes + optimizer_bytes);
        Ok(MemoryPlan {
            parameters,
            parameter_bytes,
            optimizer_bytes,
            activation_bytes,
            launches: plan.launches(),
        })
    }
}
