//! The Llama ops through the graph: the fused RMSNorm against the same formula composed from
//! existing ops (`x * rsqrt(mean(x*x) + eps) * w`), forward and gradients, on the CPU and the GPU
//! backend; SwiGLU against `silu(gate) * up`; their shape errors; and `optimize_with`'s
//! weight-decay exemption (an exempt AdamW parameter moves exactly as under Adam without decay, a
//! decayed one as PyTorch's AdamW formula says).

mod common;

use common::Rng;
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::{Graph, NodeId, Optimizer, Session};

/// Each backend the test runs on: the CPU, and the GPU unless there is no adapter.
fn backends() -> Vec<(&'static str, Box<dyn Backend>)> {
    let mut v: Vec<(&'static str, Box<dyn Backend>)> = vec![("cpu", open(BackendChoice::Cpu).unwrap())];
    if let Some(gpu) = kiln_device::testing::gpu_or_skip("the fused RMSNorm / SwiGLU plans") {
        v.push(("gpu", gpu));
    }
    v
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= rtol * b.abs() + atol, "{what} [{i}]: fused {a} vs composed {b}");
    }
}

/// Builds `(fused, composed)` from parameters of `shapes` (seeded values) on each backend and
/// checks the two outputs, and the gradients of `sum(y * r)` for each parameter, agree.
fn fused_matches_composed(
    what: &str,
    kernels: [&str; 2],
    out: [usize; 2],
    shapes: &[&[usize]],
    build: impl Fn(&Graph, &[NodeId]) -> (NodeId, NodeId),
    params: impl Fn(&mut Rng, usize) -> Vec<f32>,
) {
    for (name, be) in backends() {
        let mut rng = Rng::new(77);
        let g = Graph::new();
        let ps: Vec<NodeId> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let data = params(&mut rng, i);
                assert_eq!(data.len(), s.iter().product::<usize>());
                g.param_init(&format!("p{i}"), s, data)
            })
            .collect();
        let (fused, composed) = build(&g, &ps);
        let r = g.constant(&out, rng.vec(out[0] * out[1]));
        let gf = g.gradients(g.sum_all(g.mul(fused, r)), &ps).unwrap();
        let gc = g.gradients(g.sum_all(g.mul(composed, r)), &ps).unwrap();
        let mut fetch = vec![fused, composed];
        fetch.extend(gf.iter().zip(&gc).flat_map(|(a, b)| [*a, *b]));
        let mut s = Session::new(g, be).unwrap();
        let got = s.run_sync(&[], &fetch).unwrap();
        let plan = s.plan(1, false, &fetch).unwrap();
        for k in kernels {
            assert!(plan.steps.iter().any(|st| st.kernel.name() == k), "{what}: no {k} kernel in the plan");
        }
        assert_close(&format!("{what} on {name}: y"), &got[0], &got[1], 1e-5, 1e-6);
        for k in 0..ps.len() {
            let (a, b) = (&got[2 + 2 * k], &got[3 + 2 * k]);
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            assert_close(&format!("{what} on {name}: d p{k}"), a, b, 1e-4, 1e-5 * scale);
        }
    }
}

#[test]
fn fused_rms_norm_matches_the_composed_formula() {
    for (rows, cols, eps) in [(7, 37, 1e-6), (3, 1031, 1e-5), (5, 2, 0.3)] {
        fused_matches_composed(
            &format!("rms_norm {rows}x{cols} eps {eps}"),
            ["rms_norm_affine", "rms_norm_affine_grad"],
            [rows, cols],
            &[&[rows, cols], &[cols]],
            |g, p| {
                let (x, w) = (p[0], p[1]);
                let ms = g.mean(g.mul(x, x), 1, true);
                let rstd = g.reciprocal(g.sqrt(g.add(ms, g.scalar(eps))));
                (g.rms_norm(x, w, eps), g.mul(g.mul(x, rstd), w))
            },
            // x of several magnitudes per row, a weight near 1 as a trained one
            |rng, i| match i {
                0 => {
                    let v = rng.vec(rows * cols);
                    v.chunks(cols)
                        .enumerate()
                        .flat_map(|(r, c)| c.iter().map(move |x| x * (0.1 + r as f32)))
                        .collect()
                }
                _ => rng.vec(cols).iter().map(|v| 1.0 + 0.3 * v).collect(),
            },
        );
    }
}

#[test]
fn fused_swiglu_matches_silu_times_up() {
    let (rows, cols) = (7, 37);
    fused_matches_composed(
        "swiglu",
        ["swiglu_grad_gate", "swiglu_grad_up"],
        [rows, cols],
        &[&[rows, cols], &[rows, cols]],
        |g, p| (g.swiglu(p[0], p[1]), g.mul(g.silu(p[0]), p[1])),
        |rng, i| rng.vec(rows * cols).iter().map(|v| if i == 0 { 4.0 * v } else { *v }).collect(),
    );
}

