//! f16 and bf16 buffers on both backends: sizes, host round trips of odd lengths (the last word
//! half used), partial writes, and the errors for mismatched host data. Without an adapter the GPU
//! half prints SKIPPED; with `KILN_REQUIRE_GPU=1` it fails instead.

mod common;

use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::half::{bf16, f16};
use kiln_device::{Backend, DType, Error, HostData, HostVec};

/// Odd lengths, an even one, and one spanning many words.
const LENS: [usize; 5] = [1, 2, 3, 17, 70_001];

/// Random half values of both types (normal draws, so every exponent near 1 and both signs).
fn values(rng: &mut Rng, n: usize) -> (Vec<f16>, Vec<bf16>) {
    let v = rng.normal_vec(n);
    (v.iter().map(|&x| f16::from_f32(x)).collect(), v.iter().map(|&x| bf16::from_f32(x * 1e30)).collect())
}

fn round_trips(be: &mut dyn Backend) {
    let mut rng = Rng::new(3);
    for len in LENS {
        let (h, b) = values(&mut rng, len);
        let ih = be.upload(HostData::F16(&h)).unwrap();
        let ib = be.upload(HostData::BF16(&b)).unwrap();
        assert_eq!(be.describe(ih).unwrap(), (DType::F16, len));
        assert_eq!(be.describe(ib).unwrap(), (DType::BF16, len));
        assert_eq!(be.read(ih).unwrap(), HostVec::F16(h.clone()), "f16 x {len}");
        assert_eq!(be.read(ib).unwrap(), HostVec::BF16(b.clone()), "bf16 x {len}");
        // A partial write of even length keeps the elements past it.
        if len >= 3 {
            let head: Vec<f16> = (0..2).map(|i| f16::from_f32(-(i as f32) - 0.5)).collect();
            be.write(ih, HostData::F16(&head)).unwrap();
            let got = be.read(ih).unwrap().into_f16().unwrap();
            assert_eq!(&got[..2], &head[..], "partial write x {len}");
            assert_eq!(&got[2..], &h[2..], "partial write x {len} kept the rest");
            // An odd partial write would share its last word with the next element: refused.
            let err = be.write(ih, HostData::F16(&h[..1])).unwrap_err();
            assert!(matches!(err, Error::HostData { host: 1, .. }), "{err}");
            assert!(err.to_string().contains("even length"), "{err}");
        }
        for id in [ih, ib] {
            be.release(id).unwrap();
        }
    }
    // Wrong host type, too long, wrong read accessor.
    let id = be.alloc(DType::BF16, 5).unwrap();
    let err = be.write(id, HostData::F16(&[f16::ONE; 5])).unwrap_err();
    assert!(
        matches!(err, Error::HostData { buffer_dtype: DType::BF16, host_dtype: DType::F16, .. }),
        "{err}"
    );
    let err = be.write(id, HostData::BF16(&[bf16::ONE; 6])).unwrap_err();
    assert!(matches!(err, Error::HostData { buffer: 5, host: 6, .. }), "{err}");
    let err = be.read(id).unwrap().into_f32().unwrap_err();
    assert!(err.to_string().contains("BF16"), "{err}");
    be.release(id).unwrap();
}

#[test]
fn half_buffers_round_trip_on_the_cpu() {
    round_trips(&mut CpuBackend::new());
}

#[test]
fn half_buffers_round_trip_on_the_gpu() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("half buffers") else { return };
    round_trips(gpu.as_mut());
}

/// Two bytes per element, whole 32-bit words per buffer; the pool counts those bytes.
#[test]
fn half_buffers_take_two_bytes_per_element() {
    assert_eq!(DType::F16.bytes(1), 4);
    assert_eq!(DType::BF16.bytes(3), 8);
    assert_eq!(DType::F16.bytes(4), 8);
    assert_eq!(DType::F32.bytes(3), 12);
    assert_eq!((DType::F16.size(), DType::U32.size()), (2, 4));
    assert_eq!(DType::ALL.map(|d| d.to_string()), ["f32", "u32", "f16", "bf16"]);
    let mut cpu = CpuBackend::new();
    let before = cpu.stats().bytes_held;
    cpu.alloc(DType::BF16, 1001).unwrap();
    assert_eq!(cpu.stats().bytes_held - before, 2004);
}
