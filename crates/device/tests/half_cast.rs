//! The cast kernels (`cast_f32_bf16`, `cast_bf16_f32`, `cast_f32_f16`, `cast_f16_f32`):
//! - the CPU twin against explicit values whose bits are written out here (zeros, NaNs with
//!   payloads, infinities, overflow to infinity, subnormals, ties to even), and against a float64
//!   reference on random values (rounding done with f64 arithmetic, not with the `half` crate);
//! - the GPU (lavapipe in CI) against the CPU twin, bit for bit, on odd lengths (the last word half
//!   used) and on the explicit values.
//!
//! Outputs are poisoned before each run so an element a kernel forgets fails. Without an adapter the
//! GPU tests print SKIPPED; with `KILN_REQUIRE_GPU=1` they fail instead.

mod common;

use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::half::{bf16, f16};
use kiln_device::{Backend, Cast, DType, HostVec, Kernel, Launch};

/// Odd lengths, an even one, and one spanning hundreds of workgroups.
const LENS: [usize; 6] = [1, 2, 3, 17, 127, 70_001];

/// f32 bits -> the f16 bits they must cast to.
const TO_F16: [(u32, u16); 27] = [
    (0x0000_0000, 0x0000), // +0
    (0x8000_0000, 0x8000), // -0
    (0x3f80_0000, 0x3c00), // 1
    (0xc020_0000, 0xc100), // -2.5
    (0x477f_e000, 0x7bff), // 65504, the largest f16
    (0x477f_efff, 0x7bff), // just below the tie at 65520: stays finite
    (0x477f_f000, 0x7c00), // 65520: the tie rounds to even, which is infinity
    (0x4974_2400, 0x7c00), // 1e6: overflow to +inf
    (0xc974_2400, 0xfc00), // -1e6: to -inf
    (0x7f7f_ffff, 0x7c00), // f32::MAX
    (0x7f80_0000, 0x7c00), // +inf
    (0xff80_0000, 0xfc00), // -inf
    (0x7fc0_0000, 0x7e00), // quiet NaN
    (0x7f80_0001, 0x7e00), // signalling NaN, payload below f16's: quieted
    (0xffa0_2000, 0xff01), // negative NaN: top payload bits kept, quiet bit set
    (0x3380_0000, 0x0001), // 2^-24, the smallest subnormal
    (0x3300_0000, 0x0000), // 2^-25: tie between 0 and 2^-24, to even 0
    (0x3340_0000, 0x0001), // 1.5 * 2^-25: above the tie
    (0x33c0_0000, 0x0002), // 1.5 * 2^-24: tie between 1 and 2 ulps, to even 2
    (0x3880_0000, 0x0400), // 2^-14, the smallest normal
    (0x387f_e000, 0x0400), // 2^-14 - 2^-25: tie between 0x3ff and 0x400, to even
    (0x3f80_1000, 0x3c00), // 1 + 2^-11: tie, to even 1
    (0x3f80_3000, 0x3c02), // 1 + 3 * 2^-11: tie, to even 1 + 2^-9
    (0x3f80_1001, 0x3c01), // just above the tie
    (0x0001_0000, 0x0000), // an f32 subnormal: underflow to +0
    (0x8001_0000, 0x8000), // to -0
    (0xb440_0000, 0x8003), // -3 * 2^-24: exact
];

/// f32 bits -> the bf16 bits they must cast to.
const TO_BF16: [(u32, u16); 16] = [
    (0x0000_0000, 0x0000),
    (0x8000_0000, 0x8000),
    (0x3f80_0000, 0x3f80), // 1
    (0x3f80_8000, 0x3f80), // 1 + 2^-8: tie, to even
    (0x3f81_8000, 0x3f82), // 1 + 3 * 2^-8: tie, to even
    (0x3f80_8001, 0x3f81), // just above the tie
    (0x7f7f_7fff, 0x7f7f), // below the last tie: the largest bf16
    (0x7f7f_8000, 0x7f80), // the tie past the largest bf16 rounds to even: +inf
    (0xff7f_ffff, 0xff80), // -f32::MAX: -inf
    (0x7f80_0000, 0x7f80),
    (0x7f80_0001, 0x7fc0), // signalling NaN: quieted
    (0xffc1_2345, 0xffc1), // NaN: top payload bits kept
    (0x0000_8000, 0x0000), // subnormal tie, to even 0
    (0x0001_8000, 0x0002), // subnormal tie, to even 2
    (0x0000_8001, 0x0001), // above the tie
    (0x8000_7fff, 0x8000), // below the tie: -0
];

/// f16 bits -> the f32 bits they must widen to.
const FROM_F16: [(u16, u32); 10] = [
    (0x0000, 0x0000_0000),
    (0x8000, 0x8000_0000),
    (0x3c00, 0x3f80_0000),
    (0x0001, 0x3380_0000), // 2^-24
    (0x83ff, 0xb87f_c000), // the largest subnormal, negative
    (0x0400, 0x3880_0000), // 2^-14
    (0x7bff, 0x477f_e000), // 65504
    (0x7c00, 0x7f80_0000),
    (0xfc00, 0xff80_0000),
    (0x7c01, 0x7fc0_2000), // signalling NaN: quieted, payload kept
];

