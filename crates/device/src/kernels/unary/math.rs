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

/// Complementary error function: the Chebyshev fit published in Numerical Recipes, section 6.2
/// (1.2e-7 relative in exact arithmetic; in f32 with [`fast_exp`], below 1e-6 for |x| <= 2 and
/// 5e-6 to |x| = 6, tested). WGSL has no erf, so both backends use this formula. Inlined so that
/// GELU's loops carry no calls.
#[allow(clippy::excessive_precision)] // the coefficients as published; f32 rounds them
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * fast_exp(-z * z + poly);
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
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
    use super::{erfc, fast_exp};

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

    /// erfc against a float64 erfc (series below 3, continued fraction above) on [-6, 6].
    #[test]
    fn erfc_relative_error() {
        // erf by its Maclaurin series for |x| < 3, erfc by a Lentz continued fraction beyond
        fn erfc64(x: f64) -> f64 {
            if x.abs() < 3.0 {
                let (mut term, mut sum, mut k) = (x, x, 0.0);
                while term.abs() > 1e-17 * sum.abs() {
                    k += 1.0;
                    term *= -x * x / k;
                    sum += term / (2.0 * k + 1.0);
                }
                1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
            } else if x > 0.0 {
                let mut f = x;
                for k in (1..60).rev() {
                    f = x + (k as f64 / 2.0) / f;
                }
                (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
            } else {
                2.0 - erfc64(-x)
            }
        }
        // (|x| <= 2, the range that matters to GELU; rounding z^2 in f32 costs up to ~4e-6 at |x| = 6)
        for (range, bound) in [(2.0, 1e-6), (6.0, 5e-6)] {
            let mut worst = 0.0f64;
            for i in 0..=24_000 {
                let x = (-range + i as f64 * range / 12_000.0) as f32;
                let want = erfc64(x as f64);
                worst = worst.max((erfc(x) as f64 - want).abs() / want);
            }
            assert!(worst < bound, "|x| <= {range}: worst relative error {worst:e}");
        }
    }
}
