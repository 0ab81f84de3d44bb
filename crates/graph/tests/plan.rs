//! The compiler: fusion, dead-node elimination, update placement and buffer reuse.

use kiln_device::{Addend, Binary, Kernel, Optim, Reduce, Unary};
use kiln_graph::{compile, compile_with, Buf, FlatLayout, FlatPart, Graph, Mode, NodeId, Optimizer, Plan};

fn mlp(sizes: &[usize], act_fetch: bool) -> (Graph, NodeId, Vec<NodeId>) {
    let g = Graph::new();
    let x = g.input("x", &[sizes[0]]);
    let y = g.input_u32("y", &[]);
    let mut h = x;
    let mut params = Vec::new();
    let mut pre = Vec::new();
    for (i, w) in sizes.windows(2).enumerate() {
        let wt = g.param(&format!("{}.weight", 2 * i), &[w[1], w[0]]);
        let b = g.param(&format!("{}.bias", 2 * i), &[w[1]]);
        params.extend([wt, b]);
        let a = g.linear(h, wt, Some(b));
        pre.push(a);
        h = if i + 2 < sizes.len() { g.relu(a) } else { a };
    }
    let loss = g.softmax_cross_entropy(h, y);
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize(&params, &grads, Optimizer::adam(1e-3)).unwrap();
    let fetch = if act_fetch { vec![loss, pre[0]] } else { vec![loss] };
    (g, loss, fetch)
}

fn count(p: &Plan, f: impl Fn(&Kernel) -> bool) -> usize {
    p.steps.iter().filter(|s| f(&s.kernel)).count()
}

#[test]
fn bias_add_and_activation_fuse_unless_the_sum_is_needed() {
    let (g, _, fetch) = mlp(&[64, 128, 128, 10], false);
    let p = compile_with(&g, &fetch, Mode::Train, 64, None).unwrap();
    assert_eq!(p.fused, 2);
    assert_eq!(count(&p, |k| matches!(k, Kernel::Unary(Unary::BiasAct { .. }))), 2);
    // The last layer has no activation: its bias is added by its matmul as it stores.
    assert_eq!(count(&p, |k| matches!(k, Kernel::Binary(Binary { .. }))), 0);
    assert_eq!(p.fused_addends, 1);
    let with_bias = |k: &Kernel| matches!(k, Kernel::Matmul(m) if m.addend == Addend::Bias && m.n == 10);
    assert_eq!(count(&p, with_bias), 1);
    assert_eq!(count(&p, |k| matches!(k, Kernel::Optim(Optim::Adam { .. }))), 6);
    // Fetching a pre-activation keeps its add.
    let (g, _, fetch) = mlp(&[64, 128, 128, 10], true);
    let p = compile(&g, &fetch, true, 64).unwrap();
    assert_eq!(p.fused, 1);
}

#[test]
fn dead_nodes_are_not_run_and_forward_plans_have_no_backward() {
    let (g, loss, _) = mlp(&[8, 4, 3], false);
    let unused = g.exp(g.param("never", &[1000]));
    let _ = unused;
    let train = compile(&g, &[loss], true, 5).unwrap();
    let eval = compile(&g, &[loss], false, 5).unwrap();
    assert!(train.steps.iter().all(|s| !matches!(s.kernel, Kernel::Unary(Unary::Forward { len: 1000, .. }))));
    assert!(eval.launches() < train.launches());
    assert!(eval.steps.iter().all(|s| s.kernel.family() != "optim" && !is_backward(&s.kernel)));
    assert!(eval.persistent.iter().all(|(n, _)| g.name_of(*n).is_some_and(|s| !s.contains("exp_avg"))));
}

#[test]
fn each_update_runs_after_every_reader_of_its_parameter() {
    let (g, loss, _) = mlp(&[6, 5, 4, 3], false);
    let p = compile_with(&g, &[loss], Mode::Train, 7, None).unwrap();
    for (i, s) in p.steps.iter().enumerate() {
        if s.kernel.family() != "optim" {
            continue;
        }
        let param = s.bufs[0];
        for later in &p.steps[i + 1..] {
            assert!(!later.bufs.contains(&param), "{:?} read after its update", param);
        }
    }
    // And updates do not all wait for the end: the first one comes before the last backward op.
    let first = p.steps.iter().position(|s| s.kernel.family() == "optim").unwrap();
    let last_grad = p.steps.iter().rposition(|s| s.kernel.family() != "optim").unwrap();
    assert!(first < last_grad);
}