/// bf16 bits -> the f32 bits they must widen to.
const FROM_BF16: [(u16, u32); 7] = [
    (0x0000, 0x0000_0000),
    (0x8000, 0x8000_0000),
    (0x3f80, 0x3f80_0000),
    (0x0001, 0x0001_0000), // a subnormal
    (0x7f7f, 0x7f7f_0000),
    (0xff80, 0xff80_0000),
    (0xff81, 0xffc1_0000), // signalling NaN: quieted
];

fn half_data(dtype: DType, bits: &[u16]) -> HostVec {
    match dtype {
        DType::F16 => HostVec::F16(bits.iter().map(|&b| f16::from_bits(b)).collect()),
        _ => HostVec::BF16(bits.iter().map(|&b| bf16::from_bits(b)).collect()),
    }
}

fn half_bits(v: HostVec) -> Vec<u16> {
    match v {
        HostVec::F16(v) => v.iter().map(|h| h.to_bits()).collect(),
        HostVec::BF16(v) => v.iter().map(|h| h.to_bits()).collect(),
        other => panic!("not a half buffer: {other:?}"),
    }
}

fn upload(be: &mut dyn Backend, v: &HostVec) -> kiln_device::BufferId {
    be.upload(v.as_data()).unwrap()
}

/// Poison of `len` elements of `dtype`: NaN.
fn poison(dtype: DType, len: usize) -> HostVec {
    match dtype {
        DType::F32 => HostVec::F32(vec![f32::NAN; len]),
        DType::F16 => HostVec::F16(vec![f16::NAN; len]),
        _ => HostVec::BF16(vec![bf16::NAN; len]),
    }
}

/// Runs `from -> to` on `x` and returns the output.
fn cast(be: &mut dyn Backend, to: DType, x: &HostVec) -> HostVec {
    let k = Kernel::Cast(Cast::new(x.dtype(), to, x.len()));
    let out = upload(be, &poison(to, x.len()));
    let input = upload(be, x);
    be.run(Launch::new(k, &[out, input])).unwrap_or_else(|e| panic!("{k:?}: {e}"));
    let got = be.read(out).unwrap();
    for id in [out, input] {
        be.release(id).unwrap();
    }
    got
}

fn f32_bits(v: HostVec) -> Vec<u32> {
    v.into_f32().unwrap().iter().map(|x| x.to_bits()).collect()
}

fn f32_data(bits: &[u32]) -> HostVec {
    HostVec::F32(bits.iter().map(|&b| f32::from_bits(b)).collect())
}

/// Runs every explicit case on `be` and checks the bits.
fn explicit_cases(be: &mut dyn Backend) {
    for (to, table) in [(DType::F16, &TO_F16[..]), (DType::BF16, &TO_BF16[..])] {
        let x: Vec<u32> = table.iter().map(|c| c.0).collect();
        let got = half_bits(cast(be, to, &f32_data(&x)));
        for (&(x, want), got) in table.iter().zip(got) {
            assert_eq!(got, want, "{x:#010x} -> {to}: got {got:#06x}, want {want:#06x}");
        }
    }
    for (from, table) in [(DType::F16, &FROM_F16[..]), (DType::BF16, &FROM_BF16[..])] {
        let x: Vec<u16> = table.iter().map(|c| c.0).collect();
        let got = f32_bits(cast(be, DType::F32, &half_data(from, &x)));
        for (&(x, want), got) in table.iter().zip(got) {
            assert_eq!(got, want, "{from} {x:#06x} -> f32: got {got:#010x}, want {want:#010x}");
        }
    }
}

/// The float64 reference of rounding a finite f32 to a half type with `mant` mantissa bits,
/// exponent bias `bias`: the nearest value on the type's grid (ties to the even multiple), or
/// infinity past the largest finite value's rounding range. Returns the bits.
fn round_ref(x: f32, mant: i32, bias: i32) -> u16 {
    let sign = if x.is_sign_negative() { 1u16 << 15 } else { 0 };
    let a = x.abs() as f64;
    let min_normal_exp = 1 - bias;
    let max_exp = bias;
    let largest = (2.0 - 2f64.powi(-mant)) * 2f64.powi(max_exp);
    let exp_bits = ((1u16 << (15 - mant)) - 1) << mant; // all ones: infinity
    if a >= largest + 2f64.powi(max_exp - mant - 1) {
        return sign | exp_bits;
    }
    // every f32 is a normal f64: its exponent field is floor(log2(a))
    let e = if a == 0.0 { min_normal_exp } else { ((a.to_bits() >> 52) as i32 - 1023).max(min_normal_exp) };
    let spacing = 2f64.powi(e - mant);
    let r = (a / spacing).round_ties_even() as u16; // exact: a / spacing has few bits
    if a < 2f64.powi(min_normal_exp) {
        sign | r // subnormal (r reaching 2^mant is the smallest normal's encoding)
    } else {
        sign | ((((e + bias) as u16) << mant) + (r - (1 << mant))) // r may carry into the exponent
    }
}

