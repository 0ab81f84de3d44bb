//! Every op with a backward rule: analytic VJP vs a central difference in f64 along a random
//! direction (JAX's check_vjp), then the same loss and gradients through a compiled plan on the CPU
//! backend in f32. Odd shapes, random inputs, and losses that end in `sum(exp(y) * r)` so the
//! incoming gradient is not uniform.

mod common;

use common::{check, close, directional, Case};
use kiln_graph::shape::Fixed;
use kiln_graph::{BinaryOp, ReduceOp, UnaryOp};

#[test]
fn matmul_every_transpose_and_batching() {
    for (k, &(ta, tb)) in [(false, false), (false, true), (true, false), (true, true)].iter().enumerate() {
        let mut c = Case::new(10 + k as u64, 1);
        let a = c.param(if ta { &[5, 3] } else { &[3, 5] });
        let b = c.param(if tb { &[4, 5] } else { &[5, 4] });
        let y = c.g.matmul_t(a, b, ta, tb);
        check(&format!("matmul ta={ta} tb={tb}"), c, y);
    }
    let mut c = Case::new(20, 1);
    let (a, b) = (c.param(&[2, 3, 5]), c.param(&[5, 4]));
    let y = c.g.matmul(a, b);
    check("matmul batched x shared", c, y);
    // A shared weight under a batched operand (transposed too): dB is one matmul over the
    // stacked rows, also when the batch is symbolic.
    let mut c = Case::new(23, 1);
    let (a, b) = (c.param(&[2, 3, 5]), c.param(&[4, 5]));
    let y = c.g.matmul_t(a, b, false, true);
    check("matmul batched x shared^T", c, y);
    let mut c = Case::new(24, 3);
    let x = c.input(&[3, 5]);
    let w = c.param(&[3, 5]);
    let a = c.g.mul(x, w);
    let b = c.param(&[4, 5]);
    let y = c.g.matmul_t(a, b, false, true);
    check("matmul [B, 3, 5] x shared^T", c, y);
    let mut c = Case::new(21, 1);
    let (a, b) = (c.param(&[2, 3, 5]), c.param(&[2, 4, 5]));
    let y = c.g.matmul_t(a, b, false, true);
    check("matmul batched x batched", c, y);
    let mut c = Case::new(22, 6);
    let x = c.input(&[5]);
    let w = c.param(&[3, 5]);
    let y = c.g.matmul_t(x, w, false, true);
    check("matmul symbolic batch", c, y);
}

#[test]
fn every_unary_op() {
    for (k, &op) in UnaryOp::ALL.iter().enumerate() {
        let mut c = Case::new(100 + k as u64, 1);
        let positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Reciprocal);
        let x = if positive { c.positive_param(&[3, 7]) } else { c.param(&[3, 7]) };
        let y = c.g.unary(op, x, 0.13);
        check(op.name(), c, y);
    }
}

#[test]
fn every_differentiable_binary_op_with_broadcasting() {
    let ops = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min];
    for (k, &op) in ops.iter().enumerate() {
        for (j, (sa, sb)) in [(&[2usize, 3, 5][..], &[5usize][..]), (&[3, 1], &[2, 1, 4]), (&[3, 5], &[3, 5])]
            .into_iter()
            .enumerate()
        {
            let mut c = Case::new(200 + 10 * k as u64 + j as u64, 1);
            let a = c.param(sa);
            let b = if op == BinaryOp::Div { c.positive_param(sb) } else { c.param(sb) };
            let y = c.g.binary(op, a, b);
            check(&format!("{} {sa:?} {sb:?}", op.name()), c, y);
        }
    }
    // A parameter broadcast over the symbolic batch: its gradient sums over the batch.
    let mut c = Case::new(260, 7);
    let x = c.input(&[4]);
    let b = c.param(&[4]);
    let y = c.g.mul(x, b);
    check("mul over batch", c, y);
}

#[test]
fn comparisons_pass_no_gradient_but_masks_do() {
    // y = x * [x > 0]: d/dx = [x > 0], the comparison itself contributes nothing.
    let mut c = Case::new(300, 1);
    let x = c.param(&[4, 5]);
    let zero = c.g.scalar(0.0);
    let mask = c.g.binary(BinaryOp::Gt, x, zero);
    let y = c.g.mul(x, mask);
    check("x * (x > 0)", c, y);
}

