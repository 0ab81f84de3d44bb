//! `kiln lm generate`: continue a prompt with a Kiln checkpoint or a Hugging Face folder,
//! printing tokens as they come.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use kiln_trainer::zoo::{Generator, Sampling, Weights};

use super::source;
use super::train::backend;

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint written by `kiln lm train`, or a Hugging Face model folder.
    #[arg(long)]
    model: PathBuf,
    /// The text to continue.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// New tokens to draw.
    #[arg(long, default_value_t = 200)]
    tokens: usize,
    /// Divides the logits; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep the k most likely tokens (0: all).
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    /// Keep the most likely tokens whose probabilities add up to p (nucleus sampling).
    #[arg(long)]
    top_p: Option<f32>,
    /// Seeds the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `byte` or a tokenizer.json (default: the one the model records).
    #[arg(long)]
    tokenizer: Option<String>,
    /// auto, gpu or cpu (default: KILN_BACKEND, else auto).
    #[arg(long)]
    backend: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let w = Weights::read(&a.model).with_context(|| format!("--model {}", a.model.display()))?;
    let name = a.tokenizer.clone().or(w.tokenizer.clone()).unwrap_or_else(|| "byte".into());
    let tok = source::tokenizer(&name)?;
    let prompt = tok.encode(&a.prompt)?;
    if prompt.is_empty() {
        bail!("--prompt encodes to no token");
    }
    let positions = prompt.len() + a.tokens;
    if positions > w.config.max_position_embeddings.max(1) {
        bail!(
            "a prompt of {} tokens and {} new ones exceed the model's {} positions",
            prompt.len(),
            a.tokens,
            w.config.max_position_embeddings
        );
    }
    let device = kiln_device::open(backend(&a.backend)?)?;
    let mut gen = Generator::new(w.config.clone(), &w.tensors, positions, device)?;
    let sampling = Sampling {
        temperature: a.temperature,
        top_k: (a.top_k > 0).then_some(a.top_k),
        top_p: a.top_p,
        seed: a.seed,
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", a.prompt)?;
    // print as text arrives: a multi-byte character may span tokens, so decode what is complete
    let mut pending: Vec<u32> = Vec::new();
    gen.generate_with(&prompt, a.tokens, &sampling, |id| {
        pending.push(id);
        let text = tok.decode(&pending);
        if !text.ends_with('\u{FFFD}') {
            let _ = write!(out, "{text}");
            let _ = out.flush();
            pending.clear();
        }
        Ok(())
    })?;
    if !pending.is_empty() {
        write!(out, "{}", tok.decode(&pending))?;
    }
    writeln!(out)?;
    Ok(())
}
