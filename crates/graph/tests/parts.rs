//! A plan run in parts (`Session::run_in_parts`, what data-parallel training overlaps its
//! gradient reduction with): the backward pass completes the last layer's gradients first
//! (`Plan::fetch_ready`), each part's outputs are bit-identical to one whole `run`, on the CPU
//! backend and on the GPU (the software Vulkan adapter in CI), and bad parts are refused.

mod common;

use common::Rng;
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::{compile_mode, Feed, Graph, Mode, NodeId, Session};

/// A 3-layer tanh MLP (odd sizes) with a softmax cross-entropy loss: the graph, its inputs, and
/// the fetch list `[loss, dW0, db0, dW1, db1, dW2, db2]`.
fn mlp(seed: u64) -> (Graph, NodeId, NodeId, Vec<NodeId>) {
    let g = Graph::new();
    let mut rng = Rng::new(seed);
    let x = g.input("x", &[9]);
    let y = g.input_u32("y", &[]);
    let mut h = x;
    let mut params = Vec::new();
    for (i, w) in [9, 13, 11, 5].windows(2).enumerate() {
        let wt = g.param_init(&format!("{i}.weight"), &[w[1], w[0]], rng.vec(w[0] * w[1]));
        let b = g.param_init(&format!("{i}.bias"), &[w[1]], rng.vec(w[1]));
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        h = if i < 2 { g.tanh(a) } else { a };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let mut fetch = vec![loss];
    fetch.extend(g.gradients(loss, &params).unwrap());
    (g, x, y, fetch)
}

#[test]
fn the_last_layers_gradients_are_ready_first() {
    let (g, _, _, fetch) = mlp(1);
    let plan = compile_mode(&g, &fetch, Mode::Run, 7).unwrap();
    let ready = plan.fetch_ready();
    assert_eq!(ready.len(), fetch.len());
    assert!(ready.iter().all(|&r| r > 0 && r <= plan.launches()), "{ready:?} of {}", plan.launches());
    // loss < last layer's gradients < middle < first
    assert!(ready[0] < ready[5] && ready[0] < ready[6], "{ready:?}");
    assert!(ready[5].max(ready[6]) < ready[3].min(ready[4]), "{ready:?}");
    assert!(ready[3].max(ready[4]) < ready[1].min(ready[2]), "{ready:?}");
    assert!(ready[1].min(ready[2]) < plan.launches(), "the first layer's gradients end the plan: {ready:?}");
}

fn parts_match_one_run(backend: Box<dyn Backend>) {
    let (g, x, y, fetch) = mlp(2);
    let mut s = Session::new(g, backend).unwrap();
    let mut rng = Rng::new(3);
    for rows in [7, 4] {
        let (xs, ys) = (rng.vec(rows * 9), rng.below(rows, 5));
        let feeds: [Feed<'_>; 2] = [(x, HostData::F32(&xs)), (y, HostData::U32(&ys))];
        let whole = s.run_sync(&feeds, &fetch).unwrap();
        // in the order the backward completes them, an empty part among them
        let parts = vec![vec![0, 5, 6], vec![], vec![4, 3], vec![2, 1]];
        let mut got = Vec::new();
        s.run_in_parts(&feeds, &fetch, &parts, |k, outs| got.push((k, outs))).unwrap();
        assert_eq!(got.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2, 3], "parts arrive in order");
        for ((k, outs), part) in got.iter().zip(&parts) {
            assert_eq!(outs.len(), part.len(), "part {k}");
            for (o, &j) in outs.iter().zip(part) {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(o), bits(&whole[j]), "output {j} in part {k}, {rows} rows");
            }
        }
        // one part of everything is one run
        let mut one = Vec::new();
        s.run_in_parts(&feeds, &fetch, &[(0..7).collect()], |_, outs| one = outs).unwrap();
        assert_eq!(one, whole);
    }
    // an output the fetch list does not hold
    let xs = rng.vec(9);
    let feeds: [Feed<'_>; 2] = [(x, HostData::F32(&xs)), (y, HostData::U32(&[1]))];
    let e = s.run_in_parts(&feeds, &fetch, &[vec![0], vec![7]], |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("output 7 of 7"), "{e}");
}

#[test]
fn parts_match_one_run_on_the_cpu() {
    parts_match_one_run(open(BackendChoice::Cpu).unwrap());
}

#[test]
fn parts_match_one_run_on_the_gpu() {
    if let Some(b) = kiln_device::testing::gpu_or_skip("a plan run in parts") {
        parts_match_one_run(b);
    }
}

#[test]
fn a_part_outside_the_plan_is_refused() {
    let mut b = open(BackendChoice::Cpu).unwrap();
    let plan = b.prepare(&[]).unwrap();
    assert!(b.submit_part(plan, 0..0, &[]).is_ok());
    let e = b.submit_part(plan, 0..1, &[]).unwrap_err().to_string();
    assert!(e.contains("launches 0..1") && e.contains("0 launches"), "{e}");
}
