//! Unary elementwise ops (`shaders/unary.wgsl`): the forward kernels `{op}_forward`, their
//! backward kernels `{op}_backward`, and `bias_act`, the bias-add + activation that follows a
//! matmul, fused.
//!
//! Adding an op: one row in `unary_table!`, its arms in [`UnaryOp::eval`] and [`UnaryOp::grad`]
//! (the CPU twins) and in [`UnaryOp::eval_f64`] and [`UnaryOp::grad_f64`] (the float64 reference
//! the tests and the graph's interpreter use), and the two entry points plus a case of `apply` in
//! `shaders/unary.wgsl`.

mod math;

use rayon::prelude::*;

pub use math::{erf_f64, fast_exp, normal_cdf_exp, sigmoid, tanh};
use math::{sign, step};

use super::{nonzero, per_element, slot, slot_lens, Access::*, Family, Slot};
use crate::error::{Error, Result};
use crate::kernels::twin::{map2, mismatch, In, Out, Par, PAR_CHUNK};
use crate::DType::F32;

/// The one table of unary ops. Per op: the variant, the stem of its WGSL entry points
/// (`{stem}_forward`, `{stem}_backward`), what its backward kernel reads ([`Saved`]), and whether it
/// is `heavy` (transcendental: worth threads sooner) or `light` (memory-bound). Its position is its
/// code in `bias_act`'s switch (`apply` in the shader). Passes the rows to the macro `$then`.
///
/// Relu and LeakyRelu read the output: y > 0 exactly when x > 0 (the slope is never negative).
macro_rules! unary_table {
    ($then:ident!($($args:tt)*)) => {
        $then! { $($args)*;
            Neg "neg" Neither light,
            Exp "exp" Output heavy,
            Log "log" Input heavy,
            Sqrt "sqrt" Output heavy,
            Reciprocal "reciprocal" Output light,
            Abs "abs" Input light,
            Relu "relu" Output light,
            LeakyRelu "leaky_relu" Output light,
            Sigmoid "sigmoid" Output heavy,
            Tanh "tanh" Output heavy,
            Gelu "gelu" Input heavy,
            Silu "silu" Input heavy
        }
    };
}

macro_rules! is_heavy {
    (heavy) => {
        true
    };
    (light) => {
        false
    };
}

macro_rules! define_unary_ops {
    (; $($v:ident $stem:literal $saved:ident $cost:ident),*) => {
        /// Unary elementwise ops. `alpha` is the negative slope of `LeakyRelu` and ignored elsewhere.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum UnaryOp {
            $(
                #[doc = concat!("The `", $stem, "` op, elementwise (WGSL entry points `", $stem, "_forward` / `", $stem, "_backward`).")]
                $v,
            )*
        }

        impl UnaryOp {
            /// Every op, in declaration order.
            pub const ALL: [UnaryOp; [$($stem),*].len()] = [$(UnaryOp::$v),*];

            /// The WGSL entry point of the forward kernel.
            pub fn name(self) -> &'static str {
                match self {
                    $(UnaryOp::$v => concat!($stem, "_forward"),)*
                }
            }

            /// The WGSL entry point of the backward kernel.
            pub fn grad_name(self) -> &'static str {
                match self {
                    $(UnaryOp::$v => concat!($stem, "_backward"),)*
                }
            }

            /// Which forward value the backward kernel reads (its `saved` buffer).
            pub fn saved(self) -> Saved {
                match self {
                    $(UnaryOp::$v => Saved::$saved,)*
                }
            }

            /// Transcendental (worth threads sooner) rather than memory-bound.
            fn heavy(self) -> bool {
                match self {
                    $(UnaryOp::$v => is_heavy!($cost),)*
                }
            }
        }
    };
}
unary_table!(define_unary_ops!());

/// Calls `$body` with `$o` bound to each op, so `$o.eval(..)` inlines to one formula per loop
/// instead of a `match` per element. `$o` is a `const`, not a local: a closure in `$body` would
/// capture a local by reference, LLVM then folds the identical per-op closures into one, and the
/// `match` comes back inside the loop as a jump per element (seen in `perf annotate`: relu's
/// backward at ~2.5 ns/element).
macro_rules! for_each_unary {
    ($op:expr, $o:ident, $body:expr; $($v:ident $stem:literal $saved:ident $cost:ident),*) => {
        match $op {
            $(UnaryOp::$v => {
                #[allow(non_upper_case_globals)]
                const $o: UnaryOp = UnaryOp::$v;
                $body
            })*
        }
    };
}

