//! Shared by the benches and `examples/cold_start.rs`: the BENCHMARKS.md models built with the
//! kiln-graph API (as a user embedding Kiln would), synthetic data from a fixed seed, command-line
//! flags and process memory. Not a bench itself (cargo only builds `benches/*.rs`).
#![allow(dead_code)]

use kiln_device::{open, BackendChoice};
use kiln_graph::{Graph, NodeId, Optimizer, Result, Session};

/// A BENCHMARKS.md model: layer widths, batch size, repeats, steps per repeat, warm-up steps.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub sizes: &'static [usize],
    pub batch: usize,
    pub repeats: usize,
    pub steps: usize,
    pub warmup: usize,
}

pub const MLP_SMALL: Spec =
    Spec { name: "mlp-small", sizes: &[64, 128, 128, 10], batch: 64, repeats: 5, steps: 200, warmup: 20 };
pub const MLP_LARGE: Spec =
    Spec { name: "mlp-large", sizes: &[784, 1024, 1024, 10], batch: 256, repeats: 3, steps: 30, warmup: 5 };
pub const MODELS: [Spec; 2] = [MLP_SMALL, MLP_LARGE];
/// Every training-step benchmark of `train_step.rs`, in its default order.
pub const TRAIN_BENCHES: [Spec; 4] = [MLP_SMALL, MLP_LARGE, CNN, TRANSFORMER];

/// xorshift64* with Box-Muller: repeatable N(0,1) and uniform draws with no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn normal(&mut self) -> f32 {
        let (u1, u2) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

/// A Linear/ReLU MLP with softmax cross-entropy and Adam (lr 1e-3), PyTorch's default init
/// (weights and biases uniform in ±1/sqrt(fan_in)) from a fixed seed.
pub struct Mlp {
    pub x: NodeId,
    pub y: NodeId,
    pub loss: NodeId,
}

pub fn mlp(sizes: &[usize]) -> Result<(Graph, Mlp)> {
    let g = Graph::new();
    let mut rng = Rng::new(1234);
    let x = g.input("x", &[sizes[0]]);
    let y = g.input_u32("y", &[]);
    let (mut h, mut params) = (x, Vec::new());
    for (i, w) in sizes.windows(2).enumerate() {
        let bound = 1.0 / (w[0] as f32).sqrt();
        let mut init = |n: usize| (0..n).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect();
        let wt = g.param_init(&format!("{}.weight", 2 * i), &[w[1], w[0]], init(w[0] * w[1]));
        let b = g.param_init(&format!("{}.bias", 2 * i), &[w[1]], init(w[1]));
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        h = if i + 2 < sizes.len() { g.relu(a) } else { a };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let grads = g.gradients(loss, &params)?;
    g.optimize(&params, &grads, Optimizer::adam(1e-3))?;
    Ok((g, Mlp { x, y, loss }))
}

/// Batches of (inputs, labels).
pub type Batches = Vec<(Vec<f32>, Vec<u32>)>;

/// `n` batches of inputs ~ N(0,1) and labels uniform over `classes`, from a fixed seed.
pub fn batches(n: usize, batch: usize, dim: usize, classes: u32) -> Batches {
    let mut rng = Rng::new(42);
    (0..n)
        .map(|_| {
            let x = (0..batch * dim).map(|_| rng.normal()).collect();
            let y = (0..batch).map(|_| rng.below(classes)).collect();
            (x, y)
        })
        .collect()
}

/// A session on `backend` for `spec`, plus its batches.
pub fn session(spec: &Spec, backend: BackendChoice) -> Result<(Session, Mlp, Batches)> {
    let (g, m) = mlp(spec.sizes)?;
    let data = batches(8, spec.batch, spec.sizes[0], *spec.sizes.last().unwrap() as u32);
    let s = Session::new(g, open(backend)?)?;
    Ok((s, m, data))
}

/// `--backend cpu|gpu|auto` (default `default`).
pub fn backend_arg(default: &str) -> std::result::Result<BackendChoice, String> {
    let v = flag("--backend").unwrap_or_else(|| default.to_string());
    match v.as_str() {
        "cpu" => Ok(BackendChoice::Cpu),
        "gpu" => Ok(BackendChoice::Gpu),
        "auto" => Ok(BackendChoice::Auto),
        _ => Err(format!("--backend {v}: expected cpu, gpu or auto")),
    }
}

/// Every value of a repeatable `--name value` (or `--name=value`) flag.
pub fn flags(name: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a == name {
            if let Some(v) = args.get(i + 1) {
                out.push(v.clone());
            }
        } else if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            out.push(v.to_string());
        }
    }
    out
}

pub fn flag(name: &str) -> Option<String> {
    flags(name).pop()
}

