//! Every CPU kernel against a plain float64 reference written here with simple loops.
//!
//! Inputs come from a seeded generator, with odd sizes and no zeros; outputs are poisoned with NaN
//! (u32::MAX for indices) before each run so an element a kernel forgets to write fails. Tolerance
//! is float32's: `|got - want| <= 1e-5 |want| + 1e-6` elementwise (`common::RTOL`, `common::ATOL`);
//! matmul: `||got - want|| / ||want|| <= 1e-5`.

mod common;

use common::{assert_close, assert_rel_norm, to_f64, Rng, ATOL, RTOL};
use kiln_device::cpu::CpuBackend;
use kiln_device::*;

/// Odd sizes, and one large one.
const SIZES: [usize; 7] = [1, 3, 17, 33, 65, 127, 40_001];

/// What a slot starts with.
enum Init {
    F(Vec<f32>),
    U(Vec<u32>),
    /// NaN (or u32::MAX): the kernel must overwrite every element.
    Poison,
}

/// Runs one kernel on fresh buffers and returns every slot's contents afterwards, in slot order.
/// It runs twice: on the default backend (small work stays on one thread) and on one that splits
/// any work over rayon; the two must agree bit for bit.
fn launch(kernel: Kernel, init: Vec<Init>) -> Vec<HostVec> {
    let init2 = init
        .iter()
        .map(|i| match i {
            Init::F(v) => Init::F(v.clone()),
            Init::U(v) => Init::U(v.clone()),
            Init::Poison => Init::Poison,
        })
        .collect();
    let serial = launch_on(CpuBackend::new(), kernel, init);
    let threaded = launch_on(CpuBackend::with_parallel_min(1), kernel, init2);
    for (slot, (s, t)) in serial.iter().zip(&threaded).enumerate() {
        let same = match (s, t) {
            (HostVec::F32(s), HostVec::F32(t)) => s.iter().zip(t).all(|(a, b)| a.to_bits() == b.to_bits()),
            _ => s == t,
        };
        assert!(same, "{}: slot {slot} differs between the serial and threaded paths", kernel.name());
    }
    serial
}

fn launch_on(mut be: CpuBackend, kernel: Kernel, init: Vec<Init>) -> Vec<HostVec> {
    let slots = kernel.slots();
    assert_eq!(slots.len(), init.len(), "{}: test passes one Init per slot", kernel.name());
    let ids: Vec<BufferId> = slots
        .iter()
        .zip(init)
        .map(|(s, init)| match init {
            Init::F(v) => be.upload(HostData::F32(&v)).unwrap(),
            Init::U(v) => be.upload(HostData::U32(&v)).unwrap(),
            Init::Poison => match s.dtype {
                DType::F32 => be.upload(HostData::F32(&vec![f32::NAN; s.len])).unwrap(),
                DType::U32 => be.upload(HostData::U32(&vec![u32::MAX; s.len])).unwrap(),
                DType::F16 => be.upload(HostData::F16(&vec![half::f16::NAN; s.len])).unwrap(),
                DType::BF16 => be.upload(HostData::BF16(&vec![half::bf16::NAN; s.len])).unwrap(),
            },
        })
        .collect();
    be.run(Launch::new(kernel, &ids)).unwrap();
    ids.iter().map(|&id| be.read(id).unwrap()).collect()
}

/// Runs a kernel whose only output is slot 0 (f32) and returns it.
fn out0(kernel: Kernel, inputs: Vec<Init>) -> Vec<f32> {
    let mut init = vec![Init::Poison];
    init.extend(inputs);
    launch(kernel, init).remove(0).into_f32().unwrap()
}

/// Inputs inside the domain of `op`, away from zero, and small enough (|x| <= 2) that a gradient
/// computed from the rounded f32 output stays within float32 tolerance of the exact one.
fn unary_input(rng: &mut Rng, op: UnaryOp, n: usize) -> Vec<f32> {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt => rng.uniform_vec(n, 0.1, 4.0),
        UnaryOp::Reciprocal => rng.away_from_zero_vec(n, 0.25, 4.0),
        _ => rng.away_from_zero_vec(n, 0.05, 2.0),
    }
}

const SLOPE: f32 = 0.1;

#[test]
fn unary_forward_every_op() {
    let mut rng = Rng::new(1);
    for op in UnaryOp::ALL {
        for len in SIZES {
            let x = unary_input(&mut rng, op, len);
            let got = out0(Kernel::Unary(Unary::Forward { op, len, alpha: SLOPE }), vec![Init::F(x.clone())]);
            let want: Vec<f64> = x.iter().map(|&v| op.eval_f64(v as f64, SLOPE as f64)).collect();
            assert_close(&format!("{} len={len}", op.name()), &got, &want, RTOL, ATOL);
        }
    }
}

#[test]
fn unary_grad_every_op() {
    let mut rng = Rng::new(2);
    for op in UnaryOp::ALL {
        for len in SIZES {
            let x = unary_input(&mut rng, op, len);
            let dy = rng.normal_vec(len);
            let saved: Vec<f32> = match op.saved() {
                Saved::Output => x.iter().map(|&v| op.eval_f64(v as f64, SLOPE as f64) as f32).collect(),
                Saved::Input | Saved::Neither => x.clone(),
            };
            let got = out0(
                Kernel::Unary(Unary::Backward { op, len, alpha: SLOPE }),
                vec![Init::F(saved), Init::F(dy.clone())],
            );
            let want: Vec<f64> =
                x.iter().zip(&dy).map(|(&v, &g)| g as f64 * op.deriv_f64(v as f64, SLOPE as f64)).collect();
            assert_close(&format!("{} len={len}", op.grad_name()), &got, &want, RTOL, ATOL);
        }
    }
}

#[test]
fn bias_act_every_op() {
    let mut rng = Rng::new(3);
    for op in UnaryOp::ALL {
        for (rows, cols) in [(1, 1), (3, 17), (65, 33), (17, 1), (300, 127)] {
            let positive = matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Reciprocal);
            let (x, b) = match positive {
                true => (rng.uniform_vec(rows * cols, 0.5, 2.0), rng.uniform_vec(cols, 0.1, 0.5)),
                false => (rng.normal_vec(rows * cols), rng.normal_vec(cols)),
            };
            let got = out0(
                Kernel::Unary(Unary::BiasAct { op, rows, cols, alpha: SLOPE }),
                vec![Init::F(x.clone()), Init::F(b.clone())],
            );
            let mut want = vec![0.0; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    // The bias add happens in f32, as the kernel's does.
                    let z = x[r * cols + c] + b[c];
                    want[r * cols + c] = op.eval_f64(z as f64, SLOPE as f64);
                }
            }
            assert_close(&format!("bias_act {} {rows}x{cols}", op.name()), &got, &want, RTOL, ATOL);
        }
    }
}

