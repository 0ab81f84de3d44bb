//! A character-level GPT-style model built with the graph API: token + position embeddings, pre-norm
//! transformer blocks (causal multi-head self-attention, GELU MLP), a final LayerNorm and a linear
//! head; trained with AdamW on a bundled public-domain text (`data/gettysburg_declaration.txt`),
//! printing the loss and a sample every `--sample-every` steps, checkpointing to safetensors.
//!
//! `cargo run --release --example char_transformer -- [--steps N] [--dim D] [--layers L]
//!  [--heads H] [--context T] [--batch B] [--text FILE] [--checkpoint PATH] [--resume]`
//!
//! Defaults (dim 128, 4 layers, context 64: about 0.8M parameters) keep a 2-core CPU run short.

use std::collections::HashMap;
use std::time::Instant;

use kiln::device::{open, BackendChoice, HostData};
use kiln::graph::{Graph, Optimizer, Session, TransformerBlock};
use kiln::trainer::checkpoint::Checkpoint;

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> Self {
        let v: Vec<String> = std::env::args().skip(1).collect();
        let mut m = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            let key = v[i].trim_start_matches("--").to_string();
            let val = v.get(i + 1).filter(|x| !x.starts_with("--")).cloned();
            i += if val.is_some() { 2 } else { 1 };
            m.insert(key, val.unwrap_or_else(|| "true".into()));
        }
        Args(m)
    }
    fn get(&self, k: &str, default: usize) -> usize {
        self.0.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
}

