//! `kiln lm train`: a Llama-style model from a preset, a config file or a checkpoint to
//! fine-tune, trained for a number of steps with warmup + cosine AdamW (weight decay on matrices
//! only), clipping, a validation loss every `--eval-every` steps, progress with tokens/s,
//! checkpoints and exact resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kiln_device::BackendChoice;
use kiln_trainer::zoo::{Llama, LlamaConfig, Sampling, Weights};
use kiln_trainer::{Compile, FitOptions, Loss, LossScaling, Optimizer, Precision, Schedule, Validation};

use super::{memory, source};
use crate::cli::output::check_output;
use crate::cli::run_lock::RunLock;

#[derive(clap::Args)]
pub struct Args {
    /// Architecture: `tiny`, `smollm2-135m`, or a config.json file (ignored with --from or
    /// --resume, which bring their own).
    #[arg(long, default_value = "tiny")]
    config: String,
    /// Training text (tokenized on first use, cached beside --out) or a token file (`.bin` of
    /// little-endian u16 ids as nanoGPT writes them; `.u32` or --token-width u32 for u32 ids).
    #[arg(long, default_value = "data/tinyshakespeare.txt")]
    data: PathBuf,
    /// `byte` (built in, 256 ids), or a Hugging Face tokenizer.json (needs the `bpe` feature);
    /// default: the tokenizer the --from model records, else `byte`.
    #[arg(long)]
    tokenizer: Option<String>,
    /// Width of the ids in a token file.
    #[arg(long)]
    token_width: Option<String>,
    /// Fine-tune these weights: a Kiln checkpoint or a Hugging Face model folder (config.json +
    /// model.safetensors), with a fresh optimizer.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Continue the run saved at --out exactly where it stopped (its optimizer state, step and
    /// data position).
    #[arg(long)]
    resume: bool,
    /// Start a new run even though --out holds one (it is replaced when this run saves).
    #[arg(long)]
    overwrite: bool,
    /// Tokens per training sequence.
    #[arg(long, default_value_t = 128)]
    context: usize,
    /// Sequences per micro-batch (per step without --accumulate).
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Gradient accumulation: micro-batches of --batch-size per optimizer step (a step as with a
    /// batch this many times larger, in the memory of one micro-batch).
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// Activation checkpointing: keep only each transformer block's input from the forward to the
    /// backward, which recomputes the block's activations when it needs them (less memory, about
    /// one more forward per step, the same gradients). With --resume it may be turned on or off.
    #[arg(long)]
    recompute: bool,
    /// Mixed precision: f32, bf16 or f16 (every matmul reads half copies of its operands; master
    /// weights, gradients and optimizer state stay f32) [default: f32; on --resume, the saved one].
    #[arg(long, value_parser = str::parse::<Precision>)]
    precision: Option<Precision>,
    /// Dynamic loss scaling (PyTorch GradScaler rules, decided on the device): auto (on for
    /// f16), off, dynamic, or an initial scale such as 65536 [default: auto; on --resume, the
    /// saved one].
    #[arg(long, value_parser = str::parse::<LossScaling>)]
    loss_scale: Option<LossScaling>,
    /// Optimizer steps in total.
    #[arg(long, default_value_t = 600)]
    steps: usize,
    /// Peak learning rate (after warmup); default 1e-3 for `tiny`, else 3e-4.
    #[arg(long)]
    lr: Option<f32>,
    /// The rate cosine decay ends at; default lr / 10.
    #[arg(long)]
    min_lr: Option<f32>,
    /// Linear warmup steps; default a tenth of --steps, at most 200.
    #[arg(long)]
    warmup: Option<usize>,
    /// AdamW's decoupled weight decay (matrices only; norm weights are not decayed).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    /// Clip gradients to this global norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Steps between validation losses (each is a line, a log record and a checkpoint).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Validation windows (sequences) drawn from the held-out tail of the data.
    #[arg(long, default_value_t = 64)]
    eval_windows: usize,
    /// Fraction of the tokens held out (the end of the file) for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Seeds the initial weights and the training windows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The checkpoint (safetensors; optimizer state in *.optim.safetensors beside it).
    #[arg(long, default_value = "target/kiln/lm.safetensors")]
    out: PathBuf,
    /// Also write a Hugging Face model folder (config.json + model.safetensors) here.
    #[arg(long)]
    hf_out: Option<PathBuf>,
    /// auto, gpu or cpu (default: KILN_BACKEND, else auto).
    #[arg(long)]
    backend: Option<String>,
    /// Data-parallel replicas of --backend in this process, each training on its share of every
    /// batch.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Data-parallel gradient buckets in MiB: each is summed across devices and ranks while the
    /// backward pass of the next computes; 0 sums every gradient after the whole backward (no
    /// overlap). The first bucket holds at most 1 MiB.
    #[arg(long, default_value_t = kiln_trainer::DEFAULT_BUCKET_MB)]
    bucket_mb: f64,
    /// Print a sample of this many tokens from the trained model (0: none).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

fn training(a: &Args, preset_lr: f32) -> Result<Compile> {
    let lr = a.lr.unwrap_or(preset_lr);
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr {lr} must be positive");
    }
    let warmup = a.warmup.unwrap_or((a.steps / 10).min(200));
    if warmup >= a.steps {
        bail!("--warmup {warmup} must be below --steps {}", a.steps);
    }
    let opt = Optimizer::AdamW { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: a.weight_decay };
    let mut c = Compile::new(opt, Loss::CrossEntropy, &[]);
    c.schedule = Schedule::Warmup {
        steps: warmup as u64,
        then: Box::new(Schedule::Cosine {
            total: (a.steps - warmup) as u64,
            min_lr: a.min_lr.unwrap_or(lr / 10.0),
        }),
    };
    c.clip_norm = (a.clip > 0.0).then_some(a.clip);
    c.backend = backend(&a.backend)?;
    c.accumulate = a.accumulate;
    c.devices = a.devices.max(1);
    c.recompute = a.recompute;
    c.bucket_mb = a.bucket_mb;
    c.precision = a.precision.unwrap_or_default();
    c.loss_scale = a.loss_scale.unwrap_or_default();
    Ok(c)
}

pub fn backend(flag: &Option<String>) -> Result<BackendChoice> {
    Ok(match flag {
        Some(b) => b.parse()?,
        None => BackendChoice::from_env()?,
    })
}

fn beside(out: &Path, suffix: &str) -> PathBuf {
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("lm");
    out.with_file_name(format!("{stem}{suffix}"))
}

pub fn run(a: Args) -> Result<()> {
    crate::cli::interrupt::install();
    if a.steps == 0 || a.batch_size == 0 || a.context == 0 || a.eval_every == 0 || a.accumulate == 0 {
        bail!("--steps, --batch-size, --context, --eval-every and --accumulate must be positive");
    }
    if !(a.val_fraction > 0.0 && a.val_fraction < 1.0) {
        bail!("--val-fraction {} must be between 0 and 1", a.val_fraction);
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut inputs = vec![("--data", a.data.as_path())];
    if let Some(from) = &a.from {
        inputs.push(("--from", from.as_path()));
    }
    for suffix in ["", ".best.safetensors", ".log.jsonl", ".curves.svg"] {
        let path = if suffix.is_empty() { a.out.clone() } else { beside(&a.out, suffix) };
        check_output("--out", &path, &inputs)?;
    }
    check_output("--out", &kiln_trainer::optimizer_path(&a.out), &inputs)?;
    if a.resume && a.overwrite {
        bail!("--resume continues the run at --out and --overwrite replaces it: pass one of them");
    }
    if a.out.exists() && !a.resume && !a.overwrite {
        bail!(
            "--out {} holds a model already: pass --resume to continue its run, or --overwrite to start \
             a new one in its place",
            a.out.display()
        );
    }
    if a.resume && !a.out.exists() {
        bail!("--resume: there is no run at --out {} to continue", a.out.display());
    }
    let _lock = RunLock::take(&a.out)?;
    // in an MPI job every rank trains its share and rank 0 alone prints and writes files
    let root = kiln_trainer::distributed::is_root();
    let quiet = a.quiet || !root;
    let device = kiln_device::open(backend(&a.backend)?)?;
    // the planned memory of a step, refused before the model's buffers are allocated (on
    // --resume, before its activations are: the checkpoint's weights are loaded first)
    let info = device.info().clone();
    let check_memory = |config: &LlamaConfig, training: &Compile| -> Result<String> {
        let plan = Llama::plan_memory(config, a.context, a.batch_size, training)?;
        let line = memory::check(&plan, a.batch_size, a.context, &info, crate::cli::plan::available_bytes())?;
        let line = if training.precision == Precision::F32 {
            line
        } else {
            format!("{line}; matmuls in {}", training.precision)
        };
        Ok(if training.recompute { format!("{line}; blocks recomputed in the backward") } else { line })
    };

    let (mut model, tokenizer_name, memory_line) = if a.resume {
        let m = Llama::load(&a.out, device)
            .with_context(|| format!("--resume: cannot read {}", a.out.display()))?;
        if m.context() != a.context {
            bail!(
                "--resume: {} trains on {} tokens per sequence; pass --context {}",
                a.out.display(),
                m.context(),
                m.context()
            );
        }
        if m.training().accumulate != a.accumulate {
            bail!(
                "--resume: {} trains with --accumulate {}; pass it again",
                a.out.display(),
                m.training().accumulate
            );
        }
        if let Some(p) = a.precision.filter(|&p| p != m.training().precision) {
            bail!(
                "--resume: {} trains with --precision {}, not {p}; pass it again or leave it out",
                a.out.display(),
                m.training().precision
            );
        }
        if m.step() % a.eval_every as u64 != 0 {
            bail!(
                "--resume: {} stopped at step {}, inside an interval of --eval-every {} (its --steps was \
                 not a multiple of it); resuming mid-interval is not supported: start from it with \
                 --from {} --out NEW instead",
                a.out.display(),
                m.step(),
                a.eval_every,
                a.out.display()
            );
        }
        if let Some(s) = a.loss_scale.filter(|&s| s != m.training().loss_scale) {
            bail!(
                "--resume: {} trains with --loss-scale {}, not {s}; pass it again or leave it out",
                a.out.display(),
                m.training().loss_scale
            );
        }
        let tok = m.tokenizer().unwrap_or("byte").to_string();
        let mut m = m;
        if a.devices > 1 {
            m.set_devices(a.devices, backend(&a.backend)?)?;
        }
        m.set_recompute(a.recompute)?;
        m.set_bucket_mb(a.bucket_mb)?;
        let line = check_memory(m.config(), m.training())?;
        (m, tok, line)
    } else if let Some(from) = &a.from {
        let w = Weights::read(from).with_context(|| format!("--from {}", from.display()))?;
        let tok = a.tokenizer.clone().or(w.tokenizer.clone()).unwrap_or_else(|| "byte".into());
        let (config, training) = (w.config.clone(), training(&a, 3e-4)?);
        let line = check_memory(&config, &training)?;
        let m = Llama::from_weights(config, a.context, &w.tensors, training, device)?;
        (m, tok, line)
    } else {
        let config = LlamaConfig::named_or_file(&a.config)?;
        let lr = if a.config == "tiny" { 1e-3 } else { 3e-4 };
        let training = training(&a, lr)?;
        let line = check_memory(&config, &training)?;
        let m = Llama::with_training(config, a.context, a.seed, training, device)?;
        (m, a.tokenizer.clone().unwrap_or_else(|| "byte".into()), line)
    };
    let tok = source::tokenizer(&tokenizer_name)?;
    if tok.vocab_size() > model.config().vocab_size {
        bail!(
            "the tokenizer {tokenizer_name} has {} ids but the model's vocabulary is {}",
            tok.vocab_size(),
            model.config().vocab_size
        );
    }
    model.set_tokenizer(Some(tokenizer_name.clone()));
    let cache_dir =
        a.out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    // rank 0 tokenizes a text into the cache first, the other ranks then read that cache
    if !root {
        kiln_trainer::distributed::barrier()?;
    }
    // (a rank that fails here ends the job, the others waiting in the barrier included)
    let tokens = source::tokens(&a.data, tok.as_ref(), a.token_width.as_deref(), &cache_dir)?;
    if root {
        kiln_trainer::distributed::barrier()?;
    }
    tokens.check_vocab(model.config().vocab_size)?;
    let (train, val) = tokens.split(a.val_fraction)?;
    let per_step = a.batch_size * a.accumulate;
    let train_windows = train.random_windows(a.context, a.steps * per_step, a.seed)?;
    let val_windows = val.random_windows(a.context, a.eval_windows, a.seed ^ 0x7A11)?;

    let c = model.config().clone();
    if !quiet {
        println!(
            "llama: {} parameters ({} layers, width {}, {} query / {} key-value heads, vocab {}) on {}",
            model.parameters(),
            c.num_hidden_layers,
            c.hidden_size,
            c.num_attention_heads,
            c.num_key_value_heads,
            c.vocab_size,
            model.device()
        );
        println!(
            "data: {} ({} tokens: {} train, {} validation; tokenizer {tokenizer_name}); {} steps of {} x {} tokens{}",
            a.data.display(),
            tokens.len(),
            train.len(),
            val.len(),
            a.steps,
            per_step,
            a.context,
            if a.accumulate > 1 {
                format!(" ({} micro-batches of {} accumulated)", a.accumulate, a.batch_size)
            } else {
                String::new()
            }
        );
        println!("{memory_line}");
    }
    let epochs = a.steps.div_ceil(a.eval_every);
    let opts = FitOptions {
        epochs,
        batch_size: a.batch_size,
        shuffle: false, // the windows are drawn at random already
        validation: Validation::Data(&val_windows),
        checkpoint_best: Some(beside(&a.out, ".best.safetensors")),
        log: Some(beside(&a.out, ".log.jsonl")),
        curves: Some(beside(&a.out, ".curves.svg")),
        quiet,
        standardize: false,
        standardize_target: false,
        steps_per_epoch: Some(a.eval_every),
        max_steps: Some(a.steps),
        early_stopping: None,
    };
    let start = Instant::now();
    let fitted = model.fit(&train_windows, &opts);
    // whatever happened, the weights trained so far are kept (an interrupt resumes from them)
    let saved = if root {
        model.save(&a.out).with_context(|| format!("writing {}", a.out.display()))
    } else {
        Ok(())
    };
    let history = fitted?;
    saved?;
    if kiln_trainer::interrupt::stop_requested() {
        bail!(
            "interrupted at step {}: the model and its optimizer state are saved to {}; run the same \
             command with --resume to continue",
            model.step(),
            a.out.display()
        );
    }
    if let Some(dir) = a.hf_out.as_ref().filter(|_| root) {
        model.save_hf(dir).with_context(|| format!("--hf-out {}", dir.display()))?;
    }
    if !quiet {
        let secs = start.elapsed().as_secs_f64();
        let trained = history.epochs.iter().map(|e| e.steps).sum::<usize>();
        let last = history.epochs.last();
        println!(
            "trained {trained} steps in {secs:.1} s ({:.0} tokens/s): loss {:.4}, val_loss {:.4}",
            (trained * per_step * a.context) as f64 / secs.max(1e-9),
            last.map_or(f64::NAN, |e| e.loss),
            last.and_then(|e| e.val_loss).unwrap_or(f64::NAN),
        );
        println!("model: {} (log: {})", a.out.display(), beside(&a.out, ".log.jsonl").display());
        if let Some(dir) = &a.hf_out {
            println!("hugging face folder: {}", dir.display());
        }
        if a.sample > 0 {
            let prompt = tok.encode("\n")?;
            let mut gen = model.generator(prompt.len() + a.sample)?;
            let ids = gen.generate(&prompt, a.sample, &Sampling { seed: a.seed, ..Sampling::default() })?;
            println!("sample:\n{}", tok.decode(&ids));
        }
    }
    Ok(())
}
