//! The primitive vocabulary: each primitive op as a graph names it — its kernel family and
//! attributes, without sizes — validated and lowered to a sized [`Kernel`] here, once. The graph
//! stores a [`Prim`] in its nodes (it keeps no mirror of this enum) and calls [`Prim::lower`] with
//! the dense shapes of one batch size when it compiles a plan.

use crate::error::{Error, Result};
use crate::kernels::{
    Binary, BinaryOp, Broadcast, Cast, Conv, Glu, Kernel, LayerNorm, Layout, Loss, Matmul, MatmulTile,
    Memory, Optim, Permute, Pooling, Reduce, ReduceOp, Rope, Softmax, Unary, UnaryOp, Window2d,
};
use crate::DType;

/// A primitive op: the WGSL entry point (and CPU twin) it lowers to, with the attributes that do
/// not depend on the batch size. Axes count in the tensor's own dimensions.
#[derive(Clone, Debug, PartialEq)]
pub enum Prim {
    /// `op(a) @ op(b)`, with an optional leading batch dimension on either operand.
    Matmul {
        /// Use `a` transposed.
        trans_a: bool,
        /// Use `b` transposed.
        trans_b: bool,
    },
    /// `y = x` converted from `from` to `to` (f32 <-> f16, f32 <-> bf16), rounding to nearest even.
    Cast {
        /// The input's element type.
        from: DType,
        /// The output's element type.
        to: DType,
    },
    /// `y = op(x)`, elementwise.
    Unary {
        /// The op.
        op: UnaryOp,
        /// The op's parameter (LeakyReLU's slope), else 0.
        alpha: f32,
    },
    /// Inputs `[saved, dy]`, where `saved` is the forward input or output as `op.saved()` says.
    UnaryGrad {
        /// The op.
        op: UnaryOp,
        /// The op's parameter (LeakyReLU's slope), else 0.
        alpha: f32,
    },
    /// `a op b` with numpy broadcasting (rank <= 4).
    Binary(BinaryOp),
    /// Reduces `axis`; keeps it as size 1 when `keep`.
    Reduce {
        /// The op.
        op: ReduceOp,
        /// The axis (0-based).
        axis: usize,
        /// Keep the reduced axis as size 1.
        keep: bool,
    },
    /// Softmax or log-softmax of `scale * x` over the last axis; with `causal` (softmax only)
    /// over `[.., T, T]` with entry `(i, j)` exactly 0 for `j > i`.
    Softmax {
        /// Log-softmax instead of softmax.
        log: bool,
        /// Factor applied to x before the softmax.
        scale: f32,
        /// Mask columns after each row's position (softmax only).
        causal: bool,
    },
    /// Inputs `[y, dy]`.
    SoftmaxGrad {
        /// Log-softmax instead of softmax.
        log: bool,
        /// Factor applied to x before the softmax.
        scale: f32,
    },
    /// `(x - mean) / sqrt(var + eps)` over the last axis (LayerNorm without the affine).
    LayerNorm {
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// Inputs `[x, dy]`.
    LayerNormGrad {
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// `x / sqrt(mean(x^2) + eps)` over the last axis (RMSNorm without the weight).
    RmsNorm {
        /// Added to the mean square before the square root (finite, > 0).
        eps: f32,
    },
    /// Inputs `[x, dy]`.
    RmsNormGrad {
        /// Added to the mean square before the square root (finite, > 0).
        eps: f32,
    },
    /// Inputs `[x, w, b]` (LayerNorm, `w` and `b` of the last axis) or `[x, w]` (`rms`): the
    /// normalization with its affine in one kernel, `xhat * w (+ b)`.
    NormAffine {
        /// Added to the variance (to the mean square, finite and > 0, for RMSNorm).
        eps: f32,
        /// RMSNorm instead of LayerNorm.
        rms: bool,
    },
    /// Inputs `[x, dy, w]`: the gradient of [`Prim::NormAffine`] to `x`.
    NormAffineGrad {
        /// Added to the variance (to the mean square for RMSNorm).
        eps: f32,
        /// RMSNorm instead of LayerNorm.
        rms: bool,
    },
    /// Inputs `[x, dy]`: `dy * xhat`, the normalized input recomputed (what the weight's
    /// gradient of [`Prim::NormAffine`] sums over the rows).
    NormDyXhat {
        /// Added to the variance (to the mean square for RMSNorm).
        eps: f32,
        /// RMSNorm instead of LayerNorm.
        rms: bool,
    },
    /// Inputs `[gate, up]` of one shape: `silu(gate) * up` (SwiGLU).
    Swiglu,
    /// Inputs `[gate, up, dy]`: `dy * up * silu'(gate)`.
    SwigluGradGate,
    /// Inputs `[gate, dy]`: `dy * silu(gate)`.
    SwigluGradUp,
    /// Inputs `[pred, target]`, scalar output.
    MseLoss,
    /// Inputs `[pred, target, dloss]`.
    MseGrad,
    /// Inputs `[logits, target]`, scalar output.
    BceLogitsLoss,
    /// Inputs `[logits, target, dloss]`.
    BceLogitsGrad,
    /// Inputs `[logits, labels (u32)]`.
    SoftmaxCeLoss,
    /// Inputs `[logits, labels (u32), dloss]`.
    SoftmaxCeGrad,
    /// Inputs `[table, index (u32)]`: selects entries of `axis`.
    Gather {
        /// The axis (0-based).
        axis: usize,
    },
    /// Inputs `[src, index (u32)]`: sums src rows into `axis` positions (the output's shape says
    /// how many).
    ScatterAdd {
        /// The axis (0-based).
        axis: usize,
    },
    /// Sliding 2-D windows of an NCHW tensor as columns: `[N, C, H, W]` -> `[N, C*kh*kw, OH*OW]`.
    Im2col(Patches),
    /// The adjoint of `Im2col`: columns summed back into an image of the output's shape.
    Col2im(Patches),
    /// Max pooling `[N, C, H, W]` -> `[N, C, OH, OW]` (PyTorch's `max_pool2d`: the first largest
    /// element of each window wins, padding never does; `pad_value` is unused).
    MaxPool(Patches),
    /// Inputs `[x, gy]`: max pooling's backward, each window's gradient to its winner in `x`.
    MaxPoolGrad(Patches),
    /// `x.permute(perm)` (rank <= 4): output axis `d` is input axis `perm[d]`.
    Permute {
        /// Output axis `d` is input axis `perm[d]`.
        perm: Vec<usize>,
    },
    /// `out[.., j, ..] = x[.., j + offset, ..]` along `axis`, 0 outside `x`; the output's shape
    /// says how long the output axis is. A slice (offset >= 0) or a zero pad (offset <= 0).
    Window {
        /// The axis (0-based).
        axis: usize,
        /// Input position of output position 0 along the axis.
        offset: i64,
    },
    /// Inputs `[x, positions (u32)]`: softmax of `scale * x` over `[.., Tq, Tk]` where row `r`
    /// keeps the columns `j <= positions[r % Tq]` and the others are exactly 0.
    SoftmaxUpto {
        /// Factor applied to x before the softmax.
        scale: f32,
    },
    /// Inputs `[x, cos, sin]`: rotary embedding of `x [.., H, D]` by tables `[rows, D / 2]`
    /// (see [`Rope`]); `inverse` rotates back (the backward).
    Rope {
        /// Negate the sine: the inverse rotation.
        inverse: bool,
    },
}

/// The window geometry of an `Im2col` / `Col2im` primitive (PyTorch's `Conv2d` / pooling
/// arguments), `[height, width]` each. `pad_value` is what padded positions read (0, or a very
/// negative value for max pooling).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Patches {
    /// Window size, `[h, w]`.
    pub kernel: [usize; 2],
    /// Step between windows, `[h, w]`.
    pub stride: [usize; 2],
    /// Padding on each side, `[h, w]`.
    pub padding: [usize; 2],
    /// Spacing between window taps, `[h, w]`.
    pub dilation: [usize; 2],
    /// Value read at padded positions.
    pub pad_value: f32,
}

impl Patches {
    /// The device geometry over an image of dims `[n, c, h, w]`.
    pub fn window(&self, dims: &[usize]) -> Window2d {
        Window2d {
            n: dims[0],
            c: dims[1],
            h: dims[2],
            w: dims[3],
            kh: self.kernel[0],
            kw: self.kernel[1],
            sh: self.stride[0],
            sw: self.stride[1],
            ph: self.padding[0],
            pw: self.padding[1],
            dh: self.dilation[0],
            dw: self.dilation[1],
        }
    }
}

impl Prim {
    /// The kernel's name (its WGSL entry point), used in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Prim::Matmul { .. } => "matmul",
            Prim::Cast { .. } => "cast",
            Prim::Unary { op, .. } => op.name(),
            Prim::UnaryGrad { op, .. } => op.grad_name(),
            Prim::Binary(op) => op.name(),
            Prim::Reduce { op, .. } => op.name(),
            Prim::Softmax { log: false, .. } => "softmax",
            Prim::Softmax { log: true, .. } => "log_softmax",
            Prim::SoftmaxGrad { log: false, .. } => "softmax_grad",
            Prim::SoftmaxGrad { log: true, .. } => "log_softmax_grad",
            Prim::LayerNorm { .. } => "layer_norm",
            Prim::LayerNormGrad { .. } => "layer_norm_grad",
            Prim::RmsNorm { .. } => "rms_norm",
            Prim::RmsNormGrad { .. } => "rms_norm_grad",
            Prim::NormAffine { rms: false, .. } => "layer_norm_affine",
            Prim::NormAffine { rms: true, .. } => "rms_norm_affine",
            Prim::NormAffineGrad { rms: false, .. } => "layer_norm_affine_grad",
            Prim::NormAffineGrad { rms: true, .. } => "rms_norm_affine_grad",
            Prim::NormDyXhat { rms: false, .. } => "layer_norm_dy_xhat",
            Prim::NormDyXhat { rms: true, .. } => "rms_norm_dy_xhat",
            Prim::Swiglu => "swiglu",
            Prim::SwigluGradGate => "swiglu_grad_gate",
            Prim::SwigluGradUp => "swiglu_grad_up",
            Prim::MseLoss => "mse_loss",
            Prim::MseGrad => "mse_grad",
            Prim::BceLogitsLoss => "bce_logits_loss",
            Prim::BceLogitsGrad => "bce_logits_grad",
            Prim::SoftmaxCeLoss => "softmax_ce_loss",
            Prim::SoftmaxCeGrad => "softmax_ce_grad",
            Prim::Gather { .. } => "gather",
            Prim::ScatterAdd { .. } => "scatter_add",
            Prim::Im2col(_) => "im2col",
            Prim::Col2im(_) => "col2im",
            Prim::MaxPool(_) => "max_pool",
            Prim::MaxPoolGrad(_) => "max_pool_grad",
            Prim::Permute { .. } => "permute",
            Prim::Window { .. } => "window",
            Prim::SoftmaxUpto { .. } => "softmax_upto",
            Prim::Rope { .. } => "rope",
        }
    }

    /// Checks the attributes that hold whatever the shapes (a slope, an epsilon, a scale): the
    /// graph calls this when it builds the node, so a bad value is an error naming the op there.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        match *self {
            Prim::Unary { op: UnaryOp::LeakyRelu, alpha }
            | Prim::UnaryGrad { op: UnaryOp::LeakyRelu, alpha }
                if alpha.is_nan() || alpha < 0.0 =>
            {
                Err(Error::shape(name, format!("negative slope must be >= 0, got {alpha}")))
            }
            Prim::Softmax { scale, .. } | Prim::SoftmaxGrad { scale, .. } | Prim::SoftmaxUpto { scale }
                if !scale.is_finite() =>
            {
                Err(Error::shape(name, format!("scale must be finite, got {scale}")))
            }
            Prim::Softmax { causal: true, log: true, .. } => {
                Err(Error::shape(name, "the causal mask is for softmax, not log-softmax"))
            }
            Prim::LayerNorm { eps } | Prim::LayerNormGrad { eps } if !eps.is_finite() || eps < 0.0 => {
                Err(Error::shape(name, format!("eps must be finite and >= 0, got {eps}")))
            }
            Prim::RmsNorm { eps } | Prim::RmsNormGrad { eps } if !eps.is_finite() || eps <= 0.0 => {
                Err(Error::shape(name, format!("eps must be finite and > 0, got {eps}")))
            }
            Prim::NormAffine { eps, rms }
            | Prim::NormAffineGrad { eps, rms }
            | Prim::NormDyXhat { eps, rms }
                if !eps.is_finite() || eps < 0.0 || (rms && eps == 0.0) =>
            {
                let bound = if rms { "> 0" } else { ">= 0" };
                Err(Error::shape(name, format!("eps must be finite and {bound}, got {eps}")))
            }
            Prim::Cast { from, to } => Kernel::Cast(Cast::new(from, to, 1)).validate(),
            _ => Ok(()),
        }
    }

    /// [`Prim::lower`] for inputs of the element types `dtypes` (in input order): a matmul reads
    /// f16 and bf16 operands as such ([`Matmul::with_dtypes`]); every other kernel's types are
    /// fixed by the primitive.
    pub fn lower_typed(&self, inputs: &[&[usize]], dtypes: &[DType], output: &[usize]) -> Result<Kernel> {
        Ok(match self.lower(inputs, output)? {
            Kernel::Matmul(mm) => Kernel::Matmul(mm.with_dtypes(dtypes[0], dtypes[1])),
            k => k,
        })
    }

    /// The sized kernel that computes this primitive over dense, row-major tensors: `inputs` are
    /// the input dims in order, `output` the output's dims, all at one batch size.
    pub fn lower(&self, inputs: &[&[usize]], output: &[usize]) -> Result<Kernel> {
        let input = |k: usize| inputs[k];
        let numel = |s: &[usize]| s.iter().product::<usize>();
        let rows_cols = |s: &[usize]| {
            let cols = *s.last().unwrap_or(&1);
            (numel(s) / cols.max(1), cols)
        };
        let split = |s: &[usize], axis: usize| (numel(&s[..axis]), s[axis], numel(&s[axis + 1..]));
        Ok(match self {
            Prim::Matmul { trans_a, trans_b } => {
                let (sa, sb) = (input(0), input(1));
                let last2 = |s: &[usize], t: bool| {
                    let (x, y) = (s[s.len() - 2], s[s.len() - 1]);
                    if t {
                        (y, x)
                    } else {
                        (x, y)
                    }
                };
                let ((m, k), (_, n)) = (last2(sa, *trans_a), last2(sb, *trans_b));
                let batch = match (sa.len(), sb.len()) {
                    (3, _) => sa[0],
                    (_, 3) => sb[0],
                    _ => 1,
                };
                Kernel::Matmul(Matmul {
                    batch,
                    m,
                    n,
                    k,
                    trans_a: *trans_a,
                    trans_b: *trans_b,
                    a_batched: sa.len() == 3,
                    b_batched: sb.len() == 3,
                    tile: MatmulTile::for_shape(batch, m, n, k),
                    a_dtype: DType::F32,
                    b_dtype: DType::F32,
                    addend: crate::Addend::None,
                })
            }
            Prim::Cast { from, to } => Kernel::Cast(Cast::new(*from, *to, numel(output))),
            Prim::Unary { op, alpha } => {
                Kernel::Unary(Unary::Forward { op: *op, len: numel(output), alpha: *alpha })
            }
            Prim::UnaryGrad { op, alpha } => {
                Kernel::Unary(Unary::Backward { op: *op, len: numel(output), alpha: *alpha })
            }
            Prim::Binary(op) => {
                Kernel::Binary(Binary { op: *op, bc: Broadcast::new(op.name(), input(0), input(1))? })
            }
            Prim::Reduce { op, axis, .. } => {
                let (outer, len, inner) = split(input(0), *axis);
                Kernel::Reduce(Reduce { op: *op, outer, len, inner })
            }
            Prim::Softmax { log, scale, causal } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::Softmax(Softmax::Forward { rows, cols, log: *log, scale: *scale, causal: *causal })
            }
            Prim::SoftmaxGrad { log, scale } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::Softmax(Softmax::Backward { rows, cols, log: *log, scale: *scale })
            }
            Prim::LayerNorm { eps } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::Forward { rows, cols, eps: *eps })
            }
            Prim::LayerNormGrad { eps } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::Backward { rows, cols, eps: *eps })
            }
            Prim::RmsNorm { eps } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::RmsForward { rows, cols, eps: *eps })
            }
            Prim::RmsNormGrad { eps } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::RmsBackward { rows, cols, eps: *eps })
            }
            &Prim::NormAffine { eps, rms } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::AffineForward { rows, cols, eps, rms })
            }
            &Prim::NormAffineGrad { eps, rms } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::AffineBackward { rows, cols, eps, rms })
            }
            &Prim::NormDyXhat { eps, rms } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::LayerNorm(LayerNorm::DyXhat { rows, cols, eps, rms })
            }
            Prim::Swiglu => Kernel::Glu(Glu::Swiglu { len: numel(output) }),
            Prim::SwigluGradGate => Kernel::Glu(Glu::SwigluGradGate { len: numel(output) }),
            Prim::SwigluGradUp => Kernel::Glu(Glu::SwigluGradUp { len: numel(output) }),
            Prim::MseLoss => Kernel::Loss(Loss::MseLoss { n: numel(input(0)) }),
            Prim::MseGrad => Kernel::Loss(Loss::MseGrad { n: numel(output) }),
            Prim::BceLogitsLoss => Kernel::Loss(Loss::BceLogitsLoss { n: numel(input(0)) }),
            Prim::BceLogitsGrad => Kernel::Loss(Loss::BceLogitsGrad { n: numel(output) }),
            Prim::SoftmaxCeLoss => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::Loss(Loss::SoftmaxCeLoss { rows, cols })
            }
            Prim::SoftmaxCeGrad => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::Loss(Loss::SoftmaxCeGrad { rows, cols })
            }
            Prim::Gather { axis } => {
                let (outer, axis_len, inner) = split(input(0), *axis);
                Kernel::Memory(Memory::Gather { outer, axis_len, inner, n_idx: numel(input(1)) })
            }
            Prim::ScatterAdd { axis } => {
                let (outer, axis_len, inner) = split(output, *axis);
                Kernel::Memory(Memory::ScatterAdd { outer, axis_len, inner, n_idx: numel(input(1)) })
            }
            Prim::Im2col(p) => Kernel::Conv(Conv::Im2col { win: p.window(input(0)), pad_value: p.pad_value }),
            Prim::Col2im(p) => Kernel::Conv(Conv::Col2im { win: p.window(output) }),
            Prim::MaxPool(p) => Kernel::Pooling(Pooling::MaxPool { win: p.window(input(0)) }),
            Prim::MaxPoolGrad(p) => Kernel::Pooling(Pooling::MaxPoolGrad { win: p.window(input(0)) }),
            Prim::Permute { perm } => {
                Kernel::Layout(Layout::Permute(Permute::new("permute", input(0), perm)?))
            }
            Prim::Window { axis, offset } => {
                let (outer, src_len, inner) = split(input(0), *axis);
                let offset = i32::try_from(*offset).map_err(|_| Error::shape("window", "offset past i32"))?;
                Kernel::Layout(Layout::SlicePad { outer, src_len, out_len: output[*axis], inner, offset })
            }
            Prim::SoftmaxUpto { scale } => {
                let (rows, cols) = rows_cols(input(0));
                Kernel::Softmax(Softmax::Upto { rows, cols, scale: *scale, queries: numel(input(1)) })
            }
            Prim::Rope { inverse } => {
                let x = input(0);
                let (heads, d) = (x[x.len().saturating_sub(2)], rows_cols(x).1);
                let half = d / 2;
                let table_rows = numel(input(1)) / half.max(1);
                Kernel::Rope(Rope {
                    rows: numel(x) / (heads * d).max(1),
                    heads,
                    half,
                    table_rows,
                    inverse: *inverse,
                })
            }
        })
    }
}

