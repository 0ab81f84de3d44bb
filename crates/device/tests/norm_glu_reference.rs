//! The Llama ops' CPU kernels against float64 references written here: RMSNorm and its backward
//! (from the Jacobian written out), the SwiGLU product and its two gradients (out to |gate| = 100,
//! where a naive sigmoid overflows), and the optimizer kernels' decay attribute (an exempt AdamW
//! parameter is updated exactly as by Adam without decay; a decayed one as PyTorch's AdamW).
//! Odd sizes, seeded random inputs, no zeros; outputs poisoned with NaN; float32 tolerances.

mod common;

use common::{assert_close, to_f64, Rng, ATOL, RTOL};
use kiln_device::cpu::CpuBackend;
use kiln_device::*;

/// Runs `kernel` on the CPU with `init` per slot (`None`: NaN-poisoned) and returns every slot,
/// once serially and once split over rayon; the two must agree bit for bit.
fn launch(kernel: Kernel, init: &[Option<Vec<f32>>]) -> Vec<Vec<f32>> {
    let run = |mut be: CpuBackend| {
        let slots = kernel.slots();
        assert_eq!(slots.len(), init.len(), "{}: one init per slot", kernel.name());
        let ids: Vec<BufferId> = slots
            .iter()
            .zip(init)
            .map(|(s, v)| {
                let poison = vec![f32::NAN; s.len];
                be.upload(HostData::F32(v.as_deref().unwrap_or(&poison))).unwrap()
            })
            .collect();
        be.run(Launch::new(kernel, &ids)).unwrap();
        ids.iter().map(|&id| be.read(id).unwrap().into_f32().unwrap()).collect::<Vec<_>>()
    };
    let (serial, threaded) = (run(CpuBackend::new()), run(CpuBackend::with_parallel_min(1)));
    for (s, t) in serial.iter().zip(&threaded) {
        assert!(
            s.iter().zip(t).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: serial vs threaded",
            kernel.name()
        );
    }
    serial
}

/// Float64 RMSNorm of one row: `(x * rstd, rstd)`, `rstd = 1 / sqrt(mean(x^2) + eps)`.
fn rms_norm_row(x: &[f64], eps: f64) -> (Vec<f64>, f64) {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let rstd = 1.0 / (ms + eps).sqrt();
    (x.iter().map(|v| v * rstd).collect(), rstd)
}

#[test]
fn rms_norm_and_grad() {
    let mut rng = Rng::new(31);
    for (rows, cols) in [(1, 1), (3, 3), (7, 37), (5, 17), (2, 129), (3, 1031), (300, 64)] {
        for eps in [1e-6f32, 0.25] {
            // a large row and a tiny one (where eps dominates the mean square)
            let mut x = rng.normal_vec(rows * cols);
            x[..cols].iter_mut().for_each(|v| *v *= 1000.0);
            if rows > 1 {
                x[cols..2 * cols].iter_mut().for_each(|v| *v *= 1e-3);
            }
            let dy = rng.normal_vec(rows * cols);
            let fwd = Kernel::LayerNorm(LayerNorm::RmsForward { rows, cols, eps });
            let bwd = Kernel::LayerNorm(LayerNorm::RmsBackward { rows, cols, eps });
            let got = launch(fwd, &[None, Some(x.clone())]).remove(0);
            let got_dx = launch(bwd, &[None, Some(x.clone()), Some(dy.clone())]).remove(0);
            let (mut want, mut want_dx) = (Vec::new(), Vec::new());
            for (xr, gr) in x.chunks(cols).zip(dy.chunks(cols)) {
                let (xhat, rstd) = rms_norm_row(&to_f64(xr), eps as f64);
                // d xhat_i / d x_j = rstd (delta_ij - xhat_i xhat_j / n)
                let (n, g) = (cols as f64, to_f64(gr));
                for j in 0..cols {
                    let d: f64 = (0..cols)
                        .map(|i| g[i] * rstd * ((i == j) as u8 as f64 - xhat[i] * xhat[j] / n))
                        .sum();
                    want_dx.push(d);
                }
                want.extend(xhat);
            }
            assert_close(&format!("rms_norm {rows}x{cols} eps {eps}"), &got, &want, RTOL, ATOL);
            for (r, (g, w)) in got_dx.chunks(cols).zip(want_dx.chunks(cols)).enumerate() {
                let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let what = format!("rms_norm_grad {rows}x{cols} eps {eps} row {r}");
                assert_close(&what, g, w, RTOL, ATOL * scale);
            }
        }
    }
}

