//! The worked example, by hand: 1 input, 2 ReLU hidden units, 1 sigmoid output, binary
//! cross-entropy. Input->hidden weights w1 = 0.5, w2 = 0.7 with biases b1 = 0.3, b2 = 0.4;
//! hidden->output weights v1 = 0.5, v2 = 0.4, no output bias; x = 1, label y = 1.
//!
//! Forward:
//!   h1 = relu(0.5 * 1 + 0.3) = 0.8
//!   h2 = relu(0.7 * 1 + 0.4) = 1.1
//!   z  = 0.5 * 0.8 + 0.4 * 1.1 = 0.4 + 0.44 = 0.84
//!   p  = sigmoid(0.84) = 1 / (1 + e^-0.84) = 1 / (1 + 0.4317105234) = 0.6984652160
//!   L  = -ln p = ln(1 + e^-0.84) = 0.3588698997
//! Backward (BCE through a sigmoid: dL/dz = p - y):
//!   dL/dz  = 0.6984652160 - 1 = -0.3015347840
//!   dL/dv1 = dL/dz * h1 = -0.3015347840 * 0.8 = -0.2412278272
//!   dL/dv2 = dL/dz * h2 = -0.3015347840 * 1.1 = -0.3316882624
//!   dL/dh1 = dL/dz * v1 = -0.1507673920; h1 > 0 so the ReLU passes it:
//!   dL/dw1 = dL/dh1 * x = -0.1507673920,  dL/db1 = -0.1507673920
//!   dL/dh2 = dL/dz * v2 = -0.1206139136; h2 > 0:
//!   dL/dw2 = dL/dh2 * x = -0.1206139136,  dL/db2 = -0.1206139136
//! One SGD step with lr = 0.1 then gives w1 = 0.5 + 0.01507673920 = 0.5150767392, etc.

use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::{Graph, Optimizer, Session};

fn near(got: f32, want: f64, what: &str) {
    assert!((got as f64 - want).abs() < 2e-6, "{what}: got {got}, want {want}");
}

#[test]
fn worked_example_by_hand() {
    let g = Graph::new();
    let x = g.input("x", &[1]);
    let y = g.input("y", &[1]);
    // PyTorch layout: weight [out, in].
    let w = g.param_init("0.weight", &[2, 1], vec![0.5, 0.7]);
    let b = g.param_init("0.bias", &[2], vec![0.3, 0.4]);
    let v = g.param_init("2.weight", &[1, 2], vec![0.5, 0.4]);
    let h = g.relu(g.linear(x, w, Some(b)));
    let z = g.linear(h, v, None);
    let p = g.sigmoid(z);
    let loss = g.bce_with_logits(z, y);
    let params = [w, b, v];
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize(&params, &grads, Optimizer::sgd(0.1)).unwrap();

    let mut s = Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let feeds = [(x, HostData::F32(&[1.0])), (y, HostData::F32(&[1.0]))];
    let mut fetch = vec![h, p, loss];
    fetch.extend(&grads);
    let out = s.train_sync(&feeds, &fetch).unwrap();
    let (h, p, loss, dw, db, dv) = (&out[0], out[1][0], out[2][0], &out[3], &out[4], &out[5]);
    near(h[0], 0.8, "h1");
    near(h[1], 1.1, "h2");
    near(p, 0.6984652160, "prediction");
    near(loss, 0.3588698997, "loss");
    near(dw[0], -0.1507673920, "dL/dw1");
    near(dw[1], -0.1206139136, "dL/dw2");
    near(db[0], -0.1507673920, "dL/db1");
    near(db[1], -0.1206139136, "dL/db2");
    near(dv[0], -0.2412278272, "dL/dv1");
    near(dv[1], -0.3316882624, "dL/dv2");

    // The update ran in the same plan.
    let w = s.get_param("0.weight").unwrap();
    near(w[0], 0.5150767392, "w1 after one SGD step");
    near(w[1], 0.7120613914, "w2 after one SGD step");
    let v = s.get_param("2.weight").unwrap();
    near(v[0], 0.5241227827, "v1 after one SGD step");
}
