//! A character-level GPT-style language model on the graph API: token and learned position
//! embeddings, pre-norm transformer blocks (causal multi-head self-attention, GELU MLP), a final
//! LayerNorm and a linear head, trained with AdamW on next-character cross-entropy.
//!
//! Parameter names follow nanoGPT's layout (`wte.weight`, `h.0.attn.q.weight`, `ln_f.weight`,
//! `lm_head.weight`), weights `[out, in]` as in PyTorch `nn.Linear`. The model describes its graph
//! to the trainable core ([`Trainable`]), which trains, evaluates, saves and resumes it.

use std::path::Path;

use kiln_device::{Backend, HostData};
use kiln_graph::{Graph, Optimizer, Session, TransformerBlock};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, STEP};
use crate::data::{Dataset, SplitMix64};
use crate::error::{Error, Result};
use crate::layers::{gaussian, unit};
use crate::losses::Loss;
use crate::report::History;
use crate::stream::Prep;
use crate::trainable::{
    check_token_batch, check_windows, next_token_heads, set_weights_from, Bound, Compile, Core, Evaluation,
    FitOptions, Heads, Param, Trainable,
};

/// Metadata key: the [`CharGptConfig`] (JSON).
pub const CONFIG: &str = "kiln.char_gpt";
/// Metadata key: the vocabulary, every character in id order (JSON string).
pub const VOCAB: &str = "kiln.vocab";

/// The model's size and training hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CharGptConfig {
    /// Number of distinct characters (the corpus's vocabulary).
    pub vocab: usize,
    /// Width of the residual stream.
    pub dim: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads per block (`dim` must be divisible by it).
    pub heads: usize,
    /// Characters of context (the sequence length of every batch).
    pub context: usize,
    /// AdamW learning rate and weight decay (betas 0.9, 0.99).
    pub lr: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Seeds the initial weights.
    pub seed: u64,
}

impl CharGptConfig {
    /// dim 128, 4 layers, 4 heads, context 64: about 0.8M parameters for a ~65-character
    /// vocabulary, a size a 2-core CPU trains at a few steps per second.
    pub fn new(vocab: usize) -> Self {
        CharGptConfig {
            vocab,
            dim: 128,
            layers: 4,
            heads: 4,
            context: 64,
            lr: 1e-3,
            weight_decay: 0.01,
            seed: 1,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.vocab == 0 || self.dim == 0 || self.layers == 0 || self.heads == 0 || self.context == 0 {
            return bad(format!("every size must be positive: {self:?}"));
        }
        if !self.dim.is_multiple_of(self.heads) {
            return bad(format!("dim {} is not a multiple of heads {}", self.dim, self.heads));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate {} must be positive", self.lr));
        }
        Ok(())
    }
}

/// A compiled character-level transformer with its optimizer, ready to train or sample. It
/// trains through the trainable core, as `Sequential` does: [`CharGpt::fit`] on
/// [`TokenWindows`](crate::data::TokenWindows) takes schedules, clipping, metrics, validation,
/// early stopping, progress, logs and checkpoints from [`FitOptions`] and [`Compile`].
pub struct CharGpt {
    config: CharGptConfig,
    /// The vocabulary saved with the model (every character in id order).
    vocab: String,
    core: Core,
}

impl CharGpt {
    /// Builds the graph (initial weights `N(0, 1/sqrt(fan_in))`, embeddings `N(0, 0.14)`, the
    /// head `N(0, 0.02)`, biases 0, LayerNorm weights 1) and allocates it on `backend`, with
    /// AdamW (betas 0.9, 0.99) at the config's rate and weight decay, a constant schedule.
    pub fn new(config: CharGptConfig, backend: Box<dyn Backend>) -> Result<Self> {
        let training = CharGpt::default_training(&config);
        CharGpt::with_training(config, training, backend)
    }

    /// [`CharGpt::new`] with another training configuration (optimizer, schedule, clipping,
    /// metrics); its loss is always next-character cross-entropy and its backend is `backend`.
    pub fn with_training(
        config: CharGptConfig,
        training: Compile,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        config.check()?;
        let mut m = CharGpt { config, vocab: String::new(), core: Core::default() };
        m.with_core(|core, net| core.bind(net, training, Some(backend)))?;
        Ok(m)
    }

