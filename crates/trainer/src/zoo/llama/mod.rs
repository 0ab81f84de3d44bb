//! A Llama-style decoder (the architecture of Llama, SmolLM2 and most small language models):
//! token embedding, pre-norm blocks of RMSNorm, grouped-query attention with rotary embeddings
//! and a SwiGLU MLP, a final RMSNorm and a head tied to the embedding (or not), no biases.
//!
//! Parameter names and layouts are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`,
//! `[out, in]`), so a model folder written by `transformers` loads ([`Llama::from_hf`]) and one
//! written by [`Llama::save_hf`] loads in `transformers`. The model trains through the trainable
//! core, as `Sequential` does (schedules, clipping, metrics, validation, checkpoints, exact resume).

mod config;
mod generate;
mod hf;
mod memory;

use std::path::Path;

use kiln_device::{Backend, HostData};
use kiln_graph::{rope_tables, Graph, NodeId, Optimizer, Session};

pub use config::{LlamaConfig, PRESETS};
pub use generate::{Generator, Sampling};
pub use hf::Weights;
pub use memory::MemoryPlan;

use crate::checkpoint::Checkpoint;
use crate::data::{Dataset, SplitMix64};
use crate::error::{Error, Result};
use crate::layers::gaussian;
use crate::losses::Loss;
use crate::model::NamedTensor;
use crate::report::History;
use crate::stream::Prep;
use crate::trainable::{
    check_token_batch, check_windows, next_token_heads, set_weights_from, Bound, Compile, Core, Evaluation,
    FitOptions, Heads, Param, Trainable,
};

/// Metadata key: the [`LlamaConfig`] (Hugging Face's `config.json` fields).
pub const CONFIG: &str = "kiln.llama";
/// Metadata key: the training context (tokens per sequence) and the initialization seed.
pub const SHAPE: &str = "kiln.llama.shape";
/// Metadata key: the tokenizer the model's ids come from (`byte`, or a `tokenizer.json` path).
pub const TOKENIZER: &str = "kiln.tokenizer";

#[derive(serde::Serialize, serde::Deserialize)]
struct TrainShape {
    context: usize,
    seed: u64,
}

/// A compiled Llama-style language model with its optimizer. Its training graph is built for
/// sequences of `context` tokens; [`Llama::generator`] builds the key/value-cached decoder.
pub struct Llama {
    config: LlamaConfig,
    context: usize,
    seed: u64,
    tokenizer: Option<String>,
    /// Draw initial weights when building (a fresh model); off when the weights come from a
    /// file or the graph is only planned (134M Gaussian draws take seconds).
    init: bool,
    core: Core,
}

/// The parameters `transformers` exempts from weight decay in the usual recipe: the norms'
/// weights (vectors); every matrix (projections and the embedding) is decayed.
fn decayed(shape: &[usize]) -> bool {
    shape.len() >= 2
}

impl Llama {
    /// A freshly initialized model (weights `N(0, initializer_range)`, norm weights 1, as
    /// `transformers` initializes `LlamaForCausalLM`; seeded by `seed`) for sequences of
    /// `context` tokens, trained with [`Llama::default_training`], on `backend`.
    pub fn new(config: LlamaConfig, context: usize, seed: u64, backend: Box<dyn Backend>) -> Result<Self> {
        let training = Llama::default_training();
        Llama::with_training(config, context, seed, training, backend)
    }

    /// [`Llama::new`] with another training configuration (optimizer, schedule, clipping); its
    /// loss is always next-token cross-entropy.
    pub fn with_training(
        config: LlamaConfig,
        context: usize,
        seed: u64,
        training: Compile,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        Llama::bind_new(config, context, seed, true, training, backend)
    }

    /// A model bound to `backend`, its weights drawn (`init`) or zero until set from a file.
    fn bind_new(
        config: LlamaConfig,
        context: usize,
        seed: u64,
        init: bool,
        training: Compile,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        config.check()?;
        if context == 0 {
            return Err(Error::InvalidArgument("a context of 0 tokens".into()));
        }
        let mut m = Llama { config, context, seed, tokenizer: None, init, core: Core::default() };
        m.with_core(|core, net| core.bind(net, training, Some(backend)))?;
        Ok(m)
    }

