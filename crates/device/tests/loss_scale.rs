//! Dynamic loss scaling on the device (`kernels/loss_scale.rs`): the unscale kernel's values and
//! its overflow flag, the scaler's step against PyTorch `GradScaler`'s rules, the optimizer
//! kernels' skip word, and all of them in one submitted plan, where the skip is decided with no
//! read-back. Every case runs on the CPU backend and, bit for bit against it, on the GPU adapter
//! (loudly skipped without one; a failure in CI, `KILN_REQUIRE_GPU=1`).

mod common;

use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::kernels::loss_scale::{
    bias_correction, powi, TRACKER_APPLIED, TRACKER_FOUND, TRACKER_GOOD, TRACKER_SKIPPED,
};
use kiln_device::{AdamHyper, Backend, HostData, Kernel, Launch, LossScale, Optim, HYPER_LEN};

/// The CPU backend, then the GPU adapter when there is one.
fn backends(what: &str) -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![Box::new(CpuBackend::new())];
    v.extend(kiln_device::testing::gpu_or_skip(what));
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn adam_hyper(skip: f32) -> [f32; HYPER_LEN] {
    AdamHyper {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
        bias_correction1: 0.1,
        bias_correction2: 0.001,
        skip,
    }
    .words()
}

/// `out = grad / scale` exactly (a power of two), the flag raised by inf or NaN anywhere and only
/// then, the other tracker words untouched.
#[test]
fn unscale_divides_by_the_scale_and_flags_inf_and_nan() {
    let n = 70_001; // past one workgroup in x, odd
    let mut rng = Rng::new(3);
    let grad: Vec<f32> = rng.normal_vec(n).iter().map(|x| x * 3000.0).collect();
    let mut results = Vec::new();
    for mut be in backends("loss-scaling kernels") {
        let mut per_case = Vec::new();
        for bad in [None, Some(f32::INFINITY), Some(f32::NEG_INFINITY), Some(f32::NAN)] {
            let mut g = grad.clone();
            if let Some(b) = bad {
                g[n - 2] = b; // in the last workgroup
            }
            let out = be.upload(HostData::F32(&vec![f32::NAN; n])).unwrap();
            let gb = be.upload(HostData::F32(&g)).unwrap();
            let scale = be.upload(HostData::F32(&[65536.0])).unwrap();
            let tracker = be.upload(HostData::F32(&[5.0, 2.0, 0.0, 7.0])).unwrap();
            be.run(Launch::new(Kernel::LossScale(LossScale::Unscale { len: n }), &[out, gb, scale, tracker]))
                .unwrap();
            let (o, t) = (be.read_f32(out).unwrap(), be.read_f32(tracker).unwrap());
            let found = if bad.is_some() { 1.0 } else { 0.0 };
            assert_eq!(t, [5.0, 2.0, found, 7.0], "{}: tracker with {bad:?}", be.info());
            for (i, (&o, &g)) in o.iter().zip(&g).enumerate() {
                if g.is_finite() {
                    assert_eq!(o, (g as f64 / 65536.0) as f32, "{}: out[{i}]", be.info());
                } else {
                    assert!(!o.is_finite(), "{}: out[{i}] = {o} from {g}", be.info());
                }
            }
            per_case.push((bits(&o), bits(&t)));
        }
        results.push(per_case);
    }
    if let [cpu, gpu] = &results[..] {
        assert_eq!(cpu, gpu, "the GPU's unscale differs from the CPU's");
    }
}

