//! The executor: memory stays bounded, batch sizes change without rebuilding, inference shares the
//! parameters, schedules and exact resume, clipping, and errors that name what went wrong.

mod common;

use std::collections::HashMap;

use common::Rng;
use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::reference::evaluate;
use kiln_graph::{Graph, NodeId, Optimizer, Session};

struct Mlp {
    g: Graph,
    x: NodeId,
    y: NodeId,
    logits: NodeId,
    loss: NodeId,
    params: Vec<NodeId>,
    grads: Vec<NodeId>,
}

/// A softmax-CE MLP with PyTorch-named parameters; `opt` appends the updates.
fn mlp(sizes: &[usize], opt: Option<Optimizer>, seed: u64) -> Mlp {
    let g = Graph::new();
    let mut rng = Rng::new(seed);
    let x = g.input("x", &[sizes[0]]);
    let y = g.input_u32("y", &[]);
    let mut h = x;
    let mut params = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let s = 1.0 / (w[0] as f32).sqrt();
        let wd: Vec<f32> = rng.vec(w[0] * w[1]).iter().map(|v| v * s).collect();
        let wt = g.param_init(&format!("{}.weight", 2 * i), &[w[1], w[0]], wd);
        let b =
            g.param_init(&format!("{}.bias", 2 * i), &[w[1]], rng.vec(w[1]).iter().map(|v| v * s).collect());
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        h = if i + 2 < sizes.len() { g.relu(a) } else { a };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let grads = g.gradients(loss, &params).unwrap();
    if let Some(opt) = opt {
        g.optimize(&params, &grads, opt).unwrap();
    }
    Mlp { g, x, y, logits: h, loss, params, grads }
}

fn batch(rng: &mut Rng, n: usize, d: usize, classes: u32) -> (Vec<f32>, Vec<u32>) {
    (rng.vec(n * d), rng.below(n, classes))
}

#[test]
fn memory_stays_bounded_over_1000_steps() {
    let m = mlp(&[12, 16, 16, 4], Some(Optimizer::adam(1e-3)), 1);
    let (x, y, loss) = (m.x, m.y, m.loss);
    let mut s = Session::new(m.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let mut rng = Rng::new(2);
    let data: Vec<_> = (0..4).map(|_| batch(&mut rng, 32, 12, 4)).collect();
    let feeds = |k: usize| [(x, HostData::F32(&data[k % 4].0)), (y, HostData::U32(&data[k % 4].1))];
    let first = s.train(&feeds(0), &[loss]).unwrap();
    s.wait(first).unwrap();
    let before = s.stats();
    // Asynchronous: step k+1 is submitted before step k's loss is read.
    let mut pending = s.train(&feeds(1), &[loss]).unwrap();
    let mut last = 0.0;
    for k in 2..=1000 {
        let next = s.train(&feeds(k), &[loss]).unwrap();
        last = s.wait(pending).unwrap().remove(0).into_f32().unwrap()[0];
        pending = next;
    }
    s.wait(pending).unwrap();
    let after = s.stats();
    assert_eq!(after.buffers_created, before.buffers_created, "buffers created after the first step");
    assert_eq!(after.bytes_held, before.bytes_held, "bytes held grew");
    assert_eq!(after.plans_compiled, before.plans_compiled, "plans compiled after the first step");
    assert_eq!(after.pipelines_created, before.pipelines_created);
    assert_eq!(after.bind_groups_created, before.bind_groups_created);
    assert!(last.is_finite() && last < 1.0, "4 memorized batches should be learned: loss {last}");
    assert_eq!(s.step_count(), 1001);
}

#[test]
fn batch_size_changes_without_rebuilding_and_inference_shares_parameters() {
    let m = mlp(&[5, 8, 3], Some(Optimizer::sgd(0.1)), 3);
    let (x, y, loss, logits) = (m.x, m.y, m.loss, m.logits);
    let names = ["0.weight", "0.bias", "2.weight", "2.bias"];
    let reference = mlp(&[5, 8, 3], None, 3);
    let mut s = Session::new(m.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let mut rng = Rng::new(4);
    for n in [8, 8, 3, 8] {
        let (xd, yd) = batch(&mut rng, n, 5, 3);
        s.train_sync(&[(x, HostData::F32(&xd)), (y, HostData::U32(&yd))], &[loss]).unwrap();
    }
    assert_eq!(s.stats().plans_compiled, 2, "one training plan per batch size");
    // Predict at yet another batch size, with the trained parameters, against the reference.
    let (xd, yd) = batch(&mut rng, 5, 5, 3);
    let got = s.run_sync(&[(x, HostData::F32(&xd))], &[logits]).unwrap().remove(0);
    let mut values: HashMap<NodeId, Vec<f64>> = HashMap::new();
    values.insert(reference.x, xd.iter().map(|&v| v as f64).collect());
    values.insert(reference.y, yd.iter().map(|&v| v as f64).collect());
    for (p, name) in reference.params.iter().zip(names) {
        values.insert(*p, s.get_param(name).unwrap().iter().map(|&v| v as f64).collect());
    }
    let want = &evaluate(&reference.g, 5, &values).unwrap()[reference.logits.index()];
    for (a, b) in got.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-5, "predict {a} vs reference {b}");
    }
    let p = s.plan(5, false, &[logits]).unwrap();
    assert!(p.steps.iter().all(|st| !is_backward(&st.kernel) && st.kernel.family() != "optim"));
}

