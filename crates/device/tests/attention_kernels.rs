//! The decoder-attention kernels: rotary embedding (`rope`), softmax masked by query positions
//! (`softmax_upto`) and the in-place key/value cache write (`write_rows`). Each against a plain
//! float64 reference on the CPU backend, then the WGSL kernel against the CPU twin on the same
//! random inputs of odd sizes (skipped loudly without an adapter, failing under
//! `KILN_REQUIRE_GPU=1`).

mod common;

use common::{assert_close, softmax_row, Rng};
use kiln_device::cpu::CpuBackend;
use kiln_device::{Backend, BufferId, HostData, HostVec, Kernel, Launch, Memory, Rope, Softmax};

/// One input buffer's initial contents.
enum Init {
    F(Vec<f32>),
    U(Vec<u32>),
}

fn upload(b: &mut dyn Backend, init: &[Init]) -> Vec<BufferId> {
    init.iter()
        .map(|d| match d {
            Init::F(v) => b.upload(HostData::F32(v)).unwrap(),
            Init::U(v) => b.upload(HostData::U32(v)).unwrap(),
        })
        .collect()
}

/// Runs `k` over buffers holding `init` (slot order) and returns the first buffer (the output).
fn run(b: &mut dyn Backend, k: Kernel, init: &[Init]) -> Vec<f32> {
    let ids = upload(b, init);
    b.run(Launch::new(k, &ids)).unwrap_or_else(|e| panic!("{k:?}: {e}"));
    let out = b.read_f32(ids[0]).unwrap();
    for id in ids {
        b.release(id).unwrap();
    }
    out
}

/// The CPU result against `want` (f64) and, where an adapter exists, the GPU's against the CPU's.
fn check(what: &str, k: Kernel, init: &[Init], want: &[f64], gpu_rtol: f64) {
    let cpu = run(&mut CpuBackend::with_parallel_min(1), k, init);
    assert_close(&format!("{what}: cpu vs f64"), &cpu, want, 1e-5, 1e-6);
    let cpu_serial = run(&mut CpuBackend::new(), k, init);
    assert_eq!(cpu, cpu_serial, "{what}: threaded vs serial CPU");
    if let Some(mut gpu) = kiln_device::testing::gpu_or_skip(what) {
        let got = run(gpu.as_mut(), k, init);
        let want: Vec<f64> = cpu.iter().map(|&v| v as f64).collect();
        assert_close(&format!("{what}: gpu vs cpu"), &got, &want, gpu_rtol, 1e-6);
    }
}

/// `rotate_half` rope straight from its definition, in f64.
fn rope_ref(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    heads: usize,
    d: usize,
    t_rows: usize,
    sign: f64,
) -> Vec<f64> {
    let half = d / 2;
    let mut y = vec![0.0; x.len()];
    for v in 0..x.len() / d {
        let t = (v / heads) % t_rows;
        for i in 0..half {
            let (c, s) = (cos[t * half + i] as f64, sign * sin[t * half + i] as f64);
            let (a, b) = (x[v * d + i] as f64, x[v * d + i + half] as f64);
            // rotate_half(x) = [-x2, x1]; y = x * cos + rotate_half(x) * sin
            y[v * d + i] = a * c + (-b) * s;
            y[v * d + i + half] = b * c + a * s;
        }
    }
    y
}

#[test]
fn rope_matches_its_definition_and_the_gpu() {
    let mut rng = Rng::new(7);
    // [B, T, H, D] with [T, D/2] tables; and the decode form [B, 1, H, D] with [B, D/2] tables.
    for (b, t, h, d, t_rows) in [(3, 5, 3, 18, 5), (2, 7, 1, 2, 7), (3, 1, 5, 10, 3), (1, 9, 2, 64, 9)] {
        let x = rng.normal_vec(b * t * h * d);
        let angles = rng.uniform_vec(t_rows * d / 2, -3.0, 3.0);
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        for inverse in [false, true] {
            let k = Kernel::Rope(Rope { rows: b * t, heads: h, half: d / 2, table_rows: t_rows, inverse });
            let want = rope_ref(&x, &cos, &sin, h, d, t_rows, if inverse { -1.0 } else { 1.0 });
            let init = [
                Init::F(vec![f32::NAN; x.len()]),
                Init::F(x.clone()),
                Init::F(cos.clone()),
                Init::F(sin.clone()),
            ];
            check(&format!("rope b{b} t{t} h{h} d{d} inverse {inverse}"), k, &init, &want, 1e-5);
        }
        // The inverse rotation undoes the forward one.
        let mut cpu = CpuBackend::new();
        let fwd =
            Kernel::Rope(Rope { rows: b * t, heads: h, half: d / 2, table_rows: t_rows, inverse: false });
        let y = run(
            &mut cpu,
            fwd,
            &[Init::F(vec![0.0; x.len()]), Init::F(x.clone()), Init::F(cos.clone()), Init::F(sin.clone())],
        );
        let back = Kernel::Rope(Rope {
            inverse: true,
            ..match fwd {
                Kernel::Rope(r) => r,
                _ => unreachable!(),
            }
        });
        let x2 = run(&mut cpu, back, &[Init::F(vec![0.0; x.len()]), Init::F(y), Init::F(cos), Init::F(sin)]);
        let want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert_close("rope inverse(rope(x)) = x", &x2, &want, 1e-5, 1e-5);
    }
}

