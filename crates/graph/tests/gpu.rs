//! The same plans on the GPU backend (wgpu + WGSL) and the CPU backend: loss and gradients agree
//! within float32 tolerance for several steps, and memory stays bounded. Without an adapter the
//! tests say loudly that they were skipped; with `KILN_REQUIRE_GPU=1` (CI) that is a failure.

mod common;

use common::Rng;
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::{Graph, NodeId, Optimizer, Session, TransformerBlock};

fn gpu() -> Option<Box<dyn Backend>> {
    kiln_device::testing::gpu_or_skip("the graph plans")
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

/// A one-block causal char transformer (dim 12, 3 heads, T = 7), as tiny as lavapipe allows:
/// token and position embeddings, the block, a final LayerNorm and a linear head, AdamW.
fn tiny_transformer(seed: u64) -> Net {
    let (vocab, dim, t, heads) = (11, 12, 7, 3);
    let g = Graph::new();
    let mut rng = Rng::new(seed);
    let mut init = |shape: &[usize], fan_in: usize| -> Vec<f32> {
        let s = 1.0 / (fan_in as f32).sqrt();
        rng.vec(shape.iter().product()).iter().map(|v| v * s).collect()
    };
    let x = g.input_u32("tokens", &[t]);
    let y = g.input_u32("targets", &[t]);
    let wte = g.param_init("wte.weight", &[vocab, dim], init(&[vocab, dim], 4));
    let wpe = g.param_init("wpe.weight", &[t, dim], init(&[t, dim], 4));
    let blk = TransformerBlock::new(&g, "h.0", dim, heads, 2 * dim, true, &mut init);
    let lnf = (
        g.param_init("ln_f.weight", &[dim], vec![1.0; dim]),
        g.param_init("ln_f.bias", &[dim], vec![0.0; dim]),
    );
    let head = g.param_init("lm_head.weight", &[vocab, dim], init(&[vocab, dim], dim));
    let h = g.transformer_block(g.add(g.gather(wte, x, 0), wpe), &blk);
    let logits = g.linear(g.layer_norm(h, lnf.0, lnf.1, 1e-5), head, None);
    let loss = g.softmax_cross_entropy(logits, y);
    // Not the key bias: it shifts every score of a row alike, which softmax ignores, so its
    // gradient is rounding noise that Adam would blow up into +-lr steps of either sign.
    let mut params = vec![wte, wpe];
    params.extend(blk.params().into_iter().filter(|&p| p != blk.attn.bk));
    params.extend([lnf.0, lnf.1, head]);
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize(&params, &grads, Optimizer::adamw(1e-2)).unwrap();
    Net { g, x, y, loss, grads }
}

/// The fused LayerNorm and causal softmax kernels inside a model: a few AdamW steps of the tiny
/// transformer on both backends, losses, gradients and parameters within float32 tolerance.
#[test]
fn tiny_transformer_trains_alike_on_gpu_and_cpu() {
    let Some(gpu) = gpu() else { return };
    let (a, b) = (tiny_transformer(5), tiny_transformer(5));
    let mut fetch = vec![a.loss];
    fetch.extend(&a.grads);
    let (x, y) = (a.x, a.y);
    let mut cpu = Session::new(a.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let mut gpu = Session::new(b.g, gpu).unwrap();
    let mut rng = Rng::new(6);
    let mut losses = Vec::new();
    for step in 0..4 {
        let n = 3;
        let seq: Vec<Vec<u32>> = (0..n).map(|_| rng.below(8, 11)).collect();
        let xd: Vec<u32> = seq.iter().flat_map(|s| s[..7].to_vec()).collect();
        let yd: Vec<u32> = seq.iter().flat_map(|s| s[1..].to_vec()).collect();
        let feeds = [(x, HostData::U32(&xd)), (y, HostData::U32(&yd))];
        let c = cpu.train_sync(&feeds, &fetch).unwrap();
        let g = gpu.train_sync(&feeds, &fetch).unwrap();
        losses.push(c[0][0]);
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
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
}
