//! Training steps per second of the BENCHMARKS.md MLPs, a LeNet-style CNN and a small char-level
//! transformer (`common/mod.rs` defines them), built with the kiln-graph API (Graph +
//! Session) as a user embedding Kiln would. A step is forward + softmax cross-entropy + backward +
//! Adam update + the loss back on the host. The loss is read back asynchronously, one step late:
//! step k+1 is submitted before step k's loss is collected (on the CPU backend a submit runs the
//! step, so this changes nothing there; on a GPU it overlaps host and device work).
//!
//! ```text
//! cargo bench --bench train_step -- [--backend cpu|gpu|auto] [--model mlp-small|mlp-large|cnn|transformer]... [--quick]
//! ```
//!
//! Lines (one per model, then its memory and launches):
//! `bench=mlp-small backend=cpu steps_per_s=...` (median of the repeats, range on stderr),
//! `bench=mlp-small backend=cpu peak_plan_bytes=... rss_bytes=... launches=...`,
//! and on a GPU `bench=step-overhead backend=gpu submit_us=...`: host time of `Session::train`
//! (write the batch and hyper buffer, encode and submit one step), median over the timed steps,
//! and `bench=mlp-small backend=gpu encode_us=... encode_us_min=... dispatches=... submits=...
//! encode_us_per_dispatch=...`: the backend's host time spent encoding a step's command buffers
//! (`Stats::encode_ns`, apart from `queue.submit` and the wait; `encode_idle_us...` the same with
//! the device idle, each step waited for before the next), median and fastest of the timed
//! steps, and the median per dispatch.

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Spec, TRAIN_BENCHES};
use kiln_device::HostData;
use kiln_graph::Pending;

fn main() -> anyhow::Result<()> {
    let backend = common::backend_arg("cpu").map_err(anyhow::Error::msg)?;
    let quick = common::has("--quick") || std::env::var_os("KILN_BENCH_QUICK").is_some();
    let wanted = common::flags("--model");
    for name in &wanted {
        if !TRAIN_BENCHES.iter().any(|m| m.name == name) {
            anyhow::bail!("--model {name}: expected one of mlp-small, mlp-large, cnn, transformer");
        }
    }
    for spec in TRAIN_BENCHES.iter().filter(|m| wanted.is_empty() || wanted.iter().any(|w| w == m.name)) {
        let spec = if quick { Spec { repeats: 2, steps: spec.steps / 5, ..*spec } } else { *spec };
        run(&spec, backend)?;
    }
    Ok(())
}

fn run(spec: &Spec, backend: kiln_device::BackendChoice) -> anyhow::Result<()> {
    let built = common::build(spec)?;
    let (inputs, loss, data) = (built.inputs, built.loss, built.batches);
    let mut s = kiln_graph::Session::new(built.graph, kiln_device::open(backend)?)?;
    let label = common::label(&s);
    eprintln!("# {}: {} on {}", spec.name, label, s.backend().info());
    let mut k = 0usize;
    let mut host_us = Vec::new();
    let mut encoded = Vec::new();
    let mut last_loss = f32::NAN;
    // `n` steps, each submitted before the previous one's loss is collected; the last is drained.
    let mut steps = |s: &mut kiln_graph::Session,
                     n: usize,
                     host_us: &mut Vec<f64>,
                     encoded: &mut Vec<common::Encoded>|
     -> anyhow::Result<()> {
        let mut pending: Option<Pending> = None;
        for _ in 0..n {
            let feeds: Vec<(kiln_graph::NodeId, HostData)> =
                inputs.iter().zip(&data[k % data.len()]).map(|(&n, d)| (n, d.host())).collect();
            k += 1;
            let before = s.stats();
            let t0 = Instant::now();
            let p = s.train(&feeds, &[loss])?;
            host_us.push(t0.elapsed().as_secs_f64() * 1e6);
            encoded.push(common::Encoded::between(before, s.stats()));
            if let Some(prev) = pending.replace(p) {
                last_loss = s.wait(prev)?.remove(0).into_f32()?[0];
            }
        }
        if let Some(prev) = pending {
            last_loss = s.wait(prev)?.remove(0).into_f32()?[0];
        }
        Ok(())
    };
    steps(&mut s, spec.warmup, &mut Vec::new(), &mut Vec::new())?;
    let created = s.stats().buffers_created;
    let mut rates = Vec::new();
    for _ in 0..spec.repeats {
        let t = Instant::now();
        steps(&mut s, spec.steps, &mut host_us, &mut encoded)?;
        rates.push(spec.steps as f64 / t.elapsed().as_secs_f64());
    }
    anyhow::ensure!(last_loss.is_finite(), "{}: loss is {last_loss}", spec.name);
    anyhow::ensure!(s.stats().buffers_created == created, "a training step allocated a buffer");
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "#   rates={:?} last_loss={last_loss:.4}",
        rates.iter().map(|r| (r * 10.0).round() / 10.0).collect::<Vec<_>>()
    );
    println!("bench={} backend={label} steps_per_s={:.1}", spec.name, sorted[sorted.len() / 2]);
    let plan = s.plan(spec.batch, true, &[loss])?;
    let (peak, launches) = (plan.peak_bytes(), plan.launches());
    println!(
        "bench={} backend={label} peak_plan_bytes={peak} rss_bytes={} launches={launches}",
        spec.name,
        common::peak_rss_bytes()
    );
    if label == "gpu" {
        host_us.sort_by(f64::total_cmp);
        println!(
            "bench=step-overhead backend=gpu model={} submit_us={:.1}",
            spec.name,
            host_us[host_us.len() / 2]
        );
        println!("{}", common::encode_line(spec.name, &encoded));
        // Again with the device idle while each step is encoded (each step waited for before the
        // next): on a software adapter the device's work runs on the same cores as the encoding
        // above, which a hardware GPU's host never shares.
        let mut idle = Vec::new();
        for _ in 0..spec.steps.min(30) {
            let feeds: Vec<(kiln_graph::NodeId, HostData)> =
                inputs.iter().zip(&data[k % data.len()]).map(|(&n, d)| (n, d.host())).collect();
            k += 1;
            let before = s.stats();
            let p = s.train(&feeds, &[loss])?;
            idle.push(common::Encoded::between(before, s.stats()));
            s.wait(p)?;
        }
        println!("{}", common::encode_line(spec.name, &idle).replace("encode_us", "encode_idle_us"));
    }
    Ok(())
}
