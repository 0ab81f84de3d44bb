//! The worked example, computed by Kiln and printed beside the values derived by hand:
//! 1 input, 2 ReLU hidden units, 1 sigmoid output, binary cross-entropy, one SGD step.
//!
//! `cargo run --release --example worked_example`
//!
//! x = 1, label y = 1; hidden weights 0.5, 0.7 and biases 0.3, 0.4; output weights 0.5, 0.4, no
//! output bias. The derivation is written out in crates/graph/tests/worked_example.rs.

use clap::Parser;
use kiln::device::{open, BackendChoice, HostData};
use kiln::graph::{Graph, Optimizer, Session};

fn show(what: &str, kiln: f32, by_hand: f64) {
    let mark = if (kiln as f64 - by_hand).abs() < 2e-6 { "ok" } else { "DIFFERS" };
    println!("  {what:<10} kiln {kiln:>13.9}   by hand {by_hand:>13.9}   {mark}");
}

/// The 1-2-1 worked example: one SGD step computed by Kiln beside the values by hand.
#[derive(Parser)]
#[command(name = "worked_example", after_help = "Writes no files.")]
struct Args {}

fn main() -> anyhow::Result<()> {
    Args::parse();
    let g = Graph::new();
    let x = g.input("x", &[1]); // [B, 1]
    let y = g.input("y", &[1]); // [B, 1]
                                // PyTorch nn.Sequential names and layouts: weight is [out, in].
    let w = g.param_init("0.weight", &[2, 1], vec![0.5, 0.7]);
    let b = g.param_init("0.bias", &[2], vec![0.3, 0.4]);
    let v = g.param_init("2.weight", &[1, 2], vec![0.5, 0.4]);
    let h = g.relu(g.linear(x, w, Some(b))); // [B, 2]
    let z = g.linear(h, v, None); // [B, 1], the logit
    let p = g.sigmoid(z);
    // -(y ln p + (1 - y) ln(1 - p)) with p = sigmoid(z), computed from z (numerically stable)
    let loss = g.bce_with_logits(z, y);
    let params = [w, b, v];
    let grads = g.gradients(loss, &params)?;
    g.optimize(&params, &grads, Optimizer::sgd(0.1))?;

    let mut s = Session::new(g, open(BackendChoice::Cpu)?)?;
    println!("device: {}", s.backend().info());
    let feeds = [(x, HostData::F32(&[1.0])), (y, HostData::F32(&[1.0]))];
    let mut fetch = vec![h, z, p, loss];
    fetch.extend(&grads);
    // One step: forward, backward and the SGD update run in one plan.
    let out = s.train_sync(&feeds, &fetch)?;
    let (h, z, p, loss, dw, db, dv) = (&out[0], out[1][0], out[2][0], out[3][0], &out[4], &out[5], &out[6]);

    let dz = 0.6984652160 - 1.0; // dL/dz = p - y
    println!("forward");
    show("h1", h[0], 0.8);
    show("h2", h[1], 1.1);
    show("z", z, 0.84);
    show("p", p, 0.6984652160);
    show("loss", loss, 0.3588698997);
    println!("gradients (dL/dz = p - y = {dz:.10})");
    show("dL/dw1", dw[0], dz * 0.5);
    show("dL/dw2", dw[1], dz * 0.4);
    show("dL/db1", db[0], dz * 0.5);
    show("dL/db2", db[1], dz * 0.4);
    show("dL/dv1", dv[0], dz * 0.8);
    show("dL/dv2", dv[1], dz * 1.1);

    println!("after one SGD step (lr 0.1): w <- w - 0.1 * dL/dw");
    let (w, b, v) = (s.get_param("0.weight")?, s.get_param("0.bias")?, s.get_param("2.weight")?);
    show("w1", w[0], 0.5 - 0.1 * dz * 0.5);
    show("w2", w[1], 0.7 - 0.1 * dz * 0.4);
    show("b1", b[0], 0.3 - 0.1 * dz * 0.5);
    show("b2", b[1], 0.4 - 0.1 * dz * 0.4);
    show("v1", v[0], 0.5 - 0.1 * dz * 0.8);
    show("v2", v[1], 0.4 - 0.1 * dz * 1.1);
    Ok(())
}
