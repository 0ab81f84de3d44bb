//! Helpers shared by the device tests (the CPU reference tests and the GPU parity tests): a seeded
//! generator, float32 tolerance checks, and plain float64 reference functions written with simple
//! loops, independently of the kernels they check. (The scalar ops' float64 formulas are
//! `UnaryOp::eval_f64` / `deriv_f64` and `BinaryOp::eval_f64`, shared with the graph's interpreter.)
#![allow(dead_code)] // each test binary uses a different subset

pub mod matmul_parity;

/// Float32-level tolerance used throughout: `|got - want| <= RTOL * |want| + ATOL`, elementwise.
pub const RTOL: f64 = 1e-5;
pub const ATOL: f64 = 1e-6;

/// A small seeded generator (xorshift64*, seeded through splitmix64). No `rand` crate: the
/// sequence must never change under us.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.unit() as f32).collect()
    }

    /// Standard normal (Box-Muller), never exactly zero: |x| < 1e-3 is drawn again.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| loop {
                let (u, v) = (1.0 - self.unit(), self.unit());
                let x = ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32;
                if x.abs() >= 1e-3 {
                    break x;
                }
            })
            .collect()
    }

    /// Uniform magnitude in [lo, hi) with a random sign: inputs kept away from zero.
    pub fn away_from_zero_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        let mut v = self.uniform_vec(n, lo, hi);
        for x in &mut v {
            if self.next_u64() & 1 == 1 {
                *x = -*x;
            }
        }
        v
    }

    /// Small nonzero integers (-3..=3 without 0), as floats: comparisons and ties happen.
    pub fn small_int_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let k = (self.next_u64() % 6) as i32 - 3;
                (if k >= 0 { k + 1 } else { k }) as f32
            })
            .collect()
    }

    /// Class labels in 0..classes.
    pub fn labels(&mut self, n: usize, classes: usize) -> Vec<u32> {
        (0..n).map(|_| (self.next_u64() % classes as u64) as u32).collect()
    }
}

/// Asserts `|got - want| <= rtol * |want| + atol` for every element (NaN always fails), naming the
/// check and the first bad element.
pub fn assert_close(name: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = ((g as f64) - w).abs() <= rtol * w.abs() + atol;
        assert!(ok, "{name}: element {i} of {}: got {g}, want {w}", got.len());
    }
}

/// Asserts `||got - want|| / ||want|| <= tol` (2-norms), and that nothing is NaN.
pub fn assert_rel_norm(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    assert!(got.iter().all(|g| g.is_finite()), "{name}: non-finite output");
    let diff: f64 = got.iter().zip(want).map(|(&g, &w)| (g as f64 - w).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    assert!(diff <= tol * norm, "{name}: relative error {} > {tol}", diff / norm);
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

// ---- float64 references -------------------------------------------------------------------------

/// numpy broadcasting by multi-index: for each output element (row-major), the flat indices into
/// `a` and `b`. Returns the output shape too.
pub fn broadcast_indices(a: &[usize], b: &[usize]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let rank = a.len().max(b.len());
    let pad = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
    let (pa, pb) = (pad(a), pad(b));
    let out: Vec<usize> = pa.iter().zip(&pb).map(|(&x, &y)| x.max(y)).collect();
    let n: usize = out.iter().product();
    let mut idx = Vec::with_capacity(n);
    for flat in 0..n {
        // unravel flat into a multi-index of `out`
        let mut rem = flat;
        let mut coord = vec![0; rank];
        for d in (0..rank).rev() {
            coord[d] = rem % out[d];
            rem /= out[d];
        }
        let ravel = |shape: &[usize]| {
            coord.iter().zip(shape).fold(0, |acc, (&c, &s)| acc * s + if s == 1 { 0 } else { c })
        };
        idx.push((ravel(&pa), ravel(&pb)));
    }
    (out, idx)
}

/// `op(A) @ op(B)` for one batch entry, A stored `[m, k]` (`[k, m]` if `ta`), B `[k, n]` (`[n, k]`).
#[allow(clippy::too_many_arguments)]
pub fn matmul(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                let av = if ta { a[p * m + i] } else { a[i * k + p] };
                let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                s += av as f64 * bv as f64;
            }
            c[i * n + j] = s;
        }
    }
    c
}

/// Softmax of one row, in float64.
pub fn softmax_row(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|&v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

pub fn logsumexp(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|&v| (v - m).exp()).sum::<f64>().ln()
}
