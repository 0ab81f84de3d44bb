//! `kiln lm train`'s memory check: the planned bytes of a training step (compiled, nothing
//! allocated) by kind, against what the backend offers — host RAM (`MemAvailable`) for the CPU
//! backend, the adapter's largest buffer (`max_buffer_size`, `max_storage_buffer_binding_size`)
//! on a GPU — refused up front with the numbers and what to change.

use anyhow::{bail, Result};
use kiln_device::{DeviceInfo, DeviceKind};
use kiln_trainer::zoo::MemoryPlan;

use super::bytes;

/// The most one buffer may hold on `info`'s device (`None`: no such limit, the CPU backend).
fn buffer_limit(info: &DeviceInfo) -> Option<u64> {
    info.limits
        .iter()
        .filter(|(n, _)| *n == "max_buffer_size" || *n == "max_storage_buffer_binding_size")
        .map(|&(_, v)| v)
        .min()
}

/// The summary line of `plan` (a step of `batch` x `context` tokens) on `info`'s device, or the
/// error that it will not fit. `host_available` is the RAM the machine can give (checked for the
/// CPU backend; `None` when unknown).
pub fn check(
    plan: &MemoryPlan,
    batch: usize,
    context: usize,
    info: &DeviceInfo,
    host_available: Option<u64>,
) -> Result<String> {
    let mut line = format!(
        "memory: parameters {}, optimizer state {}, activations {}, workspace {}, total {} \
         (largest buffer {})",
        bytes(plan.parameter_bytes),
        bytes(plan.optimizer_bytes),
        bytes(plan.activation_bytes),
        bytes(plan.workspace_bytes),
        bytes(plan.total_bytes()),
        bytes(plan.largest_buffer_bytes)
    );
    let what = format!("a step of {batch} x {context} tokens");
    let fix = "use a smaller --batch-size or --context (--accumulate N keeps the update's batch), \
               or --recompute (recompute each block's activations during the backward)";
    if info.kind == DeviceKind::Cpu {
        if let Some(have) = host_available {
            line += &format!("; {} of RAM available", bytes(have));
            if plan.total_bytes() > have {
                bail!(
                    "{what} needs {} bytes ({}: parameters {}, optimizer state {}, activations \
                     {}, workspace {}) but this machine has {} bytes ({}) available; {fix}",
                    plan.total_bytes(),
                    bytes(plan.total_bytes()),
                    bytes(plan.parameter_bytes),
                    bytes(plan.optimizer_bytes),
                    bytes(plan.activation_bytes),
                    bytes(plan.workspace_bytes),
                    have,
                    bytes(have)
                );
            }
        }
    } else if let Some(limit) = buffer_limit(info) {
        line += &format!("; {} holds at most {} per buffer", info.name, bytes(limit));
        if plan.largest_buffer_bytes > limit {
            bail!(
                "{what} needs a buffer of {} bytes ({}) but {} holds at most {} bytes ({}) per \
                 buffer (max_buffer_size / max_storage_buffer_binding_size); {fix}",
                plan.largest_buffer_bytes,
                bytes(plan.largest_buffer_bytes),
                info.name,
                limit,
                bytes(limit)
            );
        }
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_trainer::zoo::{Llama, LlamaConfig};

    fn info(kind: DeviceKind, limit: u64) -> DeviceInfo {
        DeviceInfo {
            name: "test adapter".into(),
            kind,
            api: "Vulkan".into(),
            driver: String::new(),
            limits: vec![("max_buffer_size", limit * 2), ("max_storage_buffer_binding_size", limit)],
            features: vec![],
        }
    }

    fn tiny_plan(batch: usize, context: usize) -> MemoryPlan {
        let c = LlamaConfig { vocab_size: 41, hidden_size: 24, intermediate_size: 40, ..LlamaConfig::tiny() };
        Llama::plan_memory(&c, context, batch, &Llama::default_training()).unwrap()
    }

    #[test]
    fn too_little_ram_is_refused_with_the_numbers() {
        let p = tiny_plan(3, 7);
        let mut cpu = info(DeviceKind::Cpu, 0);
        cpu.limits.clear();
        let e = check(&p, 3, 7, &cpu, Some(p.total_bytes() - 1)).unwrap_err().to_string();
        assert!(e.contains(&p.total_bytes().to_string()), "{e}");
        assert!(e.contains(&(p.total_bytes() - 1).to_string()) && e.contains("--batch-size"), "{e}");
        assert!(e.contains("a step of 3 x 7 tokens"), "{e}");
        let ok = check(&p, 3, 7, &cpu, Some(p.total_bytes())).unwrap();
        assert!(ok.contains("RAM available"), "{ok}");
        // unknown RAM: the summary only
        assert!(check(&p, 3, 7, &cpu, None).is_ok());
    }

    #[test]
    fn a_buffer_past_the_adapters_limit_is_refused() {
        let p = tiny_plan(5, 9);
        assert!(p.largest_buffer_bytes > 0 && p.largest_buffer_bytes < p.total_bytes());
        let limit = p.largest_buffer_bytes - 4;
        let e = check(&p, 5, 9, &info(DeviceKind::DiscreteGpu, limit), None).unwrap_err().to_string();
        assert!(e.contains(&p.largest_buffer_bytes.to_string()) && e.contains(&limit.to_string()), "{e}");
        assert!(e.contains("test adapter") && e.contains("--context"), "{e}");
        // the smaller of the two limits counts; RAM is not the GPU's concern
        let ok = check(&p, 5, 9, &info(DeviceKind::DiscreteGpu, p.largest_buffer_bytes), Some(1)).unwrap();
        assert!(ok.contains("per buffer"), "{ok}");
        // a larger batch needs larger buffers
        assert!(tiny_plan(10, 9).largest_buffer_bytes > p.largest_buffer_bytes);
    }
}