/// The scaler's step over a sequence of steps, against GradScaler's rules written out here:
/// overflow halves the scale, resets the good count and skips; `interval` good updates in a row
/// double it (unless doubling overflows f32); Adam's bias corrections follow the applied count.
#[test]
fn scale_update_follows_grad_scaler_and_counts_applied_updates() {
    let interval = 3;
    // found-inf per step: two overflows, a run long enough to grow twice, one more overflow
    let found = [1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    let mut results = Vec::new();
    for mut be in backends("loss-scaling kernels") {
        let scale = be.upload(HostData::F32(&[65536.0])).unwrap();
        let tracker = be.upload(HostData::F32(&[0.0; 4])).unwrap();
        let hyper = be.upload(HostData::F32(&adam_hyper(0.0))).unwrap();
        let update = Kernel::LossScale(LossScale::Update { growth: 2.0, backoff: 0.5, interval, adam: true });
        let plan = be.prepare(&[Launch::new(update, &[scale, tracker, hyper])]).unwrap();
        let (mut want_scale, mut good, mut skipped, mut applied) = (65536.0f64, 0u32, 0u32, 0u32);
        let mut trace = Vec::new();
        for (step, &f) in found.iter().enumerate() {
            be.write(hyper, HostData::F32(&adam_hyper(0.0))).unwrap(); // as the host does each step
            let mut t = be.read_f32(tracker).unwrap();
            t[TRACKER_FOUND] = f as f32;
            be.write(tracker, HostData::F32(&t)).unwrap();
            let ticket = be.submit(plan, &[scale, tracker, hyper]).unwrap();
            let out: Vec<Vec<f32>> =
                be.wait(ticket).unwrap().into_iter().map(|v| v.into_f32().unwrap()).collect();
            if f == 1 {
                want_scale *= 0.5;
                good = 0;
                skipped += 1;
            } else {
                applied += 1;
                good += 1;
                if good == interval {
                    want_scale *= 2.0;
                    good = 0;
                }
            }
            let what = format!("{}: step {step}", be.info());
            assert_eq!(out[0][0] as f64, want_scale, "{what}: scale");
            assert_eq!(out[1][TRACKER_GOOD], good as f32, "{what}: good");
            assert_eq!(out[1][TRACKER_SKIPPED], skipped as f32, "{what}: skipped");
            assert_eq!(out[1][TRACKER_FOUND], 0.0, "{what}: the flag is cleared");
            assert_eq!(out[1][TRACKER_APPLIED], applied as f32, "{what}: applied");
            let h = &out[2];
            assert_eq!(h[7], f as f32, "{what}: skip word");
            if f == 0 {
                // the bias corrections of the applied count, within a few f32 ulps of f64's
                for (k, beta) in [(5, 0.9f32), (6, 0.999f32)] {
                    let exact = 1.0 - (beta as f64).powi(applied as i32);
                    assert!(((h[k] as f64) - exact).abs() <= 1e-6 * exact, "{what}: word {k} {}", h[k]);
                }
            } else {
                assert_eq!((h[5], h[6]), (0.1, 0.001), "{what}: a skipped step leaves the corrections");
            }
            trace.push(out);
        }
        assert_eq!(want_scale, 65536.0 * 0.25 * 4.0 * 0.5);
        results.push(trace);
    }
    if let [cpu, gpu] = &results[..] {
        // bit for bit but the bias corrections (the adapters' exp may differ by ulps)
        for (step, (c, g)) in cpu.iter().zip(gpu).enumerate() {
            assert_eq!(bits(&c[0]), bits(&g[0]), "step {step}: scale");
            assert_eq!(bits(&c[1]), bits(&g[1]), "step {step}: tracker");
            for k in 0..HYPER_LEN {
                let tol = if k == 5 || k == 6 { 1e-6 * c[2][k].abs() } else { 0.0 };
                assert!(
                    (c[2][k] - g[2][k]).abs() <= tol,
                    "step {step}: hyper[{k}] {} vs {}",
                    c[2][k],
                    g[2][k]
                );
            }
        }
    }
}

/// Growth that would overflow f32 keeps the scale (PyTorch grows only to a finite scale).
#[test]
fn the_scale_never_grows_to_infinity() {
    for mut be in backends("loss-scaling kernels") {
        let scale = be.upload(HostData::F32(&[f32::MAX])).unwrap();
        let tracker = be.upload(HostData::F32(&[0.0; 4])).unwrap();
        let hyper = be.upload(HostData::F32(&[0.0; HYPER_LEN])).unwrap();
        let update =
            Kernel::LossScale(LossScale::Update { growth: 2.0, backoff: 0.5, interval: 1, adam: false });
        be.run(Launch::new(update, &[scale, tracker, hyper])).unwrap();
        assert_eq!(be.read_f32(scale).unwrap(), [f32::MAX], "{}", be.info());
        assert_eq!(be.read_f32(tracker).unwrap(), [0.0, 0.0, 0.0, 1.0], "{}", be.info());
        assert_eq!(be.read_f32(hyper).unwrap(), [0.0; HYPER_LEN], "{}: no Adam words", be.info());
    }
}

/// Adam's bias corrections against f64's `1 - beta^n`, for the betas people use and the steps
/// where each formula branch and the cancellation near 1 matter; a few f32 ulps at most.
#[test]
fn bias_corrections_are_within_a_few_ulps_of_the_exact_value() {
    for beta in [0.0f32, 0.3, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999] {
        for n in [1u32, 2, 3, 7, 10, 100, 999, 1000, 1001, 2001, 10_000, 65_537, 1 << 20] {
            let exact = 1.0 - (beta as f64).powi(n as i32);
            let got = bias_correction(beta, n as f32) as f64;
            assert!((got - exact).abs() <= 6e-7 * exact, "1 - {beta}^{n}: {got} vs {exact}");
        }
    }
    assert_eq!(powi(0.5, 3), 0.125);
    assert_eq!(powi(3.0, 0), 1.0);
}

/// Every optimizer kernel leaves its parameter and state untouched when the skip word is set,
/// and updates them when it is not.
#[test]
fn optimizer_kernels_skip_when_the_hyper_buffer_says_so() {
    let n = 333;
    let mut rng = Rng::new(8);
    let (param, grad) = (rng.normal_vec(n), rng.normal_vec(n));
    let state: Vec<f32> = rng.uniform_vec(n, 0.1, 1.0);
    for mut be in backends("loss-scaling kernels") {
        for opt in [
            Optim::Sgd { len: n, decayed: n },
            Optim::Adam { len: n, decoupled: false, decayed: n },
            Optim::Adam { len: n, decoupled: true, decayed: n },
            Optim::Rmsprop { len: n, decayed: n },
        ] {
            for skip in [1.0, 0.0] {
                let mut h = adam_hyper(skip);
                h[1] = 0.9; // a momentum / beta1 / alpha in range for every rule
                let p = be.upload(HostData::F32(&param)).unwrap();
                let g = be.upload(HostData::F32(&grad)).unwrap();
                let hb = be.upload(HostData::F32(&h)).unwrap();
                let states: Vec<_> =
                    (0..opt_states(&opt)).map(|_| be.upload(HostData::F32(&state)).unwrap()).collect();
                let mut bufs = vec![p, g, hb];
                bufs.extend(&states);
                be.run(Launch::new(Kernel::Optim(opt), &bufs)).unwrap();
                let after = be.read_f32(p).unwrap();
                let what = format!("{}: {opt:?} skip {skip}", be.info());
                if skip != 0.0 {
                    assert_eq!(bits(&after), bits(&param), "{what}: parameter changed");
                    for s in &states {
                        assert_eq!(bits(&be.read_f32(*s).unwrap()), bits(&state), "{what}: state changed");
                    }
                } else {
                    let moved = after.iter().zip(&param).filter(|(a, b)| a != b).count();
                    assert!(moved > n * 9 / 10, "{what}: only {moved} of {n} elements updated");
                }
            }
        }
    }
}

fn opt_states(opt: &Optim) -> usize {
    match opt {
        Optim::Adam { .. } => 2,
        _ => 1,
    }
}

/// One submitted plan, as a training step runs it: unscale three gradients (the scale read on
/// the device), the scaler's step, then AdamW on each. With an inf in one gradient nothing moves
/// and the scale halves; without, the parameters take the update of the unscaled gradients.
#[test]
fn one_plan_skips_or_applies_with_no_read_back() {
    let lens = [5usize, 130, 1031];
    let mut rng = Rng::new(21);
    let params: Vec<Vec<f32>> = lens.iter().map(|&n| rng.normal_vec(n)).collect();
    let grads: Vec<Vec<f32>> =
        lens.iter().map(|&n| rng.normal_vec(n).iter().map(|x| x * 1024.0).collect()).collect();
    let mut results = Vec::new();
    for mut be in backends("loss-scaling kernels") {
        let mut per_case = Vec::new();
        for overflow in [true, false] {
            let scale = be.upload(HostData::F32(&[1024.0])).unwrap();
            let tracker = be.upload(HostData::F32(&[0.0; 4])).unwrap();
            let hyper = be.upload(HostData::F32(&adam_hyper(0.0))).unwrap();
            let mut launches = Vec::new();
            let mut updates = Vec::new();
            let mut ps = Vec::new();
            for (k, &n) in lens.iter().enumerate() {
                let mut g = grads[k].clone();
                if overflow && k == 1 {
                    g[77] = f32::INFINITY;
                }
                let gb = be.upload(HostData::F32(&g)).unwrap();
                let out = be.upload(HostData::F32(&vec![f32::NAN; n])).unwrap();
                launches.push(Launch::new(
                    Kernel::LossScale(LossScale::Unscale { len: n }),
                    &[out, gb, scale, tracker],
                ));
                let p = be.upload(HostData::F32(&params[k])).unwrap();
                let m = be.upload(HostData::F32(&vec![0.0; n])).unwrap();
                let v = be.upload(HostData::F32(&vec![0.0; n])).unwrap();
                updates.push(Launch::new(
                    Kernel::Optim(Optim::Adam { len: n, decoupled: true, decayed: n }),
                    &[p, out, hyper, m, v],
                ));
                ps.push(p);
            }
            let update = Kernel::LossScale(LossScale::Update {
                growth: 2.0,
                backoff: 0.5,
                interval: 2000,
                adam: true,
            });
            launches.push(Launch::new(update, &[scale, tracker, hyper]));
            launches.extend(updates);
            let plan = be.prepare(&launches).unwrap();
            let mut reads = ps.clone();
            reads.extend([scale, tracker]);
            let out: Vec<Vec<f32>> = be
                .submit(plan, &reads)
                .and_then(|t| be.wait(t))
                .unwrap()
                .into_iter()
                .map(|v| v.into_f32().unwrap())
                .collect();
            let what = format!("{}: overflow {overflow}", be.info());
            if overflow {
                for (k, p) in params.iter().enumerate() {
                    assert_eq!(bits(&out[k]), bits(p), "{what}: parameter {k} moved");
                }
                assert_eq!(out[3], [512.0], "{what}: scale");
                assert_eq!(out[4], [0.0, 1.0, 0.0, 0.0], "{what}: tracker");
            } else {
                // AdamW's first step (bias-corrected) moves every element by about lr
                for (k, p) in params.iter().enumerate() {
                    for (i, (&a, &b)) in out[k].iter().zip(p).enumerate() {
                        let moved = (a as f64 - b as f64 * (1.0 - 0.01 * 0.01)).abs();
                        assert!((moved - 0.01).abs() < 1e-4, "{what}: parameter {k}[{i}] moved {moved}");
                    }
                }
                assert_eq!(out[3], [1024.0], "{what}: scale");
                assert_eq!(out[4], [1.0, 0.0, 0.0, 1.0], "{what}: tracker");
            }
            per_case.push(out.iter().map(|v| bits(v)).collect::<Vec<_>>());
        }
        results.push(per_case);
    }
    if let [cpu, gpu] = &results[..] {
        assert_eq!(cpu, gpu, "the GPU's step differs from the CPU's");
    }
}
