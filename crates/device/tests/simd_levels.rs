//! The CPU kernels run at the widest vector level the CPU has (`kernels::simd`): AVX-512, AVX2 or
//! the baseline. Every level must give the same bits, so machines with and without AVX-512 train
//! the same weights. Each kernel here runs at every level this CPU supports, on random inputs of
//! odd sizes, through the CPU backend's threaded and one-thread paths, and the outputs are compared
//! bit for bit. (A CPU without AVX-512 checks the levels it has.)

use kiln_device::cpu::CpuBackend;
use kiln_device::kernels::binary::{Binary, BinaryOp, Broadcast};
use kiln_device::kernels::glu::Glu;
use kiln_device::kernels::layer_norm::LayerNorm;
use kiln_device::kernels::loss::Loss;
use kiln_device::kernels::pool::Pooling;
use kiln_device::kernels::simd::{self, Level};
use kiln_device::kernels::unary::{Unary, UnaryOp};
use kiln_device::{Backend, BufferId, HostData, Kernel, Launch, Window2d};

/// Deterministic values in about [-6, 6] (a SplitMix64 stream).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let x = ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 12.0;
            // every 4th value on a grid of halves: ties for max pooling and the comparisons
            if (z >> 8).is_multiple_of(4) {
                (x * 2.0).round() / 2.0
            } else {
                x
            }
        })
        .collect()
}

/// Runs `kernel` on inputs of the given lengths (f32, or u32 labels below `labels`) and returns
/// its first output's bits.
fn run(be: &mut CpuBackend, kernel: Kernel, out_len: usize, ins: &[(usize, Option<u32>)]) -> Vec<u32> {
    let out = be.upload(HostData::F32(&vec![0.0; out_len])).unwrap();
    let mut bufs: Vec<BufferId> = vec![out];
    for (i, &(len, labels)) in ins.iter().enumerate() {
        let id = match labels {
            Some(classes) => {
                let v: Vec<u32> =
                    random(len, 99 + i as u64).iter().map(|x| (x.abs() * 7.0) as u32 % classes).collect();
                be.upload(HostData::U32(&v)).unwrap()
            }
            None => be.upload(HostData::F32(&random(len, 7 + i as u64))).unwrap(),
        };
        bufs.push(id);
    }
    let plan = be.prepare(&[Launch::new(kernel, &bufs)]).unwrap();
    let t = be.submit(plan, &[out]).unwrap();
    match be.wait(t).unwrap().remove(0) {
        kiln_device::HostVec::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        other => panic!("unexpected output {other:?}"),
    }
}

/// A kernel to run: its name, the kernel, its output length and its inputs (length, and the class
/// count for u32 labels).
type Case = (&'static str, Kernel, usize, Vec<(usize, Option<u32>)>);

#[test]
fn every_vector_level_gives_the_same_bits() {
    let (rows, cols) = (37, 203);
    // values on a coarse grid, so windows hold ties
    let win = Window2d::square(9, 5, 14, 10, 2, 2, 0, 1);
    let padded = Window2d::square(9, 5, 14, 10, 3, 2, 1, 1);
    let (image, pooled) = (win.image_len(), win.n * win.c * 7 * 5);
    let padded_out = padded.n * padded.c * padded.oh().unwrap() * padded.ow().unwrap();
    let n = rows * cols;
    let cases: Vec<Case> = vec![
        ("gelu", Kernel::Unary(Unary::Forward { op: UnaryOp::Gelu, len: n, alpha: 0.0 }), n, vec![(n, None)]),
        (
            "gelu_backward",
            Kernel::Unary(Unary::Backward { op: UnaryOp::Gelu, len: n, alpha: 0.0 }),
            n,
            vec![(n, None), (n, None)],
        ),
        ("silu", Kernel::Unary(Unary::Forward { op: UnaryOp::Silu, len: n, alpha: 0.0 }), n, vec![(n, None)]),
        ("tanh", Kernel::Unary(Unary::Forward { op: UnaryOp::Tanh, len: n, alpha: 0.0 }), n, vec![(n, None)]),
        (
            "add",
            Kernel::Binary(Binary { op: BinaryOp::Add, bc: Broadcast::same(n) }),
            n,
            vec![(n, None), (n, None)],
        ),
        ("softmax", Kernel::softmax(rows, cols, false), n, vec![(n, None)]),
        ("log_softmax", Kernel::softmax(rows, cols, true), n, vec![(n, None)]),
        ("layer_norm", Kernel::LayerNorm(LayerNorm::Forward { rows, cols, eps: 1e-5 }), n, vec![(n, None)]),
        (
            "softmax_ce_grad",
            Kernel::Loss(Loss::SoftmaxCeGrad { rows, cols }),
            n,
            vec![(n, None), (rows, Some(cols as u32)), (1, None)],
        ),
        (
            "softmax_ce_loss",
            Kernel::Loss(Loss::SoftmaxCeLoss { rows, cols }),
            1,
            vec![(n, None), (rows, Some(cols as u32))],
        ),
        (
            "swiglu_grad_gate",
            Kernel::Glu(Glu::SwigluGradGate { len: n }),
            n,
            vec![(n, None), (n, None), (n, None)],
        ),
        // max pooling through its block table (no padding) and window by window (padding)
        ("max_pool", Kernel::Pooling(Pooling::MaxPool { win }), pooled, vec![(image, None)]),
        (
            "max_pool_grad",
            Kernel::Pooling(Pooling::MaxPoolGrad { win }),
            image,
            vec![(image, None), (pooled, None)],
        ),
        ("max_pool pad", Kernel::Pooling(Pooling::MaxPool { win: padded }), padded_out, vec![(image, None)]),
    ];
    let levels: Vec<Level> =
        [Level::Base, Level::Avx2, Level::Avx512].into_iter().filter(|&l| l <= simd::detected()).collect();
    eprintln!("vector levels on this CPU: {levels:?}");
    for parallel_min in [1, usize::MAX / 64] {
        for (name, kernel, out_len, ins) in &cases {
            let mut outs = Vec::new();
            for &level in &levels {
                assert_eq!(simd::set_level(level), level);
                let mut be = CpuBackend::with_parallel_min(parallel_min);
                outs.push(run(&mut be, *kernel, *out_len, ins));
            }
            simd::set_level(Level::Avx512);
            for (level, out) in levels.iter().zip(&outs).skip(1) {
                assert!(
                    out == &outs[0],
                    "{name}: {level:?} differs from {:?} (parallel_min {parallel_min})",
                    levels[0]
                );
            }
            assert!(outs[0].iter().any(|&b| f32::from_bits(b) != 0.0), "{name}: all zeros");
        }
    }
}