    /// AdamW at the config's rate and weight decay, betas (0.9, 0.99), next-character
    /// cross-entropy, a constant rate, no clipping.
    pub fn default_training(config: &CharGptConfig) -> Compile {
        let opt = Optimizer::AdamW {
            lr: config.lr,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: config.weight_decay,
        };
        Compile::new(opt, Loss::CrossEntropy, &[])
    }

    fn with_core<R>(&mut self, f: impl FnOnce(&mut Core, &CharGpt) -> R) -> R {
        let mut core = std::mem::take(&mut self.core);
        let r = f(&mut core, self);
        self.core = core;
        r
    }

    fn bound(&self) -> &Bound {
        self.core.bound.as_ref().expect("a CharGpt is always compiled")
    }

    fn session(&mut self) -> &mut Session {
        &mut self.core.bound.as_mut().expect("a CharGpt is always compiled").session
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &CharGptConfig {
        &self.config
    }

    /// The training configuration (optimizer, schedule, clipping, metrics).
    pub fn training(&self) -> &Compile {
        &self.bound().config
    }

    /// The vocabulary saved with the model (set by [`CharGpt::set_vocab`], `save` or `load`).
    pub fn vocab(&self) -> &str {
        &self.vocab
    }

    /// Sets the vocabulary that checkpoints written by `fit` carry.
    pub fn set_vocab(&mut self, vocab: &str) {
        self.vocab = vocab.to_string();
    }

    /// Number of trainable values.
    pub fn parameters(&self) -> usize {
        self.bound().heads.params.iter().map(|(_, p)| p.shape.iter().product::<usize>()).sum()
    }

    /// The device description (adapter or CPU threads).
    pub fn device(&self) -> String {
        self.bound().session.backend().info().to_string()
    }

    /// Optimizer steps taken so far (including those before a resume).
    pub fn step(&self) -> u64 {
        self.bound().session.step_count()
    }

    /// Epochs `fit` has trained so far (saved with the model).
    pub fn epochs_done(&self) -> usize {
        self.core.epochs_done
    }

    /// One optimizer step (at the schedule's rate) on `[batch, context]` inputs and
    /// next-character targets; returns the batch's mean loss (before the update).
    pub fn train_step(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.check_batch(tokens, targets)?;
        let h = &self.bound().heads;
        let feeds = [(h.x, HostData::U32(tokens)), (h.target, HostData::U32(targets))];
        self.core.train_step(&feeds)
    }

    /// The mean loss on a batch, without training (validation).
    pub fn eval_loss(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.check_batch(tokens, targets)?;
        let h = &self.bound().heads;
        let (x, target, loss) = (h.x, h.target, h.loss_eval);
        let feeds = [(x, HostData::U32(tokens)), (target, HostData::U32(targets))];
        Ok(self.session().run_sync(&feeds, &[loss])?[0][0])
    }

    /// Trains on token windows (`context + 1` ids each: the inputs and the shifted targets) with
    /// the core's `fit`: shuffled batches, the compiled schedule and clipping, metrics,
    /// validation, early stopping, progress, the JSON-lines log and checkpoints.
    pub fn fit(&mut self, data: &(dyn Dataset + Sync), opts: &FitOptions<'_>) -> Result<History> {
        self.with_core(|core, net| core.fit(net, data, opts))
    }

    /// Mean loss and compiled metrics over token windows.
    pub fn evaluate(&mut self, data: &(dyn Dataset + Sync), batch_size: usize) -> Result<Evaluation> {
        self.with_core(|core, net| core.evaluate_rows(net, data, None, batch_size))
    }

    fn check_batch(&self, tokens: &[u32], targets: &[u32]) -> Result<()> {
        check_token_batch("char_gpt", self.config.context, self.config.vocab, tokens, targets)
    }

    /// Continues `prompt` by `n` characters, each drawn from the softmax of the last position's
    /// logits divided by `temperature` (the prompt is left-padded with its first id when shorter
    /// than the context; only the last `context` ids are seen).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        n: usize,
        temperature: f32,
        rng: &mut SplitMix64,
    ) -> Result<Vec<u32>> {
        let (t, v) = (self.config.context, self.config.vocab);
        let Some(&first) = prompt.first() else {
            return Err(Error::InvalidArgument("generate needs a non-empty prompt".into()));
        };
        if let Some(bad) = prompt.iter().find(|&&i| i as usize >= v) {
            return Err(Error::InvalidArgument(format!("prompt id {bad} is outside the vocabulary of {v}")));
        }
        let temperature = temperature.max(1e-3);
        let (x, logits_node) = (self.bound().heads.x, self.bound().heads.out_eval);
        let mut seq: Vec<u32> = std::iter::repeat_n(first, t.saturating_sub(prompt.len())).collect();
        seq.extend_from_slice(prompt);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let window = &seq[seq.len() - t..];
            let logits = self.session().run_sync(&[(x, HostData::U32(window))], &[logits_node])?;
            let last = &logits[0][(t - 1) * v..t * v];
            let next = sample(last, temperature, rng);
            seq.push(next);
            out.push(next);
        }
        Ok(out)
    }

