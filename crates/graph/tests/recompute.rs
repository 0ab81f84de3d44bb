//! Activation checkpointing ([`Graph::checkpoint`]): a small transformer whose blocks (each with
//! a dropout-style mask input) are recomputed during the backward gives the very gradients of the
//! same graph without recompute, on the CPU backend and on the GPU (lavapipe in CI), while its
//! plan keeps strictly fewer activation bytes alive; and misuse is refused clearly.

mod common;

use common::Rng;
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::{compile, Graph, NodeId, Optimizer, Plan, Session, TransformerBlock};

const BATCH: usize = 3;
const T: usize = 5;
const D: usize = 12;
const HEADS: usize = 3;
const HIDDEN: usize = 20;
const LAYERS: usize = 3;

struct Net {
    g: Graph,
    loss: NodeId,
    grads: Vec<NodeId>,
    feeds: Vec<(NodeId, Vec<f32>)>,
}

/// Embedded inputs `[B, T, D]` through `LAYERS` causal transformer blocks, each followed by a
/// dropout-style mask input (0 or 1 / (1 - p), drawn here as the host draws dropout masks), then
/// an MSE loss; each block and its mask one segment when `recompute`. The same seed gives the
/// same weights and feeds either way.
fn net(recompute: bool) -> Net {
    let g = Graph::new();
    let mut rng = Rng::new(41);
    let mut init = |shape: &[usize], fan_in: usize| -> Vec<f32> {
        let s = 1.0 / (fan_in as f32).sqrt();
        rng.vec(shape.iter().product()).iter().map(|v| v * s).collect()
    };
    let x = g.input("x", &[T, D]);
    let mut h = x;
    let mut params = Vec::new();
    let mut masks = Vec::new();
    for l in 0..LAYERS {
        let blk = TransformerBlock::new(&g, &format!("h.{l}"), D, HEADS, HIDDEN, true, &mut init);
        params.extend(blk.params());
        let mask = g.input(&format!("mask.{l}"), &[T, D]);
        masks.push(mask);
        let block = |h| g.mul(g.transformer_block(h, &blk), mask);
        h = if recompute { g.checkpoint(|| block(h)) } else { block(h) };
    }
    let target = g.input("target", &[T, D]);
    let loss = g.mse_loss(h, target);
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize(&params, &grads, Optimizer::sgd(0.1)).unwrap();

    let mut rng = Rng::new(7);
    let n = BATCH * T * D;
    let mut feeds = vec![(x, rng.vec(n)), (target, rng.vec(n))];
    for m in masks {
        let keep = (0..n).map(|_| if rng.uniform(0.0, 1.0) < 0.25 { 0.0 } else { 1.0 / 0.75 }).collect();
        feeds.push((m, keep));
    }
    Net { g, loss, grads, feeds }
}

/// The loss and every gradient of `n` on `backend`.
fn run(n: Net, backend: Box<dyn Backend>) -> Vec<Vec<f32>> {
    let mut s = Session::new(n.g, backend).unwrap();
    let feeds: Vec<(NodeId, HostData)> = n.feeds.iter().map(|(x, d)| (*x, HostData::F32(d))).collect();
    let mut fetch = vec![n.loss];
    fetch.extend(&n.grads);
    s.run_sync(&feeds, &fetch).unwrap()
}

fn assert_same(with: &[Vec<f32>], without: &[Vec<f32>], device: &str) {
    assert_eq!(with.len(), 1 + 16 * LAYERS);
    let mut max_rel = 0f64;
    for (k, (a, b)) in with.iter().zip(without).enumerate() {
        assert_eq!(a.len(), b.len());
        assert!(b.iter().any(|v| *v != 0.0), "output {k} is all zeros");
        for (x, y) in a.iter().zip(b) {
            let rel = (*x as f64 - *y as f64).abs() / (y.abs() as f64).max(1e-3);
            max_rel = max_rel.max(rel);
        }
    }
    // the recomputed kernels are the forward's own, on the same inputs: the same bits
    let same_bits =
        with.iter().flatten().zip(without.iter().flatten()).all(|(a, b)| a.to_bits() == b.to_bits());
    eprintln!(
        "{device}: gradients with recompute vs without: identical bits {same_bits}, max relative {max_rel:e}"
    );
    assert!(same_bits && max_rel == 0.0, "{device}: max relative difference {max_rel:e}");
}

