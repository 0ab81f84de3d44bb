//! One training step of a Llama-style language model (BENCHMARKS.md `smollm2-135m`): the
//! SmolLM2-135M configuration (134,515,008 parameters) at batch 4 x 128 tokens, forward +
//! next-token cross-entropy + backward + AdamW (weight decay on matrices) + the loss back on the
//! host, through the same `zoo::Llama` the CLI trains. `--config tiny` runs the toy preset;
//! `--recompute` recomputes each block during the backward (activation checkpointing);
//! `--precision bf16|f16` runs the matmuls on half copies (`Compile::precision`).
//!
//! ```text
//! cargo bench --bench llm_step -- [--backend cpu|gpu|auto] [--config smollm2-135m|tiny|FILE] [--batch 4] [--seq 128] [--steps 3] [--recompute] [--precision f32|bf16|f16] [--quick]
//! ```
//!
//! Lines: `bench=smollm2-135m backend=cpu batch=4 seq=128 steps_per_s=... tokens_per_s=...`
//! (median of the timed steps), then `... recompute=... peak_rss_bytes=... planned_bytes=... launches=...`,
//! and on a GPU `mfu=...` (6 * parameters * tokens / step time / the fp32 peak given by
//! `KILN_PEAK_FLOPS`, when set), and on a GPU `bench=tiny backend=gpu encode_us=... encode_us_min=...
//! dispatches=... submits=... encode_us_per_dispatch=...`: host time spent encoding a timed step's
//! command buffers (`Stats::encode_ns`, apart from `queue.submit` and the wait), median and
//! fastest, and the median per dispatch.

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use kiln::trainer::zoo::{Llama, LlamaConfig};

fn main() -> anyhow::Result<()> {
    let backend = common::backend_arg("cpu").map_err(anyhow::Error::msg)?;
    let quick = common::has("--quick") || std::env::var_os("KILN_BENCH_QUICK").is_some();
    let name = common::flag("--config").unwrap_or_else(|| "smollm2-135m".into());
    let num = |flag: &str, default: usize| -> anyhow::Result<usize> {
        common::flag(flag).map_or(Ok(default), |v| v.parse().map_err(|e| anyhow::anyhow!("{flag} {v}: {e}")))
    };
    let (batch, seq) = (num("--batch", 4)?, num("--seq", 128)?);
    let steps = num("--steps", if quick { 2 } else { 5 })?;
    let config = LlamaConfig::named_or_file(&name)?;
    let mut training = Llama::default_training();
    training.backend = backend;
    training.recompute = common::has("--recompute");
    if let Some(p) = common::flag("--precision") {
        training.precision = p.parse().map_err(|e| anyhow::anyhow!("--precision {p}: {e}"))?;
    }
    let precision = training.precision;
    let planned = Llama::plan_memory(&config, seq, batch, &training)?;
    let training_recompute = training.recompute;
    let device = kiln::device::open(backend)?;
    let label = if device.info().kind == kiln::device::DeviceKind::Cpu { "cpu" } else { "gpu" };
    let mut model = Llama::with_training(config.clone(), seq, 1, training, device)?;
    eprintln!("# {name}: {} parameters on {}", model.parameters(), model.device());
    // fixed random tokens, as the PyTorch peer draws them (uniform ids, seeded)
    let mut rng = kiln::data::SplitMix64::new(7);
    let v = config.vocab_size as u64;
    let tokens: Vec<u32> = (0..batch * (seq + 1)).map(|_| rng.below(v) as u32).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for row in tokens.chunks(seq + 1) {
        x.extend_from_slice(&row[..seq]);
        y.extend_from_slice(&row[1..]);
    }
    let first = model.train_step(&x, &y)?; // warm-up: plans compiled, buffers allocated
    let mut times = Vec::new();
    let mut loss = first;
    let mut encoded = Vec::new();
    for _ in 0..steps {
        let (t0, before) = (Instant::now(), model.stats());
        loss = model.train_step(&x, &y)?;
        times.push(t0.elapsed().as_secs_f64());
        encoded.push(common::Encoded::between(before, model.stats()));
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    eprintln!("# step times {:?} s; loss {first:.4} -> {loss:.4}", times);
    let tokens_per_step = (batch * seq) as f64;
    println!(
        "bench={name} backend={label} batch={batch} seq={seq} steps_per_s={:.4} tokens_per_s={:.1}",
        1.0 / median,
        tokens_per_step / median
    );
    let mut line = format!(
        "bench={name} backend={label} batch={batch} seq={seq} recompute={} precision={precision} peak_rss_bytes={} planned_bytes={} launches={}",
        training_recompute,
        common::peak_rss_bytes(),
        planned.total_bytes(),
        planned.launches
    );
    if let Some(peak) = std::env::var("KILN_PEAK_FLOPS").ok().and_then(|p| p.parse::<f64>().ok()) {
        let mfu = 6.0 * model.parameters() as f64 * tokens_per_step / median / peak;
        line.push_str(&format!(" mfu={mfu:.4}"));
    }
    println!("{line}");
    if label == "gpu" {
        println!("{}", common::encode_line(&name, &encoded));
    }
    Ok(())
}
