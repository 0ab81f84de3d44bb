//! Scalar f32 functions shared by the unary, loss and softmax kernels: written once here, with the
//! same formulas as their WGSL twins in `shaders/unary.wgsl` (WGSL has no erf and its exp differs by
//! driver, so both backends spell them out).

pub(crate) fn step(x: f32, pos: f32, neg: f32) -> f32 {
    if x > 0.0 {
        pos
    } else {
        neg
    }
}

pub(crate) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `e^x` for `x <= 88` in plain f32 arithmetic (no libm call), so loops over it can vectorize.
/// Within 2 ulp down to e^-87.3 (the smallest normal result), 0 below; `x > 88` is clamped to 88
/// (callers pass `x <= 0`, or a rounding error above it). NaN stays NaN.
///
/// `x = n ln2 + r` with `n` an integer and `|r| <= ln2 / 2`; `e^r` by its Taylor series to the
/// r^7 term (truncation error below 5e-9 relative), times `2^n` built in the exponent bits.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    // ln 2 in two parts: `n * LN2_HI` is exact for |n| <= 128 (LN2_HI has 9 significant bits)
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // adding then subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call
    const ROUND: f32 = 12_582_912.0;
    const MIN_ARG: f32 = -87.336_55; // ln(f32::MIN_POSITIVE)
    let xc = x.clamp(MIN_ARG, 88.0);
    let n = (xc * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < MIN_ARG {
        0.0
    } else {
        p * scale
    }
}

/// Logistic function, evaluated without overflow for either sign (with [`fast_exp`], so loops
/// over it vectorize).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = fast_exp(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// tanh through exp(-2|x|), which never overflows. WGSL has the same formula.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let t = fast_exp(-2.0 * x.abs());
    let r = (1.0 - t) / (1.0 + t);
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// The standard normal CDF `Phi(x)` and `exp(-x^2 / 2)` (its density without the 1/sqrt(2 pi)),
/// for GELU and its derivative: `Phi(-|x|) = erfc(|x| / sqrt 2) / 2` by Abramowitz & Stegun's
/// formula 7.1.26 (absolute error under 1.5e-7), whose exp is `exp(-x^2 / 2)` itself, so the
/// derivative shares it: one exp and five multiply-adds (the Numerical Recipes erfc used before
/// took two exps in the derivative and ten multiply-adds). WGSL has no erf; `shaders/unary.wgsl`
/// computes the same. Inlined so that GELU's loops carry no calls.
#[inline(always)]
pub fn normal_cdf_exp(x: f32) -> (f32, f32) {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let e = fast_exp(-0.5 * x * x);
    let low = 0.5 * poly * e; // Phi(-|x|)
    (if x >= 0.0 { 1.0 - low } else { low }, e)
}

/// `erf` in f64 for the float64 references: Taylor series near 0, asymptotic series in the tails
/// (error below 1e-10).
pub fn erf_f64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 4.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let z = 1.0 / (a * a);
        let tail = (-a * a).exp() / (a * std::f64::consts::PI.sqrt())
            * (1.0 - 0.5 * z + 0.75 * z * z - 1.875 * z * z * z + 6.5625 * z.powi(4));
        1.0 - tail
    };
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::{erf_f64, fast_exp, normal_cdf_exp};

    /// Every 37th f32 in [-87.3, 1] (about 30M values) against the f64 exponential.
    #[test]
    fn fast_exp_within_2_ulp() {
        let ulp = |v: f32| f32::from_bits(v.to_bits() + 1) - v;
        let check = |x: f32| {
            let want = (x as f64).exp();
            let err = (fast_exp(x) as f64 - want).abs() / ulp(want as f32) as f64;
            assert!(err <= 2.0, "fast_exp({x:e}) = {:e}, want {want:e} ({err:.2} ulp)", fast_exp(x));
        };
        for bits in (0..87.33f32.to_bits()).step_by(37) {
            check(-f32::from_bits(bits));
        }
        for bits in (0..1.0f32.to_bits()).step_by(37) {
            check(f32::from_bits(bits));
        }
        assert_eq!(fast_exp(0.0), 1.0);
        assert_eq!(fast_exp(-88.0), 0.0);
        assert_eq!(fast_exp(f32::NEG_INFINITY), 0.0);
        assert!(fast_exp(f32::NAN).is_nan());
    }

    /// Phi(x) within 3e-7 of the f64 normal CDF on [-9, 9] (absolute: what GELU's x Phi(x) and
    /// its derivative need), and exp(-x^2 / 2) within 2e-6 relative (f32 rounds x^2 / 2).
    #[test]
    fn normal_cdf_within_3e_7() {
        let (mut worst_cdf, mut worst_exp) = (0.0f64, 0.0f64);
        for i in 0..=180_000 {
            let x = (-9.0 + i as f64 * 1e-4) as f32;
            let (cdf, e) = normal_cdf_exp(x);
            let xf = x as f64;
            let want = 0.5 * (1.0 + erf_f64(xf / std::f64::consts::SQRT_2));
            worst_cdf = worst_cdf.max((cdf as f64 - want).abs());
            let want_e = (-0.5 * xf * xf).exp();
            if want_e > 1e-30 {
                worst_exp = worst_exp.max((e as f64 - want_e).abs() / want_e);
            }
        }
        assert!(worst_cdf < 3e-7, "Phi: worst absolute error {worst_cdf:e}");
        assert!(worst_exp < 2e-6, "exp(-x^2/2): worst relative error {worst_exp:e}");
        assert_eq!(normal_cdf_exp(0.0).1, 1.0);
        assert!((normal_cdf_exp(0.0).0 - 0.5).abs() < 1e-7);
    }
}