#[test]
fn rope_rejects_tables_that_do_not_tile_the_rows() {
    let k = Kernel::Rope(Rope { rows: 5, heads: 1, half: 2, table_rows: 3, inverse: false });
    assert!(k.validate().is_err());
    let k = Kernel::Rope(Rope { rows: 5, heads: 1, half: 0, table_rows: 5, inverse: false });
    assert!(k.validate().is_err());
}

#[test]
fn softmax_upto_masks_by_position() {
    let mut rng = Rng::new(11);
    // rows = blocks * queries; positions in range, at the last column, and past the end.
    for (blocks, queries, cols, scale) in
        [(3, 5, 7, 0.37f32), (6, 1, 13, -1.3), (2, 3, 70, 2.5), (4, 2, 129, 0.125)]
    {
        let rows = blocks * queries;
        let x = rng.normal_vec(rows * cols);
        let mut pos: Vec<u32> = (0..queries).map(|_| (rng.next_u64() % cols as u64) as u32).collect();
        if queries > 2 {
            pos[1] = cols as u32 - 1;
            pos[2] = cols as u32 + 4;
        }
        let mut want = Vec::new();
        for r in 0..rows {
            let n = (pos[r % queries] as usize).min(cols - 1) + 1;
            let row: Vec<f64> = x[r * cols..r * cols + n].iter().map(|&v| scale as f64 * v as f64).collect();
            want.extend(softmax_row(&row));
            want.extend(std::iter::repeat_n(0.0, cols - n));
        }
        let k = Kernel::Softmax(Softmax::Upto { rows, cols, scale, queries });
        let init = [Init::F(vec![f32::NAN; rows * cols]), Init::F(x), Init::U(pos.clone())];
        let what = format!("softmax_upto {rows}x{cols} queries {queries} positions {pos:?}");
        check(&what, k, &init, &want, 1e-4);
        let cpu = run(&mut CpuBackend::new(), k, &init);
        for r in 0..rows {
            let n = (pos[r % queries] as usize).min(cols - 1) + 1;
            assert!(cpu[r * cols + n..(r + 1) * cols].iter().all(|&v| v == 0.0), "{what}: row {r} masked");
        }
    }
    let bad = Kernel::Softmax(Softmax::Upto { rows: 7, cols: 3, scale: 1.0, queries: 2 });
    assert!(bad.validate().is_err(), "7 rows are not whole blocks of 2 queries");
}

#[test]
fn write_rows_writes_in_place_at_the_positions() {
    let mut rng = Rng::new(13);
    for (outer, axis_len, inner, pos) in [
        (3, 7, 5, vec![4u32]),
        (2, 9, 18, vec![0, 8, 3]),
        (1, 5, 3, vec![2, 1, 0, 4, 3]),
        (5, 33, 7, vec![32, 1]),
    ] {
        let n_idx = pos.len();
        let cache = rng.normal_vec(outer * axis_len * inner);
        let src = rng.normal_vec(outer * n_idx * inner);
        let mut want: Vec<f64> = cache.iter().map(|&v| v as f64).collect();
        for o in 0..outer {
            for (j, &p) in pos.iter().enumerate() {
                for i in 0..inner {
                    want[(o * axis_len + p as usize) * inner + i] = src[(o * n_idx + j) * inner + i] as f64;
                }
            }
        }
        let k = Kernel::Memory(Memory::WriteRows { outer, axis_len, inner, n_idx });
        let init = [Init::F(cache), Init::F(src), Init::U(pos.clone())];
        check(&format!("write_rows {outer}x{axis_len}x{inner} at {pos:?}"), k, &init, &want, 0.0);
    }
}

/// An out-of-range position: an error on the CPU (nothing written), skipped on the GPU.
#[test]
fn write_rows_out_of_range_position() {
    let (outer, axis_len, inner) = (2, 4, 3);
    let mut rng = Rng::new(17);
    let cache = rng.normal_vec(outer * axis_len * inner);
    let src = rng.normal_vec(outer * 2 * inner);
    let k = Kernel::Memory(Memory::WriteRows { outer, axis_len, inner, n_idx: 2 });
    let init = [Init::F(cache.clone()), Init::F(src.clone()), Init::U(vec![1, 4])];
    let mut cpu = CpuBackend::new();
    let ids = upload(&mut cpu, &init);
    let err = cpu.run(Launch::new(k, &ids)).expect_err("position 4 of 4 rows");
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(cpu.read(ids[0]).unwrap(), HostVec::F32(cache.clone()), "the cache is untouched");
    if let Some(mut gpu) = kiln_device::testing::gpu_or_skip("write_rows out of range") {
        let got = run(gpu.as_mut(), k, &init);
        let mut want = cache.clone();
        for o in 0..outer {
            want[(o * axis_len + 1) * inner..][..inner].copy_from_slice(&src[(o * 2) * inner..][..inner]);
        }
        assert_eq!(got, want, "the GPU writes the valid row and skips the other");
    }
}
