//! The graph API directly: an MLP built node by node, gradients by reverse-mode autodiff, Adam
//! updates appended to the same graph, and a `Session` that runs it. Steps are submitted one ahead:
//! step k+1 is queued before the host waits for step k's loss.
//!
//! `cargo run --release --example custom_graph`

use clap::Parser;
use kiln::data::SplitMix64;
use kiln::device::{open, BackendChoice, HostData};
use kiln::graph::{Graph, Optimizer, Pending, Session};

/// Three interleaved spirals: 2 features, labels 0..3.
fn spirals(per_class: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = SplitMix64::new(seed);
    let mut noise = move || ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for class in 0..3u32 {
        for i in 0..per_class {
            let r = i as f32 / per_class as f32;
            let t = class as f32 * 2.1 + 4.0 * r + noise();
            xs.extend([r * t.sin(), r * t.cos()]);
            ys.push(class);
        }
    }
    (xs, ys)
}

/// Glorot-uniform values for a `[fan_out, fan_in]` weight.
fn glorot(fan_out: usize, fan_in: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..fan_out * fan_in)
        .map(|_| ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * limit)
        .map(|v| v as f32)
        .collect()
}

/// An MLP built with the graph API directly, trained on three spirals.
#[derive(Parser)]
#[command(name = "custom_graph", after_help = "Writes no files.")]
struct Args {}

fn main() -> anyhow::Result<()> {
    Args::parse();
    const BATCH: usize = 60;
    let (xs, ys) = spirals(100, 7); // 300 rows
    let rows = ys.len();

    // Build: 2 -> 64 -> 64 -> 3, PyTorch names and layouts (weight is [out, in]).
    let g = Graph::new();
    let x = g.input("x", &[2]); // [B, 2], the batch size is symbolic
    let y = g.input_u32("y", &[]); // [B] class ids
    let mut rng = SplitMix64::new(0);
    let w1 = g.param_init("0.weight", &[64, 2], glorot(64, 2, &mut rng));
    let b1 = g.param("0.bias", &[64]);
    let w2 = g.param_init("2.weight", &[64, 64], glorot(64, 64, &mut rng));
    let b2 = g.param("2.bias", &[64]);
    let w3 = g.param_init("4.weight", &[3, 64], glorot(3, 64, &mut rng));
    let b3 = g.param("4.bias", &[3]);
    let h1 = g.relu(g.linear(x, w1, Some(b1))); // [B, 64]
    let h2 = g.relu(g.linear(h1, w2, Some(b2))); // [B, 64]
    let logits = g.linear(h2, w3, Some(b3)); // [B, 3]
    let loss = g.softmax_cross_entropy(logits, y); // scalar, mean over the batch
    g.check()?; // a shape error would be reported here, naming the op and shapes
    let params = [w1, b1, w2, b2, w3, b3];
    let grads = g.gradients(loss, &params)?;
    g.optimize(&params, &grads, Optimizer::adam(1e-2))?;
    println!("graph: {} nodes (forward, backward and Adam updates)", g.len());

    let mut s = Session::new(g, open(BackendChoice::Cpu)?)?;
    println!("device: {}", s.backend().info());

    // Fixed batches of 60 rows (the rows are shuffled once so each batch mixes the classes).
    let mut order: Vec<usize> = (0..rows).collect();
    SplitMix64::new(1).shuffle(&mut order);
    let bx: Vec<f32> = order.iter().flat_map(|&i| [xs[2 * i], xs[2 * i + 1]]).collect();
    let by: Vec<u32> = order.iter().map(|&i| ys[i]).collect();
    let batches = rows / BATCH;

    let steps = 600;
    let every = batches * 20; // print every 20 passes over the data
    let mut in_flight: Option<Pending> = None;
    let mut sum = 0.0;
    for k in 0..=steps {
        // Submit step k (while steps remain); only then wait for step k - 1, which ran meanwhile.
        let next = if k < steps {
            let j = k % batches;
            let feeds = [
                (x, HostData::F32(&bx[j * BATCH * 2..(j + 1) * BATCH * 2])),
                (y, HostData::U32(&by[j * BATCH..(j + 1) * BATCH])),
            ];
            Some(s.train(&feeds, &[loss])?)
        } else {
            None
        };
        if let Some(p) = std::mem::replace(&mut in_flight, next) {
            sum += s.wait(p)?.remove(0).into_f32()?[0];
            if k % every == 0 {
                println!("step {k:>4}  mean loss of the last {every} steps {:.4}", sum / every as f32);
                sum = 0.0;
            }
        }
    }

    // Accuracy with the forward-only plan (no gradients, no updates).
    let out = s.run_sync(&[(x, HostData::F32(&xs))], &[logits])?;
    let correct = out[0]
        .chunks(3)
        .zip(&ys)
        .filter(|(row, &label)| {
            let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            best as u32 == label
        })
        .count();
    println!(
        "training accuracy after {steps} steps: {:.1}% of {rows} points",
        100.0 * correct as f64 / rows as f64
    );
    Ok(())
}