#[test]
fn rms_norm_rejects_a_bad_eps() {
    let mut be = CpuBackend::new();
    let (y, x) = (be.alloc(DType::F32, 12).unwrap(), be.alloc(DType::F32, 12).unwrap());
    for eps in [0.0, -1e-5, f32::NAN, f32::INFINITY] {
        let k = Kernel::LayerNorm(LayerNorm::RmsForward { rows: 3, cols: 4, eps });
        let err = be.prepare(&[Launch::new(k, &[y, x])]).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{k:?}: {err}");
        for p in [Prim::RmsNorm { eps }, Prim::RmsNormGrad { eps }] {
            assert!(p.validate().is_err(), "{p:?} validates");
        }
    }
    assert!(Prim::RmsNorm { eps: 1e-6 }.validate().is_ok());
    let k = Prim::RmsNorm { eps: 1e-6 }.lower(&[&[2, 3, 5]], &[2, 3, 5]).unwrap();
    assert_eq!(k, Kernel::LayerNorm(LayerNorm::RmsForward { rows: 6, cols: 5, eps: 1e-6 }));
    let k = Prim::Swiglu.lower(&[&[2, 7], &[2, 7]], &[2, 7]).unwrap();
    assert_eq!(k, Kernel::Glu(Glu::Swiglu { len: 14 }));
}

#[test]
fn swiglu_and_grads() {
    let mut rng = Rng::new(32);
    let sigmoid = |g: f64| 1.0 / (1.0 + (-g).exp());
    for len in [1, 3, 17, 259, 1031, 40_001] {
        let mut gate: Vec<f32> = rng.normal_vec(len).iter().map(|v| 3.0 * v).collect();
        // large |g|: exp(-g) overflows f32 for g < -88.7, exp(g) for g > 88.7
        for (i, v) in [100.0, -100.0, 90.0, -90.0, 40.0, -40.0].into_iter().enumerate() {
            if i < len {
                gate[i] = v;
            }
        }
        let (up, dy) = (rng.normal_vec(len), rng.normal_vec(len));
        let y = launch(Kernel::Glu(Glu::Swiglu { len }), &[None, Some(gate.clone()), Some(up.clone())]);
        let dg = launch(
            Kernel::Glu(Glu::SwigluGradGate { len }),
            &[None, Some(gate.clone()), Some(up.clone()), Some(dy.clone())],
        );
        let du =
            launch(Kernel::Glu(Glu::SwigluGradUp { len }), &[None, Some(gate.clone()), Some(dy.clone())]);
        let (g, u, d) = (to_f64(&gate), to_f64(&up), to_f64(&dy));
        let want: Vec<f64> = (0..len).map(|i| g[i] * sigmoid(g[i]) * u[i]).collect();
        let want_dg: Vec<f64> = (0..len)
            .map(|i| {
                let s = sigmoid(g[i]);
                d[i] * u[i] * (s + g[i] * s * (1.0 - s))
            })
            .collect();
        let want_du: Vec<f64> = (0..len).map(|i| d[i] * g[i] * sigmoid(g[i])).collect();
        assert_close(&format!("swiglu {len}"), &y[0], &want, RTOL, ATOL);
        assert_close(&format!("swiglu_grad_gate {len}"), &dg[0], &want_dg, RTOL, ATOL);
        assert_close(&format!("swiglu_grad_up {len}"), &du[0], &want_du, RTOL, ATOL);
        // the shared f64 reference the graph's interpreter uses agrees
        for i in 0..len.min(50) {
            assert!((Glu::swiglu_f64(g[i], u[i]) - want[i]).abs() <= 1e-12 * want[i].abs().max(1.0));
            let (a, b) = Glu::swiglu_grad_f64(g[i], u[i]);
            assert!((d[i] * a - want_dg[i]).abs() <= 1e-12 * want_dg[i].abs().max(1.0));
            assert!((d[i] * b - want_du[i]).abs() <= 1e-12 * want_du[i].abs().max(1.0));
        }
    }
}

/// `(param, m, v)` after `steps` updates of `kernel` from the same start and gradients.
fn adam_steps(
    kernel: Kernel,
    p: &[f32],
    grads: &[Vec<f32>],
    hyper: impl Fn(usize) -> Vec<f32>,
) -> Vec<Vec<f32>> {
    let len = p.len();
    let mut state = vec![p.to_vec(), vec![0.0; len], vec![0.0; len]];
    for (t, g) in grads.iter().enumerate() {
        let mut h = hyper(t);
        h.resize(HYPER_LEN, 0.0);
        let out = launch(
            kernel,
            &[
                Some(state[0].clone()),
                Some(g.clone()),
                Some(h),
                Some(state[1].clone()),
                Some(state[2].clone()),
            ],
        );
        state = vec![out[0].clone(), out[3].clone(), out[4].clone()];
    }
    state
}