#[test]
fn reductions_on_every_axis() {
    for (k, &op) in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max].iter().enumerate() {
        for axis in 0..3 {
            for keep in [false, true] {
                let mut c = Case::new(400 + 10 * k as u64 + 2 * axis as u64 + keep as u64, 1);
                let x = c.param(&[3, 4, 5]);
                let y = c.g.reduce(op, x, axis, keep);
                check(&format!("{} axis {axis} keep {keep}", op.name()), c, y);
            }
        }
    }
    // The mean over the symbolic batch axis divides by the batch size known only at compile time.
    let mut c = Case::new(450, 5);
    let x = c.input(&[3]);
    let w = c.param(&[3]);
    let y = c.g.mean(c.g.mul(x, w), 0, false);
    check("mean over batch", c, y);
    let mut c = Case::new(451, 5);
    let x = c.input(&[3]);
    let w = c.param(&[3]);
    let y = c.g.mean_all(c.g.mul(x, w));
    check("mean_all", c, y);
}

#[test]
fn softmax_and_log_softmax() {
    let mut c = Case::new(500, 1);
    let x = c.param(&[4, 7]);
    let y = c.g.softmax(x);
    check("softmax", c, y);
    let mut c = Case::new(501, 1);
    let x = c.param(&[2, 3, 7]);
    let y = c.g.log_softmax(x);
    check("log_softmax", c, y);
}

#[test]
fn fused_losses() {
    let mut c = Case::new(600, 1);
    let (p, t) = (c.param(&[3, 5]), c.param(&[3, 5]));
    let y = c.g.mse_loss(p, t);
    check("mse (pred and target)", c, y);

    let mut c = Case::new(601, 6);
    let x = c.input(&[4]);
    let w = c.param(&[1, 4]);
    let t = c.input(&[1]);
    let z = c.g.linear(x, w, None);
    let y = c.g.bce_with_logits(z, t);
    check("bce_with_logits", c, y);

    let mut c = Case::new(602, 9);
    let x = c.input(&[4]);
    let w = c.param(&[7, 4]);
    let labels = c.labels(&[], 7);
    let z = c.g.linear(x, w, None);
    let y = c.g.softmax_cross_entropy(z, labels);
    check("softmax_cross_entropy", c, y);
}

#[test]
fn reshape_gather_scatter() {
    let mut c = Case::new(700, 1);
    let x = c.param(&[2, 3, 4]);
    let y = c.g.reshape(x, &[Fixed(6), Fixed(4)]);
    check("reshape", c, y);

    let mut c = Case::new(701, 5);
    let x = c.input(&[3, 4]);
    let w = c.param(&[12]);
    let y = c.g.mul(c.g.flatten(x), w);
    check("flatten", c, y);

    let mut c = Case::new(702, 5);
    let table = c.param(&[6, 3]);
    let idx = c.labels(&[], 6);
    let y = c.g.gather(table, idx, 0);
    check("gather (embedding)", c, y);

    let mut c = Case::new(703, 5);
    let x = c.input(&[2]);
    let w = c.param(&[2]);
    let idx = c.labels(&[], 3);
    let y = c.g.scatter_add(c.g.mul(x, w), idx, 0, Fixed(3));
    check("scatter_add", c, y);
}

#[test]
fn linear_relu_chain_is_fused_and_still_right() {
    let mut c = Case::new(800, 4);
    let x = c.input(&[5]);
    let (w1, b1) = (c.param(&[6, 5]), c.param(&[6]));
    let (w2, b2) = (c.param(&[3, 6]), c.param(&[3]));
    let h = c.g.relu(c.g.linear(x, w1, Some(b1)));
    let y = c.g.tanh(c.g.linear(h, w2, Some(b2)));
    check("linear-relu-linear-tanh", c, y);
}

