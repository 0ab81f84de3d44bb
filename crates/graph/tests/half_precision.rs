//! Half precision in the graph: `Graph::cast` and matmul nodes over f16 / bf16 operands.
//! - autodiff in f64 against central differences (the reference interpreter treats casts as exact,
//!   so this checks the rules, e.g. that a cast's gradient is cast back and a half operand's
//!   gradient reaches its f32 parameter);
//! - the compiled plan on the CPU backend (and the GPU when present) against the f64 reference,
//!   within half precision, with the half tensors held in half buffers;
//! - build-time errors.

mod common;

use common::{close, directional, Case};
use kiln_device::half::{bf16, f16};
use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::reference::{evaluate, Values};
use kiln_graph::{compile, DType, NodeId, Op, Prim, Session};

/// An autocast-style layer: `cast(x, ta) @ cast(w, tb)^T + b`, then `tanh`, for `x: [B, 7]` and
/// `w: [5, 7]` (one operand may stay f32), ending in the test loss. Returns the case, the loss and
/// the gradients of `w` and `b`.
fn autocast_layer(seed: u64, ta: DType, tb: DType) -> (Case, NodeId, Vec<NodeId>) {
    let mut c = Case::new(seed, 3);
    let x = c.input(&[7]);
    let w = c.param(&[5, 7]);
    let b = c.param(&[5]);
    let h = c.g.matmul_t(c.g.cast(x, ta), c.g.cast(w, tb), false, true);
    let y = c.g.tanh(c.g.add(h, b));
    let loss = c.test_loss(y);
    let grads = c.g.gradients(loss, &[w, b]).unwrap_or_else(|e| panic!("{ta} @ {tb}: {e}"));
    (c, loss, grads)
}

/// Loss and gradients of `case` on `choice` vs the f64 reference, each element within `rel` of the
/// largest reference value of its tensor.
fn backend_matches_reference(
    what: &str,
    case: Case,
    loss: NodeId,
    grads: &[NodeId],
    choice: BackendChoice,
    rel: f64,
) {
    let Ok(backend) = open(choice) else {
        assert!(!kiln_device::testing::gpu_required(), "{what}: KILN_REQUIRE_GPU=1 but no GPU");
        eprintln!("*** SKIPPED {what} on {choice}: no adapter");
        return;
    };
    let values: Values =
        case.f32_inputs.iter().map(|(x, d)| (*x, d.iter().map(|&v| v as f64).collect())).collect();
    let vals = evaluate(&case.g, case.batch, &values).unwrap();
    let mut fetch = vec![loss];
    fetch.extend_from_slice(grads);
    let feeds: Vec<(NodeId, Vec<f32>)> = case.f32_inputs.clone();
    let mut s = Session::new(case.g, backend).unwrap();
    let feeds: Vec<(NodeId, HostData)> = feeds.iter().map(|(x, d)| (*x, HostData::F32(d))).collect();
    let got = s.run_sync(&feeds, &fetch).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (k, (got, &f)) in got.iter().zip(&fetch).enumerate() {
        let want = &vals[f.index()];
        assert_eq!(got.len(), want.len(), "{what}: output {k} length");
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= rel * scale,
                "{what} on {choice}: output {k} [{i}]: {g} vs reference {w}"
            );
        }
    }
}

/// Every pairing of operand types through matmul and cast: the rules agree with central
/// differences, and the compiled plans (f32 accumulation over half operands) with the reference
/// within half precision (bf16 keeps 8 significant bits, f16 11).
#[test]
fn autocast_matmul_gradients() {
    let pairs = [
        (DType::BF16, DType::BF16, 2e-2),
        (DType::F16, DType::F16, 3e-3),
        (DType::F32, DType::BF16, 2e-2),
        (DType::F16, DType::F32, 3e-3),
        (DType::F16, DType::BF16, 2e-2),
    ];
    for (k, (ta, tb, rel)) in pairs.into_iter().enumerate() {
        let what = format!("cast {ta} @ cast {tb}");
        let seed = 40 + k as u64;
        let (mut c, loss, grads) = autocast_layer(seed, ta, tb);
        for &g in &grads {
            assert_eq!(c.g.dtype(g), DType::F32, "{what}: a parameter's gradient is f32");
        }
        let (a, n) = directional(&mut c, loss, &grads);
        assert!(close(a, n, 1e-6), "{what}: analytic {a} vs numeric {n}");
        backend_matches_reference(&what, c, loss, &grads, BackendChoice::Cpu, rel);
        let (c, loss, grads) = autocast_layer(seed, ta, tb);
        backend_matches_reference(&what, c, loss, &grads, BackendChoice::Gpu, rel);
    }
}

/// A cast to half and back, and a chain of half casts (bf16 -> f16 goes through f32): the
/// gradient is passed back through each cast.
#[test]
fn cast_chains_pass_the_gradient_back() {
    let mut c = Case::new(7, 2);
    let w = c.param(&[3, 5]);
    let x = c.input(&[3, 5]);
    let h = c.g.cast(c.g.cast(c.g.cast(w, DType::BF16), DType::F16), DType::F32);
    assert_eq!(c.g.cast(h, DType::F32), h, "a cast to the same type is the tensor itself");
    let y = c.g.mul(h, x);
    let loss = c.test_loss(y);
    let grads = c.g.gradients(loss, &c.params.clone()).unwrap();
    let (a, n) = directional(&mut c, loss, &grads);
    assert!(close(a, n, 1e-6), "analytic {a} vs numeric {n}");
    backend_matches_reference("cast chain", c, loss, &grads, BackendChoice::Cpu, 2e-2);
}

