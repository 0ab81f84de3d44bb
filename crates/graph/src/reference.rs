//! A float64 interpreter of the IR: the slow, obviously-correct twin that tests check autodiff
//! (against finite differences) and the compiled plans (against the device) with. It follows the
//! device kernels' definitions, in f64, except that casts to f16 / bf16 are exact (identities).

use std::collections::HashMap;

use kiln_device::{Broadcast, Glu, Prim, ReduceOp, UnaryOp};

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, NodeId, Op};

/// Evaluates every node of `g` at batch size `batch`. `values` gives inputs (u32 inputs as
/// whole numbers) and may override parameters and constants; parameters without an override use
/// their initial values (or zeros). Optimizer updates are not run (their value is empty).
pub fn evaluate(g: &Graph, batch: usize, values: &HashMap<NodeId, Vec<f64>>) -> Result<Vec<Vec<f64>>> {
    g.check()?;
    let nodes = g.nodes();
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        let v = match values.get(&id) {
            Some(v) => v.clone(),
            None => eval_node(&nodes, node, &out, batch)
                .map_err(|e| Error::shape(node.op.name(), format!("reference: {e}")))?,
        };
        out.push(v);
    }
    Ok(out)
}

fn eval_node(
    nodes: &[Node],
    node: &Node,
    vals: &[Vec<f64>],
    batch: usize,
) -> std::result::Result<Vec<f64>, String> {
    let len = node.shape.numel(batch);
    let x = |k: usize| &vals[node.inputs[k].index()];
    let dims = |k: usize| nodes[node.inputs[k].index()].shape.resolve(batch);
    let split = |s: &[usize], axis: usize| {
        (s[..axis].iter().product::<usize>(), s[axis], s[axis + 1..].iter().product::<usize>())
    };
    let last = |s: &[usize]| *s.last().unwrap_or(&1);
    Ok(match &node.op {
        Op::Input { name } => return Err(format!("input '{name}' has no value")),
        Op::Param { .. } | Op::Const | Op::Accumulator { .. } => match &node.init {
            Some(d) => d.iter().map(|&v| v as f64).collect(),
            None => vec![0.0; len],
        },
        Op::State { .. } => match &node.init {
            Some(d) => d.iter().map(|&v| v as f64).collect(),
            None => vec![0.0; len],
        },
        Op::Hyper => vec![0.0; len],
        Op::Fill { value, per_batch } => {
            vec![*value as f64 / if *per_batch { batch as f64 } else { 1.0 }; len]
        }
        Op::Reshape => x(0).clone(),
        Op::Invalid => return Err("invalid node".into()),
        Op::Update { .. } | Op::RunningUpdate { .. } | Op::Accumulate => Vec::new(),
        Op::Unscale => x(0).iter().map(|g| g / x(1)[0]).collect(),
        Op::ScaleUpdate { .. } => x(2).clone(),
        // the cache with rows written at their positions along its second-to-last axis
        Op::CacheWrite => {
            let s = dims(0);
            let (tmax, inner) = (s[s.len() - 2], s[s.len() - 1]);
            let (n, mut y) = (x(2).len(), x(0).clone());
            for o in 0..len / (tmax * inner) {
                for (j, &p) in x(2).iter().enumerate() {
                    if p as usize >= tmax {
                        return Err(format!("position {p} is out of range for {tmax} rows"));
                    }
                    let (dst, src) = ((o * tmax + p as usize) * inner, (o * n + j) * inner);
                    y[dst..dst + inner].copy_from_slice(&x(1)[src..src + inner]);
                }
            }
            y
        }
        Op::Prim(prim) => match prim {
            Prim::Matmul { trans_a, trans_b } => {
                let (sa, sb) = (dims(0), dims(1));
                let rc = |s: &[usize]| (s[s.len() - 2], s[s.len() - 1]);
                let ((ar, ac), (br, bc)) = (rc(&sa), rc(&sb));
                let (m, k) = if *trans_a { (ac, ar) } else { (ar, ac) };
                let n = if *trans_b { br } else { bc };
                let nb = len / (m * n);
                let (sa_b, sb_b) =
                    (if sa.len() == 3 { m * k } else { 0 }, if sb.len() == 3 { k * n } else { 0 });
                let mut c = vec![0.0; len];
                for b in 0..nb {
                    for i in 0..m {
                        for j in 0..n {
                            let mut s = 0.0;
                            for p in 0..k {
                                let av = x(0)[b * sa_b + if *trans_a { p * m + i } else { i * k + p }];
                                let bv = x(1)[b * sb_b + if *trans_b { j * k + p } else { p * n + j }];
                                s += av * bv;
                            }
                            c[(b * m + i) * n + j] = s;
                        }
                    }
                }
                c
            }
            // Exact arithmetic: a cast changes how a value is stored, and the interpreter does
            // not model the rounding (a graph with half casts matches it within half precision).
            Prim::Cast { .. } => x(0).clone(),
            Prim::Unary { op, alpha } => x(0).iter().map(|&v| op.eval_f64(v, *alpha as f64)).collect(),
            Prim::UnaryGrad { op, alpha } => {
                x(0).iter().zip(x(1)).map(|(&s, &dy)| dy * op.grad_f64(s, *alpha as f64)).collect()
            }
            Prim::Binary(op) => {
                let bc = Broadcast::new(op.name(), &dims(0), &dims(1)).map_err(|e| e.to_string())?;
                (0..bc.len())
                    .map(|i| {
                        let (oa, ob) = bc.offsets(i);
                        op.eval_f64(x(0)[oa], x(1)[ob])
                    })
                    .collect()
            }
            Prim::Reduce { op, axis, .. } => {
                let (outer, n, inner) = split(&dims(0), *axis);
                let mut y = Vec::with_capacity(outer * inner);
                for o in 0..outer {
                    for i in 0..inner {
                        let col = (0..n).map(|j| x(0)[(o * n + j) * inner + i]);
                        y.push(match op {
                            ReduceOp::Sum => col.sum(),
                            ReduceOp::Mean => col.sum::<f64>() / n as f64,
                            ReduceOp::Max => col.fold(f64::NEG_INFINITY, f64::max),
                            ReduceOp::Argmax => {
                                let v: Vec<f64> = col.collect();
                                let best = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                                v.iter().position(|&a| a == best).unwrap_or(0) as f64
                            }
                        });
                    }
                }
                y
            }
            Prim::Softmax { log, scale, causal } => {
                let cols = last(&dims(0));
                let mut y = Vec::with_capacity(len);
                for (i, r) in x(0).chunks(cols).enumerate() {
                    // causal: row i of each [T, T] block sees columns 0..=i
                    let n = if *causal { i % cols + 1 } else { cols };
                    let r: Vec<f64> = r[..n].iter().map(|v| *scale as f64 * v).collect();
                    let lse = lse(&r);
                    y.extend(r.iter().map(|v| if *log { v - lse } else { (v - lse).exp() }));
                    y.extend(std::iter::repeat_n(0.0, cols - n));
                }
                y
            }
            Prim::SoftmaxUpto { scale } => {
                let (cols, q) = (last(&dims(0)), x(1).len());
                let mut y = Vec::with_capacity(len);
                for (i, r) in x(0).chunks(cols).enumerate() {
                    // row i keeps columns 0..=positions[i % q]
                    let n = (x(1)[i % q] as usize).min(cols - 1) + 1;
                    let r: Vec<f64> = r[..n].iter().map(|v| *scale as f64 * v).collect();
                    let lse = lse(&r);
                    y.extend(r.iter().map(|v| (v - lse).exp()));
                    y.extend(std::iter::repeat_n(0.0, cols - n));
                }
                y
            }
            Prim::Rope { inverse } => {
                let s = dims(0);
                let (heads, d) = (s[s.len() - 2], s[s.len() - 1]);
                let half = d / 2;
                let t_rows = x(1).len() / half;
                let sign = if *inverse { -1.0 } else { 1.0 };
                let mut y = vec![0.0; len];
                for v in 0..len / d {
                    let t = (v / heads % t_rows) * half;
                    for i in 0..half {
                        let (c, sn) = (x(1)[t + i], sign * x(2)[t + i]);
                        let (a, b) = (x(0)[v * d + i], x(0)[v * d + i + half]);
                        y[v * d + i] = a * c - b * sn;
                        y[v * d + i + half] = b * c + a * sn;
                    }
                }
                y
            }
            Prim::SoftmaxGrad { log, scale } => {
                let cols = last(&dims(0));
                let s = *scale as f64;
                let mut dx = Vec::with_capacity(len);
                for (y, dy) in x(0).chunks(cols).zip(x(1).chunks(cols)) {
                    if *log {
                        let t: f64 = dy.iter().sum();
                        dx.extend(y.iter().zip(dy).map(|(y, g)| s * (g - y.exp() * t)));
                    } else {
                        let t: f64 = y.iter().zip(dy).map(|(y, g)| y * g).sum();
                        dx.extend(y.iter().zip(dy).map(|(y, g)| s * y * (g - t)));
                    }
                }
                dx
            }
            Prim::LayerNorm { eps } => rows(x(0), last(&dims(0)), |r| {
                let (mean, rstd) = norm_stats(r, *eps as f64);
                r.iter().map(|v| (v - mean) * rstd).collect()
            }),
            Prim::LayerNormGrad { eps } => {
                let cols = last(&dims(0));
                let mut dx = Vec::with_capacity(len);
                for (r, dy) in x(0).chunks(cols).zip(x(1).chunks(cols)) {
                    let (mean, rstd) = norm_stats(r, *eps as f64);
                    let xhat: Vec<f64> = r.iter().map(|v| (v - mean) * rstd).collect();
                    let mg = dy.iter().sum::<f64>() / cols as f64;
                    let mgx = dy.iter().zip(&xhat).map(|(g, h)| g * h).sum::<f64>() / cols as f64;
                    dx.extend(dy.iter().zip(&xhat).map(|(g, h)| rstd * (g - mg - h * mgx)));
                }
                dx
            }
            Prim::RmsNorm { eps } => rows(x(0), last(&dims(0)), |r| {
                let rstd = rms_stat(r, *eps as f64);
                r.iter().map(|v| v * rstd).collect()
            }),
            Prim::RmsNormGrad { eps } => {
                let cols = last(&dims(0));
                let mut dx = Vec::with_capacity(len);
                for (r, dy) in x(0).chunks(cols).zip(x(1).chunks(cols)) {
                    let rstd = rms_stat(r, *eps as f64);
                    let mgx = dy.iter().zip(r).map(|(g, v)| g * v * rstd).sum::<f64>() / cols as f64;
                    dx.extend(dy.iter().zip(r).map(|(g, v)| rstd * (g - v * rstd * mgx)));
                }
                dx
            }
            &Prim::NormAffine { eps, rms } => {
                let cols = last(&dims(0));
                let xhat = if rms {
                    rows(x(0), cols, |r| r.iter().map(|v| v * rms_stat(r, eps as f64)).collect())
                } else {
                    rows(x(0), cols, |r| {
                        let (mean, rstd) = norm_stats(r, eps as f64);
                        r.iter().map(|v| (v - mean) * rstd).collect()
                    })
                };
                let bias = |j: usize| if rms { 0.0 } else { x(2)[j] };
                xhat.iter().enumerate().map(|(i, h)| h * x(1)[i % cols] + bias(i % cols)).collect()
            }
            &Prim::NormAffineGrad { eps, rms } => {
                let cols = last(&dims(0));
                let mut dx = Vec::with_capacity(len);
                for (r, dy) in x(0).chunks(cols).zip(x(1).chunks(cols)) {
                    let g: Vec<f64> = dy.iter().zip(x(2)).map(|(d, w)| d * w).collect();
                    let (mean, rstd) =
                        if rms { (0.0, rms_stat(r, eps as f64)) } else { norm_stats(r, eps as f64) };
                    let xhat: Vec<f64> = r.iter().map(|v| (v - mean) * rstd).collect();
                    let mg = if rms { 0.0 } else { g.iter().sum::<f64>() / cols as f64 };
                    let mgx = g.iter().zip(&xhat).map(|(g, h)| g * h).sum::<f64>() / cols as f64;
                    dx.extend(g.iter().zip(&xhat).map(|(g, h)| rstd * (g - mg - h * mgx)));
                }
                dx
            }
            &Prim::NormDyXhat { eps, rms } => {
                let cols = last(&dims(0));
                let mut p = Vec::with_capacity(len);
                for (r, dy) in x(0).chunks(cols).zip(x(1).chunks(cols)) {
                    let (mean, rstd) =
                        if rms { (0.0, rms_stat(r, eps as f64)) } else { norm_stats(r, eps as f64) };
                    p.extend(r.iter().zip(dy).map(|(v, g)| g * (v - mean) * rstd));
                }
                p
            }
            Prim::Swiglu => x(0).iter().zip(x(1)).map(|(&g, &u)| Glu::swiglu_f64(g, u)).collect(),
            Prim::SwigluGradGate => {
                let gu = x(0).iter().zip(x(1));
                gu.zip(x(2)).map(|((&g, &u), &d)| d * Glu::swiglu_grad_f64(g, u).0).collect()
            }
            Prim::SwigluGradUp => {
                x(0).iter().zip(x(1)).map(|(&g, &d)| d * Glu::swiglu_grad_f64(g, 1.0).1).collect()
            }
            Prim::MseLoss => vec![mean(x(0).iter().zip(x(1)).map(|(p, t)| (p - t) * (p - t)))],
            Prim::MseGrad => {
                let s = 2.0 / x(0).len() as f64 * x(2)[0];
                x(0).iter().zip(x(1)).map(|(p, t)| (p - t) * s).collect()
            }
            Prim::BceLogitsLoss => {
                vec![mean(
                    x(0).iter().zip(x(1)).map(|(&z, &t)| z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()),
                )]
            }
            Prim::BceLogitsGrad => {
                let s = x(2)[0] / x(0).len() as f64;
                x(0).iter().zip(x(1)).map(|(&z, &t)| (UnaryOp::Sigmoid.eval_f64(z, 0.0) - t) * s).collect()
            }
            Prim::SoftmaxCeLoss => {
                let cols = last(&dims(0));
                let losses = x(0).chunks(cols).zip(x(1)).map(|(r, &l)| lse(r) - r[l as usize]);
                vec![mean(losses)]
            }
            Prim::SoftmaxCeGrad => {
                let cols = last(&dims(0));
                let s = x(2)[0] / x(1).len() as f64;
                let mut dz = Vec::with_capacity(len);
                for (r, &l) in x(0).chunks(cols).zip(x(1)) {
                    let m = lse(r);
                    dz.extend(
                        r.iter()
                            .enumerate()
                            .map(|(j, v)| ((v - m).exp() - (j == l as usize) as u8 as f64) * s),
                    );
                }
                dz
            }
            Prim::Gather { axis } => {
                let (outer, n, inner) = split(&dims(0), *axis);
                let mut y = Vec::with_capacity(len);
                for o in 0..outer {
                    for &ix in x(1) {
                        for i in 0..inner {
                            y.push(if (ix as usize) < n {
                                x(0)[(o * n + ix as usize) * inner + i]
                            } else {
                                0.0
                            });
                        }
                    }
                }
                y
            }
            Prim::Im2col(p) => {
                let taps = p.window(&dims(0)).taps();
                taps.iter().map(|t| t.map_or(p.pad_value as f64, |i| x(0)[i])).collect()
            }
            // the first largest tap of each window (NaN wins), padding skipped, as PyTorch
            Prim::MaxPool(p) | Prim::MaxPoolGrad(p) => {
                let win = p.window(&dims(0));
                let (k, l) = (win.kh * win.kw, win.oh().unwrap_or(0) * win.ow().unwrap_or(0));
                let taps = win.taps();
                let mut y = vec![0.0; len];
                for plane in 0..win.n * win.c {
                    for pos in 0..l {
                        let (mut best, mut value) = (None, f64::NEG_INFINITY);
                        for tap in 0..k {
                            let Some(i) = taps[(plane * k + tap) * l + pos] else { continue };
                            best.get_or_insert(i);
                            if x(0)[i] > value || x(0)[i].is_nan() {
                                (best, value) = (Some(i), x(0)[i]);
                            }
                        }
                        match (prim, best) {
                            (Prim::MaxPool(_), _) => y[plane * l + pos] = value,
                            (_, Some(b)) => y[b] += x(1)[plane * l + pos],
                            _ => return Err("a pooling window with no tap in the image".into()),
                        }
                    }
                }
                y
            }
            Prim::Col2im(p) => {
                let taps = p.window(&node.shape.resolve(batch)).taps();
                let mut y = vec![0.0; len];
                for (t, v) in taps.iter().zip(x(0)) {
                    if let Some(i) = t {
                        y[*i] += v;
                    }
                }
                y
            }
            Prim::Permute { perm } => {
                let s = dims(0);
                (0..len).map(|i| x(0)[crate::layout::permuted_offset(&s, perm, i)]).collect()
            }
            Prim::Window { axis, offset } => {
                let (outer, n, inner) = split(&dims(0), *axis);
                let m = node.shape.resolve(batch)[*axis];
                let mut y = vec![0.0; len];
                for o in 0..outer {
                    for j in 0..m {
                        let s = j as i64 + offset;
                        if (0..n as i64).contains(&s) {
                            for i in 0..inner {
                                y[(o * m + j) * inner + i] = x(0)[(o * n + s as usize) * inner + i];
                            }
                        }
                    }
                }
                y
            }
            Prim::ScatterAdd { axis } => {
                let (outer, n, inner) = split(&node.shape.resolve(batch), *axis);
                let k = x(1).len();
                let mut y = vec![0.0; len];
                for o in 0..outer {
                    for (j, &ix) in x(1).iter().enumerate() {
                        for i in 0..inner {
                            if (ix as usize) < n {
                                y[(o * n + ix as usize) * inner + i] += x(0)[(o * k + j) * inner + i];
                            }
                        }
                    }
                }
                y
            }
        },
    })
}

fn rows(x: &[f64], cols: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    x.chunks(cols).flat_map(f).collect()
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    s / n as f64
}

/// `(mean, 1 / sqrt(var + eps))` of a row, biased variance.
fn norm_stats(r: &[f64], eps: f64) -> (f64, f64) {
    let n = r.len() as f64;
    let mean = r.iter().sum::<f64>() / n;
    let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `1 / sqrt(mean(x^2) + eps)` of a row.
fn rms_stat(r: &[f64], eps: f64) -> f64 {
    (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64 + eps).sqrt().recip()
}

fn lse(r: &[f64]) -> f64 {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + r.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Values by node for [`evaluate`].
pub type Values = HashMap<NodeId, Vec<f64>>;
