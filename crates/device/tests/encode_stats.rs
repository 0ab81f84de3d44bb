//! The GPU backend's encoding counters (`Stats::submits`, `dispatches`, `encode_ns`): each
//! submission counts its dispatches and the host time spent encoding them, a part counts only its
//! launches, a plan-less read counts a submission with no dispatch, and the CPU backend counts
//! nothing. Without an adapter the GPU half prints SKIPPED; with `KILN_REQUIRE_GPU=1` it fails.

mod common;

use common::{assert_close, Rng};
use kiln_device::cpu::CpuBackend;
use kiln_device::{Backend, DType, HostData, Kernel, Launch, Stats, Unary, UnaryOp};

/// A chain of `n` elementwise launches over `len` random values (tanh, then exp of that,
/// alternating); returns the plan's launches, its last output and that output computed on the host.
fn chain(be: &mut dyn Backend, n: usize, len: usize) -> (Vec<Launch>, kiln_device::BufferId, Vec<f64>) {
    let x = Rng::new(11).uniform_vec(len, -2.0, 2.0);
    let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut prev = be.alloc(DType::F32, len).unwrap();
    be.write(prev, HostData::F32(&x)).unwrap();
    let mut launches = Vec::new();
    for i in 0..n {
        let op = if i % 2 == 0 { UnaryOp::Tanh } else { UnaryOp::Exp };
        want.iter_mut().for_each(|v| *v = if i % 2 == 0 { v.tanh() } else { v.exp() });
        let out = be.alloc(DType::F32, len).unwrap();
        launches.push(Launch::new(Kernel::Unary(Unary::Forward { op, len, alpha: 0.0 }), &[out, prev]));
        prev = out;
    }
    (launches, prev, want)
}

fn delta(after: Stats, before: Stats) -> (u64, u64, u64) {
    (after.submits - before.submits, after.dispatches - before.dispatches, after.encode_ns - before.encode_ns)
}

#[test]
fn gpu_counts_dispatches_and_encoding_time_per_submission() {
    let Some(mut be) = kiln_device::testing::gpu_or_skip("the encoding counters") else { return };
    let (launches, out, want) = chain(be.as_mut(), 7, 333);
    let plan = be.prepare(&launches).unwrap();
    let before = be.stats();
    for _ in 0..3 {
        let t = be.submit(plan, &[out]).unwrap();
        let got = be.wait(t).unwrap().remove(0).into_f32().unwrap();
        assert_close("chain", &got, &want, 1e-5, 1e-6);
    }
    let (submits, dispatches, ns) = delta(be.stats(), before);
    assert_eq!((submits, dispatches), (3, 21), "three submissions of a seven-launch plan");
    assert!(ns > 0, "encoding took no measurable time");

    let before = be.stats();
    let t = be.submit_part(plan, 2..5, &[]).unwrap();
    be.wait(t).unwrap();
    let (submits, dispatches, _) = delta(be.stats(), before);
    assert_eq!((submits, dispatches), (1, 3), "a part of launches 2..5");

    let before = be.stats();
    be.read(out).unwrap();
    let (submits, dispatches, ns) = delta(be.stats(), before);
    assert_eq!((submits, dispatches), (1, 0), "a read is one submission, no dispatch");
    assert!(ns > 0, "encoding the read-back copy took no measurable time");
    be.drop_plan(plan).unwrap();
}

#[test]
fn cpu_encodes_nothing() {
    let mut be = CpuBackend::new();
    let (launches, out, want) = chain(&mut be, 4, 129);
    let plan = be.prepare(&launches).unwrap();
    let t = be.submit(plan, &[out]).unwrap();
    assert_close("chain", &be.wait(t).unwrap().remove(0).into_f32().unwrap(), &want, 1e-5, 1e-6);
    let s = be.stats();
    assert_eq!((s.submits, s.dispatches, s.encode_ns), (0, 0, 0));
}