/// The float64 reference of widening half bits (`mant` mantissa bits, bias `bias`).
fn widen_ref(h: u16, mant: i32, bias: i32) -> f64 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exp = ((h & 0x7fff) >> mant) as i32;
    let man = (h & ((1 << mant) - 1)) as f64;
    if exp == 0 {
        sign * man * 2f64.powi(1 - bias - mant)
    } else {
        sign * (man + 2f64.powi(mant)) * 2f64.powi(exp - bias - mant)
    }
}

/// Random finite f32 values over a half type's whole range: normals, subnormals, near overflow.
fn wide_range(rng: &mut Rng, n: usize, max_exp: i32, min_exp: i32) -> Vec<f32> {
    rng.normal_vec(n)
        .iter()
        .map(|&x| {
            let e = min_exp + (rng.unit() * (max_exp - min_exp + 2) as f64) as i32;
            (x as f64 * 2f64.powi(e)) as f32
        })
        .collect()
}

#[test]
fn cpu_casts_give_the_explicit_bits() {
    explicit_cases(&mut CpuBackend::new());
}

/// The CPU twin (the `half` crate, threaded or not) against the float64 references.
#[test]
fn cpu_casts_match_the_f64_reference() {
    let mut rng = Rng::new(11);
    for be in [CpuBackend::new(), CpuBackend::with_parallel_min(1)].iter_mut() {
        for len in LENS {
            for (to, mant, bias, lo) in [(DType::F16, 10, 15, -26), (DType::BF16, 7, 127, -135)] {
                let x = wide_range(&mut rng, len, bias, lo);
                let h = half_bits(cast(be, to, &HostVec::F32(x.clone())));
                for (i, (&x, &h)) in x.iter().zip(&h).enumerate() {
                    let want = round_ref(x, mant, bias);
                    assert_eq!(h, want, "{to} x {len}, element {i}: {x:e} gave {h:#06x}, want {want:#06x}");
                }
                let back = cast(be, DType::F32, &half_data(to, &h)).into_f32().unwrap();
                for (&b, &h) in back.iter().zip(&h) {
                    let want = widen_ref(h, mant, bias);
                    if want.is_finite() && h & 0x7fff < (0x7fff >> mant << mant) {
                        assert_eq!(b as f64, want, "{to} {h:#06x} -> f32");
                    } else {
                        assert!(b.is_infinite(), "{to} {h:#06x} -> {b}");
                    }
                }
            }
        }
    }
}

#[test]
fn gpu_casts_give_the_explicit_bits() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("the cast kernels") else { return };
    explicit_cases(gpu.as_mut());
}

/// GPU against CPU, bit for bit, on random bits of every kind (any f32 or half bit pattern:
/// NaNs, infinities and subnormals included) at odd lengths.
#[test]
fn gpu_casts_match_cpu_bit_for_bit() {
    let Some(mut gpu) = kiln_device::testing::gpu_or_skip("the cast kernels") else { return };
    eprintln!("cast parity on {}", gpu.info());
    let mut cpu = CpuBackend::new();
    let mut rng = Rng::new(5);
    for len in LENS {
        let x = f32_data(&(0..len).map(|_| rng.next_u64() as u32).collect::<Vec<_>>());
        // Exact ties (the bits below the half's last mantissa bit are one half), which random
        // bits rarely hit: f16's (low 13 bits 0x1000, exponents inside f16's range) and bf16's.
        let normal = wide_range(&mut rng, len, 15, -14);
        let ties = f32_data(
            &normal
                .iter()
                .enumerate()
                .map(|(i, x)| match i % 2 {
                    0 => (x.to_bits() & !0x1fff) | 0x1000,
                    _ => (x.to_bits() & !0xffff) | 0x8000,
                })
                .collect::<Vec<_>>(),
        );
        let h: Vec<u16> = (0..len).map(|_| rng.next_u64() as u16).collect();
        for half in [DType::F16, DType::BF16] {
            for x in [&x, &ties] {
                let (g, c) = (half_bits(cast(gpu.as_mut(), half, x)), half_bits(cast(&mut cpu, half, x)));
                assert_eq!(g, c, "f32 -> {half} x {len}");
            }
            let hx = half_data(half, &h);
            let (g, c) =
                (f32_bits(cast(gpu.as_mut(), DType::F32, &hx)), f32_bits(cast(&mut cpu, DType::F32, &hx)));
            assert_eq!(g, c, "{half} -> f32 x {len}");
        }
    }
}

/// Pairs without a kernel are refused when the launch is prepared, naming both types.
#[test]
fn unsupported_casts_are_refused() {
    let mut cpu = CpuBackend::new();
    let out = cpu.alloc(DType::F16, 3).unwrap();
    let x = cpu.alloc(DType::BF16, 3).unwrap();
    let err =
        cpu.run(Launch::new(Kernel::Cast(Cast::new(DType::BF16, DType::F16, 3)), &[out, x])).unwrap_err();
    assert!(err.to_string().contains("bf16 to f16"), "{err}");
}
