//! `kiln lm info`: a configuration's parameter count and the memory its training step plans.

use anyhow::Result;
use kiln_trainer::zoo::{Llama, LlamaConfig};

use super::bytes;

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
    let m = Llama::plan_memory(&c, a.context, a.batch_size, &Llama::default_training())?;
    println!(
        "training step at batch {} x {} tokens (f32, AdamW): parameters {}, optimizer state {}, activations and gradients {}, total {} ({} kernel launches)",
        a.batch_size,
        a.context,
        bytes(m.parameter_bytes),
        bytes(m.optimizer_bytes),
        bytes(m.activation_bytes),
        bytes(m.total_bytes()),
        m.launches
    );
    Ok(())
}