    /// AdamW (lr 3e-4, betas 0.9 and 0.95, eps 1e-8, weight decay 0.1 on matrices only),
    /// next-token cross-entropy, a constant rate, no clipping: nanoGPT's and SmolLM2's recipe.
    pub fn default_training() -> Compile {
        let opt = Optimizer::AdamW { lr: 3e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
        Compile::new(opt, Loss::CrossEntropy, &[])
    }

    fn with_core<R>(&mut self, f: impl FnOnce(&mut Core, &Llama) -> R) -> R {
        let mut core = std::mem::take(&mut self.core);
        let r = f(&mut core, self);
        self.core = core;
        r
    }

    fn bound(&self) -> &Bound {
        self.core.bound.as_ref().expect("a Llama is always compiled")
    }

    pub(crate) fn session(&mut self) -> &mut Session {
        &mut self.core.bound.as_mut().expect("a Llama is always compiled").session
    }

    /// The architecture.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The tokenizer recorded with the model (`byte`, or a `tokenizer.json` path), if any.
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// Records the tokenizer the model's ids come from; saved with it.
    pub fn set_tokenizer(&mut self, tokenizer: Option<String>) {
        self.tokenizer = tokenizer;
    }

    /// A model for sequences of `context` tokens with the given weights (Hugging Face names,
    /// every parameter of `config`), trained with `training`, on `backend`.
    pub fn from_weights(
        config: LlamaConfig,
        context: usize,
        weights: &[NamedTensor],
        training: Compile,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        let mut ck = Checkpoint::new();
        for (name, shape, data) in weights {
            ck.push(name, shape, data.clone())?;
        }
        let mut m = Llama::bind_new(config, context, 0, false, training, backend)?;
        m.set_weights(&ck, Path::new("(weights)"))?;
        Ok(m)
    }

    /// Tokens per training sequence.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Trains on `devices` data-parallel replicas opened from `backend` from now on (replica 0 on
    /// a fresh device too), keeping the weights, optimizer state and step: how a loaded model
    /// resumes on several devices. Nothing happens when neither changes.
    pub fn set_devices(&mut self, devices: usize, backend: kiln_device::BackendChoice) -> Result<()> {
        self.with_core(|core, net| core.set_devices(net, devices, backend))
    }

    /// Turns activation checkpointing ([`Compile::recompute`]: each block recomputed during the
    /// backward) on or off from now on, keeping the weights, optimizer state and step (how a
    /// loaded model resumes with less memory). Nothing happens when it does not change.
    pub fn set_recompute(&mut self, recompute: bool) -> Result<()> {
        if self.training().recompute == recompute {
            return Ok(());
        }
        let mut config = self.training().clone();
        config.recompute = recompute;
        self.with_core(|core, net| core.rebind(net, config))
    }

    /// Sets the data-parallel gradient buckets ([`Compile::bucket_mb`]) from the next step on:
    /// how a loaded model resumes with another bucket size (the results are the same).
    pub fn set_bucket_mb(&mut self, mb: f64) -> Result<()> {
        self.core.set_bucket_mb(mb)
    }

    /// Where its data-parallel steps spent their time (`None` on one device).
    pub fn step_times(&self) -> Option<crate::StepTimes> {
        self.core.step_times()
    }

    /// The loss scaler's scale and counts (read from the device), when it trains with one
    /// (f16 by default, see [`crate::LossScaling`]).
    pub fn loss_scale(&mut self) -> Result<Option<kiln_graph::ScalerState>> {
        self.core.loss_scale()
    }

    /// The training configuration (optimizer, schedule, clipping).
    pub fn training(&self) -> &Compile {
        &self.bound().config
    }

    /// Number of trainable values (134,515,008 for SmolLM2-135M).
    pub fn parameters(&self) -> usize {
        self.bound().heads.params.iter().map(|(_, p)| p.shape.iter().product::<usize>()).sum()
    }

    /// The device description (adapter or CPU threads).
    pub fn device(&self) -> String {
        self.bound().session.backend().info().to_string()
    }

    /// The backend counters of the device it trains on (replica 0's under data parallelism):
    /// buffers, pipelines, and on a GPU the submissions, dispatches and host encoding time.
    pub fn stats(&self) -> kiln_device::Stats {
        self.bound().session.stats()
    }

    /// Optimizer steps taken so far (including those before a resume).
    pub fn step(&self) -> u64 {
        self.bound().session.step_count()
    }

    /// Epochs `fit` has trained so far (saved with the model).
    pub fn epochs_done(&self) -> usize {
        self.core.epochs_done
    }

    /// A parameter's current values by its Hugging Face name.
    pub fn param(&mut self, name: &str) -> Result<Vec<f32>> {
        Ok(self.session().get_param(name)?)
    }

    /// Every parameter (name, shape, values) in `state_dict` order.
    pub fn state_dict(&mut self) -> Result<Vec<NamedTensor>> {
        let params: Vec<Param> = self.bound().heads.params.iter().map(|(_, p)| p.clone()).collect();
        params.into_iter().map(|p| Ok((p.name.clone(), p.shape, self.param(&p.name)?))).collect()
    }

    /// One optimizer step (at the schedule's rate) on `[batch, context]` input ids and their
    /// next-token targets; returns the batch's mean loss (before the update).
    pub fn train_step(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.check_batch(tokens, targets)?;
        let h = &self.bound().heads;
        let feeds = [(h.x, HostData::U32(tokens)), (h.target, HostData::U32(targets))];
        self.core.train_step(&feeds)
    }

    /// The mean next-token loss of a batch, without training.
    pub fn eval_loss(&mut self, tokens: &[u32], targets: &[u32]) -> Result<f32> {
        self.check_batch(tokens, targets)?;
        let h = &self.bound().heads;
        let (x, target, loss) = (h.x, h.target, h.loss_eval);
        let feeds = [(x, HostData::U32(tokens)), (target, HostData::U32(targets))];
        Ok(self.session().run_sync(&feeds, &[loss])?[0][0])
    }

    /// The logits `[batch, context, vocab]` of `[batch, context]` input ids.
    pub fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.check_batch(tokens, tokens)?;
        let h = &self.bound().heads;
        let (x, out) = (h.x, h.out_eval);
        Ok(self.session().run_sync(&[(x, HostData::U32(tokens))], &[out])?.remove(0))
    }

