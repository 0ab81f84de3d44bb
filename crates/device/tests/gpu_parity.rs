//! Every WGSL kernel against the CPU backend, on fresh random inputs of odd shapes.
//!
//! Outputs are poisoned with NaN before each run, so an element a kernel forgets to write fails.
//! Without an adapter these tests print a loud SKIPPED line; with `KILN_REQUIRE_GPU=1` (CI, where
//! Mesa's lavapipe provides a Vulkan adapter) they fail instead.

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use common::{assert_close, assert_rel_norm, Rng};
use kiln_device::cpu::CpuBackend;
use kiln_device::{
    Access, Addend, Backend, Binary, BinaryOp, Broadcast, Conv, DType, Glu, HostVec, Kernel, Launch,
    LayerNorm, Layout, Loss, Matmul, MatmulTile, Memory, Optim, Permute, Pooling, Reduce, ReduceOp,
    RunningUpdate, Softmax, Unary, UnaryOp, Window2d, HYPER_LEN,
};

/// Sizes for elementwise kernels: odd, and one spanning hundreds of workgroups.
const SIZES: [usize; 7] = [1, 3, 17, 33, 65, 127, 70_001];

fn gpu() -> Option<MutexGuard<'static, Box<dyn Backend>>> {
    static GPU: OnceLock<Option<Mutex<Box<dyn Backend>>>> = OnceLock::new();
    let slot = GPU.get_or_init(|| {
        let b = kiln_device::testing::gpu_or_skip("the WGSL kernels")?;
        eprintln!("GPU parity tests run on {}", b.info());
        Some(Mutex::new(b))
    });
    slot.as_ref().map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Initial contents of each buffer of a launch, chosen so the math is defined (positive inputs
/// to log, labels in range but one, ...). Written buffers are NaN unless they are in-place state.
fn inputs(k: &Kernel, rng: &mut Rng, hyper: &[f32]) -> Vec<HostVec> {
    let positive = |op: UnaryOp| matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Reciprocal);
    k.slots()
        .iter()
        .map(|s| {
            let n = s.len;
            if s.dtype == DType::U32 {
                let range = match *k {
                    Kernel::Memory(Memory::Gather { axis_len, .. })
                    | Kernel::Memory(Memory::ScatterAdd { axis_len, .. }) => axis_len,
                    Kernel::Loss(Loss::SoftmaxCeLoss { cols, .. })
                    | Kernel::Loss(Loss::SoftmaxCeGrad { cols, .. }) => cols,
                    _ => 1,
                };
                let mut v = rng.labels(n, range);
                if s.access == Access::Read && n > 2 {
                    v[1] = (range + 3) as u32; // out of range: both backends must ignore it alike
                }
                return HostVec::U32(v);
            }
            HostVec::F32(match (k, s.name, s.access) {
                (
                    Kernel::Optim(Optim::Sgd { .. })
                    | Kernel::Optim(Optim::Adam { .. })
                    | Kernel::Optim(Optim::Rmsprop { .. }),
                    "param",
                    _,
                ) => rng.normal_vec(n),
                (Kernel::Optim(Optim::Rmsprop { .. }), "state", _) | (_, "v", _) => {
                    rng.uniform_vec(n, 0.0, 1.0)
                }
                (_, "state" | "m", _) => rng.normal_vec(n).iter().map(|x| 0.1 * x).collect(),
                // in place: the running statistic is read, so it starts as data (not NaN); an
                // element the GPU skips keeps it and differs from the CPU's result
                (Kernel::Running(RunningUpdate { .. }), "running", _) => rng.uniform_vec(n, 0.5, 2.0),
                (_, _, Access::Write) => vec![f32::NAN; n],
                // pooling windows with ties: both backends must pick the same (first) winner
                (Kernel::Pooling(_), "x", _) => {
                    rng.normal_vec(n).iter().map(|x| (x * 2.0).round() / 2.0).collect()
                }
                (_, "hyper", _) => {
                    let mut h = hyper.to_vec();
                    h.resize(HYPER_LEN, 0.0);
                    h
                }
                (_, "dloss", _) => rng.uniform_vec(1, 0.5, 2.0),
                // gates out to |g| ~ 100, where a naive exp(-g) overflows
                (Kernel::Glu(_), "gate", _) => rng.normal_vec(n).iter().map(|x| 30.0 * x).collect(),
                // the saved output of softmax is a distribution (of log-softmax, its log)
                (Kernel::Softmax(Softmax::Backward { cols, log, .. }), "y", _) => {
                    let mut y = rng.normal_vec(n).iter().map(|x| x.exp()).collect::<Vec<f32>>();
                    for (r, row) in y.chunks_mut(*cols).enumerate() {
                        // every other row causally masked, as attention's are: trailing zeros
                        if !*log && r % 2 == 1 {
                            row[(r * 7) % *cols + 1..].fill(0.0);
                        }
                        let total: f32 = row.iter().sum();
                        row.iter_mut().for_each(|v| *v = if *log { (*v / total).ln() } else { *v / total });
                    }
                    y
                }
                (
                    Kernel::Loss(Loss::BceLogitsLoss { .. }) | Kernel::Loss(Loss::BceLogitsGrad { .. }),
                    "target",
                    _,
                ) => rng.uniform_vec(n, 0.0, 1.0),
                (Kernel::Unary(Unary::Forward { op, .. }), "x", _) if positive(*op) => {
                    rng.uniform_vec(n, 0.5, 2.0)
                }
                (Kernel::Unary(Unary::Backward { op, .. }), "saved", _) if positive(*op) => {
                    rng.uniform_vec(n, 0.5, 2.0)
                }
                (Kernel::Binary(Binary { op: BinaryOp::Div, .. }), "b", _) => rng
                    .uniform_vec(n, 0.5, 2.0)
                    .iter()
                    .map(|x| if rng.unit() < 0.5 { -x } else { *x })
                    .collect(),
                // Comparisons and max/min need ties: values on a coarse grid.
                (Kernel::Binary(Binary { op, .. }), _, _)
                    if !matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) =>
                {
                    rng.normal_vec(n).iter().map(|x| (x * 2.0).round() / 2.0).collect()
                }
                _ => rng.normal_vec(n),
            })
        })
        .collect()
}

