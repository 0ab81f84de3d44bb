//! `kiln lm eval`: the mean next-token cross-entropy over the consecutive windows of a token
//! file: windows of T inputs, each predicting its T next tokens, covering the first
//! floor((n - 1) / T) * T + 1 tokens.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_trainer::data::{Dataset, TokenFile};
use kiln_trainer::zoo::{Llama, Weights};

use super::source;
use super::train::backend;

#[derive(clap::Args)]
pub struct Args {
    /// A checkpoint written by `kiln lm train`, or a Hugging Face model folder.
    #[arg(long)]
    model: PathBuf,
    /// A token file of raw little-endian ids (u16 unless --token-width u32 or a `.u32` name).
    #[arg(long)]
    data: PathBuf,
    /// Inputs per window (T).
    #[arg(long)]
    context: usize,
    /// Width of the ids.
    #[arg(long)]
    token_width: Option<String>,
    /// Windows per step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
    /// auto, gpu or cpu (default: KILN_BACKEND, else auto).
    #[arg(long)]
    backend: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let w = Weights::read(&a.model).with_context(|| format!("--model {}", a.model.display()))?;
    let file = TokenFile::open(&a.data, source::width(&a.data, a.token_width.as_deref())?)?;
    file.check_vocab(w.config.vocab_size)?;
    let windows = file.consecutive_windows(a.context)?;
    let mut training = Llama::default_training();
    training.backend = backend(&a.backend)?;
    let device = kiln_device::open(training.backend)?;
    let mut model = Llama::from_weights(w.config, a.context, &w.tensors, training, device)?;
    let e = model.evaluate(&windows, a.batch_size.max(1))?;
    let n = windows.len();
    let tokens = n * a.context;
    if a.json {
        let v = serde_json::json!({
            "loss": e.loss,
            "perplexity": e.loss.exp(),
            "windows": n,
            "context": a.context,
            "tokens_predicted": tokens,
            "tokens_covered": tokens + 1,
            "data": a.data.display().to_string(),
        });
        println!("{v}");
    } else {
        println!(
            "loss {:.6} (perplexity {:.3}) over {n} windows of {} tokens ({tokens} predictions) of {}",
            e.loss,
            e.loss.exp(),
            a.context,
            a.data.display()
        );
    }
    Ok(())
}
