//! Generation with a key/value cache: a decode graph that takes one token and its position per
//! step, writes that position's keys and values into per-layer caches on the device (in place)
//! and attends over the cache, so continuing a prompt by n tokens costs n steps of one token
//! each, not n passes over a growing sequence. Sampling (temperature, top-k, top-p, seeded) runs
//! on the host over the returned logits.

use kiln_device::{Backend, HostData};
use kiln_graph::{rope_tables, Dim, Graph, NodeId, Session};

use super::{Llama, LlamaConfig};
use crate::data::SplitMix64;
use crate::error::{Error, Result};
use crate::layers::unit;
use crate::model::NamedTensor;

/// How the next token is drawn from the logits.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// Divides the logits; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probabilities add up to `p`
    /// (nucleus sampling).
    pub top_p: Option<f32>,
    /// Seeds the draws.
    pub seed: u64,
}

impl Default for Sampling {
    /// Temperature 0.8, top-k 50, no top-p, seed 0.
    fn default() -> Self {
        Sampling { temperature: 0.8, top_k: Some(50), top_p: None, seed: 0 }
    }
}

impl Sampling {
    /// The most likely token every time.
    pub fn greedy() -> Self {
        Sampling { temperature: 0.0, top_k: None, top_p: None, seed: 0 }
    }

    fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "temperature {} must be 0 or more",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::InvalidArgument("top-k must be at least 1".into()));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::InvalidArgument(format!("top-p {p} must be in (0, 1]")));
            }
        }
        Ok(())
    }
}

/// A decoder with its key/value caches on a backend: feed it tokens one at a time
/// ([`Generator::step`]) or continue a prompt ([`Generator::generate`]).
pub struct Generator {
    config: LlamaConfig,
    session: Session,
    token: NodeId,
    position: NodeId,
    logits: NodeId,
    caches: Vec<String>,
    max_len: usize,
    len: usize,
}

impl Llama {
    /// A generator with this model's current weights and caches for `max_len` positions, on a
    /// backend of the kind the model trains on.
    pub fn generator(&mut self, max_len: usize) -> Result<Generator> {
        let backend = kiln_device::open(self.training().backend)?;
        let weights = self.state_dict()?;
        Generator::new(self.config.clone(), &weights, max_len, backend)
    }
}

impl Generator {
    /// Builds the decode graph for `config` with `weights` (Hugging Face names, as
    /// [`Llama::state_dict`] gives them) and caches for `max_len` positions on `backend`.
    pub fn new(
        config: LlamaConfig,
        weights: &[NamedTensor],
        max_len: usize,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        config.check()?;
        if max_len == 0 {
            return Err(Error::InvalidArgument("a generator needs room for at least one position".into()));
        }
        let g = Graph::new();
        let (token, position, logits, caches) = decode_graph(&g, &config, max_len, weights)?;
        g.check()?;
        let session = Session::new(g, backend)?;
        Ok(Generator { config, session, token, position, logits, caches, max_len, len: 0 })
    }

    /// Positions the caches hold.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokens fed since the last reset.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been fed since the last reset.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the sequence: the caches are cleared and the next token is position 0.
    pub fn reset(&mut self) -> Result<()> {
        for name in &self.caches {
            self.session.zero_state(name)?;
        }
        self.len = 0;
        Ok(())
    }