fn upload(b: &mut dyn Backend, data: &[HostVec]) -> Vec<kiln_device::BufferId> {
    data.iter().map(|d| b.upload(d.as_data()).unwrap()).collect()
}

/// Runs `k` on both backends from the same inputs and compares every written buffer.
fn check(k: Kernel, seed: u64, hyper: &[f32]) {
    let Some(mut gpu) = gpu() else { return };
    let mut cpu = CpuBackend::new();
    let data = inputs(&k, &mut Rng::new(seed), hyper);
    let (g_ids, c_ids) = (upload(gpu.as_mut(), &data), upload(&mut cpu, &data));
    gpu.run(Launch::new(k, &g_ids)).unwrap_or_else(|e| panic!("gpu {k:?}: {e}"));
    cpu.run(Launch::new(k, &c_ids)).unwrap_or_else(|e| panic!("cpu {k:?}: {e}"));
    for (i, s) in k.slots().iter().enumerate() {
        if s.access != Access::Write {
            continue;
        }
        let what = format!("{} {:?} buffer {}", k.name(), k, s.name);
        match (gpu.read(g_ids[i]).unwrap(), cpu.read(c_ids[i]).unwrap()) {
            (HostVec::U32(g), HostVec::U32(c)) => assert_eq!(g, c, "{what}"),
            (HostVec::F32(g), HostVec::F32(c)) => {
                let want: Vec<f64> = c.iter().map(|&x| x as f64).collect();
                assert!(c.iter().all(|x| x.is_finite()), "{what}: CPU output not finite");
                match k {
                    Kernel::Matmul(_) => assert_rel_norm(&what, &g, &want, 1e-5),
                    _ => assert_close(&what, &g, &want, 1e-5, 1e-6),
                }
            }
            _ => panic!("{what}: dtype mismatch"),
        }
    }
    for id in g_ids {
        gpu.release(id).unwrap();
    }
}

