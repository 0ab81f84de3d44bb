//! The same plans on the GPU backend (wgpu + WGSL) and the CPU backend: loss and gradients agree
//! within float32 tolerance for several steps, and memory stays bounded. Without an adapter the
//! tests say loudly that they were skipped; with `KILN_REQUIRE_GPU=1` (CI) that is a failure.

mod common;

use common::Rng;
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::{Graph, NodeId, Optimizer, Session};

fn gpu() -> Option<Box<dyn Backend>> {
    match open(BackendChoice::Gpu) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("KILN_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("KILN_REQUIRE_GPU=1 but no GPU backend: {e}")
        }
        Err(e) => {
            eprintln!(
                "\n!!! SKIPPED: GPU test, no GPU backend ({e}); set KILN_REQUIRE_GPU=1 to fail instead\n"
            );
            None
        }
    }
}

struct Net {
    g: Graph,
    x: NodeId,
    y: NodeId,
    loss: NodeId,
    grads: Vec<NodeId>,
}

/// relu, gelu and tanh layers, softmax cross-entropy, SGD with Nesterov momentum.
fn net(seed: u64) -> Net {
    let sizes = [10, 24, 16, 12, 5];
    let g = Graph::new();
    let mut rng = Rng::new(seed);
    let x = g.input("x", &[sizes[0]]);
    let y = g.input_u32("y", &[]);
    let mut h = x;
    let mut params = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let s = 1.0 / (w[0] as f32).sqrt();
        let wt = g.param_init(
            &format!("{}.weight", 2 * i),
            &[w[1], w[0]],
            rng.vec(w[0] * w[1]).iter().map(|v| v * s).collect(),
        );
        let b =
            g.param_init(&format!("{}.bias", 2 * i), &[w[1]], rng.vec(w[1]).iter().map(|v| v * s).collect());
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        h = match i {
            0 => g.relu(a),
            1 => g.gelu(a),
            2 => g.tanh(a),
            _ => a,
        };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let grads = g.gradients(loss, &params).unwrap();
    let opt = Optimizer::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 1e-3, nesterov: true };
    g.optimize(&params, &grads, opt).unwrap();
    Net { g, x, y, loss, grads }
}

#[test]
fn gpu_and_cpu_agree_over_several_steps() {
    let Some(gpu) = gpu() else { return };
    let (a, b) = (net(1), net(1));
    let mut fetch = vec![a.loss];
    fetch.extend(&a.grads);
    let (x, y) = (a.x, a.y);
    let mut cpu = Session::new(a.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let mut gpu = Session::new(b.g, gpu).unwrap();
    let mut rng = Rng::new(2);
    for step in 0..5 {
        let n = if step == 3 { 7 } else { 33 }; // a partial batch in between
        let (xd, yd) = (rng.vec(n * 10), rng.below(n, 5));
        let feeds = [(x, HostData::F32(&xd)), (y, HostData::U32(&yd))];
        let c = cpu.train_sync(&feeds, &fetch).unwrap();
        let g = gpu.train_sync(&feeds, &fetch).unwrap();
        for (k, (c, g)) in c.iter().zip(&g).enumerate() {
            let scale = c.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in c.iter().zip(g).enumerate() {
                assert!((p - q).abs() <= 1e-4 * scale, "step {step} output {k}[{i}]: cpu {p} gpu {q}");
            }
        }
    }
    for name in cpu.param_names() {
        let (c, g) = (cpu.get_param(&name).unwrap(), gpu.get_param(&name).unwrap());
        for (p, q) in c.iter().zip(&g) {
            assert!((p - q).abs() <= 1e-4 * (1.0 + p.abs()), "{name}: cpu {p} gpu {q}");
        }
    }
}

#[test]
fn gpu_memory_stays_bounded() {
    let Some(gpu) = gpu() else { return };
    let n = net(3);
    let (x, y, loss) = (n.x, n.y, n.loss);
    let mut s = Session::new(n.g, gpu).unwrap();
    let mut rng = Rng::new(4);
    let (xd, yd) = (rng.vec(64 * 10), rng.below(64, 5));
    let feeds = [(x, HostData::F32(&xd)), (y, HostData::U32(&yd))];
    s.train_sync(&feeds, &[loss]).unwrap();
    // Warm-up ends with the first overlapped step: with two steps in flight the backend's pooled
    // read-back staging holds two buffers instead of one. From then on nothing is created.
    let mut pending = s.train(&feeds, &[loss]).unwrap();
    let next = s.train(&feeds, &[loss]).unwrap();
    s.wait(pending).unwrap();
    pending = next;
    let before = s.stats();
    for _ in 0..100 {
        let next = s.train(&feeds, &[loss]).unwrap();
        s.wait(pending).unwrap();
        pending = next;
    }
    s.wait(pending).unwrap();
    let after = s.stats();
    assert_eq!(after.buffers_created, before.buffers_created, "buffers");
    assert_eq!(after.bytes_held, before.bytes_held, "bytes held");
    assert_eq!(after.pipelines_created, before.pipelines_created, "pipelines");
    assert_eq!(after.bind_groups_created, before.bind_groups_created, "bind groups");
}