#[test]
fn gradient_check_detects_a_wrong_rule() {
    // The check must be able to fail: a deliberately wrong gradient (d/dx exp(x) taken as 1.1 e^x)
    // is caught.
    let mut c = Case::new(900, 1);
    let x = c.param(&[3, 4]);
    let y = c.g.exp(x);
    let loss = c.test_loss(y);
    let grads = c.g.gradients(loss, &[x]).unwrap();
    let wrong = c.g.scale(grads[0], 1.1);
    let (a, n) = directional(&mut c, loss, &[wrong]);
    assert!(!close(a, n, 1e-6), "a wrong gradient passed: {a} vs {n}");
}

/// SiLU (PyTorch's `nn.SiLU`) is one kernel; it must equal its composition `x * sigmoid(x)` from
/// two other kernels, forward and backward, through compiled f32 plans on the CPU backend (the
/// f64 check above covers the rule itself; this one ties the fused op to the definition).
#[test]
fn silu_equals_x_times_sigmoid() {
    use kiln_device::{open, BackendChoice, HostData};
    use kiln_graph::{Graph, Session};
    let run = |fused: bool| {
        let g = Graph::new();
        let x = g.input("x", &[37]);
        let w = g.param_init("w", &[37], (0..37).map(|i| 0.5 + 0.03 * i as f32).collect());
        let a = g.mul(x, w);
        let y = if fused { g.silu(a) } else { g.mul(a, g.sigmoid(a)) };
        // sum(exp(y) * r): a non-uniform incoming gradient
        let r = g.constant(&[37], (0..37).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect());
        let loss = g.sum_all(g.mul(g.exp(y), r));
        let grad = g.gradients(loss, &[w]).unwrap()[0];
        let mut s = Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap();
        let xs: Vec<f32> = (0..3 * 37).map(|i| ((i * 37 % 101) as f32 - 50.0) / 9.0).collect();
        s.run_sync(&[(x, HostData::F32(&xs))], &[y, grad]).unwrap()
    };
    let (fused, composed) = (run(true), run(false));
    for (k, what) in ["forward", "gradient"].iter().enumerate() {
        for (i, (a, b)) in fused[k].iter().zip(&composed[k]).enumerate() {
            assert!(close(*a as f64, *b as f64, 1e-5), "silu {what}[{i}]: {a} vs x*sigmoid(x) {b}");
        }
    }
    // A few values of the definition, x / (1 + e^-x), as torch.nn.functional.silu gives them.
    for (x, want) in [(-3.0f64, -0.142_277_6), (-0.5, -0.188_770_3), (0.0, 0.0), (2.5, 2.310_354_5)] {
        assert!((UnaryOp::Silu.eval_f64(x, 0.0) - want).abs() < 1e-6, "silu({x})");
        assert!((UnaryOp::Silu.eval(x as f32, 0.0) as f64 - want).abs() < 1e-6, "f32 silu({x})");
    }
}

#[test]
fn rms_norm_and_swiglu() {
    // RMSNorm: x and the weight, over a batch, 1, 3 and 37 columns, a large eps too.
    for (i, cols) in [1usize, 3, 37].into_iter().enumerate() {
        let mut c = Case::new(1200 + i as u64, 3);
        let x = c.input(&[5, cols]);
        let w0 = c.param(&[5, cols]);
        let w = c.param(&[cols]);
        let y = c.g.rms_norm(c.g.mul(x, w0), w, 1e-6);
        check(&format!("rms_norm cols={cols}"), c, y);
    }
    let mut c = Case::new(1205, 1);
    let x = c.param(&[4, 9]);
    let y = c.g.rms_norm_no_affine(x, 0.5);
    check("rms_norm_no_affine eps 0.5", c, y);
    // SwiGLU: gate and up, straight from parameters and over a batch.
    let mut c = Case::new(1210, 1);
    let (gate, up) = (c.param(&[7, 5]), c.param(&[7, 5]));
    let y = c.g.swiglu(gate, up);
    check("swiglu", c, y);
    let mut c = Case::new(1211, 2);
    let x = c.input(&[3, 6]);
    let (wg, wu) = (c.param(&[4, 6]), c.param(&[4, 6]));
    let y = c.g.swiglu(c.g.linear(x, wg, None), c.g.linear(x, wu, None));
    check("swiglu of two linears [B, 3, 4]", c, y);
}