#[test]
fn matmul_matches_cpu() {
    let shapes = [(1, 1, 1, 1), (1, 3, 17, 33), (1, 65, 127, 17), (1, 127, 1, 65), (3, 129, 130, 67)];
    let mut seed = 1;
    for (batch, m, n, k) in shapes {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            for (a_batched, b_batched) in [(true, true), (true, false), (false, true)] {
                if batch == 1 && !(a_batched && b_batched) {
                    continue;
                }
                let tile = MatmulTile::Small;
                let mm =
                    Matmul { batch, trans_a, trans_b, a_batched, b_batched, tile, ..Matmul::new(m, n, k) };
                seed += 1;
                check(Kernel::Matmul(mm), seed, &[]);
            }
        }
    }
}

/// Both entry points with a bias or a residual added as C is stored.
#[test]
fn matmul_with_an_addend_matches_cpu() {
    let mut seed = 700;
    for tile in MatmulTile::ALL {
        for (batch, m, n, k, a_batched, b_batched) in
            [(1, 3, 17, 33, true, true), (2, 129, 131, 40, true, false)]
        {
            for (trans_a, trans_b) in [(false, true), (true, false)] {
                for addend in [Addend::Bias, Addend::Full] {
                    let mm = Matmul {
                        batch,
                        trans_a,
                        trans_b,
                        a_batched,
                        b_batched,
                        tile,
                        ..Matmul::new(m, n, k)
                    };
                    seed += 1;
                    check(Kernel::Matmul(mm.with_addend(addend)), seed, &[]);
                }
            }
        }
    }
}

#[test]
fn unary_and_backward_match_cpu() {
    for op in UnaryOp::ALL {
        for (i, len) in SIZES.into_iter().enumerate() {
            check(Kernel::Unary(Unary::Forward { op, len, alpha: 0.07 }), 10 + i as u64, &[]);
            check(Kernel::Unary(Unary::Backward { op, len, alpha: 0.07 }), 20 + i as u64, &[]);
        }
    }
}

#[test]
fn bias_act_matches_cpu() {
    for op in UnaryOp::ALL {
        if matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Reciprocal) {
            continue; // x + bias may be <= 0: undefined for these, and no model fuses them
        }
        for (rows, cols) in [(1, 1), (3, 17), (65, 33), (127, 65), (300, 257)] {
            check(Kernel::Unary(Unary::BiasAct { op, rows, cols, alpha: 0.07 }), rows as u64, &[]);
        }
    }
}

#[test]
fn binary_broadcast_matches_cpu() {
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[17], &[17]),
        (&[1], &[65]),
        (&[5, 1, 7], &[3, 1]),
        (&[127, 33], &[33]),
        (&[300, 257], &[300, 1]),
        (&[2, 3, 4, 5], &[3, 1, 5]),
        (&[70_001], &[1]),
    ];
    for op in BinaryOp::ALL {
        for (i, (a, b)) in shapes.iter().enumerate() {
            let bc = Broadcast::new("test", a, b).unwrap();
            check(Kernel::Binary(Binary { op, bc }), 40 + i as u64, &[]);
        }
    }
}

#[test]
fn reductions_match_cpu() {
    // the last shape needs 70,001 workgroups: the dispatch spills into y
    let shapes = [(1, 1, 1), (3, 17, 1), (1, 127, 33), (5, 65, 3), (2, 300, 7), (70_001, 1, 1)];
    for op in ReduceOp::ALL {
        for (i, (outer, len, inner)) in shapes.into_iter().enumerate() {
            check(Kernel::Reduce(Reduce { op, outer, len, inner }), 60 + i as u64, &[]);
        }
    }
}

#[test]
fn softmax_and_backward_match_cpu() {
    for log in [false, true] {
        for (i, (rows, cols)) in [(1, 1), (3, 17), (33, 127), (5, 1000), (70_001, 2)].into_iter().enumerate()
        {
            check(Kernel::softmax(rows, cols, log), 70 + i as u64, &[]);
            check(Kernel::softmax_grad(rows, cols, log), 80 + i as u64, &[]);
        }
    }
}

