//! Running statistics updated in place by training plans (`Graph::running_update`,
//! `Graph::count_steps`): PyTorch's BatchNorm rule against float64 over steps of different batch
//! sizes (each plan has its own unbiased factor), on the CPU and (when there is one) the GPU
//! backend; never in evaluation plans; scheduled after the target's readers; and refused by
//! autodiff and the optimizer.

mod common;

use common::Rng;
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::{Graph, NodeId, Optimizer, Session};

fn gpu() -> Option<Box<dyn Backend>> {
    kiln_device::testing::gpu_or_skip("the running statistics")
}

const C: usize = 3;
const P: usize = 5; // values per channel per example: [C, 1, 5] images
const MOMENTUM: f64 = 0.1;

struct Bn {
    g: Graph,
    x: NodeId,
    loss: NodeId,
    y_eval: NodeId,
    mean_update: NodeId,
}

/// BatchNorm2d over `[B, 3, 1, 5]` with its running statistics, a squared-output loss, SGD on
/// weight and bias.
fn bn_graph() -> Bn {
    let g = Graph::new();
    let x = g.input("x", &[C, 1, P]);
    let w = g.param_init("bn.weight", &[C], vec![1.0, 0.5, 2.0]);
    let b = g.param_init("bn.bias", &[C], vec![0.0, 0.25, -0.5]);
    let rm = g.param_init("bn.running_mean", &[C], vec![0.0; C]);
    let rv = g.param_init("bn.running_var", &[C], vec![1.0; C]);
    let count = g.param_init("bn.num_batches_tracked", &[], vec![0.0]);
    let (y, mean, var) = g.batch_norm_train(x, w, b, 1e-5);
    let mean_update = g.running_update(rm, mean, MOMENTUM as f32, None);
    g.running_update(rv, var, MOMENTUM as f32, Some(P));
    g.count_steps(count);
    let y_eval = g.batch_norm_eval(x, w, b, rm, rv, 1e-5);
    let loss = g.sum_all(g.mul(y, y));
    let grads = g.gradients(loss, &[w, b]).unwrap();
    g.optimize(&[w, b], &grads, Optimizer::sgd(0.1)).unwrap();
    Bn { g, x, loss, y_eval, mean_update }
}

/// Per-channel mean and biased variance of `x` (`[rows, C, P]`), float64.
fn stats(x: &[f32], rows: usize) -> (Vec<f64>, Vec<f64>) {
    let cnt = (rows * P) as f64;
    let vals = |ch: usize| (0..rows).flat_map(move |r| (0..P).map(move |k| (r * C + ch) * P + k));
    let mean: Vec<f64> = (0..C).map(|ch| vals(ch).map(|i| x[i] as f64).sum::<f64>() / cnt).collect();
    let var =
        (0..C).map(|ch| vals(ch).map(|i| (x[i] as f64 - mean[ch]).powi(2)).sum::<f64>() / cnt).collect();
    (mean, var)
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "{what}[{i}]: {g} vs float64 {w}");
    }
}

/// Steps of batch 4, 4, then the short batches 3 and 1 (a different unbiased factor each: n = 20,
/// 15, 5), checked after every step; evaluation steps in between change nothing.
fn check_backend(backend: Box<dyn Backend>) {
    let bn = bn_graph();
    let x = bn.x;
    let mut s = Session::new(bn.g, backend).unwrap();
    let mut rng = Rng::new(7);
    let (mut rm, mut rv) = (vec![0.0f64; C], vec![1.0f64; C]);
    for (step, rows) in [4, 4, 3, 1].into_iter().enumerate() {
        let xs: Vec<f32> = (0..rows * C * P).map(|_| rng.uniform(-2.0, 3.0) as f32).collect();
        s.train_sync(&[(x, HostData::F32(&xs))], &[bn.loss]).unwrap();
        let (mean, var) = stats(&xs, rows);
        let n = (rows * P) as f64;
        for ch in 0..C {
            rm[ch] = (1.0 - MOMENTUM) * rm[ch] + MOMENTUM * mean[ch];
            rv[ch] = (1.0 - MOMENTUM) * rv[ch] + MOMENTUM * var[ch] * n / (n - 1.0);
        }
        let what = format!("{} step {step} (batch {rows})", s.backend().info());
        assert_close(&format!("{what} running_mean"), &s.get_param("bn.running_mean").unwrap(), &rm);
        assert_close(&format!("{what} running_var"), &s.get_param("bn.running_var").unwrap(), &rv);
        assert_eq!(s.get_param("bn.num_batches_tracked").unwrap(), vec![step as f32 + 1.0], "{what}");

        // evaluation reads the running statistics and updates nothing
        let before = s.get_param("bn.running_var").unwrap();
        s.run_sync(&[(x, HostData::F32(&xs))], &[bn.y_eval]).unwrap();
        assert_eq!(s.get_param("bn.running_var").unwrap(), before, "{what}: evaluation moved running_var");
        assert_eq!(s.get_param("bn.num_batches_tracked").unwrap(), vec![step as f32 + 1.0]);
    }
    let eval = s.plan(4, false, &[bn.y_eval]).unwrap();
    assert!(
        eval.steps.iter().all(|st| st.kernel.name() != "running_update"),
        "evaluation plans do not update"
    );
    let train = s.plan(4, true, &[bn.loss]).unwrap();
    assert_eq!(train.steps.iter().filter(|st| st.kernel.name() == "running_update").count(), 3);
    assert!(train.steps.iter().any(|st| st.node == bn.mean_update));
}

#[test]
fn running_statistics_follow_pytorch_per_batch_size_on_cpu() {
    check_backend(open(BackendChoice::Cpu).unwrap());
}