    /// Writes the model with `vocab` as the core does for every model (parameters, config,
    /// vocabulary, progress and training configuration in one safetensors file, the optimizer
    /// state and step in `*.optim.safetensors` next to it), atomically.
    pub fn save(&mut self, path: impl AsRef<Path>, vocab: &str) -> Result<()> {
        self.set_vocab(vocab);
        self.with_core(|core, net| core.save(net, path.as_ref()))
    }

    /// Rebuilds a model from a file written by [`CharGpt::save`] (its config, weights, training
    /// configuration, optimizer state and step) on `backend`; returns it with the stored
    /// vocabulary. Files of the earlier single-file format (optimizer state among the tensors,
    /// the step as a bare number) load too.
    pub fn load(path: impl AsRef<Path>, backend: Box<dyn Backend>) -> Result<(Self, String)> {
        let path = path.as_ref();
        let c = Checkpoint::read(path)?;
        let missing = |key: &str| Error::Metadata {
            key: key.into(),
            message: format!("{} was not written by CharGpt::save", path.display()),
        };
        let config: CharGptConfig = c.json(CONFIG)?.ok_or_else(|| missing(CONFIG))?;
        let vocab: String = c.json(VOCAB)?.ok_or_else(|| missing(VOCAB))?;
        if vocab.chars().count() != config.vocab {
            return Err(Error::Metadata {
                key: VOCAB.into(),
                message: format!("{} characters but the config says {}", vocab.chars().count(), config.vocab),
            });
        }
        if let Ok(Some(step)) = c.json::<u64>(STEP) {
            let mut m = CharGpt::new(config, backend)?;
            m.restore_single_file(path, &c, step)?;
            m.vocab = vocab.clone();
            return Ok((m, vocab));
        }
        let mut core = Core::default();
        core.read_state(&c, path)?;
        let training = core.saved.take().unwrap_or_else(|| CharGpt::default_training(&config));
        config.check()?;
        let mut m = CharGpt { config, vocab: vocab.clone(), core };
        let pending = m.core.pending_state.take();
        m.with_core(|core, net| core.bind(net, training, Some(backend)))?;
        let params: Vec<Param> = m.bound().heads.params.iter().map(|(_, p)| p.clone()).collect();
        let session = m.session();
        set_weights_from(&c, path, &params, |name, data| Ok(session.set_param(name, data)?))?;
        m.core.pending_state = pending;
        m.core.restore_pending_state()?;
        Ok((m, vocab))
    }