#[test]
fn binary_every_op_with_broadcasting() {
    let shapes: [(&[usize], &[usize]); 9] = [
        (&[17], &[17]),
        (&[1], &[1]),
        (&[5, 1, 7], &[3, 1]),
        (&[3, 1], &[5, 1, 7]),
        (&[4, 1], &[1, 33]),
        (&[2, 3, 1, 5], &[3, 4, 1]),
        (&[127], &[1]),
        (&[1], &[65]),
        (&[300, 129], &[129]),
    ];
    let mut rng = Rng::new(4);
    for op in BinaryOp::ALL {
        for (sa, sb) in shapes {
            let (na, nb) = (sa.iter().product(), sb.iter().product());
            let arithmetic = matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div);
            let (a, b) = match (arithmetic, op) {
                (true, BinaryOp::Div) => (rng.normal_vec(na), rng.away_from_zero_vec(nb, 0.5, 2.0)),
                (true, _) => (rng.normal_vec(na), rng.normal_vec(nb)),
                // comparisons, max and min see ties
                (false, _) => (rng.small_int_vec(na), rng.small_int_vec(nb)),
            };
            let bc = Broadcast::new(op.name(), sa, sb).unwrap();
            let (out_shape, idx) = common::broadcast_indices(sa, sb);
            assert_eq!(bc.out_shape(out_shape.len()), out_shape);
            let got = out0(Kernel::Binary(Binary { op, bc }), vec![Init::F(a.clone()), Init::F(b.clone())]);
            let want: Vec<f64> =
                idx.iter().map(|&(ia, ib)| op.eval_f64(a[ia] as f64, b[ib] as f64)).collect();
            assert_close(&format!("{} {sa:?} x {sb:?}", op.name()), &got, &want, RTOL, ATOL);
        }
    }
}

const REDUCE_SHAPES: [(usize, usize, usize); 7] =
    [(1, 1, 1), (3, 17, 1), (1, 33, 5), (5, 7, 65), (2, 127, 3), (1, 1, 17), (4, 100, 101)];

#[test]
fn reduce_sum_mean_max() {
    let mut rng = Rng::new(5);
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max] {
        for (outer, len, inner) in REDUCE_SHAPES {
            let x = rng.normal_vec(outer * len * inner);
            let got = out0(Kernel::Reduce(Reduce { op, outer, len, inner }), vec![Init::F(x.clone())]);
            let mut want = vec![0.0; outer * inner];
            for o in 0..outer {
                for i in 0..inner {
                    let vals = (0..len).map(|l| x[(o * len + l) * inner + i] as f64);
                    want[o * inner + i] = match op {
                        ReduceOp::Sum => vals.sum(),
                        ReduceOp::Mean => vals.sum::<f64>() / len as f64,
                        _ => vals.fold(f64::NEG_INFINITY, f64::max),
                    };
                }
            }
            assert_close(&format!("{} {outer}x{len}x{inner}", op.name()), &got, &want, RTOL, ATOL);
        }
    }
}

#[test]
fn reduce_argmax_first_maximum() {
    let mut rng = Rng::new(6);
    for (outer, len, inner) in REDUCE_SHAPES {
        for ties in [true, false] {
            let n = outer * len * inner;
            let x = if ties { rng.small_int_vec(n) } else { rng.normal_vec(n) };
            let kernel = Kernel::Reduce(Reduce { op: ReduceOp::Argmax, outer, len, inner });
            let got = launch(kernel, vec![Init::Poison, Init::F(x.clone())]).remove(0).into_u32().unwrap();
            for o in 0..outer {
                for i in 0..inner {
                    let mut best = 0;
                    for l in 0..len {
                        if x[(o * len + l) * inner + i] > x[(o * len + best) * inner + i] {
                            best = l;
                        }
                    }
                    assert_eq!(got[o * inner + i], best as u32, "argmax {outer}x{len}x{inner} at ({o}, {i})");
                }
            }
        }
    }
}

const ROWS_COLS: [(usize, usize); 6] = [(1, 1), (3, 17), (17, 3), (5, 127), (1, 65), (300, 129)];

#[test]
fn softmax_and_log_softmax() {
    let mut rng = Rng::new(7);
    for log in [false, true] {
        for (rows, cols) in ROWS_COLS {
            let mut x: Vec<f32> = rng.normal_vec(rows * cols).iter().map(|v| 3.0 * v).collect();
            // A row of large logits: exp overflows f32 unless the kernel shifts by the max.
            x[..cols].iter_mut().for_each(|v| *v += 100.0);
            let got = out0(Kernel::softmax(rows, cols, log), vec![Init::F(x.clone())]);
            let mut want = Vec::new();
            for row in x.chunks(cols) {
                let row = to_f64(row);
                match log {
                    false => want.extend(common::softmax_row(&row)),
                    true => want.extend(row.iter().map(|v| v - common::logsumexp(&row))),
                }
            }
            let name = if log { "log_softmax" } else { "softmax" };
            assert_close(&format!("{name} {rows}x{cols}"), &got, &want, RTOL, ATOL);
        }
    }
}

#[test]
fn softmax_grads() {
    let mut rng = Rng::new(8);
    for log in [false, true] {
        for (rows, cols) in ROWS_COLS {
            let x = rng.normal_vec(rows * cols);
            let dy = rng.normal_vec(rows * cols);
            // y is the forward output, rounded to f32 as a real forward pass would leave it.
            let mut y = Vec::new();
            for row in x.chunks(cols) {
                let p = common::softmax_row(&to_f64(row));
                y.extend(p.iter().map(|&v| if log { v.ln() as f32 } else { v as f32 }));
            }
            let got =
                out0(Kernel::softmax_grad(rows, cols, log), vec![Init::F(y.clone()), Init::F(dy.clone())]);
            let mut want = Vec::new();
            for (yr, gr) in y.chunks(cols).zip(dy.chunks(cols)) {
                let (yr, gr) = (to_f64(yr), to_f64(gr));
                if log {
                    let s: f64 = gr.iter().sum();
                    want.extend(yr.iter().zip(&gr).map(|(y, g)| g - y.exp() * s));
                } else {
                    let dot: f64 = yr.iter().zip(&gr).map(|(y, g)| y * g).sum();
                    want.extend(yr.iter().zip(&gr).map(|(y, g)| y * (g - dot)));
                }
            }
            let name = if log { "log_softmax_grad" } else { "softmax_grad" };
            assert_close(&format!("{name} {rows}x{cols}"), &got, &want, RTOL, ATOL);
        }
    }
}

/// Attention's softmax over `[rows / T, T, T]` score blocks (T = cols): `scale * x`, and with
/// `causal` only columns `j <= r % T` of row `r`, the rest exactly 0.
#[test]
fn scaled_and_causal_softmax() {
    let mut rng = Rng::new(21);
    for (rows, cols) in [(1, 1), (3, 3), (15, 3), (34, 17), (258, 129), (7, 7)] {
        for (scale, causal) in [(0.37f32, true), (-1.3, true), (2.5, false), (1.0, true)] {
            let mut x: Vec<f32> = rng.normal_vec(rows * cols).iter().map(|v| 3.0 * v).collect();
            // Large masked logits: they must not take part in the max (nor overflow the sum).
            x[..cols].iter_mut().for_each(|v| *v += 100.0 / scale);
            let kernel = Kernel::Softmax(Softmax::Forward { rows, cols, log: false, scale, causal });
            let got = out0(kernel, vec![Init::F(x.clone())]);
            let mut want = Vec::new();
            for (r, row) in x.chunks(cols).enumerate() {
                let n = if causal { r % cols + 1 } else { cols };
                let scaled: Vec<f64> = row[..n].iter().map(|&v| (scale * v) as f64).collect();
                want.extend(common::softmax_row(&scaled));
                want.extend(std::iter::repeat_n(0.0, cols - n));
            }
            let what = format!("softmax {rows}x{cols} scale {scale} causal {causal}");
            assert_close(&what, &got, &want, RTOL, ATOL);
            if causal {
                let masked = got
                    .chunks(cols)
                    .enumerate()
                    .all(|(r, row)| row[r % cols + 1..].iter().all(|&v| v == 0.0));
                assert!(masked, "{what}: a masked entry is not exactly 0");
            }

            // backward from the forward's output, scaled
            let dy = rng.normal_vec(rows * cols);
            let got = out0(
                Kernel::Softmax(Softmax::Backward { rows, cols, log: false, scale }),
                vec![Init::F(got), Init::F(dy.clone())],
            );
            let mut want_dx = Vec::new();
            for (yr, gr) in want.chunks(cols).zip(dy.chunks(cols)) {
                let gr = to_f64(gr);
                let dot: f64 = yr.iter().zip(&gr).map(|(y, g)| y * g).sum();
                want_dx.extend(yr.iter().zip(&gr).map(|(y, g)| scale as f64 * y * (g - dot)));
            }
            assert_close(&format!("softmax_grad {rows}x{cols} scale {scale}"), &got, &want_dx, RTOL, ATOL);
        }
    }
    // log-softmax takes a scale too
    let (rows, cols) = (5, 17);
    let x = rng.normal_vec(rows * cols);
    let got = out0(
        Kernel::Softmax(Softmax::Forward { rows, cols, log: true, scale: -0.6, causal: false }),
        vec![Init::F(x.clone())],
    );
    let mut want = Vec::new();
    for row in x.chunks(cols) {
        let row: Vec<f64> = row.iter().map(|&v| (-0.6f32 * v) as f64).collect();
        want.extend(row.iter().map(|v| v - common::logsumexp(&row)));
    }
    assert_close("log_softmax scale -0.6", &got, &want, RTOL, ATOL);
}