/// Attention's softmax: scaled (a negative scale too, where max(s x) is not s max(x)) and causal
/// over `[rows / T, T, T]` score blocks, T = cols: row 0 of each block keeps one column, row T - 1
/// all of them.
#[test]
fn scaled_and_causal_softmax_match_cpu() {
    let shapes = [(1, 1), (3, 3), (15, 3), (51, 17), (258, 129), (2000, 1000), (70_001 * 2, 2)];
    for (i, (rows, cols)) in shapes.into_iter().enumerate() {
        for (j, (scale, causal)) in [(0.37, true), (-1.3, true), (2.5, false)].into_iter().enumerate() {
            let seed = 300 + 10 * i as u64 + j as u64;
            check(Kernel::Softmax(Softmax::Forward { rows, cols, log: false, scale, causal }), seed, &[]);
            check(Kernel::Softmax(Softmax::Backward { rows, cols, log: false, scale }), seed, &[]);
        }
        check(
            Kernel::Softmax(Softmax::Forward { rows, cols, log: true, scale: 0.37, causal: false }),
            390 + i as u64,
            &[],
        );
        check(Kernel::Softmax(Softmax::Backward { rows, cols, log: true, scale: -1.3 }), 390 + i as u64, &[]);
    }
}

#[test]
fn layer_norm_and_backward_match_cpu() {
    // short rows, rows longer than the 64-wide workgroup, and one with thousands of rows
    let shapes = [(1, 1), (3, 3), (5, 17), (33, 64), (7, 129), (4, 1000), (3000, 17)];
    for (i, (rows, cols)) in shapes.into_iter().enumerate() {
        for (j, eps) in [1e-5, 0.1].into_iter().enumerate() {
            let seed = 400 + 10 * i as u64 + j as u64;
            check(Kernel::LayerNorm(LayerNorm::Forward { rows, cols, eps }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::Backward { rows, cols, eps }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::AffineForward { rows, cols, eps, rms: false }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::AffineBackward { rows, cols, eps, rms: false }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::DyXhat { rows, cols, eps, rms: false }), seed, &[]);
        }
    }
}

/// RMSNorm (the layer-norm family's RMS kernels): the Llama shapes of the brief (7 x 37, a wide
/// row of 1,031), rows shorter and longer than the 64-wide workgroup, and thousands of rows.
#[test]
fn rms_norm_and_backward_match_cpu() {
    let shapes = [(1, 1), (7, 37), (5, 64), (3, 1031), (2, 129), (3000, 17)];
    for (i, (rows, cols)) in shapes.into_iter().enumerate() {
        for (j, eps) in [1e-6, 1e-5, 0.1].into_iter().enumerate() {
            let seed = 500 + 10 * i as u64 + j as u64;
            check(Kernel::LayerNorm(LayerNorm::RmsForward { rows, cols, eps }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::RmsBackward { rows, cols, eps }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::AffineForward { rows, cols, eps, rms: true }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::AffineBackward { rows, cols, eps, rms: true }), seed, &[]);
            check(Kernel::LayerNorm(LayerNorm::DyXhat { rows, cols, eps, rms: true }), seed, &[]);
        }
    }
}

#[test]
fn swiglu_and_backward_match_cpu() {
    for (i, len) in SIZES.into_iter().chain([7 * 37, 1031]).enumerate() {
        let seed = 560 + i as u64;
        check(Kernel::Glu(Glu::Swiglu { len }), seed, &[]);
        check(Kernel::Glu(Glu::SwigluGradGate { len }), seed, &[]);
        check(Kernel::Glu(Glu::SwigluGradUp { len }), seed, &[]);
    }
}