macro_rules! with_unary {
    ($op:expr, $o:ident => $body:expr) => {
        unary_table!(for_each_unary!($op, $o, $body))
    };
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
    /// The op's index in [`UnaryOp::ALL`], which `bias_act` in WGSL switches on.
    pub fn code(self) -> u32 {
        UnaryOp::ALL.iter().position(|&o| o == self).unwrap() as u32
    }

    /// `y = op(x)` in f32, as the kernels compute it.
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
            UnaryOp::Gelu => x * normal_cdf_exp(x).0,
            UnaryOp::Silu => x * sigmoid(x),
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
                let (cdf, e) = normal_cdf_exp(s);
                dy * (cdf + s * (e * 0.398_942_3))
            }
            // d/dx x*sigmoid(x) = sigmoid(x) (1 + x (1 - sigmoid(x)))
            UnaryOp::Silu => {
                let sg = sigmoid(s);
                dy * sg * (1.0 + s * (1.0 - sg))
            }
        }
    }
}

/// The float64 references: the plain formulas, written once for the device tests and the graph's
/// float64 interpreter (`kiln_graph::reference`).
impl UnaryOp {
    /// `op(x)` in f64.
    pub fn eval_f64(self, x: f64, alpha: f64) -> f64 {
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
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Gelu => 0.5 * x * (1.0 + erf_f64(x / std::f64::consts::SQRT_2)),
            UnaryOp::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// `d op / dx` in f64 as a function of the saved value `s` (`x` or `y`, as
    /// [`UnaryOp::saved`] says), like the backward kernel.
    pub fn grad_f64(self, s: f64, alpha: f64) -> f64 {
        match self {
            UnaryOp::Neg => -1.0,
            UnaryOp::Exp => s,
            UnaryOp::Log => 1.0 / s,
            UnaryOp::Sqrt => 0.5 / s,
            UnaryOp::Reciprocal => -s * s,
            UnaryOp::Abs => s.signum() * (s != 0.0) as u8 as f64,
            UnaryOp::Relu => (s > 0.0) as u8 as f64,
            UnaryOp::LeakyRelu => {
                if s > 0.0 {
                    1.0
                } else {
                    alpha
                }
            }
            UnaryOp::Sigmoid => s * (1.0 - s),
            UnaryOp::Tanh => 1.0 - s * s,
            UnaryOp::Gelu => {
                let cdf = 0.5 * (1.0 + erf_f64(s / std::f64::consts::SQRT_2));
                cdf + s * (-0.5 * s * s).exp() / (2.0 * std::f64::consts::PI).sqrt()
            }
            UnaryOp::Silu => {
                let sg = 1.0 / (1.0 + (-s).exp());
                sg * (1.0 + s * (1.0 - sg))
            }
        }
    }

    /// `d op / dx` in f64 at the input `x`: [`UnaryOp::grad_f64`] of the value the backward saves.
    pub fn deriv_f64(self, x: f64, alpha: f64) -> f64 {
        let saved = match self.saved() {
            Saved::Output => self.eval_f64(x, alpha),
            Saved::Input | Saved::Neither => x,
        };
        self.grad_f64(saved, alpha)
    }
}

/// The kernels of the unary family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `y = op(x)`.
    Forward {
        /// The kernel's name.
        op: UnaryOp,
        /// Elements.
        len: usize,
        /// The op's parameter (LeakyReLU's slope), else 0.
        alpha: f32,
    },
    /// `dx = op'(saved) * dy`; `saved` is x or y as [`UnaryOp::saved`] says.
    Backward {
        /// The kernel's name.
        op: UnaryOp,
        /// Elements.
        len: usize,
        /// The op's parameter (LeakyReLU's slope), else 0.
        alpha: f32,
    },
    /// `y[r, c] = op(x[r, c] + bias[c])`: the bias-add + activation that follows a matmul, fused.
    BiasAct {
        /// The kernel's name.
        op: UnaryOp,
        /// Rows of the matmul output.
        rows: usize,
        /// Columns (the bias length).
        cols: usize,
        /// The op's parameter (LeakyReLU's slope), else 0.
        alpha: f32,
    },
}

impl Unary {
    fn op_alpha(&self) -> (UnaryOp, f32) {
        match *self {
            Unary::Forward { op, alpha, .. }
            | Unary::Backward { op, alpha, .. }
            | Unary::BiasAct { op, alpha, .. } => (op, alpha),
        }
    }
}

/// `Params` in `shaders/unary.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct UnaryParams {
    /// Elements.
    pub len: u32,
    /// The negative slope of leaky_relu.
    pub alpha: f32,
    /// bias_act: the row length.
    pub cols: u32,
    /// bias_act: [`UnaryOp::code`].
    pub op: u32,
}

