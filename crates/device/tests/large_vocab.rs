//! Softmax cross-entropy over rows as long as a real vocabulary (SmolLM2's 49,152 tokens, plus
//! one): the GPU kernels against the CPU twin. Rows of 32K+ columns once came out wrong on
//! llvmpipe when one invocation walked a whole row (the loss of a 135M model read 0.3 instead of
//! 10.8), so the loss kernel now spreads every row over the workgroup.

use kiln_device::cpu::CpuBackend;
use kiln_device::{Backend, BufferId, HostData, HostVec, Kernel, Launch, Loss};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0
        })
        .collect()
}

/// Runs `kernel` over `bufs` (its output first) and reads the output back as f32.
fn run(be: &mut dyn Backend, kernel: Kernel, out_len: usize, ins: &[HostData<'_>]) -> Vec<f32> {
    let out = be.upload(HostData::F32(&vec![f32::NAN; out_len])).unwrap();
    let mut bufs: Vec<BufferId> = vec![out];
    bufs.extend(ins.iter().map(|d| be.upload(*d).unwrap()));
    let plan = be.prepare(&[Launch::new(kernel, &bufs)]).unwrap();
    let t = be.submit(plan, &[out]).unwrap();
    match be.wait(t).unwrap().remove(0) {
        HostVec::F32(v) => v,
        other => panic!("unexpected output {other:?}"),
    }
}

#[test]
fn softmax_cross_entropy_over_a_49153_column_vocabulary() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("softmax cross-entropy over long rows") else {
        return;
    };
    let (rows, cols) = (5, 49_153);
    let z = random(rows * cols, 11);
    let labels: Vec<u32> = vec![0, 49_152, 17, 30_001, 49_153]; // the last one is out of range
    let (x, l, dl) = (HostData::F32(&z), HostData::U32(&labels), HostData::F32(&[1.7]));

    let loss = Kernel::Loss(Loss::SoftmaxCeLoss { rows, cols });
    let (want, got) = (run(&mut CpuBackend::new(), loss, 1, &[x, l]), run(gpu.as_mut(), loss, 1, &[x, l]));
    assert!(want[0] > 8.0, "loss {} should be near ln(49153) = 10.8 for random logits", want[0]);
    assert!((got[0] - want[0]).abs() <= 1e-5 * want[0].abs(), "loss: gpu {} vs cpu {}", got[0], want[0]);

    let grad = Kernel::Loss(Loss::SoftmaxCeGrad { rows, cols });
    let want = run(&mut CpuBackend::new(), grad, rows * cols, &[x, l, dl]);
    let got = run(gpu.as_mut(), grad, rows * cols, &[x, l, dl]);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * scale, "dlogits[{i}]: gpu {g} vs cpu {w}");
    }
}
