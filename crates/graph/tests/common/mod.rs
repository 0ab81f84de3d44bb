//! Shared test helpers: a seeded generator, random tensors, and the gradient check.
#![allow(dead_code)]

use std::collections::HashMap;

use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::reference::{evaluate, Values};
use kiln_graph::{DType, Graph, NodeId, Session};

/// xorshift64*: deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Values in [-1, 1] kept at least 0.05 away from 0 (no kinks at relu/abs).
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.uniform(0.05, 1.0);
                (if self.next_u64() & 1 == 0 { v } else { -v }) as f32
            })
            .collect()
    }
    pub fn positive(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform(0.5, 1.5) as f32).collect()
    }
    pub fn below(&mut self, n: usize, bound: u32) -> Vec<u32> {
        (0..n).map(|_| (self.next_u64() % bound as u64) as u32).collect()
    }
}

/// A test case: a graph, the parameters to differentiate, and the fed inputs.
pub struct Case {
    pub g: Graph,
    pub rng: Rng,
    pub batch: usize,
    pub params: Vec<NodeId>,
    pub f32_inputs: Vec<(NodeId, Vec<f32>)>,
    pub u32_inputs: Vec<(NodeId, Vec<u32>)>,
}

impl Case {
    pub fn new(seed: u64, batch: usize) -> Self {
        Case {
            g: Graph::new(),
            rng: Rng::new(seed),
            batch,
            params: vec![],
            f32_inputs: vec![],
            u32_inputs: vec![],
        }
    }
    pub fn param(&mut self, shape: &[usize]) -> NodeId {
        let data = self.rng.vec(shape.iter().product());
        self.param_with(shape, data)
    }
    pub fn positive_param(&mut self, shape: &[usize]) -> NodeId {
        let data = self.rng.positive(shape.iter().product());
        self.param_with(shape, data)
    }
    pub fn param_with(&mut self, shape: &[usize], data: Vec<f32>) -> NodeId {
        let p = self.g.param_init(&format!("p{}", self.params.len()), shape, data);
        self.params.push(p);
        p
    }
    pub fn input(&mut self, rest: &[usize]) -> NodeId {
        let n = self.batch * rest.iter().product::<usize>();
        let data = self.rng.vec(n);
        let x = self.g.input(&format!("x{}", self.f32_inputs.len()), rest);
        self.f32_inputs.push((x, data));
        x
    }
    pub fn labels(&mut self, rest: &[usize], classes: u32) -> NodeId {
        let n = self.batch * rest.iter().product::<usize>();
        let data = self.rng.below(n, classes);
        let y = self.g.input_u32(&format!("y{}", self.u32_inputs.len()), rest);
        self.u32_inputs.push((y, data));
        y
    }

    /// Ends `y` in a loss whose incoming gradient is not uniform: `sum(exp(y) * r)`, r random.
    pub fn test_loss(&mut self, y: NodeId) -> NodeId {
        let shape = self.g.shape(y);
        let r = if shape.rank() > 0
            && shape.0[0] == kiln_graph::B
            && !shape.0[1..].iter().any(|d| matches!(d, kiln_graph::Dim::Batch(_)))
        {
            let rest: Vec<usize> = shape.resolve(1)[1..].to_vec();
            self.input(&rest)
        } else {
            let dims = shape.resolve(self.batch);
            let data = self.rng.vec(dims.iter().product());
            self.g.constant(&dims, data)
        };
        let e = self.g.exp(y);
        let prod = self.g.mul(e, r);
        self.g.sum_all(prod)
    }

    fn values(&self) -> Values {
        let mut v: Values = HashMap::new();
        for (x, d) in &self.f32_inputs {
            v.insert(*x, d.iter().map(|&a| a as f64).collect());
        }
        for (x, d) in &self.u32_inputs {
            v.insert(*x, d.iter().map(|&a| a as f64).collect());
        }
        v
    }
}

/// The gradient check: `(analytic, numeric)` directional derivatives of `loss` along a random
/// direction over all parameters, both in f64 through the reference interpreter.
pub fn directional(case: &mut Case, loss: NodeId, grads: &[NodeId]) -> (f64, f64) {
    let base = case.values();
    let vals = evaluate(&case.g, case.batch, &base).expect("reference evaluates");
    let mut analytic = 0.0;
    let mut dirs = Vec::new();
    for (&p, &gr) in case.params.iter().zip(grads) {
        let d: Vec<f64> = (0..vals[p.index()].len()).map(|_| case.rng.uniform(-1.0, 1.0)).collect();
        analytic += vals[gr.index()].iter().zip(&d).map(|(a, b)| a * b).sum::<f64>();
        dirs.push(d);
    }
    let eps = 1e-6;
    let at = |sign: f64| {
        let mut v = base.clone();
        for (&p, d) in case.params.iter().zip(&dirs) {
            v.insert(p, vals[p.index()].iter().zip(d).map(|(x, d)| x + sign * eps * d).collect());
        }
        evaluate(&case.g, case.batch, &v).expect("reference evaluates")[loss.index()][0]
    };
    let numeric = (at(1.0) - at(-1.0)) / (2.0 * eps);
    (analytic, numeric)
}

pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * (1.0 + a.abs().max(b.abs()))
}

/// Checks autodiff for the loss `sum(exp(y) * r)` of `y`, in f64 against central differences, then
/// runs loss and gradients through a compiled plan on the CPU backend in f32 against the f64
/// reference. Panics naming `what` on a mismatch.
pub fn check(what: &str, mut case: Case, y: NodeId) {
    let loss = case.test_loss(y);
    let params = case.params.clone();
    let grads = case.g.gradients(loss, &params).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (a, n) = directional(&mut case, loss, &grads);
    assert!(close(a, n, 1e-6), "{what}: analytic {a} vs numeric {n}");
    check_backend(what, case, loss, &grads);
}

/// Loss and gradients from the CPU backend (f32) vs the reference (f64).
pub fn check_backend(what: &str, case: Case, loss: NodeId, grads: &[NodeId]) {
    let vals = evaluate(&case.g, case.batch, &case.values()).unwrap();
    let mut fetch = vec![loss];
    fetch.extend_from_slice(grads);
    let want: Vec<Vec<f64>> = fetch.iter().map(|f| vals[f.index()].clone()).collect();
    let backend = open(BackendChoice::Cpu).unwrap();
    let Case { g, f32_inputs, u32_inputs, .. } = case;
    let mut s = Session::new(g, backend).unwrap();
    let mut feeds: Vec<(NodeId, HostData)> = f32_inputs.iter().map(|(x, d)| (*x, HostData::F32(d))).collect();
    feeds.extend(u32_inputs.iter().map(|(x, d)| (*x, HostData::U32(d))));
    let got = s.run_sync(&feeds, &fetch).unwrap_or_else(|e| panic!("{what}: {e}"));
    for (k, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got.len(), want.len(), "{what}: output {k} length");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 2e-5 * scale,
                "{what}: output {k} (0 = loss, then gradients) [{i}]: cpu {g} vs reference {w}"
            );
        }
    }
    let _ = DType::F32;
}