    /// The gradient of the mean next-token loss for every parameter (name, values), without
    /// updating anything: what the reference tests compare with `transformers`.
    pub fn gradients(&mut self, tokens: &[u32], targets: &[u32]) -> Result<Vec<(String, Vec<f32>)>> {
        self.check_batch(tokens, targets)?;
        let config = self.bound().config.clone();
        let g = crate::trainable::model_graph(&config);
        let heads = self.build(&g, &config)?;
        let params: Vec<NodeId> = heads.params.iter().map(|(n, _)| *n).collect();
        let grads = g.gradients(heads.loss_train, &params)?;
        let backend = kiln_device::open(self.bound().config.backend)?;
        let mut s = Session::new(g, backend)?;
        for (name, _, values) in self.state_dict()? {
            s.set_param(&name, &values)?;
        }
        let feeds = [(heads.x, HostData::U32(tokens)), (heads.target, HostData::U32(targets))];
        let out = s.run_sync(&feeds, &grads)?;
        Ok(heads.params.iter().map(|(_, p)| p.name.clone()).zip(out).collect())
    }

    /// Trains on token windows (`context + 1` ids per row: inputs and shifted targets, e.g.
    /// `TokenFile::random_windows`) with the core's `fit`.
    pub fn fit(&mut self, data: &(dyn Dataset + Sync), opts: &FitOptions<'_>) -> Result<History> {
        self.with_core(|core, net| core.fit(net, data, opts))
    }

    /// Mean next-token loss over token windows.
    pub fn evaluate(&mut self, data: &(dyn Dataset + Sync), batch_size: usize) -> Result<Evaluation> {
        self.with_core(|core, net| core.evaluate_rows(net, data, None, batch_size))
    }

    fn check_batch(&self, tokens: &[u32], targets: &[u32]) -> Result<()> {
        check_token_batch("llama", self.context, self.config.vocab_size, tokens, targets)
    }

    /// Writes the model (Hugging Face parameter names, its config, the training configuration
    /// and progress; the optimizer state in `*.optim.safetensors` next to it), atomically.
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.with_core(|core, net| core.save(net, path.as_ref()))
    }

    /// Rebuilds a model written by [`Llama::save`] on `backend`, with its optimizer state and
    /// step, ready to continue training exactly.
    pub fn load(path: impl AsRef<Path>, backend: Box<dyn Backend>) -> Result<Self> {
        let path = path.as_ref();
        let c = Checkpoint::read(path)?;
        let missing = |key: &str| Error::Metadata {
            key: key.into(),
            message: format!("{} was not written by Llama::save", path.display()),
        };
        let config: LlamaConfig = c.json(CONFIG)?.ok_or_else(|| missing(CONFIG))?;
        let shape: TrainShape = c.json(SHAPE)?.ok_or_else(|| missing(SHAPE))?;
        config.check()?;
        let mut core = Core::default();
        core.read_state(&c, path)?;
        let training = core.saved.take().unwrap_or_else(Llama::default_training);
        let tokenizer = c.json(TOKENIZER)?;
        let mut m = Llama { config, context: shape.context, seed: shape.seed, tokenizer, init: false, core };
        let pending = m.core.pending_state.take();
        m.with_core(|core, net| core.bind(net, training, Some(backend)))?;
        m.set_weights(&c, path)?;
        m.core.pending_state = pending;
        m.core.restore_pending_state()?;
        Ok(m)
    }

    /// Sets every parameter from a checkpoint holding exactly the model's tensors (a tied
    /// model's file may also hold `lm_head.weight`; it is skipped when equal to the embedding).
    fn set_weights(&mut self, c: &Checkpoint, path: &Path) -> Result<()> {
        let params: Vec<Param> = self.bound().heads.params.iter().map(|(_, p)| p.clone()).collect();
        let session = self.session();
        set_weights_from(c, path, &params, |name, data| Ok(session.set_param(name, data)?))
    }
}