#[test]
fn adamw_without_decay_is_adam_without_decay() {
    let mut rng = Rng::new(33);
    let len = 37;
    let p = rng.normal_vec(len);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.normal_vec(len)).collect();
    let (b1, b2, eps, lr) = (0.9f32, 0.95f32, 1e-8f32, [3e-2f32, 2e-2, 1e-2]);
    let hyper = |wd: f32| {
        move |t: usize| {
            let k = t as i32 + 1;
            vec![lr[t], b1, b2, eps, wd, 1.0 - b1.powi(k), 1.0 - b2.powi(k)]
        }
    };
    let adamw =
        |decay: bool| Kernel::Optim(Optim::Adam { len, decoupled: true, decayed: decay as usize * len });
    let exempt = adam_steps(adamw(false), &p, &grads, hyper(0.1));
    let plain = adam_steps(
        Kernel::Optim(Optim::Adam { len, decoupled: false, decayed: len }),
        &p,
        &grads,
        hyper(0.0),
    );
    for (a, b) in exempt.iter().zip(&plain) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "exempt AdamW vs Adam (wd 0)");
    }
    // Adam's L2 decay is switched off as well
    let adam_exempt = Kernel::Optim(Optim::Adam { len, decoupled: false, decayed: 0 });
    assert_eq!(adam_steps(adam_exempt, &p, &grads, hyper(0.1)), plain);
    // decayed: PyTorch's AdamW, p *= 1 - lr wd before the Adam step, in f64
    let decayed = adam_steps(adamw(true), &p, &grads, hyper(0.1));
    let (mut pw, mut m, mut v) = (to_f64(&p), vec![0.0; len], vec![0.0; len]);
    for (t, g) in grads.iter().enumerate() {
        let (lr, k) = (lr[t] as f64, t as i32 + 1);
        let (b1, b2) = (b1 as f64, b2 as f64);
        for i in 0..len {
            pw[i] *= 1.0 - lr * 0.1f32 as f64;
            m[i] = b1 * m[i] + (1.0 - b1) * g[i] as f64;
            v[i] = b2 * v[i] + (1.0 - b2) * (g[i] as f64).powi(2);
            pw[i] -= lr * (m[i] / (1.0 - b1.powi(k))) / ((v[i] / (1.0 - b2.powi(k))).sqrt() + eps as f64);
        }
    }
    assert_close("adamw decayed vs PyTorch's formula", &decayed[0], &pw, RTOL, ATOL);
    let moved: f64 = decayed[0].iter().zip(&exempt[0]).map(|(a, b)| (a - b).abs() as f64).sum();
    assert!(moved > 1e-4, "the decay changed nothing ({moved})");
}

#[test]
fn sgd_and_rmsprop_without_decay_ignore_the_weight_decay() {
    let mut rng = Rng::new(34);
    let len = 29;
    let (p, g, st) = (rng.normal_vec(len), rng.normal_vec(len), rng.uniform_vec(len, 0.1, 1.0));
    for (exempt, plain, mut h) in [
        (Optim::Sgd { len, decayed: 0 }, Optim::Sgd { len, decayed: len }, vec![0.05, 0.9, 0.3, 1.0]),
        (
            Optim::Rmsprop { len, decayed: 0 },
            Optim::Rmsprop { len, decayed: len },
            vec![1e-2, 0.99, 1e-8, 0.3],
        ),
    ] {
        h.resize(HYPER_LEN, 0.0);
        let mut h0 = h.clone();
        h0[if matches!(exempt, Optim::Sgd { .. }) { 2 } else { 3 }] = 0.0;
        let init = |h: Vec<f32>| [Some(p.clone()), Some(g.clone()), Some(h), Some(st.clone())];
        let a = launch(Kernel::Optim(exempt), &init(h.clone()));
        let b = launch(Kernel::Optim(plain), &init(h0));
        let c = launch(Kernel::Optim(plain), &init(h));
        // param and state (slot 2, the hyper buffer, differs by construction)
        assert_eq!((&a[0], &a[3]), (&b[0], &b[3]), "{exempt:?} vs weight decay 0");
        assert_ne!(a[0], c[0], "{exempt:?}: decay on changes nothing");
    }
}
