//! Per-step host cost of a compiled training step, and plan memory.
//!
//! - `bench=mlp-small backend=cpu steps_per_s=...`: a 64 -> 128 -> 128 -> 10 ReLU MLP, batch 64,
//!   softmax cross-entropy, Adam, one `Session::train` + `wait` per step on the CPU backend.
//! - `bench=step-overhead backend=gpu submit_us=...`: host time to write the batch and hyper
//!   buffer, encode and submit one step (the read-back is collected one step late), when a GPU
//!   backend opens (`KILN_BENCH_GPU=0` skips it).
//! - `bench=plan-memory model=... peak_bytes=... naive_bytes=... launches=...`: the plan's buffers
//!   with liveness reuse against one buffer per tensor, for mlp-small and 784 -> 1024 -> 1024 -> 10
//!   at batch 256.

use std::time::Instant;

use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::{compile, Graph, NodeId, Optimizer, Session};

struct Model {
    g: Graph,
    x: NodeId,
    y: NodeId,
    loss: NodeId,
}

fn mlp(sizes: &[usize]) -> Model {
    let g = Graph::new();
    let mut seed = 7u32;
    let mut noise = |n: usize, s: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * s
            })
            .collect()
    };
    let x = g.input("x", &[sizes[0]]);
    let y = g.input_u32("y", &[]);
    let mut h = x;
    let mut params = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let s = 2.0 / (w[0] as f32).sqrt();
        let wt = g.param_init(&format!("{}.weight", 2 * i), &[w[1], w[0]], noise(w[0] * w[1], s));
        let b = g.param_init(&format!("{}.bias", 2 * i), &[w[1]], noise(w[1], s));
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        h = if i + 2 < sizes.len() { g.relu(a) } else { a };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let grads = g.gradients(loss, &params).expect("gradients");
    g.optimize(&params, &grads, Optimizer::adam(1e-3)).expect("optimizer");
    Model { g, x, y, loss }
}

fn batch(n: usize, d: usize) -> (Vec<f32>, Vec<u32>) {
    let x = (0..n * d).map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5).collect();
    let y = (0..n as u32).map(|i| i % 10).collect();
    (x, y)
}

fn main() -> kiln_graph::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var("KILN_BENCH_QUICK").is_ok();
    let small = [64, 128, 128, 10];

    // CPU steps per second.
    let m = mlp(&small);
    let (xd, yd) = batch(64, 64);
    let mut s = Session::new(m.g, open(BackendChoice::Cpu)?)?;
    let feeds = [(m.x, HostData::F32(&xd)), (m.y, HostData::U32(&yd))];
    for _ in 0..20 {
        s.train_sync(&feeds, &[m.loss])?;
    }
    let steps = if quick { 200 } else { 2000 };
    let t = Instant::now();
    for _ in 0..steps {
        let p = s.train(&feeds, &[m.loss])?;
        s.wait(p)?;
    }
    let per_s = steps as f64 / t.elapsed().as_secs_f64();
    println!("bench=mlp-small backend=cpu steps_per_s={per_s:.0}");

    // GPU: host time to encode + submit one step, read-back collected one step late.
    if std::env::var("KILN_BENCH_GPU").as_deref() != Ok("0") {
        match open(BackendChoice::Gpu) {
            Ok(gpu) => {
                let m = mlp(&small);
                let mut s = Session::new(m.g, gpu)?;
                let info = s.backend().info().to_string();
                let feeds = [(m.x, HostData::F32(&xd)), (m.y, HostData::U32(&yd))];
                let mut pending = s.train(&feeds, &[m.loss])?;
                for _ in 0..10 {
                    let next = s.train(&feeds, &[m.loss])?;
                    s.wait(pending)?;
                    pending = next;
                }
                let n = if quick { 50 } else { 300 };
                let (mut submit, t) = (0.0f64, Instant::now());
                for _ in 0..n {
                    let t0 = Instant::now();
                    let next = s.train(&feeds, &[m.loss])?;
                    submit += t0.elapsed().as_secs_f64();
                    s.wait(pending)?;
                    pending = next;
                }
                s.wait(pending)?;
                let per_s = n as f64 / t.elapsed().as_secs_f64();
                println!(
                    "bench=step-overhead backend=gpu submit_us={:.1} steps_per_s={per_s:.0} device=\"{info}\"",
                    1e6 * submit / n as f64
                );
            }
            Err(e) => println!("bench=step-overhead backend=gpu skipped=\"{e}\""),
        }
    }

    // Plan memory.
    for (name, sizes, b) in
        [("mlp-small", &small[..], 64), ("mlp-784-1024-1024-10", &[784, 1024, 1024, 10][..], 256)]
    {
        let m = mlp(sizes);
        let p = compile(&m.g, &[m.loss], true, b)?;
        println!(
            "bench=plan-memory model={name} batch={b} peak_bytes={} naive_bytes={} launches={} persistent_bytes={} fused={}",
            p.peak_bytes(),
            p.naive_bytes,
            p.launches(),
            p.persistent_bytes(),
            p.fused
        );
    }
    Ok(())
}