impl Trainable for Llama {
    fn build(&self, g: &Graph, training: &Compile) -> Result<Heads> {
        let c = &self.config;
        let (v, t, hd) = (c.vocab_size, self.context, c.head_dim());
        let (h, kvh, eps) = (c.num_attention_heads, c.num_key_value_heads, c.rms_norm_eps);
        let mut rng = SplitMix64::new(self.seed);
        let std = c.initializer_range as f64;
        let mut params = Vec::new();
        let mut param = |name: &str, shape: &[usize]| -> NodeId {
            let n = shape.iter().product();
            let mut init = || -> Vec<f32> {
                if decayed(shape) {
                    (0..n).map(|_| (gaussian(&mut rng) * std) as f32).collect()
                } else {
                    vec![1.0; n] // RMSNorm weights
                }
            };
            let id = if self.init { g.param_init(name, shape, init()) } else { g.param(name, shape) };
            params.push(id);
            id
        };
        let tokens = g.input_u32("tokens", &[t]);
        let targets = g.input_u32("targets", &[t]);
        let (cos, sin) = rope_tables(t, hd, c.rope_theta);
        let cos = g.constant(&[t, hd / 2], cos);
        let sin = g.constant(&[t, hd / 2], sin);
        let shapes = c.parameter_shapes();
        let mut shapes = shapes.iter();
        let mut next = |param: &mut dyn FnMut(&str, &[usize]) -> NodeId| {
            let (name, shape) = shapes.next().expect("parameter_shapes lists every parameter");
            param(name, shape)
        };
        let embed = next(&mut param);
        let mut x = g.gather(embed, tokens, 0); // [B, T, d]
        let b = g.shape(x).0[0];
        let heads = |y: NodeId, n: usize| g.reshape(y, &[b, t.into(), n.into(), hd.into()]);
        for _ in 0..c.num_hidden_layers {
            let (wq, wk, wv, wo) = (next(&mut param), next(&mut param), next(&mut param), next(&mut param));
            let (wg, wu, wd) = (next(&mut param), next(&mut param), next(&mut param));
            let (n_in, n_post) = (next(&mut param), next(&mut param));
            let block = |x: NodeId| {
                let a = g.rms_norm(x, n_in, eps);
                let q = g.rope(heads(g.linear(a, wq, None), h), cos, sin);
                let k = g.rope(heads(g.linear(a, wk, None), kvh), cos, sin);
                let vv = heads(g.linear(a, wv, None), kvh);
                let x = g.add(x, g.linear(g.grouped_query_attention(q, k, vv), wo, None));
                let m = g.rms_norm(x, n_post, eps);
                let up = g.swiglu(g.linear(m, wg, None), g.linear(m, wu, None));
                g.add(x, g.linear(up, wd, None))
            };
            // activation checkpointing: each block one recomputed segment
            x = if training.recompute { g.checkpoint(|| block(x)) } else { block(x) };
        }
        let norm = next(&mut param);
        let head = if c.tie_word_embeddings { embed } else { next(&mut param) };
        let logits = g.linear(g.rms_norm(x, norm, eps), head, None); // [B, T, V]
        Ok(next_token_heads(g, (tokens, targets, logits), v, params, decayed))
    }

    fn prep(&self, data: &dyn Dataset, _: Loss) -> Result<Prep> {
        self.check_features(data)?;
        Ok(Prep::NextToken)
    }

    fn check_features(&self, data: &dyn Dataset) -> Result<()> {
        check_windows("Llama", self.context, data)
    }

    fn token_vocab(&self) -> Option<usize> {
        Some(self.config.vocab_size)
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn host_params(&self) -> Result<Vec<(Param, Vec<f32>)>> {
        Err(Error::Model("a Llama's parameters live in its session".into()))
    }

    fn write_metadata(&self, ck: &mut Checkpoint) -> Result<()> {
        ck.set_json(CONFIG, &self.config)?;
        if let Some(t) = &self.tokenizer {
            ck.set_json(TOKENIZER, t)?;
        }
        ck.set_json(SHAPE, &TrainShape { context: self.context, seed: self.seed })
    }
}