#[test]
fn shape_errors_name_the_op() {
    let g = Graph::new();
    let (a, b) = (g.param("a", &[3, 4]), g.param("b", &[3, 5]));
    g.swiglu(a, b);
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("swiglu") && e.contains("[3, 4]") && e.contains("[3, 5]"), "{e}");
    let g = Graph::new();
    let s = g.scalar(1.0);
    g.rms_norm_no_affine(s, 1e-5);
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("rms_norm") && e.contains("scalar"), "{e}");
    let g = Graph::new();
    let x = g.param("x", &[2, 3]);
    g.rms_norm_no_affine(x, 0.0);
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("rms_norm") && e.contains("eps"), "{e}");
}

/// `mse(x W^T, t) + mse(u * b, t)` with `W [3, 5]` and `b [3]`: two parameters whose gradients do
/// not depend on each other, so each one's trajectory depends only on its own update rule.
struct Linear {
    g: Graph,
    x: NodeId,
    u: NodeId,
    t: NodeId,
    grads: Vec<NodeId>,
}

fn linear(opt: Optimizer, decay: Option<&[bool]>) -> Linear {
    let mut rng = Rng::new(5);
    let g = Graph::new();
    let x = g.input("x", &[5]);
    let u = g.input("u", &[3]);
    let t = g.input("t", &[3]);
    let w = g.param_init("weight", &[3, 5], rng.vec(15));
    let b = g.param_init("bias", &[3], rng.vec(3));
    let loss = g.add(g.mse_loss(g.linear(x, w, None), t), g.mse_loss(g.mul(u, b), t));
    let grads = g.gradients(loss, &[w, b]).unwrap();
    match decay {
        Some(d) => g.optimize_with(&[w, b], &grads, opt, d).unwrap(),
        None => g.optimize(&[w, b], &grads, opt).unwrap(),
    };
    Linear { g, x, u, t, grads }
}

#[test]
fn weight_decay_applies_to_the_chosen_parameters_only() {
    let (lr, wd, (b1, b2, eps)) = (0.05f32, 0.1f32, (0.9f64, 0.999f64, 1e-8f64));
    let adamw = Optimizer::AdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd };
    let adam = Optimizer::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let (grouped, plain, all) =
        (linear(adamw, Some(&[true, false])), linear(adam, None), linear(adamw, None));
    let mut rng = Rng::new(6);
    let data: Vec<[Vec<f32>; 3]> = (0..4).map(|_| [rng.vec(7 * 5), rng.vec(7 * 3), rng.vec(7 * 3)]).collect();
    let run = |m: Linear| {
        let mut s = Session::new(m.g, open(BackendChoice::Cpu).unwrap()).unwrap();
        let w0 = s.get_param("weight").unwrap();
        let mut grads = Vec::new();
        for [x, u, t] in &data {
            let feeds = [(m.x, HostData::F32(x)), (m.u, HostData::F32(u)), (m.t, HostData::F32(t))];
            grads.push(s.train_sync(&feeds, &m.grads[..1]).unwrap().remove(0));
        }
        (w0, grads, s.get_param("weight").unwrap(), s.get_param("bias").unwrap())
    };
    let (w0, w_grads, w, b) = run(grouped);
    let (_, _, w_plain, b_plain) = run(plain);
    let (_, _, w_all, b_all) = run(all);
    // exempt: the bias moves exactly as under Adam without decay
    assert_eq!(b, b_plain, "exempt bias under AdamW vs Adam without decay");
    assert_ne!(b, b_all, "decaying every parameter changes the bias");
    // decayed: PyTorch's AdamW on the weight, p *= 1 - lr wd before each Adam step (f64)
    let (mut p, mut m, mut v): (Vec<f64>, _, _) =
        (w0.iter().map(|&x| x as f64).collect(), vec![0.0; 15], vec![0.0; 15]);
    for (k, g) in w_grads.iter().enumerate() {
        let t = k as i32 + 1;
        for i in 0..15 {
            let g = g[i] as f64;
            p[i] *= 1.0 - lr as f64 * wd as f64;
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            p[i] -= lr as f64 * (m[i] / (1.0 - b1.powi(t))) / ((v[i] / (1.0 - b2.powi(t))).sqrt() + eps);
        }
    }
    for i in 0..15 {
        assert!((w[i] as f64 - p[i]).abs() <= 1e-5 * p[i].abs() + 1e-6, "weight[{i}]: {} vs {}", w[i], p[i]);
    }
    assert_eq!(w, w_all, "the weight decays alike with or without the exemption of the bias");
    let moved = w.iter().zip(&w_plain).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(moved > 1e-4, "the weight decay had no effect ({moved})");
}

#[test]
fn optimize_with_wants_one_flag_per_parameter() {
    let g = Graph::new();
    let w = g.param_init("w", &[2], vec![1.0, 2.0]);
    let loss = g.sum_all(g.mul(w, w));
    let grads = g.gradients(loss, &[w]).unwrap();
    let e = g.optimize_with(&[w], &grads, Optimizer::adamw(1e-3), &[]).unwrap_err().to_string();
    assert!(e.contains("decay flags"), "{e}");
}
