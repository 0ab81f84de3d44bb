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
//!  [--sample-every N] [--warmup W] [--cosine] [--clip NORM] [--log FILE]` (`--help` lists them)
//!
//! Writes nothing unless told: the checkpoint (and its `*.optim.safetensors`) only with
//! `--checkpoint PATH`, the log only with `--log FILE`. `--steps` counts in total, like `fit`'s
//! epochs and the CLI's: `--resume --steps 400` on a checkpoint saved at step 300 trains 100 more
//! steps (and refuses when nothing is left).
//!
//! Defaults (dim 128, 4 layers, context 64: about 0.8M parameters) keep a 2-core CPU run short;
//! `KILN_BACKEND=gpu` trains on the GPU.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use kiln::data::{CharCorpus, SplitMix64, TokenWindows};
use kiln::device::{open, BackendChoice};
use kiln::trainer::zoo::{CharGpt, CharGptConfig};
use kiln::trainer::{FitOptions, Schedule, Validation};

/// A character-level GPT-style model trained with AdamW on Tiny Shakespeare (or --text FILE).
#[derive(Parser)]
#[command(
    name = "char_transformer",
    after_help = "Writes nothing unless told: a checkpoint only with --checkpoint PATH (saved \
                  atomically every --sample-every steps: PATH, and the optimizer's state in \
                  PATH's stem + .optim.safetensors beside it), a JSON-lines log only with --log FILE.\n\
                  --steps counts in total: --resume --steps 400 on a checkpoint at step 300 trains \
                  100 more. The model's shape and schedule flags come from the checkpoint on \
                  --resume and cannot be given with it."
)]
struct Args {
    /// Total optimizer steps (including those of the checkpoint on --resume).
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Width of the residual stream [default: 128].
    #[arg(long, conflicts_with = "resume")]
    dim: Option<usize>,
    /// Transformer blocks [default: 4].
    #[arg(long, conflicts_with = "resume")]
    layers: Option<usize>,
    /// Attention heads per block [default: 4].
    #[arg(long, conflicts_with = "resume")]
    heads: Option<usize>,
    /// Characters of context [default: 64].
    #[arg(long, conflicts_with = "resume")]
    context: Option<usize>,
    /// Windows per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// AdamW learning rate [default: 1e-3].
    #[arg(long, conflicts_with = "resume")]
    lr: Option<f32>,
    /// The training text [default: the bundled data/tinyshakespeare.txt].
    #[arg(long, value_name = "FILE")]
    text: Option<PathBuf>,
    /// Save the model (and its vocabulary) here every --sample-every steps; nothing is saved
    /// without it.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Continue from --checkpoint PATH up to --steps in total.
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// Steps between validation, sample and checkpoint (each round is one epoch of `fit`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    sample_every: u64,
    /// Steps of linear learning-rate warm-up.
    #[arg(long, value_name = "W", default_value_t = 0, conflicts_with = "resume")]
    warmup: u64,
    /// Cosine decay (to a tenth of --lr) over the steps after the warm-up.
    #[arg(long, conflicts_with = "resume")]
    cosine: bool,
    /// Clip the gradients' global norm to NORM.
    #[arg(long, value_name = "NORM", conflicts_with = "resume")]
    clip: Option<f32>,
    /// Append one JSON line per round to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let default_text = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt");
    let path = a.text.clone().unwrap_or_else(|| default_text.into());
    let shown = path.display().to_string();
    let (steps, batch, every) = (a.steps, a.batch, a.sample_every);
    let backend = || open(BackendChoice::from_env().unwrap_or(BackendChoice::Cpu));

    let (mut model, corpus) = match (&a.checkpoint, a.resume) {
        (Some(ckpt), true) => {
            let (m, vocab) = CharGpt::load(ckpt, backend()?)
                .with_context(|| format!("resuming from {}", ckpt.display()))?;
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {shown}"))?;
            let corpus = CharCorpus::with_vocab(&text, &vocab)
                .with_context(|| format!("{shown} against the checkpoint's vocabulary"))?;
            anyhow::ensure!(
                m.step() < steps,
                "{} is at step {}: --steps counts in total (like fit's epochs), so ask for more than {} \
                 to train further",
                ckpt.display(),
                m.step(),
                m.step()
            );
            println!("resumed from {} at step {}, training to step {steps}", ckpt.display(), m.step());
            (m, corpus)
        }
        _ => {
            let corpus = CharCorpus::read(&path)?;
            let mut cfg = CharGptConfig::new(corpus.vocab_size());
            cfg.dim = a.dim.unwrap_or(cfg.dim);
            cfg.layers = a.layers.unwrap_or(cfg.layers);
            cfg.heads = a.heads.unwrap_or(cfg.heads);
            cfg.context = a.context.unwrap_or(cfg.context);
            cfg.lr = a.lr.unwrap_or(cfg.lr);
            let mut training = CharGpt::default_training(&cfg);
            let after = match a.cosine {
                true => Schedule::Cosine { total: steps.saturating_sub(a.warmup), min_lr: cfg.lr / 10.0 },
                false => Schedule::Constant,
            };
            training.schedule = match a.warmup {
                0 => after,
                w => Schedule::Warmup { steps: w, then: Box::new(after) },
            };
            training.clip_norm = a.clip;
            (CharGpt::with_training(cfg, training, backend()?)?, corpus)
        }
    };
    model.set_vocab(&corpus.vocab_string());
    let ctx = model.config().context;
    let (train, val) = corpus.split(0.1)?;
    println!(
        "{}: {} chars ({} train / {} validation), vocab {}, {} parameters, {}",
        shown,
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
    let log = a.log.clone();
    let start = Instant::now();
    while model.step() < steps {
        // one epoch of `every` steps over freshly drawn windows
        let round = every.min(steps - model.step());
        let windows = TokenWindows::random(train, ctx, round as usize * batch, &mut rng)?;
        let opts = FitOptions {
            epochs: model.epochs_done() + 1,
            batch_size: batch,
            validation: Validation::Data(&val_windows),
            log: log.clone(),
            quiet: true,
            ..Default::default()
        };
        let before = model.step();
        let history = model.fit(&windows, &opts)?;
        anyhow::ensure!(model.step() > before, "a round of {round} steps trained none");
        let step = model.step();
        let rate = (step - first) as f64 / start.elapsed().as_secs_f64();
        if let Some(e) = history.epochs.last() {
            println!("step {step:>5}  loss {:.4}  lr {:.2e}  ({rate:.2} steps/s)", e.loss, e.lr);
            println!("step {step:>5}  validation loss {:.4}", e.val_loss.unwrap_or(f64::NAN));
        }
        let prompt = &train[..ctx];
        let sample = model.generate(prompt, 200, 0.8, &mut rng)?;
        println!("--- sample ---\n{}{}\n--------------", corpus.decode(prompt), corpus.decode(&sample));
        if let Some(ckpt) = &a.checkpoint {
            model.save(ckpt, &corpus.vocab_string())?;
            println!("checkpoint: {}", ckpt.display());
        }
    }
    Ok(())
}