pub fn has(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The process's peak resident set (VmHWM), in bytes; 0 where /proc is absent.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The `backend=` label: what actually runs (`auto` resolves to cpu or gpu).
pub fn label(s: &Session) -> &'static str {
    if s.backend().info().kind == kiln_device::DeviceKind::Cpu {
        "cpu"
    } else {
        "gpu"
    }
}

/// One step's share of the backend's encoding counters: two `Stats` readings taken around it.
#[derive(Clone, Copy, Debug)]
pub struct Encoded {
    pub ns: u64,
    pub dispatches: u64,
    pub submits: u64,
}

impl Encoded {
    pub fn between(before: kiln_device::Stats, after: kiln_device::Stats) -> Self {
        Encoded {
            ns: after.encode_ns - before.encode_ns,
            dispatches: after.dispatches - before.dispatches,
            submits: after.submits - before.submits,
        }
    }
}

/// The `encode_us=` line of a GPU bench: the host time spent encoding command buffers per step
/// (apart from `queue.submit` and the wait), median and fastest over `steps`, and the median per
/// dispatch. The median, not the mean: on a shared machine one preemption inside a step's
/// encoding adds milliseconds.
pub fn encode_line(bench: &str, steps: &[Encoded]) -> String {
    let mut ns: Vec<u64> = steps.iter().map(|e| e.ns).collect();
    ns.sort_unstable();
    let median = ns.get(ns.len() / 2).copied().unwrap_or(0) as f64 / 1e3;
    let min = ns.first().copied().unwrap_or(0) as f64 / 1e3;
    let dispatches = steps.iter().map(|e| e.dispatches).max().unwrap_or(0);
    let submits = steps.iter().map(|e| e.submits).max().unwrap_or(0);
    format!(
        "bench={bench} backend=gpu encode_us={median:.1} encode_us_min={min:.1} dispatches={dispatches} submits={submits} encode_us_per_dispatch={:.3}",
        median / dispatches.max(1) as f64
    )
}

// ---------------------------------------------------------------------------
// The CNN and transformer benchmarks (not in BENCHMARKS.md's table yet: no targets).

/// One feed of a batch: f32 values or u32 indices/labels.
pub enum Data {
    F32(Vec<f32>),
    U32(Vec<u32>),
}

impl Data {
    pub fn host(&self) -> kiln_device::HostData<'_> {
        match self {
            Data::F32(v) => kiln_device::HostData::F32(v),
            Data::U32(v) => kiln_device::HostData::U32(v),
        }
    }
}

/// A built training step: the graph, its input nodes (in the order of each batch's feeds), the
/// loss node and pre-generated batches (cycled).
pub struct Built {
    pub graph: Graph,
    pub inputs: Vec<NodeId>,
    pub loss: NodeId,
    pub batches: Vec<Vec<Data>>,
}

/// cnn: the LeNet-style CNN of `examples/cnn_digits.rs` on `[1, 8, 8]` inputs, batch 64:
/// conv 1→16 3x3 pad 1, ReLU, maxpool 2, conv 16→32 3x3 pad 1, ReLU, maxpool 2, flatten (128),
/// Linear 128→64, ReLU, Linear 64→10; softmax cross-entropy, Adam lr 1e-3, PyTorch's default init.
pub const CNN: Spec = Spec { name: "cnn", sizes: &[], batch: 64, repeats: 5, steps: 100, warmup: 10 };

/// transformer: char-level GPT, vocab 65, dim 64, 2 pre-norm blocks (4 heads, causal, GELU MLP
/// 64→256→64), context 32, batch 16; token + position embeddings, final LayerNorm, linear head
/// (no bias); next-token softmax cross-entropy, Adam lr 1e-3.
pub const TRANSFORMER: Spec =
    Spec { name: "transformer", sizes: &[], batch: 16, repeats: 5, steps: 50, warmup: 10 };
pub const TF_VOCAB: usize = 65;
pub const TF_DIM: usize = 64;
pub const TF_LAYERS: usize = 2;
pub const TF_HEADS: usize = 4;
pub const TF_CONTEXT: usize = 32;

/// PyTorch's default init for Linear/Conv2d: weights and biases uniform in ±1/sqrt(fan_in).
fn uniform_init(rng: &mut Rng, n: usize, fan_in: usize) -> Vec<f32> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    (0..n).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect()
}

