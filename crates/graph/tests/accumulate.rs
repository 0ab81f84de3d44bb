//! `Graph::accumulate_gradients` on the CPU backend: two accumulate micro-steps and a train step
//! over thirds of a batch (odd sizes, one of them short and weighted by its rows) take the same
//! SGD-with-momentum step, clipping included, as one train step over the whole batch; the
//! accumulate plan runs no update and counts no step; a graph without accumulators refuses
//! `Session::accumulate`.

use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::{Graph, Mode, NodeId, Optimizer, Session};

const IN: usize = 5;
const OUT: usize = 3;

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// A linear layer with a mean squared error, SGD with momentum, clipped to norm 0.1.
fn session(accumulate: Option<usize>) -> (Session, NodeId, NodeId, NodeId) {
    let g = Graph::new();
    let x = g.input("x", &[IN]);
    let y = g.input("y", &[OUT]);
    let w = g.param_init("w", &[OUT, IN], values(1, OUT * IN));
    let b = g.param_init("b", &[OUT], values(2, OUT));
    let d = g.sub(g.linear(x, w, Some(b)), y);
    let loss = g.mean_all(g.mul(d, d));
    let params = [w, b];
    let mut grads = g.gradients(loss, &params).unwrap();
    if let Some(n) = accumulate {
        grads = g.accumulate_gradients(&params, &grads, n).unwrap();
    }
    let grads = g.clip_grad_norm(&grads, 0.1).0;
    let opt = Optimizer::Sgd { lr: 0.3, momentum: 0.9, weight_decay: 0.0, nesterov: false };
    g.optimize(&params, &grads, opt).unwrap();
    (Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap(), x, y, loss)
}

#[test]
fn accumulated_thirds_take_the_whole_batchs_step() {
    let (mut whole, wx, wy, wl) = session(None);
    let (mut acc, ax, ay, al) = session(Some(3));
    let rows = 17; // micro-batches of 7, 7 and 3 rows
    for step in 0..4u64 {
        let xs = values(10 + step, rows * IN);
        let ys = values(20 + step, rows * OUT);
        let lw =
            whole.train_sync(&[(wx, HostData::F32(&xs)), (wy, HostData::F32(&ys))], &[wl]).unwrap()[0][0];
        let mut mean = 0.0;
        for (k, (from, to)) in [(0, 7), (7, 14), (14, 17)].into_iter().enumerate() {
            let feeds = [
                (ax, HostData::F32(&xs[from * IN..to * IN])),
                (ay, HostData::F32(&ys[from * OUT..to * OUT])),
            ];
            let weight = (to - from) as f32 / rows as f32;
            acc.set_grad_weight(weight).unwrap();
            let out = if k < 2 {
                acc.accumulate(&feeds, &[al]).unwrap()
            } else {
                acc.train(&feeds, &[al]).unwrap()
            };
            mean += weight * acc.wait(out).unwrap().remove(0).into_f32().unwrap()[0];
            assert_eq!(acc.step_count(), step + (k == 2) as u64);
        }
        assert!((mean - lw).abs() <= 1e-5 * lw.abs(), "step {step}: {mean} vs {lw}");
        for name in ["w", "b", "w.momentum_buffer", "b.momentum_buffer"] {
            let (a, b) = if name.contains('.') {
                (acc.get_state(name).unwrap(), whole.get_state(name).unwrap())
            } else {
                (acc.get_param(name).unwrap(), whole.get_param(name).unwrap())
            };
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "step {step} {name}: {p} vs {q}");
            }
        }
    }
    // the accumulators are not optimizer state (not saved, not restored)
    assert!(acc.state_names().iter().all(|n| !n.contains("grad_accum")));
    // an accumulate plan updates nothing; a train plan zeroes the accumulators after reading them
    let plan = acc.plan_mode(4, Mode::Accumulate, &[al]).unwrap();
    assert!(plan.steps.iter().all(|s| !matches!(s.kernel, kiln_device::Kernel::Optim(_))));
    let (mut plain, px, py, pl) = session(None);
    let xs = values(1, 2 * IN);
    let ys = values(2, 2 * OUT);
    let e = plain.accumulate(&[(px, HostData::F32(&xs)), (py, HostData::F32(&ys))], &[pl]);
    assert!(e.is_err());
    assert!(plain.set_grad_weight(0.5).is_err());
}