/// xorshift64*: batches, initial weights and sampling.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let (steps, dim, layers, heads) =
        (a.get("steps", 300), a.get("dim", 128), a.get("layers", 4), a.get("heads", 4));
    let (ctx, batch, every) = (a.get("context", 64), a.get("batch", 16), a.get("sample-every", 100));
    let path = a.0.get("text").cloned().unwrap_or_else(|| "data/gettysburg_declaration.txt".into());
    let ckpt = a.0.get("checkpoint").cloned().unwrap_or_else(|| "char_transformer.safetensors".into());
    let text = std::fs::read_to_string(&path)?;
    let mut vocab: Vec<char> = text.chars().collect();
    vocab.sort_unstable();
    vocab.dedup();
    let index: HashMap<char, u32> = vocab.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
    let data: Vec<u32> = text.chars().map(|c| index[&c]).collect();
    anyhow::ensure!(data.len() > ctx + 1, "{path} is shorter than the context");
    let v = vocab.len();

    // ---- the model ----
    let g = Graph::new();
    let mut rng = Rng(0x6b696c6e);
    let mut init = |shape: &[usize], fan_in: usize| -> Vec<f32> {
        let s = 1.0 / (fan_in as f32).sqrt();
        (0..shape.iter().product()).map(|_| rng.normal() * s).collect()
    };
    let x = g.input_u32("tokens", &[ctx]); // [B, T]
    let y = g.input_u32("targets", &[ctx]); // [B, T]
    let wte = g.param_init("wte.weight", &[v, dim], init(&[v, dim], 50));
    let wpe = g.param_init("wpe.weight", &[ctx, dim], init(&[ctx, dim], 50));
    let mut h = g.add(g.gather(wte, x, 0), wpe); // [B, T, dim]
    let mut params = vec![wte, wpe];
    for l in 0..layers {
        let blk = TransformerBlock::new(&g, &format!("h.{l}"), dim, heads, 4 * dim, true, &mut init);
        params.extend(blk.params());
        h = g.transformer_block(h, &blk);
    }
    let lnf_w = g.param_init("ln_f.weight", &[dim], vec![1.0; dim]);
    let lnf_b = g.param_init("ln_f.bias", &[dim], vec![0.0; dim]);
    let head = g.param_init("lm_head.weight", &[v, dim], init(&[v, dim], dim));
    params.extend([lnf_w, lnf_b, head]);
    let logits = g.linear(g.layer_norm(h, lnf_w, lnf_b, 1e-5), head, None); // [B, T, V]
    let loss = g.softmax_cross_entropy(logits, y);
    let grads = g.gradients(loss, &params)?;
    g.optimize(
        &params,
        &grads,
        Optimizer::AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.01 },
    )?;
    let n_params: usize = params.iter().map(|&p| g.shape(p).numel(1)).sum();
    let mut s = Session::new(g, open(BackendChoice::from_env().unwrap_or(BackendChoice::Cpu))?)?;
    println!("{} chars, vocab {v}, {n_params} parameters, {}", data.len(), s.backend().info());

    // ---- resume ----
    if a.0.contains_key("resume") {
        let c = Checkpoint::read(&ckpt)?;
        for name in s.param_names().into_iter().chain(s.state_names()) {
            if let Some(t) = c.get(&name) {
                let data = t.data.clone();
                if s.param_names().contains(&name) {
                    s.set_param(&name, &data)?
                } else {
                    s.set_state(&name, &data)?
                }
            }
        }
        s.set_step_count(c.json::<u64>("step")?.unwrap_or(0));
        println!("resumed from {ckpt} at step {}", s.step_count());
    }

    // ---- train ----
    let mut brng = Rng(0x5eed ^ s.step_count().wrapping_mul(0x9E37_79B9));
    let start = Instant::now();
    let first = s.step_count();
    for step in first..first + steps as u64 {
        let (mut xs, mut ys) = (Vec::with_capacity(batch * ctx), Vec::with_capacity(batch * ctx));
        for _ in 0..batch {
            let o = (brng.next() % (data.len() - ctx - 1) as u64) as usize;
            xs.extend_from_slice(&data[o..o + ctx]);
            ys.extend_from_slice(&data[o + 1..o + ctx + 1]);
        }
        let out = s.train_sync(&[(x, HostData::U32(&xs)), (y, HostData::U32(&ys))], &[loss])?;
        let done = step + 1 - first;
        if step == first || (step + 1) % 25 == 0 {
            println!(
                "step {:>5}  loss {:.4}  ({:.2} steps/s)",
                step + 1,
                out[0][0],
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
        if (step + 1) % every as u64 == 0 || done == steps as u64 {
            let sample = generate(&mut s, x, logits, &data[..ctx], 200, v, &mut brng)?;
            println!(
                "--- sample ---\n{}\n--------------",
                sample.iter().map(|&i| vocab[i as usize]).collect::<String>()
            );
            let mut c = Checkpoint::new();
            for name in s.param_names() {
                let d = s.get_param(&name)?;
                c.push(&name, &[d.len()], d)?;
            }
            for name in s.state_names() {
                let d = s.get_state(&name)?;
                c.push(&name, &[d.len()], d)?;
            }
            c.set_json("step", &(step + 1))?;
            c.write(&ckpt)?;
        }
    }
    Ok(())
}

/// Samples `n` characters after `prompt` (exactly one context long): each step feeds the last
/// `T` tokens and draws from the softmax of the last position's logits.
fn generate(
    s: &mut Session,
    x: kiln::graph::NodeId,
    logits: kiln::graph::NodeId,
    prompt: &[u32],
    n: usize,
    v: usize,
    rng: &mut Rng,
) -> anyhow::Result<Vec<u32>> {
    let t = prompt.len();
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let window = &seq[seq.len() - t..];
        let out = s.run_sync(&[(x, HostData::U32(window))], &[logits])?;
        let last = &out[0][(t - 1) * v..t * v];
        let m = last.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let p: Vec<f32> = last.iter().map(|z| (z - m).exp()).collect();
        let mut r = rng.unit() * p.iter().sum::<f32>();
        let mut pick = v - 1;
        for (i, &pi) in p.iter().enumerate() {
            if r < pi {
                pick = i;
                break;
            }
            r -= pi;
        }
        seq.push(pick as u32);
    }
    Ok(seq[t..].to_vec())
}
