//! The decoder ops a Llama-style model needs for training and cached generation: rotary embedding
//! (`rope`, `rope_tables`), softmax masked by query positions (`scaled_softmax_upto`) and the
//! in-place key/value cache write (`cache`, `cache_write`). Gradients against central differences
//! in f64, plans against the f64 reference, and a step-by-step decode over a cache against full
//! causal attention over the whole sequence, on the CPU backend and on the GPU (lavapipe in CI).

mod common;

use common::{check, Case, Rng};
use kiln_device::{open, Backend, BackendChoice, HostData};
use kiln_graph::shape::{Batch, Fixed};
use kiln_graph::{rope_tables, Graph, Session, B};

fn gpu() -> Option<Box<dyn Backend>> {
    kiln_device::testing::gpu_or_skip("the decode graphs")
}

fn cpu() -> Box<dyn Backend> {
    open(BackendChoice::Cpu).unwrap()
}

fn assert_near(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn rope_tables_match_hand_computed_values() {
    // theta 10000, D 8: inv_freq = [1, 0.1, 0.01, 0.001]; position 3.
    let (cos, sin) = rope_tables(4, 8, 10000.0);
    assert_eq!((cos.len(), sin.len()), (16, 16));
    assert_eq!((&cos[..4], &sin[..4]), (&[1.0f32; 4][..], &[0.0f32; 4][..]), "position 0");
    assert_eq!(
        (cos[12], sin[12]),
        (-0.989_992_496_600_445_f64 as f32, 0.141_120_008_059_867_f64 as f32),
        "t 3, i 0: cos(3), sin(3)"
    );
    // 3 * f32(0.1) = 0.30000001192..., whose cosine and sine rounded to f32
    assert_eq!((cos[13], sin[13]), (0.955_336_5, 0.295_520_22), "t 3, i 1");
    // SmolLM2's base 100000 with D 64 (computed in f32 as transformers does, then f64 cos / sin)
    let (cos, sin) = rope_tables(1001, 64, 100000.0);
    assert_eq!((cos[17 * 32 + 1], sin[17 * 32 + 1]), (0.762_743_5, -0.646_701_16), "t 17, i 1");
    assert_eq!((cos[1000 * 32 + 31], sin[1000 * 32 + 31]), (0.999_897_3, 0.014_329_636), "t 1000, i 31");
}

/// rotate_half from its definition: `y = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)`.
fn rope_definition(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    t_of_row: impl Fn(usize) -> usize,
    h: usize,
    d: usize,
) -> Vec<f32> {
    let half = d / 2;
    let mut y = vec![0.0; x.len()];
    for v in 0..x.len() / d {
        let t = t_of_row(v / h);
        for j in 0..d {
            let (c, s) = (cos[t * half + j % half], sin[t * half + j % half]);
            let rot = if j < half { -x[v * d + j + half] } else { x[v * d + j - half] };
            y[v * d + j] = x[v * d + j] * c + rot * s;
        }
    }
    y
}

/// `rope` on a plan equals its definition, for `[B, T, H, D]` with `[T, D/2]` tables and for a
/// decode step with `[B, D/2]` tables gathered by position; on the CPU and the GPU.
#[test]
fn rope_matches_its_definition_in_training_and_decode_form() {
    let (b, t, h, d, tmax) = (3, 5, 3, 18, 9);
    let (cos_t, sin_t) = rope_tables(tmax, d, 10000.0);
    let mut rng = Rng::new(5);
    let xs = rng.vec(b * t * h * d);
    let pos = vec![2u32, 0, 7];
    let xd = rng.vec(b * h * d);
    for backend in [Some(cpu()), gpu()].into_iter().flatten() {
        let g = Graph::new();
        let x = g.input("x", &[t, h, d]);
        let cos = g.constant(&[t, d / 2], cos_t[..t * d / 2].to_vec());
        let sin = g.constant(&[t, d / 2], sin_t[..t * d / 2].to_vec());
        let y = g.rope(x, cos, sin);
        // decode form: x [B, 1, H, D], tables gathered from [Tmax, D/2] by a u32 position per row
        let xt = g.input("xt", &[1, h, d]);
        let p = g.input_u32("pos", &[]);
        let cos_all = g.constant(&[tmax, d / 2], cos_t.clone());
        let sin_all = g.constant(&[tmax, d / 2], sin_t.clone());
        let yt = g.rope(xt, g.gather(cos_all, p, 0), g.gather(sin_all, p, 0));
        g.check().unwrap();
        let mut s = Session::new(g, backend).unwrap();
        let name = s.backend().info().name.clone();
        let got = s.run_sync(&[(x, HostData::F32(&xs))], &[y]).unwrap();
        let want = rope_definition(&xs, &cos_t, &sin_t, |r| r % t, h, d);
        assert_near(&format!("rope [B, T, H, D] on {name}"), &got[0], &want, 2e-6);
        let got = s.run_sync(&[(xt, HostData::F32(&xd)), (p, HostData::U32(&pos))], &[yt]).unwrap();
        let want = rope_definition(&xd, &cos_t, &sin_t, |r| pos[r] as usize, h, d);
        assert_near(&format!("rope decode form on {name}"), &got[0], &want, 2e-6);
    }
}

#[test]
fn rope_gradient_to_x() {
    for (seed, (b, t, h, d)) in [(1u64, (3, 5, 3, 18)), (2, (2, 3, 1, 4))] {
        let mut c = Case::new(40 + seed, 1);
        let x = c.param(&[b, t, h, d]);
        let angles = c.rng.vec(t * d / 2);
        let cos = c.g.constant(&[t, d / 2], angles.iter().map(|a| (3.0 * a).cos()).collect());
        let sin = c.g.constant(&[t, d / 2], angles.iter().map(|a| (3.0 * a).sin()).collect());
        let y = c.g.rope(x, cos, sin);
        check(&format!("rope [{b}, {t}, {h}, {d}]"), c, y);
    }
    // decode form, tables per batch row, the batch symbolic
    let mut c = Case::new(43, 3);
    let x = c.input(&[1, 2, 6]);
    let w = c.param(&[1, 2, 6]);
    let xw = c.g.mul(x, w);
    let table: Vec<f32> = c.rng.vec(7 * 3);
    let cos = c.g.constant(&[7, 3], table.iter().map(|a| a.cos()).collect());
    let sin = c.g.constant(&[7, 3], table.iter().map(|a| a.sin()).collect());
    let pos = c.labels(&[], 7);
    let y = c.g.rope(xw, c.g.gather(cos, pos, 0), c.g.gather(sin, pos, 0));
    check("rope decode form", c, y);
}

#[test]
fn rope_refuses_bad_shapes_and_trained_tables() {
    let g = Graph::new();
    let x = g.input("x", &[5, 3, 6]);
    let ok = g.constant(&[5, 3], vec![0.5; 15]);
    g.rope(x, ok, g.constant(&[4, 3], vec![0.5; 12]));
    assert!(g.check().is_err(), "cos and sin differ");
    for (xs, ts) in [
        (&[5usize, 3, 7][..], &[5usize, 3][..]),
        (&[5, 3, 6], &[4, 3]),
        (&[5, 3, 6], &[5, 2]),
        (&[3, 6], &[5, 3]),
    ] {
        let g = Graph::new();
        let x = g.input("x", xs);
        let (c, s) =
            (g.constant(ts, vec![0.5; ts.iter().product()]), g.constant(ts, vec![0.5; ts.iter().product()]));
        g.rope(x, c, s);
        assert!(g.check().is_err(), "x [B, {xs:?}] with tables {ts:?}");
    }
    let g = Graph::new();
    let x = g.param("x", &[1, 2, 1, 4]);
    let c = g.param("cos", &[2, 2]);
    let s = g.constant(&[2, 2], vec![0.5; 4]);
    let loss = g.sum_all(g.rope(x, c, s));
    let err = g.gradients(loss, &[x, c]).unwrap_err();
    assert!(err.to_string().contains("constants"), "{err}");
}

#[test]
fn scaled_softmax_upto_gradient() {
    for (seed, (lead, tq, tk), pos) in
        [(1u64, (2, 3, 7), vec![6u32, 0, 3]), (2, (3, 1, 5), vec![9]), (3, (1, 4, 4), vec![1, 3, 0, 2])]
    {
        let mut c = Case::new(60 + seed, 1);
        let x = c.param(&[lead, tq, tk]);
        let p = c.g.input_u32("pos", &[tq]);
        c.u32_inputs.push((p, pos.clone()));
        let y = c.g.scaled_softmax_upto(x, 0.7, p);
        check(&format!("scaled_softmax_upto [{lead}, {tq}, {tk}] at {pos:?}"), c, y);
    }
}

/// With positions 0..T over `[.., T, T]`, the mask is exactly the causal one.
#[test]
fn scaled_softmax_upto_over_every_position_is_causal() {
    let (t, lead) = (5, 3);
    let xs = Rng::new(8).vec(lead * t * t);
    let pos: Vec<u32> = (0..t as u32).collect();
    for backend in [Some(cpu()), gpu()].into_iter().flatten() {
        let g = Graph::new();
        let x = g.input("x", &[lead, t, t]);
        let p = g.input_u32("pos", &[t]);
        let upto = g.scaled_softmax_upto(x, 0.45, p);
        let causal = g.scaled_softmax(x, 0.45, true);
        let mut s = Session::new(g, backend).unwrap();
        let got = s.run_sync(&[(x, HostData::F32(&xs)), (p, HostData::U32(&pos))], &[upto, causal]).unwrap();
        assert_eq!(got[0], got[1], "on {}", s.backend().info().name);
    }
}

const KVH: usize = 2;
const G: usize = 3;
const D: usize = 6;
const TMAX: usize = 7;

/// Full causal grouped-query attention over a sequence of T, at once: q `[KVH, G*T, D]` (query
/// head kvh*G + g, position t at row g*T + t), k and v `[KVH, T, D]`.
fn full_attention(backend: Box<dyn Backend>, t: usize, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let g = Graph::new();
    let (q, k, v) = (
        g.constant(&[KVH, G * t, D], q.to_vec()),
        g.constant(&[KVH, t, D], k.to_vec()),
        g.constant(&[KVH, t, D], v.to_vec()),
    );
    let s = g.reshape(g.matmul_t(q, k, false, true), &[Fixed(KVH * G), Fixed(t), Fixed(t)]);
    let p =
        g.reshape(g.scaled_softmax(s, 1.0 / (D as f32).sqrt(), true), &[Fixed(KVH), Fixed(G * t), Fixed(t)]);
    let o = g.matmul(p, v);
    Session::new(g, backend).unwrap().run_sync(&[], &[o]).unwrap().remove(0)
}

/// Position `step`'s rows of `m [KVH, groups * t, D]` (row g*t + step of each group), as
/// `[KVH, groups, D]`.
fn heads_at(m: &[f32], groups: usize, t: usize, step: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for h in 0..KVH {
        for gg in 0..groups {
            out.extend_from_slice(&m[((h * groups + gg) * t + step) * D..][..D]);
        }
    }
    out
}

/// Decodes sequences step by step through key/value caches and compares each step with full
/// causal attention; the caches are cleared between sequences.
fn decode_matches_full_attention(
    backend: Box<dyn Backend>,
    full: impl Fn(usize, &[f32], &[f32], &[f32]) -> Vec<f32>,
) {
    let g = Graph::new();
    let q = g.input("q", &[KVH, G, D]); // [B = 1, KVH, G, D]: this token's query heads
    let k = g.input("k", &[KVH, D]);
    let v = g.input("v", &[KVH, D]);
    let pos = g.input_u32("pos", &[]); // [B]: this token's position
    let q3 = g.reshape(q, &[Fixed(KVH), Batch(G), Fixed(D)]);
    let rows = |x| g.reshape(x, &[Fixed(KVH), B, Fixed(D)]);
    let kc = g.cache("k_cache", &[KVH, TMAX, D]);
    let vc = g.cache("v_cache", &[KVH, TMAX, D]);
    let k_all = g.cache_write(kc, rows(k), pos);
    let v_all = g.cache_write(vc, rows(v), pos);
    let scores = g.matmul_t(q3, k_all, false, true); // [KVH, G, TMAX]
    let probs = g.scaled_softmax_upto(scores, 1.0 / (D as f32).sqrt(), pos);
    let out = g.matmul(probs, v_all); // [KVH, G, D]
    g.check().unwrap();
    let mut s = Session::new(g, backend).unwrap();
    let name = s.backend().info().name.clone();
    let mut rng = Rng::new(99);
    for (seq, t) in [5usize, TMAX, 3].into_iter().enumerate() {
        let (qf, kf, vf) = (rng.vec(KVH * G * t * D), rng.vec(KVH * t * D), rng.vec(KVH * t * D));
        let want = full(t, &qf, &kf, &vf);
        s.zero_state("k_cache").unwrap();
        s.zero_state("v_cache").unwrap();
        assert!(s.get_state("k_cache").unwrap().iter().all(|&x| x == 0.0));
        for step in 0..t {
            let (qs, ks, vs) =
                (heads_at(&qf, G, t, step), heads_at(&kf, 1, t, step), heads_at(&vf, 1, t, step));
            let p = [step as u32];
            let feeds = [
                (q, HostData::F32(&qs)),
                (k, HostData::F32(&ks)),
                (v, HostData::F32(&vs)),
                (pos, HostData::U32(&p)),
            ];
            let got = s.run_sync(&feeds, &[out]).unwrap().remove(0);
            let want_step = heads_at(&want, G, t, step);
            assert_near(&format!("{name}: sequence {seq}, step {step}"), &got, &want_step, 1e-5);
        }
        // the caches hold the whole sequence's keys and values, row t at position t
        let cache = s.get_state("v_cache").unwrap();
        for h in 0..KVH {
            assert_eq!(cache[h * TMAX * D..][..t * D], vf[h * t * D..][..t * D], "{name}: v cache head {h}");
        }
    }
    assert_eq!(s.stats().plans_compiled, 1, "{name}: one plan for every step");
}

#[test]
fn decode_over_a_cache_matches_full_causal_attention_on_cpu() {
    decode_matches_full_attention(cpu(), |t, q, k, v| full_attention(cpu(), t, q, k, v));
}

#[test]
fn decode_over_a_cache_matches_full_causal_attention_on_gpu() {
    let Some(backend) = gpu() else { return };
    // the reference is the CPU's full attention; the decode steps run on the GPU
    decode_matches_full_attention(backend, |t, q, k, v| full_attention(cpu(), t, q, k, v));
}

#[test]
fn cache_write_checks() {
    let g = Graph::new();
    let pos = g.input_u32("pos", &[]);
    let r = g.input("r", &[4]);
    let rows = g.reshape(r, &[B, Fixed(4)]);
    g.cache_write(g.constant(&[5, 4], vec![1.0; 20]), rows, pos);
    assert!(g.check().is_err(), "a constant is not a cache");
    let g = Graph::new();
    let pos = g.input_u32("pos", &[]);
    let r = g.input("r", &[3]);
    let c = g.cache("c", &[5, 4]);
    g.cache_write(c, g.reshape(r, &[B, Fixed(3)]), pos);
    assert!(g.check().is_err(), "rows of 3 into a cache of rows of 4");
    // An out-of-range position is an error on the CPU; the cache is untouched.
    let g = Graph::new();
    let pos = g.input_u32("pos", &[]);
    let r = g.input("r", &[4]);
    let c = g.cache("c", &[5, 4]);
    let w = g.cache_write(c, g.reshape(r, &[B, Fixed(4)]), pos);
    let loss = g.sum_all(w);
    assert!(g.gradients(loss, &[c]).is_err(), "no gradient through a cache write");
    let mut s = Session::new(g, cpu()).unwrap();
    let data = [1.5f32, -2.0, 0.25, 3.0];
    let got = s.run_sync(&[(r, HostData::F32(&data)), (pos, HostData::U32(&[2]))], &[w]).unwrap();
    let mut want = vec![0.0; 20];
    want[8..12].copy_from_slice(&data);
    assert_eq!(got[0], want);
    let err = s.run_sync(&[(r, HostData::F32(&data)), (pos, HostData::U32(&[5]))], &[w]).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(s.get_state("c").unwrap(), want);
}
