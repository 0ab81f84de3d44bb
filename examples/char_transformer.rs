//! A character-level GPT-style model ([`kiln::trainer::zoo::CharGpt`]: token + position
//! embeddings, pre-norm transformer blocks with causal multi-head self-attention and a GELU MLP, a
//! final LayerNorm and a linear head) trained with AdamW on the bundled Tiny Shakespeare
//! (`data/tinyshakespeare.txt`, public domain, see data/README.md). Prints the training loss, the
//! validation loss on the held-out last 10% of the text and a sample every `--sample-every` steps,
//! and checkpoints to safetensors (atomically) at the same points. Training goes through the
//! trainable core's `fit` on token windows: each round of `--sample-every` steps is one epoch of
//! freshly drawn windows, with the schedule (`--warmup W` steps of linear warm-up, then cosine
//! decay over the run with `--cosine`), gradient clipping (`--clip NORM`) and a JSON-lines log
//! (`--log FILE`).
//!
//! `cargo run --release --example char_transformer -- [--steps N] [--dim D] [--layers L]
//!  [--heads H] [--context T] [--batch B] [--lr X] [--text FILE] [--checkpoint PATH] [--resume]
//!  [--sample-every N] [--warmup W] [--cosine] [--clip NORM] [--log FILE]`
//!
//! Defaults (dim 128, 4 layers, context 64: about 0.8M parameters) keep a 2-core CPU run short;
//! `KILN_BACKEND=gpu` trains on the GPU.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use kiln::data::{CharCorpus, SplitMix64, TokenWindows};
use kiln::device::{open, BackendChoice};
use kiln::trainer::zoo::{CharGpt, CharGptConfig};
use kiln::trainer::{FitOptions, Schedule, Validation};

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> anyhow::Result<Self> {
        let v: Vec<String> = std::env::args().skip(1).collect();
        let mut m = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            let key = v[i].strip_prefix("--").with_context(|| format!("unexpected argument '{}'", v[i]))?;
            let val = v.get(i + 1).filter(|x| !x.starts_with("--")).cloned();
            i += if val.is_some() { 2 } else { 1 };
            m.insert(key.to_string(), val.unwrap_or_else(|| "true".into()));
        }
        Ok(Args(m))
    }
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> anyhow::Result<T> {
        match self.0.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| anyhow::anyhow!("--{k} {v}: not a valid value")),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse()?;
    let default_text = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt");
    let path = a.0.get("text").cloned().unwrap_or_else(|| default_text.into());
    let ckpt = a.0.get("checkpoint").cloned().unwrap_or_else(|| "char_transformer.safetensors".into());
    let (steps, batch, every) =
        (a.get("steps", 300usize)?, a.get("batch", 16usize)?, a.get("sample-every", 100u64)?.max(1));
    let backend = || open(BackendChoice::from_env().unwrap_or(BackendChoice::Cpu));

    let (mut model, corpus) = if a.0.contains_key("resume") {
        let (m, vocab) = CharGpt::load(&ckpt, backend()?).with_context(|| format!("resuming from {ckpt}"))?;
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let corpus = CharCorpus::with_vocab(&text, &vocab)
            .with_context(|| format!("{path} against the checkpoint's vocabulary"))?;
        println!("resumed from {ckpt} at step {}", m.step());
        (m, corpus)
    } else {
        let corpus = CharCorpus::read(&path)?;
        let mut cfg = CharGptConfig::new(corpus.vocab_size());
        cfg.dim = a.get("dim", cfg.dim)?;
        cfg.layers = a.get("layers", cfg.layers)?;
        cfg.heads = a.get("heads", cfg.heads)?;
        cfg.context = a.get("context", cfg.context)?;
        cfg.lr = a.get("lr", cfg.lr)?;
        let mut training = CharGpt::default_training(&cfg);
        let warmup = a.get("warmup", 0u64)?;
        let after = match a.0.contains_key("cosine") {
            true => Schedule::Cosine { total: (steps as u64).saturating_sub(warmup), min_lr: cfg.lr / 10.0 },
            false => Schedule::Constant,
        };
        training.schedule = match warmup {
            0 => after,
            w => Schedule::Warmup { steps: w, then: Box::new(after) },
        };
        training.clip_norm = a.0.get("clip").map(|c| c.parse()).transpose().context("--clip NORM")?;
        (CharGpt::with_training(cfg, training, backend()?)?, corpus)
    };
    model.set_vocab(&corpus.vocab_string());
    let ctx = model.config().context;
    let (train, val) = corpus.split(0.1)?;
    println!(
        "{}: {} chars ({} train / {} validation), vocab {}, {} parameters, {}",
        path,
        corpus.ids().len(),
        train.len(),
        val.len(),
        corpus.vocab_size(),
        model.parameters(),
        model.device()
    );

    let first = model.step();
    let mut rng = SplitMix64::new(0x5eed ^ first.wrapping_mul(0x9E37_79B9));
    let val_windows = TokenWindows::random(val, ctx, 4 * batch, &mut SplitMix64::new(0x7a1))?;
    let log = a.0.get("log").map(PathBuf::from);
    let start = Instant::now();
    let mut done = 0u64;
    while done < steps as u64 {
        // one epoch of `every` steps over freshly drawn windows
        let round = every.min(steps as u64 - done);
        let windows = TokenWindows::random(train, ctx, round as usize * batch, &mut rng)?;
        let opts = FitOptions {
            epochs: model.epochs_done() + 1,
            batch_size: batch,
            validation: Validation::Data(&val_windows),
            log: log.clone(),
            quiet: true,
            ..Default::default()
        };
        let history = model.fit(&windows, &opts)?;
        done += round;
        let step = model.step();
        let rate = (step - first) as f64 / start.elapsed().as_secs_f64();
        if let Some(e) = history.epochs.last() {
            println!("step {step:>5}  loss {:.4}  lr {:.2e}  ({rate:.2} steps/s)", e.loss, e.lr);
            println!("step {step:>5}  validation loss {:.4}", e.val_loss.unwrap_or(f64::NAN));
        }
        let prompt = &train[..ctx];
        let sample = model.generate(prompt, 200, 0.8, &mut rng)?;
        println!("--- sample ---\n{}{}\n--------------", corpus.decode(prompt), corpus.decode(&sample));
        model.save(&ckpt, &corpus.vocab_string())?;
        println!("checkpoint: {ckpt}");
    }
    Ok(())
}