#[test]
fn schedules_and_exact_resume() {
    let make = || mlp(&[4, 6, 3], Some(Optimizer::adam(0.05)), 5);
    let m = make();
    let (x, y, loss) = (m.x, m.y, m.loss);
    let mut a = Session::new(m.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let mut rng = Rng::new(6);
    let data: Vec<_> = (0..5).map(|_| batch(&mut rng, 7, 4, 3)).collect();
    let feeds = |k: usize| [(x, HostData::F32(&data[k].0)), (y, HostData::U32(&data[k].1))];
    for k in 0..3 {
        a.train_sync(&feeds(k), &[loss]).unwrap();
    }
    // Checkpoint: parameters, optimizer state and step count into a fresh session.
    let mut b = Session::new(make().g, open(BackendChoice::Cpu).unwrap()).unwrap();
    assert_eq!(a.state_names().len(), 8);
    assert!(a.state_names().contains(&"0.weight.exp_avg_sq".to_string()));
    for name in a.param_names() {
        b.set_param(&name, &a.get_param(&name).unwrap()).unwrap();
    }
    for name in a.state_names() {
        b.set_state(&name, &a.get_state(&name).unwrap()).unwrap();
    }
    b.set_step_count(a.step_count());
    let la = a.train_sync(&feeds(3), &[loss]).unwrap();
    let lb = b.train_sync(&feeds(3), &[loss]).unwrap();
    assert_eq!(la, lb);
    for name in a.param_names() {
        assert_eq!(a.get_param(&name).unwrap(), b.get_param(&name).unwrap(), "{name} after resume");
    }
    // A learning rate of zero freezes the parameters; the step count still advances.
    a.set_lr(0.0);
    let before = a.get_param("0.weight").unwrap();
    a.train_sync(&feeds(4), &[loss]).unwrap();
    assert_eq!(a.get_param("0.weight").unwrap(), before);
    assert_eq!(a.step_count(), 5);
    assert!(a.set_param("0.weight", &[1.0]).is_err());
    assert!(a.get_state("nope").is_err());
}

#[test]
fn clipping_by_global_norm_on_the_device() {
    let m = mlp(&[4, 6, 3], None, 7);
    let (clipped, norm) = m.g.clip_grad_norm(&m.grads, 0.01);
    let mut rng = Rng::new(8);
    let (xd, yd) = batch(&mut rng, 6, 4, 3);
    let mut fetch = vec![norm];
    fetch.extend(&m.grads);
    fetch.extend(&clipped);
    let mut s = Session::new(m.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let out = s.run_sync(&[(m.x, HostData::F32(&xd)), (m.y, HostData::U32(&yd))], &fetch).unwrap();
    let n = m.grads.len();
    let sq = |vs: &[Vec<f32>]| vs.iter().flatten().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let raw = sq(&out[1..1 + n]);
    assert!((out[0][0] as f64 - raw).abs() < 1e-5 * raw, "norm {} vs {raw}", out[0][0]);
    assert!(raw > 0.01);
    assert!((sq(&out[1 + n..]) - 0.01).abs() < 1e-6, "clipped norm {}", sq(&out[1 + n..]));
}

#[test]
fn errors_name_the_op_and_shapes() {
    let g = Graph::new();
    let x = g.input("x", &[3]);
    let w = g.param("w", &[4, 5]);
    let h = g.relu(g.matmul(x, w)); // the first error is kept; later ops do not add noise
    let _ = g.add(h, x);
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("[B, 3]") && e.contains("[4, 5]"), "{e}");

    let g = Graph::new();
    let a = g.param("a", &[2, 3]);
    let _ = g.add(a, g.param("b", &[4]));
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("add") && e.contains("[2, 3]") && e.contains("[4]"), "{e}");

    // No backward rule: second derivatives are an error naming the op, not a zero.
    let g = Graph::new();
    let p = g.param("p", &[3]);
    let loss = g.sum_all(g.tanh(p));
    let dp = g.gradients(loss, &[p]).unwrap()[0];
    let loss2 = g.sum_all(dp);
    let e = g.gradients(loss2, &[p]).unwrap_err().to_string();
    assert!(e.contains(kiln_graph::UnaryOp::Tanh.grad_name()), "{e}");

    // A parameter the loss does not reach.
    let g = Graph::new();
    let p = g.param("p", &[3]);
    let q = g.param("unused", &[3]);
    let e = g.gradients(g.sum_all(p), &[p, q]).unwrap_err().to_string();
    assert!(e.contains("unused"), "{e}");

    // A step that needs an input nobody fed.
    let m = mlp(&[3, 2], Some(Optimizer::sgd(0.1)), 9);
    let mut s = Session::new(m.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let e = s.train(&[(m.x, HostData::F32(&[0.0; 6]))], &[m.loss]).err().unwrap().to_string();
    assert!(e.contains("'y'"), "{e}");
    let e = s.run(&[(m.x, HostData::F32(&[0.0; 7]))], &[m.logits]).err().unwrap().to_string();
    assert!(e.contains("'x'") && e.contains("[B, 3]"), "{e}");
}

/// Kernels that only a backward pass launches.
fn is_backward(k: &kiln_device::Kernel) -> bool {
    use kiln_device::{Kernel, Loss, Softmax, Unary};
    matches!(
        k,
        Kernel::Unary(Unary::Backward { .. })
            | Kernel::Softmax(Softmax::Backward { .. })
            | Kernel::Loss(Loss::MseGrad { .. } | Loss::BceLogitsGrad { .. } | Loss::SoftmaxCeGrad { .. })
    )
}
