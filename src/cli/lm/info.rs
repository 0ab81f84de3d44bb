//! `kiln lm info`: a configuration's parameter count and the memory its training step plans, by
//! kind, in f32 and in half precision (`--precision bf16` or `f16` in `kiln lm train`: the same
//! bytes), each without and with activation checkpointing (`--recompute`), and with
//! `--fit-in` the largest batch whose step fits a memory budget (planned, nothing allocated).

use anyhow::Result;
use kiln_trainer::zoo::{Llama, LlamaConfig, MemoryPlan};
use kiln_trainer::Precision::{Bf16, F32};

use super::{bytes, parse_bytes};

#[derive(clap::Args)]
pub struct Args {
    /// `tiny`, `smollm2-135m`, a config.json file or a model folder.
    #[arg(long, default_value = "tiny")]
    config: String,
    /// Tokens per sequence for the memory plan.
    #[arg(long, default_value_t = 128)]
    context: usize,
    /// Sequences per step for the memory plan.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Also find the largest batch (sequences of --context tokens) whose training step fits this
    /// much memory, e.g. `8GB` (10^9 bytes) or `8GiB` (2^30 bytes), for each setting.
    #[arg(long, value_parser = parse_bytes)]
    fit_in: Option<u64>,
}

pub fn run(a: Args) -> Result<()> {
    let c = LlamaConfig::named_or_file(&a.config)?;
    println!(
        "{}: {} parameters: vocab {}, width {}, {} layers, {} query / {} key-value heads of {}, MLP {}, tied embeddings {}",
        a.config,
        c.parameters(),
        c.vocab_size,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim(),
        c.intermediate_size,
        c.tie_word_embeddings
    );
    println!(
        "training step at batch {} x {} tokens (AdamW), planned bytes:\n{:<32} {:>12} {:>16} {:>12} {:>12} {:>12} {:>9}",
        a.batch_size,
        a.context,
        "setting",
        "parameters",
        "optimizer state",
        "activations",
        "workspace",
        "total",
        "launches"
    );
    let mut fits = Vec::new();
    for (precision, recompute) in [(F32, false), (F32, true), (Bf16, false), (Bf16, true)] {
        let mut training = Llama::default_training();
        (training.precision, training.recompute) = (precision, recompute);
        let name = if precision == F32 { "f32" } else { "bf16 / f16" };
        let label = if recompute { format!("{name}, recompute") } else { name.to_string() };
        let m = Llama::plan_memory(&c, a.context, a.batch_size, &training)?;
        println!("{}", row(&label, &m));
        if let Some(budget) = a.fit_in {
            fits.push((label, Llama::largest_batch(&c, a.context, &training, budget)?));
        }
    }
    if let Some(budget) = a.fit_in {
        println!("largest batch of {} tokens in {} ({budget} bytes):", a.context, bytes(budget));
        for (label, fit) in fits {
            match fit {
                Some((batch, m)) => println!("{}", row(&format!("{label}: batch {batch}"), &m)),
                None => println!("{label}: none (one sequence needs more)"),
            }
        }
    }
    Ok(())
}

/// One row of the table: the bytes of each kind, readable and exact.
fn row(label: &str, m: &MemoryPlan) -> String {
    format!(
        "{label:<32} {:>12} {:>16} {:>12} {:>12} {:>12} {:>9}  (bytes: {} + {} + {} + {} = {})",
        bytes(m.parameter_bytes),
        bytes(m.optimizer_bytes),
        bytes(m.activation_bytes),
        bytes(m.workspace_bytes),
        bytes(m.total_bytes()),
        m.launches,
        m.parameter_bytes,
        m.optimizer_bytes,
        m.activation_bytes,
        m.workspace_bytes,
        m.total_bytes()
    )
}