#[test]
fn losses_and_gradients_match_cpu() {
    for (i, n) in [1, 17, 127, 1000].into_iter().enumerate() {
        let seed = 90 + i as u64;
        check(Kernel::Loss(Loss::MseLoss { n }), seed, &[]);
        check(Kernel::Loss(Loss::MseGrad { n }), seed, &[]);
        check(Kernel::Loss(Loss::BceLogitsLoss { n }), seed, &[]);
        check(Kernel::Loss(Loss::BceLogitsGrad { n }), seed, &[]);
    }
    for (i, (rows, cols)) in [(1, 3), (17, 10), (127, 65), (300, 2)].into_iter().enumerate() {
        check(Kernel::Loss(Loss::SoftmaxCeLoss { rows, cols }), 100 + i as u64, &[]);
        check(Kernel::Loss(Loss::SoftmaxCeGrad { rows, cols }), 100 + i as u64, &[]);
    }
}

#[test]
fn optimizer_updates_match_cpu() {
    for (i, len) in [1, 17, 127, 70_001].into_iter().enumerate() {
        let seed = 110 + i as u64;
        for sgd in [[0.05, 0.0, 0.0, 0.0], [0.05, 0.9, 0.0, 0.0], [0.05, 0.9, 0.01, 1.0]] {
            check(Kernel::Optim(Optim::Sgd { len, decayed: len }), seed, &sgd);
        }
        // lr, beta1, beta2, eps, weight decay, 1 - beta1^t, 1 - beta2^t at t = 3
        let adam = [1e-3, 0.9, 0.999, 1e-8, 0.01, 1.0 - 0.9f32.powi(3), 1.0 - 0.999f32.powi(3)];
        check(Kernel::Optim(Optim::Adam { len, decoupled: false, decayed: len }), seed, &adam);
        check(Kernel::Optim(Optim::Adam { len, decoupled: true, decayed: len }), seed, &adam);
        check(Kernel::Optim(Optim::Rmsprop { len, decayed: len }), seed, &[1e-2, 0.99, 1e-8, 0.01]);
    }
}

/// The same kernels with part or all of their elements exempt from weight decay (a decay-exempt
/// parameter group, or flat memory holding both groups): the hyper buffer's weight decay (large
/// here, 0.5) must be ignored past `decayed` alike on both backends.
#[test]
fn optimizer_updates_without_decay_match_cpu() {
    for (i, len) in [1, 17, 1031].into_iter().enumerate() {
        for decayed in [0, len / 3] {
            let seed = 590 + i as u64 + decayed as u64;
            check(Kernel::Optim(Optim::Sgd { len, decayed }), seed, &[0.05, 0.9, 0.5, 1.0]);
            let adam = [1e-2, 0.9, 0.999, 1e-8, 0.5, 1.0 - 0.9f32.powi(3), 1.0 - 0.999f32.powi(3)];
            check(Kernel::Optim(Optim::Adam { len, decoupled: false, decayed }), seed, &adam);
            check(Kernel::Optim(Optim::Adam { len, decoupled: true, decayed }), seed, &adam);
            check(Kernel::Optim(Optim::Rmsprop { len, decayed }), seed, &[1e-2, 0.99, 1e-8, 0.5]);
        }
    }
}

#[test]
fn running_update_matches_cpu() {
    // (keep, gain, scale): BatchNorm's mean (momentum 0.1), its variance with the unbiased factor
    // of n = 7 values per channel, a momentum of 1 (the batch value replaces the running one), and
    // the batch counter (+= value)
    let configs = [(0.9, 0.1, 1.0), (0.9, 0.1, 7.0 / 6.0), (0.0, 1.0, 1.0), (1.0, 1.0, 1.0)];
    for (i, len) in SIZES.into_iter().enumerate() {
        for (j, (keep, gain, scale)) in configs.into_iter().enumerate() {
            check(
                Kernel::Running(RunningUpdate { len, keep, gain, scale }),
                170 + 10 * i as u64 + j as u64,
                &[],
            );
        }
    }
}