#[test]
fn causal_softmax_rejects_what_it_cannot_mask() {
    let mut be = CpuBackend::new();
    let (y, x) = (be.alloc(DType::F32, 12).unwrap(), be.alloc(DType::F32, 12).unwrap());
    let bad = [
        Kernel::Softmax(Softmax::Forward { rows: 4, cols: 3, log: false, scale: 1.0, causal: true }), // 4 rows: not [.., 3, 3]
        Kernel::Softmax(Softmax::Forward { rows: 3, cols: 3, log: true, scale: 1.0, causal: true }),
        Kernel::Softmax(Softmax::Forward { rows: 3, cols: 3, log: false, scale: f32::NAN, causal: false }),
        Kernel::LayerNorm(LayerNorm::Forward { rows: 3, cols: 3, eps: -1.0 }),
    ];
    for k in bad {
        let err = be.prepare(&[Launch::new(k, &[y, x])]).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{k:?}: {err}");
    }
}

/// LayerNorm and RMSNorm with their affine in one launch give the same bits as the normalization
/// followed by a mul (and an add) in f32, and their backward the same bits as the backward of
/// `dy * w`, and `dy * xhat` the same bits as the normalization then a mul: rows shorter and
/// longer than the 256-element stack buffer of the backward.
#[test]
fn affine_norms_equal_the_normalization_then_the_affine() {
    let mut rng = Rng::new(23);
    for (rows, cols) in [(1, 1), (5, 17), (3, 300)] {
        for rms in [false, true] {
            let eps = 1e-5;
            let (x, dy) = (rng.normal_vec(rows * cols), rng.normal_vec(rows * cols));
            let (w, b) = (rng.normal_vec(cols), rng.normal_vec(cols));
            let (plain, plain_grad) = if rms {
                (LayerNorm::RmsForward { rows, cols, eps }, LayerNorm::RmsBackward { rows, cols, eps })
            } else {
                (LayerNorm::Forward { rows, cols, eps }, LayerNorm::Backward { rows, cols, eps })
            };
            let xhat = out0(Kernel::LayerNorm(plain), vec![Init::F(x.clone())]);
            let want: Vec<f32> = xhat
                .iter()
                .enumerate()
                .map(|(i, &v)| if rms { v * w[i % cols] } else { v * w[i % cols] + b[i % cols] })
                .collect();
            let mut init = vec![Init::F(x.clone()), Init::F(w.clone())];
            if !rms {
                init.push(Init::F(b.clone()));
            }
            let got = out0(Kernel::LayerNorm(LayerNorm::AffineForward { rows, cols, eps, rms }), init);
            assert_eq!(bits(&got), bits(&want), "forward {rows}x{cols} rms {rms}");
            let g: Vec<f32> = dy.iter().enumerate().map(|(i, &v)| v * w[i % cols]).collect();
            let want = out0(Kernel::LayerNorm(plain_grad), vec![Init::F(x.clone()), Init::F(g)]);
            let got = out0(
                Kernel::LayerNorm(LayerNorm::AffineBackward { rows, cols, eps, rms }),
                vec![Init::F(x.clone()), Init::F(dy.clone()), Init::F(w.clone())],
            );
            assert_eq!(bits(&got), bits(&want), "backward {rows}x{cols} rms {rms}");
            // dy * xhat, for the weight's gradient: the normalization then a mul
            let want: Vec<f32> = dy.iter().zip(&xhat).map(|(g, h)| g * h).collect();
            let got = out0(
                Kernel::LayerNorm(LayerNorm::DyXhat { rows, cols, eps, rms }),
                vec![Init::F(x.clone()), Init::F(dy.clone())],
            );
            assert_eq!(bits(&got), bits(&want), "dy * xhat {rows}x{cols} rms {rms}");
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Float64 LayerNorm of one row: `(x - mean) / sqrt(var + eps)`, biased variance.
fn layer_norm_row(x: &[f64], eps: f64) -> (Vec<f64>, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let rstd = 1.0 / (var + eps).sqrt();
    (x.iter().map(|v| (v - mean) * rstd).collect(), rstd)
}

#[test]
fn layer_norm_and_grad() {
    let mut rng = Rng::new(22);
    for (rows, cols) in [(1, 1), (3, 3), (17, 3), (5, 17), (2, 129), (3, 1000), (300, 64)] {
        for eps in [1e-5f32, 0.25] {
            // an offset row: a one-pass variance (E[x^2] - E[x]^2) would lose it
            let mut x = rng.normal_vec(rows * cols);
            x[..cols].iter_mut().for_each(|v| *v = 1000.0 + 0.01 * *v);
            let dy = rng.normal_vec(rows * cols);
            let got =
                out0(Kernel::LayerNorm(LayerNorm::Forward { rows, cols, eps }), vec![Init::F(x.clone())]);
            let got_dx = out0(
                Kernel::LayerNorm(LayerNorm::Backward { rows, cols, eps }),
                vec![Init::F(x.clone()), Init::F(dy.clone())],
            );
            let (mut want, mut want_dx) = (Vec::new(), Vec::new());
            for (xr, gr) in x.chunks(cols).zip(dy.chunks(cols)) {
                let (xhat, rstd) = layer_norm_row(&to_f64(xr), eps as f64);
                // dx from the Jacobian of xhat written out: d xhat_i / d x_j = rstd (delta_ij - 1/n - xhat_i xhat_j / n)
                let n = cols as f64;
                let g = to_f64(gr);
                for j in 0..cols {
                    let d: f64 = (0..cols)
                        .map(|i| g[i] * rstd * ((i == j) as u8 as f64 - 1.0 / n - xhat[i] * xhat[j] / n))
                        .sum();
                    want_dx.push(d);
                }
                want.extend(xhat);
            }
            assert_close(&format!("layer_norm {rows}x{cols} eps {eps}"), &got, &want, RTOL, ATOL);
            // the offset row's rstd is ~100: its gradient is that much larger, so compare relative to the row scale
            for (r, (g, w)) in got_dx.chunks(cols).zip(want_dx.chunks(cols)).enumerate() {
                let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                assert_close(
                    &format!("layer_norm_grad {rows}x{cols} eps {eps} row {r}"),
                    g,
                    w,
                    RTOL,
                    ATOL * scale,
                );
            }
        }
    }
}

const DLOSS: f32 = 0.7;

#[test]
fn mse_loss_and_grad() {
    let mut rng = Rng::new(9);
    for n in SIZES {
        let (p, t) = (rng.normal_vec(n), rng.normal_vec(n));
        let got = out0(Kernel::Loss(Loss::MseLoss { n }), vec![Init::F(p.clone()), Init::F(t.clone())]);
        let want = p.iter().zip(&t).map(|(&p, &t)| (p as f64 - t as f64).powi(2)).sum::<f64>() / n as f64;
        assert_close(&format!("mse_loss n={n}"), &got, &[want], RTOL, ATOL);
        let got = out0(
            Kernel::Loss(Loss::MseGrad { n }),
            vec![Init::F(p.clone()), Init::F(t.clone()), Init::F(vec![DLOSS])],
        );
        let want: Vec<f64> =
            p.iter().zip(&t).map(|(&p, &t)| 2.0 * (p as f64 - t as f64) / n as f64 * DLOSS as f64).collect();
        assert_close(&format!("mse_grad n={n}"), &got, &want, RTOL, ATOL);
    }
}

#[test]
fn bce_logits_loss_and_grad() {
    let mut rng = Rng::new(10);
    for n in SIZES {
        let mut z: Vec<f32> = rng.normal_vec(n).iter().map(|v| 4.0 * v).collect();
        z[0] = if n > 1 { 120.0 } else { -120.0 }; // exp(120) overflows f32: the formula must not
        let t = rng.uniform_vec(n, 0.0, 1.0);
        let got = out0(Kernel::Loss(Loss::BceLogitsLoss { n }), vec![Init::F(z.clone()), Init::F(t.clone())]);
        // -t ln(sigmoid z) - (1 - t) ln(1 - sigmoid z), with ln(sigmoid z) = -ln(1 + e^-z)
        let softplus = |x: f64| if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() };
        let want = z
            .iter()
            .zip(&t)
            .map(|(&z, &t)| {
                let (z, t) = (z as f64, t as f64);
                t * softplus(-z) + (1.0 - t) * softplus(z)
            })
            .sum::<f64>()
            / n as f64;
        assert_close(&format!("bce_logits_loss n={n}"), &got, &[want], RTOL, ATOL);
        let got = out0(
            Kernel::Loss(Loss::BceLogitsGrad { n }),
            vec![Init::F(z.clone()), Init::F(t.clone()), Init::F(vec![DLOSS])],
        );
        let want: Vec<f64> = z
            .iter()
            .zip(&t)
            .map(|(&z, &t)| (UnaryOp::Sigmoid.eval_f64(z as f64, 0.0) - t as f64) / n as f64 * DLOSS as f64)
            .collect();
        assert_close(&format!("bce_logits_grad n={n}"), &got, &want, RTOL, ATOL);
    }
}

/// Reference softmax cross-entropy. A label `>= cols` has an all-zero one-hot (documented on the
/// kernel): the row adds logsumexp to the loss and softmax / rows * dloss to the gradient.
fn ce_reference(z: &[f32], labels: &[u32], cols: usize, dloss: f64) -> (f64, Vec<f64>) {
    let rows = labels.len();
    let (mut loss, mut grad) = (0.0, Vec::new());
    for (row, &label) in z.chunks(cols).zip(labels) {
        let row = to_f64(row);
        let onehot = |c: usize| if c == label as usize { 1.0 } else { 0.0 };
        loss += common::logsumexp(&row) - row.get(label as usize).copied().unwrap_or(0.0);
        let p = common::softmax_row(&row);
        grad.extend(p.iter().enumerate().map(|(c, p)| (p - onehot(c)) / rows as f64 * dloss));
    }
    (loss / rows as f64, grad)
}

fn check_ce(rows: usize, cols: usize, z: Vec<f32>, labels: Vec<u32>, what: &str) {
    let (want_loss, want_grad) = ce_reference(&z, &labels, cols, DLOSS as f64);
    let got = out0(
        Kernel::Loss(Loss::SoftmaxCeLoss { rows, cols }),
        vec![Init::F(z.clone()), Init::U(labels.clone())],
    );
    assert_close(&format!("softmax_ce_loss {rows}x{cols} {what}"), &got, &[want_loss], RTOL, ATOL);
    let got = out0(
        Kernel::Loss(Loss::SoftmaxCeGrad { rows, cols }),
        vec![Init::F(z), Init::U(labels), Init::F(vec![DLOSS])],
    );
    assert_close(&format!("softmax_ce_grad {rows}x{cols} {what}"), &got, &want_grad, RTOL, ATOL);
}

#[test]
fn softmax_ce_loss_and_grad() {
    let mut rng = Rng::new(11);
    for (rows, cols) in ROWS_COLS {
        let mut z: Vec<f32> = rng.normal_vec(rows * cols).iter().map(|v| 3.0 * v).collect();
        z[..cols].iter_mut().for_each(|v| *v += 100.0);
        let labels = rng.labels(rows, cols);
        check_ce(rows, cols, z, labels, "labels in range");
    }
}

#[test]
fn softmax_ce_out_of_range_label_has_zero_onehot() {
    let mut rng = Rng::new(12);
    let (rows, cols) = (5, 7);
    let mut labels = rng.labels(rows, cols);
    labels[1] = cols as u32;
    labels[3] = u32::MAX;
    check_ce(rows, cols, rng.normal_vec(rows * cols), labels, "labels out of range");
}

/// Runs an optimizer for 3 steps with a new gradient and new hyper-parameters each step, through
/// one compiled plan, and checks param and state after every step against `reference`.
fn check_optimizer(
    name: &str,
    kernel: Kernel,
    n_state: usize,
    hyper_at: impl Fn(usize) -> Vec<f32>,
    mut reference: impl FnMut(&mut [f64], &mut [Vec<f64>], &[f32], &[f32]),
) {
    let len = kernel.slots()[0].len;
    let mut rng = Rng::new(13);
    let mut be = CpuBackend::new();
    let p0 = rng.normal_vec(len);
    let param = be.upload(HostData::F32(&p0)).unwrap();
    let grad = be.alloc(DType::F32, len).unwrap();
    let hyper = be.alloc(DType::F32, HYPER_LEN).unwrap();
    let state: Vec<BufferId> =
        (0..n_state).map(|_| be.upload(HostData::F32(&vec![0.0; len])).unwrap()).collect();
    let mut ids = vec![param, grad, hyper];
    ids.extend(&state);
    let plan = be.prepare(&[Launch::new(kernel, &ids)]).unwrap();
    let mut want_p = to_f64(&p0);
    let mut want_state = vec![vec![0.0; len]; n_state];
    for step in 0..3 {
        let g = rng.normal_vec(len);
        let mut h = hyper_at(step);
        h.resize(HYPER_LEN, 0.0);
        be.write(grad, HostData::F32(&g)).unwrap();
        be.write(hyper, HostData::F32(&h)).unwrap();
        let mut reads = vec![param];
        reads.extend(&state);
        let ticket = be.submit(plan, &reads).unwrap();
        let got = be.wait(ticket).unwrap();
        reference(&mut want_p, &mut want_state, &g, &h);
        let got_p = got[0].clone().into_f32().unwrap();
        assert_close(&format!("{name} step {step} param"), &got_p, &want_p, RTOL, ATOL);
        for (s, (got_s, want_s)) in got[1..].iter().zip(&want_state).enumerate() {
            let got_s = got_s.clone().into_f32().unwrap();
            assert_close(&format!("{name} step {step} state {s}"), &got_s, want_s, RTOL, ATOL);
        }
    }
}

#[test]
fn sgd_plain_momentum_nesterov_weight_decay() {
    // (momentum, weight decay, nesterov)
    let configs = [
        (0.0, 0.0, 0.0),
        (0.9, 0.0, 0.0),
        (0.9, 0.0, 1.0),
        (0.8, 0.01, 0.0),
        (0.0, 0.05, 0.0),
        (0.7, 0.02, 1.0),
    ];
    for (mom, wd, nest) in configs {
        let lr = [0.1, 0.05, 0.02];
        check_optimizer(
            &format!("sgd momentum={mom} wd={wd} nesterov={nest}"),
            Kernel::Optim(Optim::Sgd { len: 33, decayed: 33 }),
            1,
            |t| vec![lr[t], mom, wd, nest],
            |p, state, g, h| {
                let (lr, mom, wd) = (h[0] as f64, mom as f64, wd as f64);
                let v = &mut state[0];
                for i in 0..p.len() {
                    let g = g[i] as f64 + wd * p[i];
                    v[i] = mom * v[i] + g;
                    let step = if nest == 1.0 {
                        g + mom * v[i]
                    } else if mom != 0.0 {
                        v[i]
                    } else {
                        g
                    };
                    p[i] -= lr * step;
                }
            },
        );
    }
}

fn check_adam(decoupled: bool) {
    let (b1, b2, eps, wd) = (0.9f32, 0.999f32, 1e-8f32, 0.01f32);
    let lr = [1e-2, 5e-3, 2e-3];
    let name = if decoupled { "adamw" } else { "adam" };
    let mut t = 0;
    check_optimizer(
        name,
        Kernel::Optim(Optim::Adam { len: 65, decoupled, decayed: 65 }),
        2,
        |step| {
            let t = step as i32 + 1;
            vec![lr[step], b1, b2, eps, wd, 1.0 - b1.powi(t), 1.0 - b2.powi(t)]
        },
        |p, state, g, h| {
            t += 1;
            let (lr, b1, b2, eps, wd) = (h[0] as f64, b1 as f64, b2 as f64, eps as f64, wd as f64);
            let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            let [m, v] = state else { unreachable!() };
            for i in 0..p.len() {
                let mut g = g[i] as f64;
                if decoupled {
                    p[i] *= 1.0 - lr * wd;
                } else {
                    g += wd * p[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                p[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
            }
        },
    );
}

#[test]
fn adam_three_steps() {
    check_adam(false);
}

#[test]
fn adamw_three_steps() {
    check_adam(true);
}

#[test]
fn rmsprop_three_steps() {
    let (alpha, eps, wd) = (0.99f32, 1e-8f32, 0.01f32);
    let lr = [1e-2, 5e-3, 2e-3];
    check_optimizer(
        "rmsprop",
        Kernel::Optim(Optim::Rmsprop { len: 17, decayed: 17 }),
        1,
        |step| vec![lr[step], alpha, eps, wd],
        |p, state, g, h| {
            let (lr, alpha, eps, wd) = (h[0] as f64, alpha as f64, eps as f64, wd as f64);
            let sq = &mut state[0];
            for i in 0..p.len() {
                let g = g[i] as f64 + wd * p[i];
                sq[i] = alpha * sq[i] + (1.0 - alpha) * g * g;
                p[i] -= lr * g / (sq[i].sqrt() + eps);
            }
        },
    );
}

/// BatchNorm's running statistics over 3 steps through one compiled plan, a new batch statistic
/// each step, against float64 PyTorch rules: the mean with momentum 0.1, the variance with the
/// unbiased factor `n / (n - 1)` (n = 10 values per channel), and the batch counter, which must
/// stay an exact whole number.
#[test]
fn running_update_three_steps_against_float64() {
    let len = 37;
    let (m, n) = (0.1f64, 10.0f64);
    // (name, unbiased factor or None for the counter)
    for (name, unbias) in [("running_mean", Some(1.0)), ("running_var", Some(n / (n - 1.0))), ("count", None)]
    {
        let mut rng = Rng::new(29);
        let mut be = CpuBackend::new();
        let r0 = match unbias {
            Some(_) => rng.uniform_vec(len, 0.5, 2.0),
            None => (0..len).map(|i| (i * 1000) as f32).collect(),
        };
        let running = be.upload(HostData::F32(&r0)).unwrap();
        let value = be.alloc(DType::F32, len).unwrap();
        let kernel = match unbias {
            Some(u) => {
                Kernel::Running(RunningUpdate { len, keep: 1.0 - m as f32, gain: m as f32, scale: u as f32 })
            }
            None => Kernel::Running(RunningUpdate { len, keep: 1.0, gain: 1.0, scale: 1.0 }),
        };
        let plan = be.prepare(&[Launch::new(kernel, &[running, value])]).unwrap();
        let mut want = to_f64(&r0);
        for step in 0..3 {
            let v = if unbias.is_some() { rng.normal_vec(len) } else { vec![1.0; len] };
            be.write(value, HostData::F32(&v)).unwrap();
            let ticket = be.submit(plan, &[running]).unwrap();
            let got = be.wait(ticket).unwrap().remove(0).into_f32().unwrap();
            for (w, &v) in want.iter_mut().zip(&v) {
                *w = match unbias {
                    Some(u) => (1.0 - m) * *w + m * v as f64 * u,
                    None => *w + 1.0,
                };
            }
            match unbias {
                Some(_) => assert_close(&format!("{name} step {step}"), &got, &want, RTOL, ATOL),
                None => {
                    assert_eq!(got, want.iter().map(|&w| w as f32).collect::<Vec<_>>(), "{name} step {step}")
                }
            }
        }
    }
}

const GATHER_SHAPES: [(usize, usize, usize, usize); 4] =
    [(1, 1, 1, 1), (3, 7, 5, 11), (2, 17, 1, 33), (1, 65, 3, 127)];

/// Indices with repeats and, past the first one, some out of range (`axis_len` and far past it).
fn indices(rng: &mut Rng, n: usize, axis_len: usize) -> Vec<u32> {
    let mut idx = rng.labels(n, axis_len);
    if n >= 3 {
        idx[1] = axis_len as u32;
        idx[2] = u32::MAX;
        idx[n - 1] = idx[0]; // a repeat even for large axes
    }
    idx
}

#[test]
fn gather_with_out_of_range_indices() {
    let mut rng = Rng::new(14);
    for (outer, axis_len, inner, n_idx) in GATHER_SHAPES {
        let table = rng.normal_vec(outer * axis_len * inner);
        let idx = indices(&mut rng, n_idx, axis_len);
        let kernel = Kernel::Memory(Memory::Gather { outer, axis_len, inner, n_idx });
        let got = out0(kernel, vec![Init::F(table.clone()), Init::U(idx.clone())]);
        let mut want = vec![0.0; outer * n_idx * inner];
        for o in 0..outer {
            for (j, &a) in idx.iter().enumerate() {
                for i in 0..inner {
                    if (a as usize) < axis_len {
                        want[(o * n_idx + j) * inner + i] =
                            table[(o * axis_len + a as usize) * inner + i] as f64;
                    }
                }
            }
        }
        assert_close(&format!("gather {outer}x{axis_len}x{inner} n_idx={n_idx}"), &got, &want, RTOL, ATOL);
    }
}

#[test]
fn scatter_add_with_repeated_and_out_of_range_indices() {
    let mut rng = Rng::new(15);
    for (outer, axis_len, inner, n_idx) in GATHER_SHAPES {
        let src = rng.normal_vec(outer * n_idx * inner);
        let idx = indices(&mut rng, n_idx, axis_len);
        let kernel = Kernel::Memory(Memory::ScatterAdd { outer, axis_len, inner, n_idx });
        // The output starts as NaN: scatter_add overwrites, it does not accumulate into old data.
        let got = out0(kernel, vec![Init::F(src.clone()), Init::U(idx.clone())]);
        let mut want = vec![0.0; outer * axis_len * inner];
        for o in 0..outer {
            for (j, &a) in idx.iter().enumerate() {
                for i in 0..inner {
                    if (a as usize) < axis_len {
                        want[(o * axis_len + a as usize) * inner + i] +=
                            src[(o * n_idx + j) * inner + i] as f64;
                    }
                }
            }
        }
        assert_close(
            &format!("scatter_add {outer}x{axis_len}x{inner} n_idx={n_idx}"),
            &got,
            &want,
            RTOL,
            ATOL,
        );
    }
}

#[test]
fn fill_and_copy() {
    let mut rng = Rng::new(16);
    for len in SIZES {
        let got = out0(Kernel::Memory(Memory::Fill { len, value: -2.5 }), vec![]);
        assert_close(&format!("fill len={len}"), &got, &vec![-2.5; len], RTOL, ATOL);
        let src = rng.normal_vec(len);
        let got = out0(Kernel::Memory(Memory::Copy { len }), vec![Init::F(src.clone())]);
        assert_close(&format!("copy len={len}"), &got, &to_f64(&src), RTOL, ATOL);
    }
}

#[test]
fn matmul_transposes_batches_and_shared_operands() {
    let mut rng = Rng::new(17);
    let sizes = [(1, 1, 1), (3, 17, 33), (65, 33, 127), (1, 127, 3), (128, 129, 130)];
    let batching =
        [(1, false, false), (3, true, true), (3, true, false), (3, false, true), (2, false, false)];
    for (m, n, k) in sizes {
        for (batch, a_batched, b_batched) in batching {
            for trans_a in [false, true] {
                for trans_b in [false, true] {
                    let tile = MatmulTile::Small;
                    let mm = Matmul {
                        batch,
                        trans_a,
                        trans_b,
                        a_batched,
                        b_batched,
                        tile,
                        ..Matmul::new(m, n, k)
                    };
                    let (a, b) = (rng.normal_vec(mm.a_len()), rng.normal_vec(mm.b_len()));
                    let got = out0(Kernel::Matmul(mm), vec![Init::F(a.clone()), Init::F(b.clone())]);
                    let mut want = Vec::new();
                    for bi in 0..batch {
                        let a = &a[if a_batched { bi * m * k } else { 0 }..][..m * k];
                        let b = &b[if b_batched { bi * k * n } else { 0 }..][..k * n];
                        want.extend(common::matmul(a, b, m, n, k, trans_a, trans_b));
                    }
                    assert_rel_norm(&format!("matmul {mm:?}"), &got, &want, 1e-5);
                }
            }
        }
    }
}

/// `C = op(A) @ op(B) + D`: a bias on every row, or a tensor of C's shape, against float64; both
/// GEMMs' accumulation into the addend (large k crosses the gemm crate's depth blocks).
#[test]
fn matmul_adds_a_bias_or_a_residual() {
    let mut rng = Rng::new(71);
    for (batch, m, n, k, a_batched, b_batched) in
        [(1, 3, 17, 33, false, false), (3, 5, 7, 9, true, false), (2, 65, 33, 700, true, true)]
    {
        for (trans_a, trans_b) in [(false, true), (true, false)] {
            for addend in [Addend::Bias, Addend::Full] {
                let tile = MatmulTile::Small;
                let mm =
                    Matmul { batch, trans_a, trans_b, a_batched, b_batched, tile, ..Matmul::new(m, n, k) }
                        .with_addend(addend);
                let (a, b, d) =
                    (rng.normal_vec(mm.a_len()), rng.normal_vec(mm.b_len()), rng.normal_vec(mm.d_len()));
                let init = vec![Init::F(a.clone()), Init::F(b.clone()), Init::F(d.clone())];
                let got = out0(Kernel::Matmul(mm), init);
                let mut want = Vec::new();
                for bi in 0..batch {
                    let a = &a[if a_batched { bi * m * k } else { 0 }..][..m * k];
                    let b = &b[if b_batched { bi * k * n } else { 0 }..][..k * n];
                    want.extend(common::matmul(a, b, m, n, k, trans_a, trans_b));
                }
                for (i, w) in want.iter_mut().enumerate() {
                    *w += d[if addend == Addend::Bias { i % n } else { i }] as f64;
                }
                assert_rel_norm(&format!("matmul {mm:?}"), &got, &want, 1e-5);
            }
        }
    }
}

// ---- errors ---------------------------------------------------------------------------------------

fn add_kernel(len: usize) -> Kernel {
    Kernel::Binary(Binary { op: BinaryOp::Add, bc: Broadcast::same(len) })
}

#[test]
fn wrong_buffer_count_is_an_arity_error() {
    let mut be = CpuBackend::new();
    let (c, a) = (be.alloc(DType::F32, 4).unwrap(), be.alloc(DType::F32, 4).unwrap());
    let err = be.prepare(&[Launch::new(add_kernel(4), &[c, a])]).unwrap_err();
    assert!(matches!(err, Error::Arity { op: "add", expected: 3, got: 2 }), "{err}");
    assert!(err.to_string().contains("add"));
}

#[test]
fn wrong_dtype_is_a_binding_error() {
    let mut be = CpuBackend::new();
    let c = be.alloc(DType::F32, 5).unwrap();
    let x = be.alloc(DType::F32, 5).unwrap();
    let idx = be.alloc(DType::U32, 5).unwrap();
    let err = be
        .prepare(&[Launch::new(
            Kernel::Unary(Unary::Forward { op: UnaryOp::Exp, len: 5, alpha: 0.0 }),
            &[c, idx],
        )])
        .unwrap_err();
    assert!(matches!(err, Error::Binding { op: "exp_forward", slot: 1, got_dtype: DType::U32, .. }), "{err}");
    let argmax = Kernel::Reduce(Reduce { op: ReduceOp::Argmax, outer: 1, len: 5, inner: 1 });
    let err = be.prepare(&[Launch::new(argmax, &[c, x])]).unwrap_err();
    assert!(matches!(err, Error::Binding { op: "argmax", slot: 0, got_dtype: DType::F32, .. }), "{err}");
    assert!(err.to_string().contains("argmax"));
}

#[test]
fn too_short_buffer_is_a_binding_error() {
    let mut be = CpuBackend::new();
    let c = be.alloc(DType::F32, 6).unwrap();
    let a = be.alloc(DType::F32, 6).unwrap();
    let b = be.alloc(DType::F32, 5).unwrap();
    let err = be.prepare(&[Launch::new(add_kernel(6), &[c, a, b])]).unwrap_err();
    assert!(matches!(err, Error::Binding { op: "add", slot: 2, need: 6, got: 5, .. }), "{err}");
    // A longer buffer is fine: the kernel uses its first elements.
    let long = be.alloc(DType::F32, 9).unwrap();
    be.prepare(&[Launch::new(add_kernel(6), &[c, a, long])]).unwrap();
}

#[test]
fn aliasing_a_written_buffer_is_a_shape_error() {
    let mut be = CpuBackend::new();
    let c = be.alloc(DType::F32, 3).unwrap();
    let a = be.alloc(DType::F32, 3).unwrap();
    let err = be.prepare(&[Launch::new(add_kernel(3), &[c, a, c])]).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "add", .. }), "{err}");
    // Reading one buffer twice is allowed.
    be.prepare(&[Launch::new(add_kernel(3), &[c, a, a])]).unwrap();
}

#[test]
fn zero_sized_dims_are_shape_errors() {
    let mut be = CpuBackend::new();
    let x = be.alloc(DType::F32, 4).unwrap();
    let y = be.alloc(DType::F32, 4).unwrap();
    let cases = [
        (Kernel::Matmul(Matmul::new(2, 0, 2)), vec![y, x, x], "matmul"),
        (Kernel::Reduce(Reduce { op: ReduceOp::Sum, outer: 1, len: 0, inner: 4 }), vec![y, x], "reduce_sum"),
        (Kernel::softmax(0, 4, true), vec![y, x], "log_softmax"),
        (Kernel::LayerNorm(LayerNorm::Forward { rows: 4, cols: 0, eps: 1e-5 }), vec![y, x], "layer_norm"),
        (Kernel::Unary(Unary::Forward { op: UnaryOp::Relu, len: 0, alpha: 0.0 }), vec![y, x], "relu_forward"),
    ];
    for (kernel, bufs, op) in cases {
        let err = be.prepare(&[Launch::new(kernel, &bufs)]).unwrap_err();
        assert!(matches!(&err, Error::Shape { op: o, .. } if *o == op), "{op}: {err}");
        assert!(err.to_string().starts_with(op), "{err}");
    }
}

#[test]
fn released_buffer_under_a_plan_is_an_error_not_a_panic() {
    let mut be = CpuBackend::new();
    let (c, a, b) = (
        be.alloc(DType::F32, 3).unwrap(),
        be.alloc(DType::F32, 3).unwrap(),
        be.alloc(DType::F32, 3).unwrap(),
    );
    let plan = be.prepare(&[Launch::new(add_kernel(3), &[c, a, b])]).unwrap();
    be.release(b).unwrap();
    assert!(matches!(be.submit(plan, &[]), Err(Error::UnknownBuffer(_))));
    // Its id reused by a shorter buffer: caught too.
    let short = be.alloc(DType::F32, 2).unwrap();
    assert_eq!(short, b);
    assert!(matches!(be.submit(plan, &[]), Err(Error::Binding { op: "add", .. })));
}

#[test]
fn host_data_mismatch_on_write() {
    let mut be = CpuBackend::new();
    let x = be.alloc(DType::F32, 3).unwrap();
    assert!(matches!(be.write(x, HostData::U32(&[1, 2, 3])), Err(Error::HostData { .. })));
    assert!(matches!(be.write(x, HostData::F32(&[1.0; 4])), Err(Error::HostData { .. })));
}

// ---- pool and plans -------------------------------------------------------------------------------

#[test]
fn pool_reuses_a_released_buffer() {
    let mut be = CpuBackend::new();
    let a = be.alloc(DType::F32, 100).unwrap();
    assert_eq!(be.stats().buffers_created, 1);
    be.release(a).unwrap();
    assert_eq!(be.stats().buffers_live, 0);
    let _b = be.alloc(DType::F32, 100).unwrap();
    let s = be.stats();
    assert_eq!((s.buffers_created, s.buffers_live, s.bytes_held), (1, 1, 400));
    let _c = be.alloc(DType::F32, 100).unwrap();
    let _d = be.alloc(DType::U32, 100).unwrap();
    assert_eq!(be.stats().buffers_created, 3, "a different size or dtype is a new buffer");
}

#[test]
fn a_plan_runs_many_times_and_chains_launches() {
    // y = relu(x @ w + bias); loss = mean((y - t)^2), compiled once and submitted 3 times.
    let mut rng = Rng::new(18);
    let (m, n, k) = (5, 3, 4);
    let mut be = CpuBackend::new();
    let (x, w, bias, t) =
        (rng.normal_vec(m * k), rng.normal_vec(k * n), rng.normal_vec(n), rng.normal_vec(m * n));
    let xb = be.upload(HostData::F32(&x)).unwrap();
    let wb = be.upload(HostData::F32(&w)).unwrap();
    let bb = be.upload(HostData::F32(&bias)).unwrap();
    let tb = be.upload(HostData::F32(&t)).unwrap();
    let (h, y, loss) = (
        be.alloc(DType::F32, m * n).unwrap(),
        be.alloc(DType::F32, m * n).unwrap(),
        be.alloc(DType::F32, 1).unwrap(),
    );
    let plan = be
        .prepare(&[
            Launch::new(Kernel::Matmul(Matmul::new(m, n, k)), &[h, xb, wb]),
            Launch::new(
                Kernel::Unary(Unary::BiasAct { op: UnaryOp::Relu, rows: m, cols: n, alpha: 0.0 }),
                &[y, h, bb],
            ),
            Launch::new(Kernel::Loss(Loss::MseLoss { n: m * n }), &[loss, y, tb]),
        ])
        .unwrap();
    let h_ref = common::matmul(&x, &w, m, n, k, false, false);
    let y_ref: Vec<f64> = h_ref.iter().enumerate().map(|(i, &v)| (v + bias[i % n] as f64).max(0.0)).collect();
    let want = y_ref.iter().zip(&t).map(|(y, &t)| (y - t as f64).powi(2)).sum::<f64>() / (m * n) as f64;
    for _ in 0..3 {
        let ticket = be.submit(plan, &[loss]).unwrap();
        let got = be.wait(ticket).unwrap().remove(0).into_f32().unwrap();
        assert_close("mlp loss", &got, &[want], RTOL, ATOL);
    }
    be.read(loss).unwrap();
    let s = be.stats();
    assert_eq!((s.plans_compiled, s.buffers_created), (1, 7), "reads and submits create nothing");
    be.drop_plan(plan).unwrap();
    assert!(matches!(be.submit(plan, &[]), Err(Error::UnknownPlan(_))));
}

#[test]
fn info_describes_the_native_backend() {
    let be = CpuBackend::new();
    let info = be.info();
    assert_eq!((info.kind, info.api.as_str()), (DeviceKind::Cpu, "native"));
    assert!(info.name.starts_with("native CPU (") && info.name.ends_with(" threads)"), "{}", info.name);
}

// ---- layout kernels: im2col / col2im, permute, window --------------------------------------

/// Odd windows: asymmetric stride, padding and dilation, and a window as large as the padded image.
fn conv_windows() -> Vec<Window2d> {
    vec![
        Window2d::square(1, 1, 1, 1, 1, 1, 0, 1),
        Window2d::square(2, 3, 7, 5, 3, 1, 1, 1),
        Window2d { n: 3, c: 2, h: 9, w: 11, kh: 3, kw: 2, sh: 2, sw: 3, ph: 1, pw: 2, dh: 2, dw: 1 },
        Window2d::square(2, 3, 8, 8, 2, 2, 0, 1),
        Window2d::square(1, 2, 3, 3, 5, 1, 1, 1),
        // taps that miss the image for every output position (padding 2 > the first taps)
        Window2d { n: 2, c: 1, h: 4, w: 3, kh: 3, kw: 3, sh: 1, sw: 2, ph: 2, pw: 2, dh: 3, dw: 1 },
    ]
}

#[test]
fn im2col_and_col2im_against_their_definition() {
    let mut rng = Rng::new(40);
    for win in conv_windows() {
        let taps = win.taps(); // scatter form, independent of the kernels' gather form
        assert_eq!(taps.len(), win.cols_len());
        let x = rng.normal_vec(win.image_len());
        for pad_value in [0.0f32, -7.5] {
            let got = out0(Kernel::Conv(Conv::Im2col { win, pad_value }), vec![Init::F(x.clone())]);
            let want: Vec<f64> = taps.iter().map(|t| t.map_or(pad_value as f64, |i| x[i] as f64)).collect();
            assert_close(&format!("im2col {win:?} pad {pad_value}"), &got, &want, RTOL, ATOL);
        }
        let cols = rng.normal_vec(win.cols_len());
        let got = out0(Kernel::Conv(Conv::Col2im { win }), vec![Init::F(cols.clone())]);
        let mut want = vec![0.0f64; win.image_len()];
        for (t, &v) in taps.iter().zip(&cols) {
            if let Some(i) = t {
                want[*i] += v as f64;
            }
        }
        assert_close(&format!("col2im {win:?}"), &got, &want, RTOL, ATOL);
    }
}

/// Pooling windows: padding at most half the kernel (as `max_pool2d` requires), overlapping and
/// dilated windows, stride larger than the kernel.
fn pool_windows() -> Vec<Window2d> {
    vec![
        Window2d::square(1, 1, 1, 1, 1, 1, 0, 1),
        Window2d::square(2, 3, 8, 8, 2, 2, 0, 1),
        Window2d::square(2, 3, 7, 5, 3, 1, 1, 1),
        Window2d { n: 3, c: 2, h: 9, w: 11, kh: 3, kw: 2, sh: 2, sw: 3, ph: 1, pw: 1, dh: 2, dw: 1 },
        Window2d::square(1, 2, 9, 7, 2, 3, 1, 1),
    ]
}

/// Max pooling against its definition (PyTorch's: the first largest tap of each window in
/// (ky, kx) order wins, padding never does, the backward routes each window's gradient to its
/// winner), on values from a coarse grid so windows hold ties, and with NaN and -inf entries.
#[test]
fn max_pool_and_backward_against_the_definition() {
    let mut rng = Rng::new(43);
    for win in pool_windows() {
        let taps = win.taps(); // [n, c, kh, kw, oh*ow]: scatter form, independent of the kernels
        let (k, l) = (win.kh * win.kw, win.oh().unwrap() * win.ow().unwrap());
        let mut x: Vec<f32> =
            rng.normal_vec(win.image_len()).iter().map(|v| (v * 2.0).round() / 2.0).collect();
        if x.len() > 10 {
            (x[3], x[7]) = (f32::NAN, f32::NEG_INFINITY);
        }
        let gy = rng.normal_vec(win.n * win.c * l);
        let mut want_y = vec![0.0f64; gy.len()];
        let mut want_dx = vec![0.0f64; x.len()];
        for plane in 0..win.n * win.c {
            for pos in 0..l {
                // as PyTorch: the first tap inside the image, then any larger one or a NaN
                let (mut best, mut value) = (None::<usize>, f32::NEG_INFINITY);
                for tap in 0..k {
                    let Some(i) = taps[(plane * k + tap) * l + pos] else { continue };
                    if best.is_none() {
                        best = Some(i);
                    }
                    if x[i] > value || x[i].is_nan() {
                        (best, value) = (Some(i), x[i]);
                    }
                }
                let b = best.expect("a window has a tap inside the image");
                want_y[plane * l + pos] = value as f64;
                want_dx[b] += gy[plane * l + pos] as f64;
            }
        }
        let y = out0(Kernel::Pooling(Pooling::MaxPool { win }), vec![Init::F(x.clone())]);
        for (i, (&g, &w)) in y.iter().zip(&want_y).enumerate() {
            assert!(g as f64 == w || (g.is_nan() && w.is_nan()), "max_pool {win:?} [{i}]: {g} vs {w}");
        }
        let dx = out0(
            Kernel::Pooling(Pooling::MaxPoolGrad { win }),
            vec![Init::F(x.clone()), Init::F(gy.clone())],
        );
        assert_close(&format!("max_pool_grad {win:?}"), &dx, &want_dx, RTOL, ATOL);
    }
}

#[test]
fn permute_against_multi_index() {
    let mut rng = Rng::new(41);
    let cases: [(&[usize], &[usize]); 5] = [
        (&[1], &[0]),
        (&[3, 17], &[1, 0]),
        (&[2, 5, 3, 7], &[0, 2, 1, 3]),
        (&[2, 5, 3, 7], &[3, 1, 0, 2]),
        (&[5, 33, 4], &[2, 0, 1]),
    ];
    for (shape, perm) in cases {
        let x = rng.normal_vec(shape.iter().product());
        let got = out0(
            Kernel::Layout(Layout::Permute(Permute::new("test", shape, perm).unwrap())),
            vec![Init::F(x.clone())],
        );
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let mut want = Vec::with_capacity(x.len());
        for flat in 0..x.len() {
            let mut rem = flat;
            let mut coord = vec![0; shape.len()];
            for d in (0..shape.len()).rev() {
                coord[d] = rem % out_shape[d];
                rem /= out_shape[d];
            }
            // output coordinate d is input coordinate perm[d]
            let mut src = vec![0; shape.len()];
            for d in 0..shape.len() {
                src[perm[d]] = coord[d];
            }
            want.push(x[src.iter().zip(shape).fold(0, |acc, (&c, &s)| acc * s + c)] as f64);
        }
        assert_close(&format!("permute {shape:?} {perm:?}"), &got, &want, RTOL, ATOL);
    }
    assert!(Permute::new("test", &[2, 3], &[0, 0]).is_err());
    assert!(Permute::new("test", &[2, 3], &[1]).is_err());
}

#[test]
fn window_slices_and_pads() {
    let mut rng = Rng::new(42);
    for (outer, src_len, out_len, inner, offset) in
        [(1, 1, 1, 1, 0), (3, 17, 5, 7, 4), (2, 5, 13, 3, -6), (7, 9, 9, 65, -3), (4, 33, 20, 17, 13)]
    {
        let x = rng.normal_vec(outer * src_len * inner);
        let got = out0(
            Kernel::Layout(Layout::SlicePad { outer, src_len, out_len, inner, offset }),
            vec![Init::F(x.clone())],
        );
        let mut want = vec![0.0f64; outer * out_len * inner];
        for o in 0..outer {
            for j in 0..out_len {
                let s = j as i64 + offset as i64;
                if s >= 0 && s < src_len as i64 {
                    for i in 0..inner {
                        want[(o * out_len + j) * inner + i] =
                            x[(o * src_len + s as usize) * inner + i] as f64;
                    }
                }
            }
        }
        assert_close(
            &format!("window {outer}x{src_len}->{out_len}x{inner} offset {offset}"),
            &got,
            &want,
            RTOL,
            ATOL,
        );
    }
}

#[test]
fn a_window_larger_than_the_image_is_a_shape_error() {
    let win = Window2d::square(1, 1, 3, 3, 5, 1, 0, 1);
    assert!(Kernel::Conv(Conv::Im2col { win, pad_value: 0.0 }).validate().is_err());
    assert!(Kernel::Conv(Conv::Col2im { win: Window2d::square(1, 1, 3, 3, 3, 0, 0, 1) }).validate().is_err());
}

/// The float64 reference's erf (used by GELU's reference) against libm's.
#[test]
fn the_reference_erf_matches_libm() {
    for i in -8000..=8000 {
        let x = i as f64 / 1000.0;
        let (got, want) = (kiln_device::kernels::unary::erf_f64(x), libm::erf(x));
        assert!((got - want).abs() <= 1e-10, "erf({x}) = {got}, libm {want}");
    }
}
