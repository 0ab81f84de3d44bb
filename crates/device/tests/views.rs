//! Views ([`Backend::view`]): ids for ranges of a buffer, which kernels, reads and writes see as
//! buffers of their own while the elements stay the parent's. Flat parameter memory is built on
//! them: one optimizer launch over a whole buffer whose ranges are the parameters, bit for bit the
//! launches over each parameter alone. Every case runs on the CPU backend and on the GPU adapter
//! (loudly skipped without one; a failure in CI, `KILN_REQUIRE_GPU=1`).

mod common;

use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::{
    AdamHyper, Backend, Binary, BinaryOp, Broadcast, DType, Error, HostData, Kernel, Launch, Matmul, Optim,
    VIEW_ALIGN,
};

fn backends(what: &str) -> Vec<Box<dyn Backend>> {
    let mut v: Vec<Box<dyn Backend>> = vec![Box::new(CpuBackend::new())];
    v.extend(kiln_device::testing::gpu_or_skip(what));
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Elements per aligned view offset for f32.
const STEP: usize = VIEW_ALIGN / 4;

#[test]
fn views_read_write_and_bind_their_parents_elements() {
    let mut rng = Rng::new(11);
    let (m, k, n) = (5, 7, 3);
    let (a, b) = (rng.normal_vec(m * k), rng.normal_vec(k * n));
    for mut be in backends("views") {
        let parent = be.upload(HostData::F32(&rng.normal_vec(3 * STEP + 11))).unwrap();
        let before = be.read_f32(parent).unwrap();
        // operands in two views, the product written into a third
        let va = be.view(parent, 0, m * k).unwrap();
        let vb = be.view(parent, STEP, k * n).unwrap();
        let vc = be.view(parent, 2 * STEP, m * n).unwrap();
        assert_eq!(be.describe(vb).unwrap(), (DType::F32, k * n));
        be.write(va, HostData::F32(&a)).unwrap();
        be.write(vb, HostData::F32(&b)).unwrap();
        let (ta, tb) = (be.upload(HostData::F32(&a)).unwrap(), be.upload(HostData::F32(&b)).unwrap());
        let tc = be.alloc(DType::F32, m * n).unwrap();
        let mm = Kernel::Matmul(Matmul::new(m, n, k));
        be.run(Launch::new(mm, &[tc, ta, tb])).unwrap();
        // writing a view while reading views of the same parent is refused (wgpu tracks a
        // dispatch's usage per buffer): the product goes to a buffer of its own, then is added in
        let zero = be.upload(HostData::F32(&vec![0.0; m * n])).unwrap();
        let err = be.prepare(&[Launch::new(mm, &[vc, va, vb])]).unwrap_err();
        assert!(err.to_string().contains("storage is also bound"), "{err}");
        let add = Kernel::Binary(Binary { op: BinaryOp::Add, bc: Broadcast::same(m * n) });
        be.run(Launch::new(add, &[vc, tc, zero])).unwrap();
        let want = be.read_f32(tc).unwrap();
        assert_eq!(bits(&be.read_f32(vc).unwrap()), bits(&want));
        let after = be.read_f32(parent).unwrap();
        assert_eq!(bits(&after[..m * k]), bits(&a));
        assert_eq!(bits(&after[STEP..STEP + k * n]), bits(&b));
        assert_eq!(bits(&after[2 * STEP..2 * STEP + m * n]), bits(&want));
        // the elements no view covers are untouched
        for (i, (x, y)) in after.iter().zip(&before).enumerate() {
            let covered =
                i < m * k || (STEP..STEP + k * n).contains(&i) || (2 * STEP..2 * STEP + m * n).contains(&i);
            if !covered {
                assert_eq!(x.to_bits(), y.to_bits(), "element {i}");
            }
        }
        // a parent with live views cannot be released; its views can, then it can
        assert!(matches!(be.release(parent), Err(Error::View { .. })));
        for v in [va, vb, vc] {
            be.release(v).unwrap();
        }
        be.release(parent).unwrap();
    }
}

#[test]
fn bad_views_are_refused() {
    for mut be in backends("views") {
        let parent = be.alloc(DType::F32, 4 * STEP).unwrap();
        let half = be.alloc(DType::BF16, 4 * STEP).unwrap();
        for (p, at, len, why) in [
            (parent, 1, 4, "multiple of 256 bytes"),
            (parent, STEP, 3 * STEP + 1, "holds"),
            (parent, 0, 0, "holds"),
            (half, STEP, 8, "multiple of 256 bytes"), // 128 bytes into a bf16 buffer
        ] {
            let err = be.view(p, at, len).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
        }
        let v = be.view(half, 2 * STEP, 9).unwrap();
        assert_eq!(be.describe(v).unwrap(), (DType::BF16, 9));
        let w = be.view(parent, STEP, 8).unwrap();
        assert!(be.view(w, 0, 4).unwrap_err().to_string().contains("itself a view"));
        // overlapping writes in one launch
        let x = be.view(parent, STEP, 16).unwrap();
        let mut rng = Rng::new(2);
        let other = be.upload(HostData::F32(&rng.normal_vec(16))).unwrap();
        let adam = Kernel::Optim(Optim::Adam { len: 8, decoupled: true, decayed: 8 });
        let hyper = be.upload(HostData::F32(&[0.0; 8])).unwrap();
        let err = be.prepare(&[Launch::new(adam, &[w, other, hyper, x, other])]).unwrap_err();
        assert!(err.to_string().contains("storage is also bound"), "{err}");
    }
}

/// One Adam launch over three parameters laid out in one buffer (each at an aligned offset, the
/// two decayed ones first, zero padding between) gives bit for bit what one launch per
/// parameter gives, padding left at zero, for several steps.
#[test]
fn one_update_over_flat_memory_equals_one_per_parameter() {
    let mut rng = Rng::new(5);
    let lens = [70, 1, 200]; // decayed, decayed, exempt
    let offsets = [0, 2 * STEP, 3 * STEP];
    let total = 3 * STEP + 200;
    let params: Vec<Vec<f32>> = lens.iter().map(|&l| rng.normal_vec(l)).collect();
    let grads: Vec<Vec<Vec<f32>>> =
        (0..3).map(|_| lens.iter().map(|&l| rng.normal_vec(l)).collect()).collect();
    let hyper = |t: i32| {
        AdamHyper {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.3,
            bias_correction1: 1.0 - 0.9f32.powi(t),
            bias_correction2: 1.0 - 0.99f32.powi(t),
            skip: 0.0,
        }
        .words()
    };
    let mut results = Vec::new();
    for mut be in backends("flat optimizer update") {
        let h = be.upload(HostData::F32(&hyper(1))).unwrap();
        // one buffer per parameter
        let mut own = Vec::new();
        for (p, &l) in params.iter().zip(&lens) {
            let bufs: Vec<_> = [p.clone(), vec![0.0; l], vec![0.0; l], vec![0.0; l]]
                .iter()
                .map(|d| be.upload(HostData::F32(d)).unwrap())
                .collect();
            own.push(bufs);
        }
        // flat: param, grad, m, v buffers with views
        let flat: Vec<_> = (0..4).map(|_| be.upload(HostData::F32(&vec![0.0; total])).unwrap()).collect();
        let views: Vec<Vec<_>> = (0..3)
            .map(|i| flat.iter().map(|&f| be.view(f, offsets[i], lens[i]).unwrap()).collect())
            .collect();
        for (v, p) in views.iter().zip(&params) {
            be.write(v[0], HostData::F32(p)).unwrap();
        }
        let per: Vec<Launch> = (0..3)
            .map(|i| {
                let k = Kernel::Optim(Optim::Adam {
                    len: lens[i],
                    decoupled: true,
                    decayed: lens[i] * (i < 2) as usize,
                });
                let b = &own[i];
                Launch::new(k, &[b[0], b[1], h, b[2], b[3]])
            })
            .collect();
        let one = Kernel::Optim(Optim::Adam { len: total, decoupled: true, decayed: 3 * STEP });
        let one = be.prepare(&[Launch::new(one, &[flat[0], flat[1], h, flat[2], flat[3]])]).unwrap();
        let per = be.prepare(&per).unwrap();
        for (t, g) in grads.iter().enumerate() {
            be.write(h, HostData::F32(&hyper(t as i32 + 1))).unwrap();
            for i in 0..3 {
                be.write(own[i][1], HostData::F32(&g[i])).unwrap();
                be.write(views[i][1], HostData::F32(&g[i])).unwrap();
            }
            let (a, b) = (be.submit(one, &[]).unwrap(), be.submit(per, &[]).unwrap());
            be.wait(a).unwrap();
            be.wait(b).unwrap();
        }
        let mut got = Vec::new();
        for i in 0..3 {
            for s in [0, 2, 3] {
                let (x, y) = (be.read_f32(views[i][s]).unwrap(), be.read_f32(own[i][s]).unwrap());
                assert_eq!(bits(&x), bits(&y), "parameter {i}, slot {s}, {}", be.info().name);
                got.push(x);
            }
        }
        // the padding stayed zero
        let p = be.read_f32(flat[0]).unwrap();
        for (i, x) in p.iter().enumerate() {
            if !(0..3).any(|j| (offsets[j]..offsets[j] + lens[j]).contains(&i)) {
                assert_eq!(*x, 0.0, "padding element {i}");
            }
        }
        results.push(got);
    }
    // and the GPU agrees with the CPU (up to the device's float rounding)
    if let [cpu, gpu] = &results[..] {
        for (a, b) in cpu.iter().zip(gpu) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-6 * (1.0 + x.abs()), "{x} vs {y}");
            }
        }
    }
}