#[test]
fn gather_scatter_fill_copy_match_cpu() {
    for (i, (outer, axis_len, inner, n_idx)) in
        [(1, 5, 1, 3), (3, 17, 33, 65), (2, 127, 3, 17), (1, 1000, 16, 300)].into_iter().enumerate()
    {
        check(Kernel::Memory(Memory::Gather { outer, axis_len, inner, n_idx }), 120 + i as u64, &[]);
        check(Kernel::Memory(Memory::ScatterAdd { outer, axis_len, inner, n_idx }), 130 + i as u64, &[]);
    }
    for (i, len) in SIZES.into_iter().enumerate() {
        check(Kernel::Memory(Memory::Fill { len, value: -1.25 }), 140 + i as u64, &[]);
        check(Kernel::Memory(Memory::Copy { len }), 150 + i as u64, &[]);
    }
}

/// Odd windows: stride, padding and dilation on each axis, and one with many images.
fn windows() -> Vec<Window2d> {
    vec![
        Window2d::square(1, 1, 1, 1, 1, 1, 0, 1),
        Window2d::square(2, 3, 7, 5, 3, 1, 1, 1),
        Window2d { n: 3, c: 2, h: 9, w: 11, kh: 3, kw: 2, sh: 2, sw: 3, ph: 1, pw: 2, dh: 2, dw: 1 },
        Window2d { n: 2, c: 1, h: 4, w: 3, kh: 3, kw: 3, sh: 1, sw: 2, ph: 2, pw: 2, dh: 3, dw: 1 },
        Window2d::square(5, 3, 8, 8, 2, 2, 0, 1),
        Window2d::square(33, 4, 13, 13, 5, 1, 2, 1),
    ]
}

#[test]
fn im2col_col2im_match_cpu() {
    for (i, win) in windows().into_iter().enumerate() {
        check(Kernel::Conv(Conv::Im2col { win, pad_value: 0.0 }), 160 + i as u64, &[]);
        check(Kernel::Conv(Conv::Im2col { win, pad_value: -3.0e38 }), 165 + i as u64, &[]);
        check(Kernel::Conv(Conv::Col2im { win }), 170 + i as u64, &[]);
    }
}

#[test]
fn max_pool_and_backward_match_cpu() {
    let windows = [
        Window2d::square(1, 1, 1, 1, 1, 1, 0, 1),
        Window2d::square(5, 3, 8, 8, 2, 2, 0, 1),
        Window2d::square(2, 3, 7, 5, 3, 1, 1, 1),
        Window2d { n: 3, c: 2, h: 9, w: 11, kh: 3, kw: 2, sh: 2, sw: 3, ph: 1, pw: 1, dh: 2, dw: 1 },
        Window2d::square(33, 4, 13, 13, 5, 1, 2, 1),
    ];
    for (i, win) in windows.into_iter().enumerate() {
        check(Kernel::Pooling(Pooling::MaxPool { win }), 200 + i as u64, &[]);
        check(Kernel::Pooling(Pooling::MaxPoolGrad { win }), 210 + i as u64, &[]);
    }
}

#[test]
fn permute_and_window_match_cpu() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[1], &[0]),
        (&[3, 17], &[1, 0]),
        (&[2, 5, 3, 7], &[0, 2, 1, 3]),
        (&[2, 5, 3, 7], &[3, 1, 0, 2]),
        (&[5, 33, 4], &[2, 0, 1]),
        (&[4, 65, 8, 33], &[0, 2, 1, 3]),
    ];
    for (i, (shape, perm)) in cases.into_iter().enumerate() {
        check(
            Kernel::Layout(Layout::Permute(Permute::new("test", shape, perm).unwrap())),
            180 + i as u64,
            &[],
        );
    }
    for (i, (outer, src_len, out_len, inner, offset)) in
        [(1, 1, 1, 1, 0), (3, 17, 5, 7, 4), (2, 5, 13, 3, -6), (7, 9, 9, 65, -3), (300, 33, 20, 17, 13)]
            .into_iter()
            .enumerate()
    {
        check(
            Kernel::Layout(Layout::SlicePad { outer, src_len, out_len, inner, offset }),
            190 + i as u64,
            &[],
        );
    }
}