#[test]
fn running_statistics_follow_pytorch_per_batch_size_on_gpu() {
    if let Some(b) = gpu() {
        check_backend(b);
    }
}

#[test]
fn a_batch_with_one_value_per_channel_does_not_compile() {
    let g = Graph::new();
    let x = g.input("x", &[2]);
    let (w, b) = (g.param_init("w", &[2], vec![1.0; 2]), g.param("b", &[2]));
    let rv = g.param_init("rv", &[2], vec![1.0; 2]);
    let (y, _, var) = g.batch_norm_train(x, w, b, 1e-5);
    g.running_update(rv, var, 0.1, Some(1));
    let loss = g.sum_all(y);
    let mut s = Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let err = s.train_sync(&[(x, HostData::F32(&[1.0, 2.0]))], &[loss]).unwrap_err().to_string();
    assert!(err.contains("'rv'") && err.contains("more than 1 value per channel"), "{err}");
    assert_eq!(s.get_param("rv").unwrap(), vec![1.0; 2], "nothing ran");
    // a plan that does not train has no running update, so batch 1 runs there
    s.run_sync(&[(x, HostData::F32(&[1.0, 2.0]))], &[y]).unwrap();
    // batch 2 trains: channel variances 1 and 2.25, unbiased 2 and 4.5
    s.train_sync(&[(x, HostData::F32(&[1.0, 2.0, 3.0, 5.0]))], &[loss]).unwrap();
    assert_close("rv", &s.get_param("rv").unwrap(), &[0.9 + 0.1 * 2.0, 0.9 + 0.1 * 4.5]);
}

#[test]
fn the_update_runs_after_every_reader_of_its_target() {
    // the running mean is also read in the training step: that read sees the value from before
    let g = Graph::new();
    let x = g.input("x", &[3]);
    let rm = g.param_init("rm", &[3], vec![1.0, 2.0, 3.0]);
    let mean = g.reshape(g.mean(x, 0, true), &[kiln_graph::Dim::Fixed(3)]);
    g.running_update(rm, mean, 0.5, None);
    let shifted = g.sub(x, rm); // declared after the update: the schedule must move the update
    let out = g.sum_all(shifted);
    let mut s = Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let xs = [3.0f32, 4.0, 5.0, 5.0, 6.0, 7.0];
    let got = s.train_sync(&[(x, HostData::F32(&xs))], &[out]).unwrap()[0][0];
    assert_eq!(got, xs.iter().sum::<f32>() - 2.0 * 6.0, "the step read rm before its update");
    assert_eq!(s.get_param("rm").unwrap(), vec![2.5, 3.5, 4.5]);
    let plan = s.plan(2, true, &[out]).unwrap();
    let pos = |name: &str| plan.steps.iter().position(|st| st.kernel.name() == name).unwrap();
    assert!(
        pos("running_update") > pos("sub"),
        "{:?}",
        plan.steps.iter().map(|s| s.kernel.name()).collect::<Vec<_>>()
    );
}

#[test]
fn running_statistics_are_not_trained() {
    let err = |g: &Graph| g.check().unwrap_err().to_string();
    let bn = bn_graph();
    let g = &bn.g;
    let rm = g.find("bn.running_mean").unwrap();
    let e = g.gradients(bn.loss, &[rm]).unwrap_err().to_string();
    assert!(e.contains("'bn.running_mean'") && e.contains("running statistic"), "{e}");
    // the graph already has an optimizer; a second one would be refused for that reason alone
    let g2 = Graph::new();
    let p = g2.param("p", &[2]);
    let v = g2.param("v", &[2]);
    g2.running_update(p, v, 0.1, None);
    let loss = g2.sum_all(g2.mul(v, v));
    let grads = g2.gradients(loss, &[v]).unwrap();
    let e = g2.optimize(&[p], &grads, Optimizer::sgd(0.1)).unwrap_err().to_string();
    assert!(e.contains("'p'") && e.contains("running statistic"), "{e}");

    // a parameter the optimizer trains cannot become a running statistic
    let g3 = Graph::new();
    let p = g3.param("p", &[2]);
    let loss = g3.sum_all(g3.mul(p, p));
    let grads = g3.gradients(loss, &[p]).unwrap();
    g3.optimize(&[p], &grads, Optimizer::sgd(0.1)).unwrap();
    g3.running_update(p, g3.fill(g3.shape(p), 1.0), 0.1, None);
    assert!(err(&g3).contains("trained by the optimizer"), "{}", err(&g3));

    // targets must be persistent, shapes must match, momentum in [0, 1], one update per target
    let g4 = Graph::new();
    let c = g4.constant(&[2], vec![0.0; 2]);
    g4.running_update(c, g4.fill(g4.shape(c), 1.0), 0.1, None);
    assert!(err(&g4).contains("parameter or state"), "{}", err(&g4));
    let g5 = Graph::new();
    let p = g5.param("p", &[2]);
    g5.running_update(p, g5.param("q", &[3]), 0.1, None);
    assert!(err(&g5).contains("'p' is [2] but its value is [3]"), "{}", err(&g5));
    let g6 = Graph::new();
    let p = g6.param("p", &[2]);
    g6.running_update(p, g6.param("q", &[2]), 1.5, None);
    assert!(err(&g6).contains("momentum 1.5"), "{}", err(&g6));
    let g7 = Graph::new();
    let p = g7.param("p", &[2]);
    g7.count_steps(p);
    g7.count_steps(p);
    assert!(err(&g7).contains("already has a running update"), "{}", err(&g7));
}