/// The rule an optimizer update node runs (in place, over one parameter and its state). The
/// rule picks the kernel; its hyper-parameters are not part of the graph but live in the
/// session's optimizer and reach the kernel through the hyper buffer every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateRule {
    /// `torch.optim.SGD` (momentum, Nesterov, L2 weight decay).
    Sgd,
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam,
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW,
    /// `torch.optim.RMSprop` (no momentum, not centered).
    Rmsprop,
}

impl UpdateRule {
    /// The rule's name (`"sgd"`, `"adam"`, `"adamw"`, `"rmsprop"`).
    pub fn name(&self) -> &'static str {
        match self {
            UpdateRule::Sgd => "sgd",
            UpdateRule::Adam => "adam",
            UpdateRule::AdamW => "adamw",
            UpdateRule::Rmsprop => "rmsprop",
        }
    }

    /// PyTorch's names for the per-parameter state (`{param}.{suffix}`), in kernel slot order.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            UpdateRule::Sgd => &["momentum_buffer"],
            UpdateRule::Adam | UpdateRule::AdamW => &["exp_avg", "exp_avg_sq"],
            UpdateRule::Rmsprop => &["square_avg"],
        }
    }

    /// The update kernel for a parameter of `len` elements, with weight decay.
    pub fn lower(&self, len: usize) -> Kernel {
        self.lower_with(len, true)
    }

    /// The update kernel for a parameter of `len` elements; `decay: false` exempts it from the
    /// weight decay (the same kernel, none of its elements decayed).
    pub fn lower_with(&self, len: usize, decay: bool) -> Kernel {
        self.lower_flat(len, if decay { len } else { 0 })
    }

    /// The update kernel over `len` elements of flat parameter memory whose first `decayed`
    /// take the weight decay.
    pub fn lower_flat(&self, len: usize, decayed: usize) -> Kernel {
        match self {
            UpdateRule::Sgd => Kernel::Optim(Optim::Sgd { len, decayed }),
            UpdateRule::Adam => Kernel::Optim(Optim::Adam { len, decoupled: false, decayed }),
            UpdateRule::AdamW => Kernel::Optim(Optim::Adam { len, decoupled: true, decayed }),
            UpdateRule::Rmsprop => Kernel::Optim(Optim::Rmsprop { len, decayed }),
        }
    }
}
