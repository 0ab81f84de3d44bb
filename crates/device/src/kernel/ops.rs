//! Elementwise and reduction operators: each variant's name is its WGSL entry point, and its scalar
//! function here is the CPU twin of that entry point (same formula, same order of operations).

/// Unary elementwise ops. `alpha` is the negative slope of `LeakyRelu` and ignored elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Abs,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Gelu,
}

/// What a backward kernel needs besides the incoming gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// The forward input `x`.
    Input,
    /// The forward output `y`.
    Output,
    /// Nothing but the incoming gradient.
    Neither,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 11] = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Abs,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Gelu,
    ];

    /// The WGSL entry point of the forward kernel (`{op}_forward`; the backward one is `{op}_backward`).
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg_forward",
            UnaryOp::Exp => "exp_forward",
            UnaryOp::Log => "log_forward",
            UnaryOp::Sqrt => "sqrt_forward",
            UnaryOp::Reciprocal => "reciprocal_forward",
            UnaryOp::Abs => "abs_forward",
            UnaryOp::Relu => "relu_forward",
            UnaryOp::LeakyRelu => "leaky_relu_forward",
            UnaryOp::Sigmoid => "sigmoid_forward",
            UnaryOp::Tanh => "tanh_forward",
            UnaryOp::Gelu => "gelu_forward",
        }
    }

    pub fn grad_name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg_backward",
            UnaryOp::Exp => "exp_backward",
            UnaryOp::Log => "log_backward",
            UnaryOp::Sqrt => "sqrt_backward",
            UnaryOp::Reciprocal => "reciprocal_backward",
            UnaryOp::Abs => "abs_backward",
            UnaryOp::Relu => "relu_backward",
            UnaryOp::LeakyRelu => "leaky_relu_backward",
            UnaryOp::Sigmoid => "sigmoid_backward",
            UnaryOp::Tanh => "tanh_backward",
            UnaryOp::Gelu => "gelu_backward",
        }
    }

    /// Which forward value the backward kernel reads (its `saved` buffer).
    pub fn saved(self) -> Saved {
        match self {
            UnaryOp::Neg => Saved::Neither,
            UnaryOp::Log | UnaryOp::Abs | UnaryOp::Gelu => Saved::Input,
            // y > 0 exactly when x > 0 (the slope is never negative), so the output serves.
            UnaryOp::Relu
            | UnaryOp::LeakyRelu
            | UnaryOp::Exp
            | UnaryOp::Sqrt
            | UnaryOp::Reciprocal
            | UnaryOp::Sigmoid
            | UnaryOp::Tanh => Saved::Output,
        }
    }

    /// The op's index in [`UnaryOp::ALL`], which `bias_act` in WGSL switches on.
    pub fn code(self) -> u32 {
        UnaryOp::ALL.iter().position(|&o| o == self).unwrap() as u32
    }

    #[inline(always)]
    pub fn eval(self, x: f32, alpha: f32) -> f32 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Tanh => tanh(x),
            UnaryOp::Gelu => 0.5 * x * erfc(-x * std::f32::consts::FRAC_1_SQRT_2),
        }
    }

    /// dx given the saved value `s` (x or y, see [`UnaryOp::saved`]) and the incoming gradient.
    #[inline(always)]
    pub fn grad(self, s: f32, dy: f32, alpha: f32) -> f32 {
        match self {
            UnaryOp::Neg => -dy,                     // d/dx -x = -1
            UnaryOp::Exp => dy * s,                  // d/dx e^x = y
            UnaryOp::Log => dy / s,                  // d/dx ln x = 1/x
            UnaryOp::Sqrt => dy * 0.5 / s,           // d/dx sqrt x = 1/(2y)
            UnaryOp::Reciprocal => -dy * s * s,      // d/dx 1/x = -y^2
            UnaryOp::Abs => dy * sign(s),            // d/dx |x| = sign(x)
            UnaryOp::Relu => step(s, 1.0, 0.0) * dy, // d/dx relu = [y > 0]
            UnaryOp::LeakyRelu => step(s, 1.0, alpha) * dy,
            UnaryOp::Sigmoid => dy * s * (1.0 - s), // d/dx sigmoid = y(1-y)
            UnaryOp::Tanh => dy * (1.0 - s * s),    // d/dx tanh = 1-y^2
            // d/dx x*Phi(x) = Phi(x) + x*phi(x)
            UnaryOp::Gelu => {
                let cdf = 0.5 * erfc(-s * std::f32::consts::FRAC_1_SQRT_2);
                let pdf = fast_exp(-0.5 * s * s) * 0.398_942_3;
                dy * (cdf + s * pdf)
            }
        }
    }
}

fn step(x: f32, pos: f32, neg: f32) -> f32 {
    if x > 0.0 {
        pos
    } else {
        neg
    }
}

fn sign(x: f32) -> f32 {
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

/// Logistic function, evaluated without overflow for either sign.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// tanh through exp(-2|x|), which never overflows. WGSL has the same formula.
pub fn tanh(x: f32) -> f32 {
    let t = (-2.0 * x.abs()).exp();
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

/// Binary elementwise ops with broadcasting. Comparisons return 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 12] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
        }
    }

    #[inline(always)]
    pub fn eval(self, a: f32, b: f32) -> f32 {
        let flag = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::Ne => flag(a != b),
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
        }
    }
}

/// Reductions over one axis of a tensor viewed as `[outer, len, inner]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    /// Index of the first maximum, written to a u32 buffer.
    Argmax,
}

impl ReduceOp {
    pub const ALL: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Argmax];

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "reduce_sum",
            ReduceOp::Mean => "reduce_mean",
            ReduceOp::Max => "reduce_max",
            ReduceOp::Argmax => "argmax",
        }
    }
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
