//! A character-level GPT-style language model on the graph API: token and learned position
//! embeddings, pre-norm transformer blocks (causal multi-head self-attention, GELU MLP), a final
//! LayerNorm and a linear head, trained with AdamW on next-character cross-entropy.
//!
//! Parameter names follow nanoGPT's layout (`wte.weight`, `h.0.attn.q.weight`, `ln_f.weight`,
//! `lm_head.weight`), weights `[out, in]` as in PyTorch `nn.Linear`.

use std::path::Path;

use kiln_device::{Backend, HostData};
use kiln_graph::{Graph, NodeId, Optimizer, Session, TransformerBlock};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, STEP};
use crate::data::SplitMix64;
use crate::error::{Error, Result};
use crate::layers::{gaussian, unit};

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
    pub layers: usize,
    pub heads: usize,
    /// Characters of context (the sequence length of every batch).
    pub context: usize,
    /// AdamW learning rate and weight decay (betas 0.9, 0.99).
    pub lr: f32,
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

/// A compiled character-level transformer with its optimizer, ready to train or sample.
pub struct CharGpt {
    config: CharGptConfig,
    session: Session,
    /// Parameter names and shapes in declaration order.
    params: Vec<(String, Vec<usize>)>,
    tokens: NodeId,
    targets: NodeId,
    logits: NodeId,
    loss: NodeId,
}

impl CharGpt {
    /// Builds the graph (initial weights `N(0, 1/sqrt(fan_in))`, embeddings `N(0, 0.14)`, the
    /// head `N(0, 0.02)`, biases 0, LayerNorm weights 1) and allocates it on `backend`.
    pub fn new(config: CharGptConfig, backend: Box<dyn Backend>) -> Result<Self> {
        config.check()?;
        let (v, d, t) = (config.vocab, config.dim, config.context);
        let g = Graph::new();
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
            let blk = TransformerBlock::new(&g, &format!("h.{l}"), d, config.heads, 4 * d, true, &mut init);
            params.extend(blk.params());
            h = g.transformer_block(h, &blk);
        }
        let lnf_w = g.param_init("ln_f.weight", &[d], vec![1.0; d]);
        let lnf_b = g.param_init("ln_f.bias", &[d], vec![0.0; d]);
        // small head weights: near-uniform first predictions, loss ~ ln(vocab)
        let head = g.param_init("lm_head.weight", &[v, d], init(&[v, d], 2500));
        params.extend([lnf_w, lnf_b, head]);
        let logits = g.linear(g.layer_norm(h, lnf_w, lnf_b, 1e-5), head, None); // [B, T, V]
        let loss = g.softmax_cross_entropy(logits, targets);
        let grads = g.gradients(loss, &params)?;
        let opt = Optimizer::AdamW {
            lr: config.lr,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: config.weight_decay,
        };
        g.optimize(&params, &grads, opt)?;
        let params =
            params.iter().map(|&p| (g.name_of(p).unwrap_or_default(), g.shape(p).resolve(1))).collect();
        let session = Session::new(g, backend)?;
        Ok(CharGpt { config, session, params, tokens, targets, logits, loss })
    }

    pub fn config(&self) -> &CharGptConfig {
        &self.config
    }

    /// Number of trainable values.
    pub fn parameters(&self) -> usize {
        self.params.iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// The device description (adapter or CPU threads).
    pub fn device(&self) -> String {
        self.session.backend().info().to_string()
    }

    /// Optimizer steps taken so far (including those before a resume).
    pub fn step(&self) -> u64 {
        self.session.step_count()
    }

    /// One AdamW step on `[batch, context]` inputs and next-character targets; returns the batch's
    /// mean loss (before the update).
    pub fn train_step(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.check_batch(tokens, targets)?;
        let feeds = [(self.tokens, HostData::U32(tokens)), (self.targets, HostData::U32(targets))];
        let loss = self.session.train_sync(&feeds, &[self.loss])?[0][0];
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss { loss, epoch: 0, step: 0, global_step: self.step() });
        }
        Ok(loss)
    }

    /// The mean loss on a batch, without training (validation).
    pub fn eval_loss(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.check_batch(tokens, targets)?;
        let feeds = [(self.tokens, HostData::U32(tokens)), (self.targets, HostData::U32(targets))];
        Ok(self.session.run_sync(&feeds, &[self.loss])?[0][0])
    }

    fn check_batch(&self, tokens: &[u32], targets: &[u32]) -> Result<()> {
        let t = self.config.context;
        if tokens.is_empty() || !tokens.len().is_multiple_of(t) || targets.len() != tokens.len() {
            return Err(Error::shape(
                "char_gpt batch",
                format!("[batch, {t}] tokens and targets of the same length"),
                format!("{} tokens, {} targets", tokens.len(), targets.len()),
            ));
        }
        if let Some(bad) = tokens.iter().chain(targets).find(|&&i| i as usize >= self.config.vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.config.vocab
            )));
        }
        Ok(())
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
        let mut seq: Vec<u32> = std::iter::repeat_n(first, t.saturating_sub(prompt.len())).collect();
        seq.extend_from_slice(prompt);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let window = &seq[seq.len() - t..];
            let logits = self.session.run_sync(&[(self.tokens, HostData::U32(window))], &[self.logits])?;
            let last = &logits[0][(t - 1) * v..t * v];
            let next = sample(last, temperature, rng);
            seq.push(next);
            out.push(next);
        }
        Ok(out)
    }

    /// Writes parameters, AdamW state, the step, the config and `vocab` to one safetensors file,
    /// atomically (an existing file is replaced only by a complete one).
    pub fn save(&mut self, path: impl AsRef<Path>, vocab: &str) -> Result<()> {
        let mut c = Checkpoint::new();
        for (name, shape) in &self.params {
            c.push(name, shape, self.session.get_param(name)?)?;
        }
        for name in self.session.state_names() {
            let shape = self.state_shape(&name)?;
            c.push(&name, &shape, self.session.get_state(&name)?)?;
        }
        c.set_json(STEP, &self.step())?;
        c.set_json(CONFIG, &self.config)?;
        c.set_json(VOCAB, &vocab)?;
        c.write(path)
    }

    /// The shape of a parameter, or of an optimizer state (`{param}.exp_avg`: its parameter's).
    fn state_shape(&self, name: &str) -> Result<Vec<usize>> {
        let owns = |p: &str| name == p || name.strip_prefix(p).is_some_and(|r| r.starts_with('.'));
        let owner = self.params.iter().filter(|(p, _)| owns(p)).max_by_key(|(p, _)| p.len());
        owner.map(|(_, s)| s.clone()).ok_or_else(|| Error::Model(format!("'{name}' belongs to no parameter")))
    }

    /// Rebuilds a model from a file written by [`CharGpt::save`] (its config, weights, optimizer
    /// state and step) on `backend`; returns it with the stored vocabulary.
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
        let mut m = CharGpt::new(config, backend)?;
        m.restore(path, &c)?;
        Ok((m, vocab))
    }

    fn restore(&mut self, path: &Path, c: &Checkpoint) -> Result<()> {
        let names: Vec<String> =
            self.params.iter().map(|(n, _)| n.clone()).chain(self.session.state_names()).collect();
        for name in names {
            let want = self.state_shape(&name)?;
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
            if self.params.iter().any(|(n, _)| *n == name) {
                self.session.set_param(&name, &t.data)?;
            } else {
                self.session.set_state(&name, &t.data)?;
            }
        }
        self.session.set_step_count(c.json::<u64>(STEP)?.unwrap_or(0));
        Ok(())
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
