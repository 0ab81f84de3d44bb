//! Grouped-query attention: its gradients (float64 check and the compiled f32 plan), and its
//! values against attention over explicitly repeated key/value heads computed in f64.

mod common;

use common::{check, Case};
use kiln_graph::reference::{evaluate, Values};
use kiln_graph::Graph;

#[test]
fn grouped_query_attention_gradients() {
    // B = 2, T = 5, 6 query heads over 2 key/value heads of width 3
    let mut c = Case::new(4100, 1);
    let q = c.param(&[2, 5, 6, 3]);
    let k = c.param(&[2, 5, 2, 3]);
    let v = c.param(&[2, 5, 2, 3]);
    let y = c.g.grouped_query_attention(q, k, v);
    check("grouped_query_attention", c, y);
}

/// Attention in f64 with key/value head `h / G` for query head `h`, causal.
fn reference(q: &[f64], k: &[f64], v: &[f64], [b, t, h, kvh, d]: [usize; 5]) -> Vec<f64> {
    let g = h / kvh;
    let mut out = vec![0.0; b * t * h * d];
    for bi in 0..b {
        for hi in 0..h {
            let kv = hi / g;
            for i in 0..t {
                let qi = &q[((bi * t + i) * h + hi) * d..][..d];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        let kj = &k[((bi * t + j) * kvh + kv) * d..][..d];
                        qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt()
                    })
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    let vj = &v[((bi * t + j) * kvh + kv) * d..][..d];
                    for x in 0..d {
                        out[((bi * t + i) * h + hi) * d + x] += ej / z * vj[x];
                    }
                }
            }
        }
    }
    out
}

#[test]
fn grouped_query_attention_values() {
    let (b, t, h, kvh, d) = (2, 7, 6, 3, 5);
    let mut rng = common::Rng::new(17);
    let g = Graph::new();
    let q = g.param_init("q", &[b, t, h, d], rng.vec(b * t * h * d));
    let k = g.param_init("k", &[b, t, kvh, d], rng.vec(b * t * kvh * d));
    let v = g.param_init("v", &[b, t, kvh, d], rng.vec(b * t * kvh * d));
    let y = g.grouped_query_attention(q, k, v);
    assert_eq!(g.shape(y).resolve(1), vec![b, t, h * d]);
    let vals = evaluate(&g, 1, &Values::new()).unwrap();
    let got = &vals[y.index()];
    let want = reference(&vals[q.index()], &vals[k.index()], &vals[v.index()], [b, t, h, kvh, d]);
    for (i, (a, w)) in got.iter().zip(&want).enumerate() {
        // the softmax scale 1/sqrt(D) is an f32 attribute: 1e-7 relative
        assert!((a - w).abs() <= 1e-7 * (1.0 + w.abs()), "element {i}: {a} vs {w}");
    }
    // a key/value head count that does not divide the query heads is a shape error
    let g = Graph::new();
    let q = g.param_init("q", &[1, 3, 4, 2], vec![0.5; 24]);
    let k = g.param_init("k", &[1, 3, 3, 2], vec![0.5; 18]);
    g.grouped_query_attention(q, k, k);
    let e = g.check().unwrap_err().to_string();
    assert!(e.contains("multiple of KVH"), "{e}");
}
