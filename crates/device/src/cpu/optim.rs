//! Optimizer updates, in place, with PyTorch's formulas. `hyper` layouts are documented above
//! `kernel::HYPER_LEN`; the host rewrites them each step.

/// SGD (dampening 0): `g = grad + wd p; v = momentum v + g;`
/// `g = nesterov ? g + momentum v : (momentum != 0 ? v : g); p -= lr g`.
pub(crate) fn sgd(p: &mut [f32], v: &mut [f32], grad: &[f32], hyper: &[f32]) {
    let (lr, momentum, wd, nesterov) = (hyper[0], hyper[1], hyper[2], hyper[3] != 0.0);
    for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(grad) {
        let g = g + wd * *p;
        *v = momentum * *v + g;
        let step = if nesterov {
            g + momentum * *v
        } else if momentum != 0.0 {
            *v
        } else {
            g
        };
        *p -= lr * step;
    }
}

/// Adam (L2 weight decay added to the gradient) or AdamW (`decoupled`: `p *= 1 - lr wd` first):
/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / bc1) / (sqrt(v / bc2) + eps)`.
///
/// On CPUs with AVX the same loop is compiled for 8 lanes instead of SSE's 4: its three divisions
/// and square root per element dominate, and the results are bit-identical (IEEE division and
/// square root, no FMA contraction in Rust).
pub(crate) fn adam(
    decoupled: bool,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    hyper: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked just above).
        return unsafe { adam_avx(decoupled, p, m, v, grad, hyper) };
    }
    adam_loop(decoupled, p, m, v, grad, hyper)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn adam_avx(
    decoupled: bool,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    hyper: &[f32],
) {
    adam_loop(decoupled, p, m, v, grad, hyper)
}

#[inline(always)]
fn adam_loop(decoupled: bool, p: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], hyper: &[f32]) {
    let (lr, b1, b2, eps, wd, bc1, bc2) =
        (hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], hyper[6]);
    let (l2, decay) = if decoupled { (0.0, 1.0 - lr * wd) } else { (wd, 1.0) };
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grad) {
        *p *= decay;
        let g = g + l2 * *p;
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        *p -= lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
    }
}

/// RMSprop (not centered, no momentum): `g = grad + wd p; sq = alpha sq + (1 - alpha) g^2;`
/// `p -= lr g / (sqrt(sq) + eps)`.
pub(crate) fn rmsprop(p: &mut [f32], sq: &mut [f32], grad: &[f32], hyper: &[f32]) {
    let (lr, alpha, eps, wd) = (hyper[0], hyper[1], hyper[2], hyper[3]);
    for ((p, sq), &g) in p.iter_mut().zip(sq.iter_mut()).zip(grad) {
        let g = g + wd * *p;
        *sq = alpha * *sq + (1.0 - alpha) * g * g;
        *p -= lr * g / (sq.sqrt() + eps);
    }
}

/// A running average or counter, in place: `running = keep * running + gain * (value * scale)`
/// (BatchNorm's running statistics; see `Kernel::RunningUpdate`).
pub(crate) fn running_update(keep: f32, gain: f32, scale: f32, running: &mut [f32], value: &[f32]) {
    for (r, &v) in running.iter_mut().zip(value) {
        *r = keep * *r + gain * (v * scale);
    }
}