#[test]
fn activations_share_buffers_and_never_alias_within_a_launch() {
    let (g, loss, _) = mlp(&[784, 1024, 1024, 10], false);
    let p = compile(&g, &[loss], true, 256).unwrap();
    println!(
        "mnist-mlp b256: peak {} bytes, naive {} bytes, {} launches, {} temps",
        p.peak_bytes(),
        p.naive_bytes,
        p.launches(),
        p.temps.len()
    );
    // Parameters and Adam state are the same either way, and so are the gradients in flat memory
    // (alive to the update, never shared); the other per-step tensors must shrink.
    let fixed = p.persistent_bytes() + p.grad_bytes;
    let (act, naive) = (p.peak_bytes() - fixed, p.naive_bytes - fixed);
    assert!(act * 2 < naive, "per-step tensors: {act} bytes with reuse vs {naive} without");
    for s in &p.steps {
        let out = s.bufs[0];
        if let Buf::Temp(_) = out {
            assert!(!s.bufs[1..].contains(&out), "{} writes a buffer it reads", s.kernel.name());
        }
    }
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

#[test]
fn a_linear_over_batch_and_time_reduces_once_for_its_bias_and_never_for_its_weight() {
    // x [B, 5, 7] @ w^T + b: b's gradient folds [B, 5] into one axis and reduces once; w's is one
    // matmul over the B*5 stacked rows (not B matmuls and a sum over the batch).
    let g = Graph::new();
    let x = g.input("x", &[5, 7]);
    let (w, b) = (g.param("w", &[6, 7]), g.param("b", &[6]));
    let y = g.linear(x, w, Some(b));
    let loss = g.sum_all(g.mul(y, y));
    let grads = g.gradients(loss, &[w, b]).unwrap();
    let p = compile(&g, &[loss, grads[0], grads[1]], false, 3).unwrap();
    let reduces: Vec<Kernel> = p
        .steps
        .iter()
        .filter(|s| matches!(s.kernel, Kernel::Reduce(Reduce { .. })))
        .map(|s| s.kernel)
        .collect();
    assert_eq!(reduces.len(), 2, "sum_all and the bias gradient: {reduces:?}");
    assert!(reduces.iter().any(|k| matches!(k, Kernel::Reduce(Reduce { outer: 1, len: 15, inner: 6, .. }))));
    let dw = p.steps.iter().find(|s| s.node == grads[0]).unwrap().kernel;
    assert!(matches!(dw, Kernel::Matmul(mm) if mm.batch == 1 && mm.k == 15), "{dw:?}");
}

/// With flat parameter memory the six per-parameter updates become one launch over the chunk
/// (the decayed elements all of it, each parameter at a 64-element boundary), after every read
/// of every parameter; each gradient is written into its view and no longer takes a slot.
#[test]
fn flat_memory_updates_every_parameter_in_one_launch_at_the_end() {
    let (g, loss, _) = mlp(&[6, 5, 4, 3], false);
    let layout = FlatLayout::of(&g, u64::MAX).expect("an MLP's gradients can live in views");
    assert_eq!(layout.chunks.len(), 1);
    let c = &layout.chunks[0];
    let offsets: Vec<usize> = c.members.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [0, 64, 128, 192, 256, 320]);
    assert_eq!((c.len, c.decayed), (320 + 3, 320 + 3));
    let p = compile(&g, &[loss], true, 7).unwrap();
    let per = compile_with(&g, &[loss], Mode::Train, 7, None).unwrap();
    assert_eq!(p.launches() + 5, per.launches());
    let updates: Vec<usize> = (0..p.steps.len()).filter(|&i| p.steps[i].kernel.family() == "optim").collect();
    assert_eq!(updates, [p.launches() - 1]);
    let s = &p.steps[updates[0]];
    assert_eq!(s.kernel, Kernel::Optim(Optim::Adam { len: 323, decoupled: false, decayed: 323 }));
    assert_eq!(s.bufs[0], Buf::Flat { chunk: 0, part: FlatPart::Param });
    assert_eq!(s.bufs[1], Buf::Flat { chunk: 0, part: FlatPart::Grad });
    assert_eq!(
        s.bufs[3..],
        [Buf::Flat { chunk: 0, part: FlatPart::State(0) }, Buf::Flat { chunk: 0, part: FlatPart::State(1) }]
    );
    // every gradient written into its own view, once
    for k in 0..6 {
        let writers = p.steps.iter().filter(|s| s.bufs[0] == Buf::Grad { chunk: 0, member: k }).count();
        assert_eq!(writers, 1, "gradient {k}");
    }
    assert_eq!(p.grad_bytes, 4 * 323);
}

/// AdamW's groups: the decayed parameters first in the chunk, the exempt ones after them.
#[test]
fn flat_memory_puts_the_decayed_parameters_first() {
    let g = Graph::new();
    let x = g.input("x", &[6]);
    let y = g.input_u32("y", &[]);
    let (w1, b1, w2) = (g.param("w1", &[5, 6]), g.param("b1", &[5]), g.param("w2", &[3, 5]));
    let loss = g.softmax_cross_entropy(g.linear(g.relu(g.linear(x, w1, Some(b1))), w2, None), y);
    let params = [w1, b1, w2];
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize_with(&params, &grads, Optimizer::adamw(1e-3), &[true, false, true]).unwrap();
    let layout = FlatLayout::of(&g, u64::MAX).unwrap();
    let c = &layout.chunks[0];
    let order: Vec<NodeId> = c.members.iter().map(|m| m.param).collect();
    assert_eq!(order, [w1, w2, b1]);
    assert_eq!((c.decayed, c.len), (64 + 15, 128 + 5));
    // buffers of at most 64 elements (256 bytes): each parameter in a chunk of its own
    let small = FlatLayout::of(&g, 256).unwrap();
    assert_eq!(small.chunks.len(), 3);
    let p = compile_with(&g, &[loss], Mode::Train, 4, Some(&small)).unwrap();
    assert_eq!(p.steps.iter().filter(|s| s.kernel.family() == "optim").count(), 3);
}

/// A residual connection after a bias-free linear layer is added by the matmul as it stores.
#[test]
fn residual_adds_fuse_into_the_matmul_before_them() {
    let g = Graph::new();
    let x = g.input("x", &[6]);
    let y = g.input_u32("y", &[]);
    let (w, head) = (g.param("w", &[6, 6]), g.param("head", &[4, 6]));
    let h = g.add(g.linear(x, w, None), x);
    let loss = g.softmax_cross_entropy(g.linear(g.relu(h), head, None), y);
    let grads = g.gradients(loss, &[w, head]).unwrap();
    let p = compile(&g, &[loss, grads[0]], false, 5).unwrap();
    let full = |k: &Kernel| matches!(k, Kernel::Matmul(m) if m.addend == Addend::Full);
    assert_eq!(count(&p, full), 1);
    assert_eq!(count(&p, |k| matches!(k, Kernel::Binary(Binary { .. }))), 0);
}