impl Family for Unary {
    const SHADER: &'static str = "unary";
    const SOURCE: &'static str = shader!("unary");
    type Params = UnaryParams;

    fn name(&self) -> &'static str {
        match *self {
            Unary::Forward { op, .. } => op.name(),
            Unary::Backward { op, .. } => op.grad_name(),
            Unary::BiasAct { .. } => "bias_act",
        }
    }

    fn slots(&self) -> Vec<Slot> {
        match *self {
            Unary::Forward { len, .. } => vec![slot(1, "y", F32, len, Write), slot(2, "x", F32, len, Read)],
            Unary::Backward { len, .. } => vec![
                slot(1, "dx", F32, len, Write),
                slot(2, "saved", F32, len, Read),
                slot(3, "dy", F32, len, Read),
            ],
            Unary::BiasAct { rows, cols, .. } => vec![
                slot(1, "y", F32, rows * cols, Write),
                slot(2, "x", F32, rows * cols, Read),
                slot(3, "bias", F32, cols, Read),
            ],
        }
    }

    fn validate(&self) -> Result<()> {
        let (op, alpha) = self.op_alpha();
        if op == UnaryOp::LeakyRelu && (alpha.is_nan() || alpha < 0.0) {
            return Err(Error::shape(self.name(), format!("negative slope must be >= 0, got {alpha}")));
        }
        match *self {
            Unary::BiasAct { rows, cols, .. } => nonzero(self.name(), &[rows, cols]),
            _ => nonzero(self.name(), &slot_lens(&self.slots())),
        }
    }

    fn params(&self) -> UnaryParams {
        match *self {
            Unary::Forward { len, alpha, .. } | Unary::Backward { len, alpha, .. } => {
                UnaryParams { len: len as u32, alpha, cols: 0, op: 0 }
            }
            Unary::BiasAct { op, rows, cols, alpha } => {
                UnaryParams { len: (rows * cols) as u32, alpha, cols: cols as u32, op: op.code() }
            }
        }
    }

    fn workgroups(&self) -> [u32; 3] {
        match *self {
            Unary::Forward { len, .. } | Unary::Backward { len, .. } => per_element(len),
            Unary::BiasAct { rows, cols, .. } => per_element(rows * cols),
        }
    }

    fn run_cpu(&self, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
        match (*self, outs, ins) {
            (Unary::Forward { op, alpha, .. }, [Out::F(y)], [In::F(x)]) => unary(par, op, alpha, y, x),
            (Unary::Backward { op, alpha, .. }, [Out::F(dx)], [In::F(s), In::F(dy)]) => {
                unary_grad(par, op, alpha, dx, s, dy)
            }
            (Unary::BiasAct { op, cols, alpha, .. }, [Out::F(y)], [In::F(x), In::F(b)]) => {
                bias_act(par, op, alpha, cols, y, x, b)
            }
            _ => mismatch(self.name()),
        }
    }
}

fn parallel(par: Par, op: UnaryOp, len: usize) -> bool {
    if op.heavy() {
        par.heavy(len)
    } else {
        par.light(len)
    }
}

/// `y = op(x)`.
fn unary(par: Par, op: UnaryOp, alpha: f32, y: &mut [f32], x: &[f32]) {
    let parallel = parallel(par, op, y.len());
    with_unary!(op, o => map2(parallel, y, x, x, #[inline(always)] |v, _| o.eval(v, alpha)))
}

/// `dx = op'(saved) * dy`.
fn unary_grad(par: Par, op: UnaryOp, alpha: f32, dx: &mut [f32], saved: &[f32], dy: &[f32]) {
    let parallel = parallel(par, op, dx.len());
    with_unary!(op, o => map2(parallel, dx, saved, dy, #[inline(always)] |s, g| o.grad(s, g, alpha)))
}

/// `y[r, c] = op(x[r, c] + bias[c])` for `x` of `[rows, cols]`.
fn bias_act(par: Par, op: UnaryOp, alpha: f32, cols: usize, y: &mut [f32], x: &[f32], bias: &[f32]) {
    with_unary!(op, o => {
        let run = |y: &mut [f32], x: &[f32]| {
            for (y_row, x_row) in y.chunks_mut(cols).zip(x.chunks(cols)) {
                for ((out, &v), &b) in y_row.iter_mut().zip(x_row).zip(bias) {
                    *out = o.eval(v + b, alpha);
                }
            }
        };
        if parallel(par, op, y.len()) {
            let chunk = cols * (PAR_CHUNK / cols).max(1);
            y.par_chunks_mut(chunk).zip(x.par_chunks(chunk)).for_each(|(y, x)| run(y, x))
        } else {
            run(y, x)
        }
    })
}