    /// Feeds the next token of the sequence; returns the logits `[vocab]` for the token after it.
    pub fn step(&mut self, token: u32) -> Result<Vec<f32>> {
        if self.len >= self.max_len {
            return Err(Error::InvalidArgument(format!(
                "the sequence has reached the cache's {} positions",
                self.max_len
            )));
        }
        if token as usize >= self.config.vocab_size {
            return Err(Error::InvalidArgument(format!(
                "token id {token} is outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        let pos = [self.len as u32];
        let feeds = [(self.token, HostData::U32(&[token])), (self.position, HostData::U32(&pos))];
        let out = self.session.run_sync(&feeds, &[self.logits])?.remove(0);
        self.len += 1;
        Ok(out)
    }

    /// Resets, feeds `prompt` and draws `n` tokens after it (each fed back in): `prompt.len() +
    /// n - 1` steps in all. Returns the `n` new tokens.
    pub fn generate(&mut self, prompt: &[u32], n: usize, sampling: &Sampling) -> Result<Vec<u32>> {
        self.generate_with(prompt, n, sampling, |_| Ok(()))
    }

    /// [`Generator::generate`], calling `each` with every new token as it is drawn (to print it).
    pub fn generate_with(
        &mut self,
        prompt: &[u32],
        n: usize,
        sampling: &Sampling,
        mut each: impl FnMut(u32) -> Result<()>,
    ) -> Result<Vec<u32>> {
        sampling.check()?;
        if prompt.is_empty() {
            return Err(Error::InvalidArgument("generate needs a prompt of at least one token".into()));
        }
        if prompt.len() + n > self.max_len + 1 {
            return Err(Error::InvalidArgument(format!(
                "a prompt of {} tokens and {n} new ones need {} positions; the cache holds {}",
                prompt.len(),
                prompt.len() + n - 1,
                self.max_len
            )));
        }
        self.reset()?;
        let mut rng = SplitMix64::new(sampling.seed);
        let mut logits = Vec::new();
        for &t in prompt {
            logits = self.step(t)?;
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let next = sample(&logits, sampling, &mut rng);
            out.push(next);
            each(next)?;
            if i + 1 < n {
                logits = self.step(next)?;
            }
        }
        Ok(out)
    }
}

type DecodeHeads = (NodeId, NodeId, NodeId, Vec<String>);

/// One token per step (batch 1): see the module docs.
fn decode_graph(g: &Graph, c: &LlamaConfig, max_len: usize, weights: &[NamedTensor]) -> Result<DecodeHeads> {
    let (hd, h, kvh, eps) = (c.head_dim(), c.num_attention_heads, c.num_key_value_heads, c.rms_norm_eps);
    let group = c.group();
    let shapes = c.parameter_shapes();
    let mut by_name = std::collections::HashMap::new();
    for (name, shape, data) in weights {
        by_name.insert(name.as_str(), (shape, data));
    }
    if let Some((extra, _, _)) = weights.iter().find(|(n, _, _)| !shapes.iter().any(|(s, _)| s == n)) {
        return Err(Error::Model(format!("'{extra}' is not a parameter of this Llama configuration")));
    }
    let param = |name: &str| -> Result<NodeId> {
        let want = &shapes.iter().find(|(n, _)| n == name).expect("a listed parameter").1;
        let (shape, data) =
            by_name.get(name).ok_or_else(|| Error::Model(format!("the weights lack '{name}'")))?;
        if *shape != want {
            return Err(Error::Model(format!("'{name}' has shape {shape:?}, the config needs {want:?}")));
        }
        Ok(g.param_init(name, want, data.to_vec()))
    };
    let token = g.input_u32("token", &[]); // [B], B = 1
    let position = g.input_u32("position", &[]);
    let (cos, sin) = rope_tables(max_len, hd, c.rope_theta);
    let cos = g.gather(g.constant(&[max_len, hd / 2], cos), position, 0); // [B, hd/2]
    let sin = g.gather(g.constant(&[max_len, hd / 2], sin), position, 0);
    let embed = param("model.embed_tokens.weight")?;
    let mut x = g.gather(embed, token, 0); // [B, d]
    let b = g.shape(x).0[0];
    let rows = |n: usize| Dim::Batch(n); // n rows per batch entry
    let mut caches = Vec::new();
    let scale = 1.0 / (hd as f32).sqrt();
    for l in 0..c.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        let (wq, wk, wv, wo) = (
            param(&p("self_attn.q_proj.weight"))?,
            param(&p("self_attn.k_proj.weight"))?,
            param(&p("self_attn.v_proj.weight"))?,
            param(&p("self_attn.o_proj.weight"))?,
        );
        let (wg, wu, wd) = (
            param(&p("mlp.gate_proj.weight"))?,
            param(&p("mlp.up_proj.weight"))?,
            param(&p("mlp.down_proj.weight"))?,
        );
        let (n_in, n_post) =
            (param(&p("input_layernorm.weight"))?, param(&p("post_attention_layernorm.weight"))?);
        let a = g.rms_norm(x, n_in, eps);
        let split = |y: NodeId, n: usize| g.reshape(y, &[b, Dim::Fixed(1), Dim::Fixed(n), Dim::Fixed(hd)]);
        let q = g.rope(split(g.linear(a, wq, None), h), cos, sin); // [B, 1, H, hd]
        let k = g.rope(split(g.linear(a, wk, None), kvh), cos, sin); // [B, 1, KVH, hd]
        let v = g.linear(a, wv, None);
        // this position's keys and values as [KVH, B, hd] rows of the [KVH, max_len, hd] caches
        let as_rows = |y: NodeId| g.permute(g.reshape(y, &[b, Dim::Fixed(kvh), Dim::Fixed(hd)]), &[1, 0, 2]);
        let (kn, vn) = (p("self_attn.k_cache"), p("self_attn.v_cache"));
        let k_all = g.cache_write(g.cache(&kn, &[kvh, max_len, hd]), as_rows(k), position);
        let v_all = g.cache_write(g.cache(&vn, &[kvh, max_len, hd]), as_rows(v), position);
        caches.extend([kn, vn]);
        // with B = 1 the query heads [H, hd] are [KVH, G, hd]: each group's G queries against
        // its own key/value head's cache
        let q = g.reshape(q, &[Dim::Fixed(kvh), rows(group), Dim::Fixed(hd)]);
        let scores = g.matmul_t(q, k_all, false, true); // [KVH, G, max_len]
        let scores = g.reshape(scores, &[Dim::Fixed(h), b, Dim::Fixed(max_len)]);
        let probs = g.scaled_softmax_upto(scores, scale, position);
        let probs = g.reshape(probs, &[Dim::Fixed(kvh), rows(group), Dim::Fixed(max_len)]);
        let ctx = g.reshape(g.matmul(probs, v_all), &[b, Dim::Fixed(h * hd)]); // [B, H*hd]
        x = g.add(x, g.linear(ctx, wo, None));
        let m = g.rms_norm(x, n_post, eps);
        x = g.add(x, g.linear(g.swiglu(g.linear(m, wg, None), g.linear(m, wu, None)), wd, None));
    }
    let norm = param("model.norm.weight")?;
    let head = if c.tie_word_embeddings { embed } else { param("lm_head.weight")? };
    let logits = g.linear(g.rms_norm(x, norm, eps), head, None); // [B, V]
    Ok((token, position, logits, caches))
}

/// Draws a token id from `logits` as `sampling` says.
pub(crate) fn sample(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &z) in logits.iter().enumerate() {
            if z > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if sampling.temperature == 0.0 || sampling.top_k == Some(1) {
        return argmax();
    }
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    if let Some(k) = sampling.top_k {
        order.truncate(k.max(1));
    }
    let top = logits[order[0] as usize] as f64;
    let t = sampling.temperature as f64;
    let mut p: Vec<f64> = order.iter().map(|&i| ((logits[i as usize] as f64 - top) / t).exp()).collect();
    if let Some(top_p) = sampling.top_p {
        let total: f64 = p.iter().sum();
        let (mut acc, mut keep) = (0.0, p.len());
        for (i, &pi) in p.iter().enumerate() {
            acc += pi / total;
            if acc >= top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        p.truncate(keep);
        order.truncate(keep);
    }
    let mut r = unit(rng) * p.iter().sum::<f64>();
    for (i, &pi) in p.iter().enumerate() {
        if r < pi {
            return order[i];
        }
        r -= pi;
    }
    order[p.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_top_p_keep_only_the_likely_tokens() {
        let logits = [0.1f32, 3.0, -1.0, 2.9, 0.5];
        let mut rng = SplitMix64::new(5);
        let k2 = Sampling { temperature: 1.0, top_k: Some(2), top_p: None, seed: 0 };
        let mut seen = [0usize; 5];
        for _ in 0..400 {
            seen[sample(&logits, &k2, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[0] + seen[2] + seen[4], 0, "{seen:?}");
        assert!(seen[1] > 120 && seen[3] > 120, "{seen:?}");
        // p(1) ~ 0.43 of the whole: top-p 0.3 keeps it alone
        let p = Sampling { temperature: 1.0, top_k: None, top_p: Some(0.3), seed: 0 };
        assert!((0..50).all(|_| sample(&logits, &p, &mut rng) == 1));
        assert_eq!(sample(&logits, &Sampling::greedy(), &mut rng), 1);
    }
}
