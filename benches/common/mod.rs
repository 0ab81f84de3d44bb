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