pub fn cnn() -> Result<Built> {
    use Data as D;
    let g = Graph::new();
    let mut rng = Rng::new(1234);
    let x = g.input("x", &[1, 8, 8]);
    let y = g.input_u32("y", &[]);
    let mut params = Vec::new();
    let mut conv = |g: &Graph, h: NodeId, name: &str, cin: usize, cout: usize| {
        let fan = cin * 9;
        let w = g.param_init(
            &format!("{name}.weight"),
            &[cout, cin, 3, 3],
            uniform_init(&mut rng, cout * fan, fan),
        );
        let b = g.param_init(&format!("{name}.bias"), &[cout], uniform_init(&mut rng, cout, fan));
        params.extend([w, b]);
        let o = kiln_graph::Conv2dOpts { padding: [1, 1], ..Default::default() };
        g.max_pool2d(g.relu(g.conv2d(h, w, Some(b), o)), 2, 2, 0)
    };
    let h = conv(&g, x, "conv1", 1, 16); // [B, 16, 4, 4]
    let h = conv(&g, h, "conv2", 16, 32); // [B, 32, 2, 2]
    let n = g.shape(h).0[0];
    let h = g.reshape(h, &[n, kiln_graph::Dim::Fixed(128)]);
    let mut dense = |g: &Graph, h: NodeId, name: &str, i: usize, o: usize| {
        let w = g.param_init(&format!("{name}.weight"), &[o, i], uniform_init(&mut rng, o * i, i));
        let b = g.param_init(&format!("{name}.bias"), &[o], uniform_init(&mut rng, o, i));
        params.extend([w, b]);
        g.linear(h, w, Some(b))
    };
    let h = g.relu(dense(&g, h, "fc1", 128, 64));
    let logits = dense(&g, h, "fc2", 64, 10);
    let loss = g.softmax_cross_entropy(logits, y);
    let grads = g.gradients(loss, &params)?;
    g.optimize(&params, &grads, Optimizer::adam(1e-3))?;
    let batches =
        batches(8, CNN.batch, 64, 10).into_iter().map(|(x, y)| vec![D::F32(x), D::U32(y)]).collect();
    Ok(Built { graph: g, inputs: vec![x, y], loss, batches })
}

pub fn transformer() -> Result<Built> {
    let (v, dim, ctx, b) = (TF_VOCAB, TF_DIM, TF_CONTEXT, TRANSFORMER.batch);
    let g = Graph::new();
    let mut rng = Rng::new(1234);
    // N(0, 1/fan_in) weights as in examples/char_transformer.rs (embeddings: N(0, 1/50))
    let mut init = |shape: &[usize], fan_in: usize| -> Vec<f32> {
        let s = 1.0 / (fan_in as f32).sqrt();
        (0..shape.iter().product()).map(|_| rng.normal() * s).collect()
    };
    let x = g.input_u32("tokens", &[ctx]);
    let y = g.input_u32("targets", &[ctx]);
    let wte = g.param_init("wte.weight", &[v, dim], init(&[v, dim], 50));
    let wpe = g.param_init("wpe.weight", &[ctx, dim], init(&[ctx, dim], 50));
    let mut h = g.add(g.gather(wte, x, 0), wpe);
    let mut params = vec![wte, wpe];
    for l in 0..TF_LAYERS {
        let blk =
            kiln_graph::TransformerBlock::new(&g, &format!("h.{l}"), dim, TF_HEADS, 4 * dim, true, &mut init);
        params.extend(blk.params());
        h = g.transformer_block(h, &blk);
    }
    let lnf_w = g.param_init("ln_f.weight", &[dim], vec![1.0; dim]);
    let lnf_b = g.param_init("ln_f.bias", &[dim], vec![0.0; dim]);
    let head = g.param_init("lm_head.weight", &[v, dim], init(&[v, dim], dim));
    params.extend([lnf_w, lnf_b, head]);
    let logits = g.linear(g.layer_norm(h, lnf_w, lnf_b, 1e-5), head, None);
    let loss = g.softmax_cross_entropy(logits, y);
    let grads = g.gradients(loss, &params)?;
    g.optimize(&params, &grads, Optimizer::adam(1e-3))?;
    // random token streams from a fixed seed; targets are the inputs shifted by one
    let mut drng = Rng::new(42);
    let batches = (0..8)
        .map(|_| {
            let (mut xs, mut ys) = (Vec::with_capacity(b * ctx), Vec::with_capacity(b * ctx));
            for _ in 0..b {
                let seq: Vec<u32> = (0..=ctx).map(|_| drng.below(v as u32)).collect();
                xs.extend_from_slice(&seq[..ctx]);
                ys.extend_from_slice(&seq[1..]);
            }
            vec![Data::U32(xs), Data::U32(ys)]
        })
        .collect();
    Ok(Built { graph: g, inputs: vec![x, y], loss, batches })
}

/// Any training benchmark by name: the MLPs of `MODELS`, `cnn` or `transformer`.
pub fn build(spec: &Spec) -> Result<Built> {
    match spec.name {
        "cnn" => cnn(),
        "transformer" => transformer(),
        _ => {
            let (graph, m) = mlp(spec.sizes)?;
            let classes = *spec.sizes.last().unwrap() as u32;
            let batches = batches(8, spec.batch, spec.sizes[0], classes)
                .into_iter()
                .map(|(x, y)| vec![Data::F32(x), Data::U32(y)])
                .collect();
            Ok(Built { graph, inputs: vec![m.x, m.y], loss: m.loss, batches })
        }
    }
}