/// A fetched half tensor comes back in its type, with the `half` crate's bits, and the plan keeps
/// half tensors (operands and the half operands' gradients) in half buffers.
#[test]
fn half_tensors_live_in_half_buffers() {
    let (c, loss, grads) = autocast_layer(3, DType::BF16, DType::F16);
    let (x, xs) = c.f32_inputs[0].clone();
    let (xb, xh) = (c.g.cast(x, DType::BF16), c.g.cast(x, DType::F16));
    let plan = compile(&c.g, &[loss, grads[0], xb, xh], true, c.batch).unwrap();
    for dtype in [DType::BF16, DType::F16] {
        assert!(plan.temps.iter().any(|t| t.0 == dtype), "no {dtype} slot in {:?}", plan.temps);
    }
    let mut s = Session::new(c.g, open(BackendChoice::Cpu).unwrap()).unwrap();
    let pending = s.run(&[(x, HostData::F32(&xs))], &[xb, xh]).unwrap();
    let got = s.wait(pending).unwrap();
    assert_eq!(
        got[0].clone().into_bf16().unwrap(),
        xs.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>()
    );
    assert_eq!(got[1].clone().into_f16().unwrap(), xs.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>());
}

#[test]
fn integer_tensors_are_refused() {
    let mut c = Case::new(1, 2);
    let y = c.labels(&[3], 4);
    let w = c.param(&[3, 3]);
    c.g.matmul(y, w);
    let err = c.g.check().unwrap_err().to_string();
    assert!(err.contains("matmul") && err.contains("u32"), "{err}");
    let c = Case::new(1, 2);
    let y = c.g.input_u32("y", &[3]);
    c.g.cast(y, DType::F16);
    let err = c.g.check().unwrap_err().to_string();
    assert!(err.contains("u32 to f16"), "{err}");
}

/// A Linear over `[B, T, k]` half activations (the weight's gradient is one matmul over the stacked
/// rows of the reshaped half operand), with the weight half too.
#[test]
fn batched_half_activations_through_a_shared_weight() {
    let build = || {
        let mut c = Case::new(77, 2);
        let x = c.input(&[3, 7]);
        let w = c.param(&[5, 7]);
        let y = c.g.matmul_t(c.g.cast(x, DType::BF16), c.g.cast(w, DType::BF16), false, true);
        let loss = c.test_loss(y);
        let grads = c.g.gradients(loss, &[w]).unwrap();
        (c, loss, grads)
    };
    let (mut c, loss, grads) = build();
    let (a, n) = directional(&mut c, loss, &grads);
    assert!(close(a, n, 1e-6), "analytic {a} vs numeric {n}");
    backend_matches_reference("[B, T, k] bf16 @ bf16^T", c, loss, &grads, BackendChoice::Cpu, 2e-2);
    let (c, loss, grads) = build();
    backend_matches_reference("[B, T, k] bf16 @ bf16^T", c, loss, &grads, BackendChoice::Gpu, 2e-2);
}

/// Under autocast, what the backward keeps of the f32 ops between matmuls is half too (as
/// PyTorch's autocast keeps its half linear outputs): the SwiGLU gate and up, a softmax's
/// output and a product's inputs are read back by their backward rules from half copies, and the
/// f32 tensors are read for the last time in the forward. The gradients agree with central
/// differences (f64, casts exact) and the compiled plans with the f64 reference within bf16
/// precision, on the CPU and on the GPU adapter.
#[test]
fn saved_activations_are_kept_as_half_copies_under_autocast() {
    let build = |seed: u64| {
        let mut c = Case::new(seed, 5);
        c.g.set_autocast(Some(DType::BF16));
        let x = c.input(&[8]);
        let (wg, wu, w2, w3) = (c.param(&[12, 8]), c.param(&[12, 8]), c.param(&[6, 12]), c.param(&[6, 8]));
        let h = c.g.swiglu(c.g.linear(x, wg, None), c.g.linear(x, wu, None));
        let p = c.g.softmax(c.g.linear(h, w2, None));
        let q = c.g.mul(p, c.g.linear(x, w3, None));
        let loss = c.test_loss(q);
        let grads = c.g.gradients(loss, &[wg, wu, w2, w3]).unwrap();
        (c, loss, grads, p)
    };
    let (mut c, loss, grads, p) = build(61);
    let plan = compile(&c.g, &grads, false, c.batch).unwrap();
    let node = |i: usize| c.g.node(plan.steps[i].node);
    let from_half =
        |x: NodeId| matches!(c.g.node(x).op, Op::Prim(Prim::Cast { from: DType::BF16, to: DType::F32 }));
    let rules = ["softmax_grad", "swiglu_grad_gate", "swiglu_grad_up"];
    let mut seen = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let name = s.kernel.name();
        if rules.contains(&name) {
            seen.push(name);
            let saved = if name == "softmax_grad" { &node(i).inputs[..1] } else { &node(i).inputs[..2] };
            assert!(saved.iter().all(|&x| from_half(x)), "{name} reads {saved:?}, not half copies");
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // the f32 softmax output is read last by its half copy, before any backward step
    let last_read = plan.steps.iter().rposition(|s| c.g.node(s.node).inputs.contains(&p)).unwrap();
    let first_backward = plan.steps.iter().position(|s| rules.contains(&s.kernel.name())).unwrap();
    assert!(
        last_read < first_backward,
        "f32 probabilities read at step {last_read}, backward from {first_backward}"
    );
    let (a, n) = directional(&mut c, loss, &grads);
    assert!(close(a, n, 1e-6), "analytic {a} vs numeric {n}");
    for choice in [BackendChoice::Cpu, BackendChoice::Gpu] {
        let (c, loss, grads, _) = build(61);
        backend_matches_reference("saved half copies", c, loss, &grads, choice, 3e-2);
    }
}