#[test]
fn recomputed_segments_give_the_same_gradients_on_the_cpu() {
    let with = run(net(true), open(BackendChoice::Cpu).unwrap());
    let without = run(net(false), open(BackendChoice::Cpu).unwrap());
    assert_same(&with, &without, "cpu");
}

#[test]
fn recomputed_segments_give_the_same_gradients_on_the_gpu() {
    let Some(gpu) = kiln_device::testing::gpu_or_skip("activation checkpointing") else { return };
    let with = run(net(true), gpu);
    let without = run(net(false), kiln_device::testing::gpu_or_skip("activation checkpointing").unwrap());
    assert_same(&with, &without, "gpu");
}

fn train_plan(n: &Net, batch: usize) -> Plan {
    compile(&n.g, &[n.loss], true, batch).unwrap()
}

#[test]
fn the_plan_keeps_fewer_activations_alive() {
    let (with, without) = (net(true), net(false));
    assert_eq!(with.g.segments().len(), LAYERS);
    assert!(without.g.segments().is_empty());
    let batch = 16;
    let (p, q) = (train_plan(&with, batch), train_plan(&without, batch));
    let kept = |n: &Net, p: &Plan| p.live_bytes_after(n.loss).unwrap();
    let (kept_with, kept_without) = (kept(&with, &p), kept(&without, &q));
    eprintln!(
        "batch {batch}: kept for the backward {kept_with} vs {kept_without} bytes, peak live {} vs {}, \
         activation slots {} vs {}, launches {} vs {}",
        p.peak_live_bytes(),
        q.peak_live_bytes(),
        p.temp_bytes(),
        q.temp_bytes(),
        p.launches(),
        q.launches()
    );
    // With recompute only the blocks' inputs (and the loss tail) outlive the forward: one
    // [B, T, D] tensor per block and a few small ones, against every block's attention scores,
    // MLP activations, ...
    let row = (4 * batch * T * D) as u64;
    assert!(kept_with <= (LAYERS as u64 + 3) * row, "{kept_with} bytes kept with recompute");
    assert!(kept_without > 3 * kept_with, "{kept_without} vs {kept_with}");
    assert!(p.peak_live_bytes() < q.peak_live_bytes(), "{} vs {}", p.peak_live_bytes(), q.peak_live_bytes());
    assert!(p.temp_bytes() < q.temp_bytes(), "{} vs {}", p.temp_bytes(), q.temp_bytes());
    // the cost: the blocks' forwards run again (at most once each)
    assert!(p.launches() > q.launches() && p.launches() < 2 * q.launches());
}

#[test]
fn segments_do_not_nest_and_gradients_wait_for_the_segment_to_close() {
    let g = Graph::new();
    let x = g.input("x", &[4]);
    let w = g.param_init("w", &[4, 4], vec![0.5; 16]);
    let y = g.checkpoint(|| g.checkpoint(|| g.relu(g.matmul(x, w))));
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("segments do not nest"), "{e}");
    let _ = y;

    let g = Graph::new();
    let x = g.input("x", &[4]);
    let w = g.param_init("w", &[4, 4], vec![0.5; 16]);
    let e = g
        .checkpoint(|| {
            let loss = g.sum_all(g.relu(g.matmul(x, w)));
            g.gradients(loss, &[w])
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("inside a checkpoint segment"), "{e}");
    // an empty segment is no segment
    g.checkpoint(|| ());
    assert_eq!(g.segments().len(), 1);
}
