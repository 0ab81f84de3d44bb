//! LayerNorm (without the affine) over rows, and its backward. Row statistics accumulate in f64 and
//! the variance is a second pass over the centered row, so the CPU reference stays exact to f32
//! rounding however long or offset a row is.

use super::reduce::rows;
use super::Par;

/// `(mean, rstd)` of one row, `rstd = 1 / sqrt(var + eps)` with the biased variance.
fn stats(x: &[f32], eps: f32) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + eps as f64).sqrt())
}

/// `y = (x - mean) * rstd` for each row of `cols`.
pub(crate) fn layer_norm(par: Par, cols: usize, eps: f32, y: &mut [f32], x: &[f32]) {
    rows(par.heavy(y.len()), cols, y, x, x, |_, y, x, _| {
        let (mean, rstd) = stats(x, eps);
        for (out, &v) in y.iter_mut().zip(x) {
            *out = ((v as f64 - mean) * rstd) as f32;
        }
    })
}

/// `dx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))` for each row of `cols`.
pub(crate) fn layer_norm_grad(par: Par, cols: usize, eps: f32, dx: &mut [f32], x: &[f32], dy: &[f32]) {
    rows(par.heavy(dx.len()), cols, dx, x, dy, |_, dx, x, dy| {
        let (mean, rstd) = stats(x, eps);
        let n = cols as f64;
        let (mut sg, mut sgx) = (0.0, 0.0);
        for (&v, &g) in x.iter().zip(dy) {
            sg += g as f64;
            sgx += g as f64 * (v as f64 - mean) * rstd;
        }
        let (mg, mgx) = (sg / n, sgx / n);
        for ((out, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            let xhat = (v as f64 - mean) * rstd;
            *out = (rstd * (g as f64 - mg - xhat * mgx)) as f32;
        }
    })
}
