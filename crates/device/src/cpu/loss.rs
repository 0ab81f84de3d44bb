//! Loss kernels: each forward writes the mean loss into a 1-element buffer, each gradient is scaled
//! by the incoming 1-element `dloss`. Means accumulate in f64.

use crate::kernel::sigmoid;

use super::reduce::max_and_sum_exp;

/// `loss = mean((p - t)^2)`.
pub(crate) fn mse(loss: &mut [f32], p: &[f32], t: &[f32]) {
    let s: f64 = p.iter().zip(t).map(|(&p, &t)| ((p - t) as f64).powi(2)).sum();
    loss[0] = (s / p.len() as f64) as f32;
}

/// `dp = 2 (p - t) / n * dloss`.
pub(crate) fn mse_grad(dp: &mut [f32], p: &[f32], t: &[f32], dloss: f32) {
    let scale = 2.0 / p.len() as f32 * dloss;
    for ((out, &p), &t) in dp.iter_mut().zip(p).zip(t) {
        *out = (p - t) * scale;
    }
}

/// `loss = mean(max(z, 0) - z t + ln(1 + exp(-|z|)))`: binary cross-entropy from logits, stable
/// for any z.
pub(crate) fn bce_logits(loss: &mut [f32], z: &[f32], t: &[f32]) {
    let s: f64 = z.iter().zip(t).map(|(&z, &t)| (z.max(0.0) - z * t + (-z.abs()).exp().ln_1p()) as f64).sum();
    loss[0] = (s / z.len() as f64) as f32;
}

/// `dz = (sigmoid(z) - t) / n * dloss`.
pub(crate) fn bce_logits_grad(dz: &mut [f32], z: &[f32], t: &[f32], dloss: f32) {
    let scale = dloss / z.len() as f32;
    for ((out, &z), &t) in dz.iter_mut().zip(z).zip(t) {
        *out = (sigmoid(z) - t) * scale;
    }
}

/// `loss = mean over rows of (logsumexp(row) - row[label])`. A label `>= cols` has an all-zero
/// one-hot: its row adds `logsumexp(row)` (the label term is skipped), matching the gradient.
pub(crate) fn softmax_ce(cols: usize, loss: &mut [f32], z: &[f32], labels: &[u32]) {
    let mut total = 0f64;
    for (row, &label) in z.chunks(cols).zip(labels) {
        let (m, s) = max_and_sum_exp(row);
        total += m as f64 + s.ln();
        if let Some(&picked) = row.get(label as usize) {
            total -= picked as f64;
        }
    }
    loss[0] = (total / labels.len() as f64) as f32;
}

/// `dz = (softmax(z) - onehot(label)) / rows * dloss`; a label `>= cols` subtracts nothing.
pub(crate) fn softmax_ce_grad(cols: usize, dz: &mut [f32], z: &[f32], labels: &[u32], dloss: f32) {
    let scale = dloss / labels.len() as f32;
    for ((out, row), &label) in dz.chunks_mut(cols).zip(z.chunks(cols)).zip(labels) {
        let (m, s) = max_and_sum_exp(row);
        let inv = (1.0 / s) as f32;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v - m).exp() * inv * scale;
        }
        if let Some(o) = out.get_mut(label as usize) {
            *o -= scale;
        }
    }
}