    /// The earlier format: parameters and AdamW state (each state shaped as its parameter) in one
    /// file, the step as a bare number.
    fn restore_single_file(&mut self, path: &Path, c: &Checkpoint, step: u64) -> Result<()> {
        let params: Vec<(String, Vec<usize>)> =
            self.bound().heads.params.iter().map(|(_, p)| (p.name.clone(), p.shape.clone())).collect();
        let state_shape = |name: &str| {
            let owns = |p: &str| name == p || name.strip_prefix(p).is_some_and(|r| r.starts_with('.'));
            let owner = params.iter().filter(|(p, _)| owns(p)).max_by_key(|(p, _)| p.len());
            owner
                .map(|(_, s)| s.clone())
                .ok_or_else(|| Error::Model(format!("'{name}' belongs to no parameter")))
        };
        let names: Vec<String> =
            params.iter().map(|(n, _)| n.clone()).chain(self.session().state_names()).collect();
        for name in names {
            let want = state_shape(&name)?;
            let t = c.get(&name).ok_or_else(|| Error::Tensor {
                path: path.into(),
                tensor: name.clone(),
                message: "missing from the checkpoint".into(),
            })?;
            if t.shape != want {
                return Err(Error::Tensor {
                    path: path.into(),
                    tensor: name,
                    message: format!("shape {:?}, the model needs {want:?}", t.shape),
                });
            }
            if params.iter().any(|(n, _)| *n == name) {
                self.session().set_param(&name, &t.data)?;
            } else {
                self.session().set_state(&name, &t.data)?;
            }
        }
        self.session().set_step_count(step);
        Ok(())
    }
}

impl Trainable for CharGpt {
    fn build(&self, g: &Graph, training: &Compile) -> Result<Heads> {
        let config = &self.config;
        let (v, d, t) = (config.vocab, config.dim, config.context);
        let mut rng = SplitMix64::new(config.seed);
        let mut init = |shape: &[usize], fan_in: usize| -> Vec<f32> {
            let s = 1.0 / (fan_in as f64).sqrt();
            (0..shape.iter().product()).map(|_| (gaussian(&mut rng) * s) as f32).collect()
        };
        let tokens = g.input_u32("tokens", &[t]);
        let targets = g.input_u32("targets", &[t]);
        let wte = g.param_init("wte.weight", &[v, d], init(&[v, d], 50));
        let wpe = g.param_init("wpe.weight", &[t, d], init(&[t, d], 50));
        let mut h = g.add(g.gather(wte, tokens, 0), wpe); // [B, T, dim]
        let mut params = vec![wte, wpe];
        for l in 0..config.layers {
            let blk = TransformerBlock::new(g, &format!("h.{l}"), d, config.heads, 4 * d, true, &mut init);
            params.extend(blk.params());
            // activation checkpointing: each block one recomputed segment
            h = if training.recompute {
                g.checkpoint(|| g.transformer_block(h, &blk))
            } else {
                g.transformer_block(h, &blk)
            };
        }
        let lnf_w = g.param_init("ln_f.weight", &[d], vec![1.0; d]);
        let lnf_b = g.param_init("ln_f.bias", &[d], vec![0.0; d]);
        // small head weights: near-uniform first predictions, loss ~ ln(vocab)
        let head = g.param_init("lm_head.weight", &[v, d], init(&[v, d], 2500));
        params.extend([lnf_w, lnf_b, head]);
        let logits = g.linear(g.layer_norm(h, lnf_w, lnf_b, 1e-5), head, None); // [B, T, V]
        Ok(next_token_heads(g, (tokens, targets, logits), v, params, |_| true))
    }

    fn prep(&self, data: &dyn Dataset, _: Loss) -> Result<Prep> {
        self.check_features(data)?;
        Ok(Prep::NextToken)
    }

    fn check_features(&self, data: &dyn Dataset) -> Result<()> {
        check_windows("CharGpt", self.config.context, data)
    }

    fn token_vocab(&self) -> Option<usize> {
        Some(self.config.vocab)
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    fn host_params(&self) -> Result<Vec<(Param, Vec<f32>)>> {
        Err(Error::Model("a CharGpt's parameters live in its session".into()))
    }

    fn write_metadata(&self, ck: &mut Checkpoint) -> Result<()> {
        ck.set_json(CONFIG, &self.config)?;
        ck.set_json(VOCAB, &self.vocab)
    }
}

/// Draws an index from `softmax(logits / temperature)`.
fn sample(logits: &[f32], temperature: f32, rng: &mut SplitMix64) -> u32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let p: Vec<f64> = logits.iter().map(|&z| (((z - m) / temperature) as f64).exp()).collect();
    let mut r = unit(rng) * p.iter().sum::<f64>();
    for (i, &pi) in p.iter().enumerate() {
        if r < pi {
            return i as u32;
        }
        r -= pi;
    }
    (p.len() - 1) as u32
}
