//! The primitive kernels. Each `Kernel` value is one launch's worth of work: its op, its sizes and
//! its scalar parameters. The same value drives the CPU twin (`crate::cpu`) and the WGSL entry point
//! of the same name (`shaders/<family>.wgsl`). Buffers are passed separately, in the order that
//! [`Kernel::slots`] lists them; outputs come first.

mod layout;
mod ops;
mod shape;

pub use layout::{Permute, Window2d};
pub use ops::{erfc, sigmoid, tanh, BinaryOp, ReduceOp, Saved, UnaryOp};
pub use shape::Broadcast;

use crate::error::{Error, Result};
use crate::DType;

/// `C[b] = op(A[b]) @ op(B[b])`, row-major. `A` is `[m, k]` (`[k, m]` when `trans_a`), `B` is `[k, n]`
/// (`[n, k]` when `trans_b`), `C` is `[batch, m, n]`. An operand that is not batched is shared by
/// every batch entry (a weight matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matmul {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_batched: bool,
    pub b_batched: bool,
}

impl Matmul {
    /// A plain, unbatched `[m, k] @ [k, n]`.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Matmul { batch: 1, m, n, k, trans_a: false, trans_b: false, a_batched: false, b_batched: false }
    }
    pub fn a_len(&self) -> usize {
        self.m * self.k * if self.a_batched { self.batch } else { 1 }
    }
    pub fn b_len(&self) -> usize {
        self.k * self.n * if self.b_batched { self.batch } else { 1 }
    }
}

/// Optimizer hyper-parameters live in a small f32 buffer (`hyper`) that the host rewrites every
/// step, so a schedule or Adam's bias correction never rebuilds a plan. Layouts:
/// - SGD: `[lr, momentum, weight_decay, nesterov (0 or 1)]`
/// - Adam/AdamW: `[lr, beta1, beta2, eps, weight_decay, 1 - beta1^t, 1 - beta2^t]`
/// - RMSprop: `[lr, alpha, eps, weight_decay]`
pub const HYPER_LEN: usize = 8;

/// One kernel launch. Sizes are element counts; every tensor is dense and row-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Matmul(Matmul),
    /// `y = op(x)`.
    Unary {
        op: UnaryOp,
        len: usize,
        alpha: f32,
    },
    /// `dx = op'(saved) * dy`; `saved` is x or y as [`UnaryOp::saved`] says.
    UnaryGrad {
        op: UnaryOp,
        len: usize,
        alpha: f32,
    },
    /// `y[r, c] = op(x[r, c] + bias[c])`: the bias-add + activation that follows a matmul, fused.
    BiasAct {
        op: UnaryOp,
        rows: usize,
        cols: usize,
        alpha: f32,
    },
    /// `c = a op b` with numpy broadcasting.
    Binary {
        op: BinaryOp,
        bc: Broadcast,
    },
    /// Reduce `[outer, len, inner]` over the middle axis to `[outer, inner]`.
    Reduce {
        op: ReduceOp,
        outer: usize,
        len: usize,
        inner: usize,
    },
    /// Softmax (or log-softmax) of `scale * x` over the last axis of `[rows, cols]`.
    /// With `causal` (softmax only), the rows are those of `[.., T, T]` score matrices (`cols` is
    /// `T`, `rows` a multiple of it): row `r` takes columns `j <= r % T` and writes exactly 0 to the
    /// others (attention's causal mask, without a `-inf` constant). Plain softmax is `scale` 1,
    /// `causal` false ([`Kernel::softmax`]).
    Softmax {
        rows: usize,
        cols: usize,
        log: bool,
        scale: f32,
        causal: bool,
    },
    /// Backward of softmax from its output y: `dx = scale * y * (dy - sum(dy * y))`;
    /// of log-softmax: `dx = scale * (dy - exp(y) * sum(dy))`. Causally masked entries have y = 0,
    /// so their gradient is 0 with no mask of its own.
    SoftmaxGrad {
        rows: usize,
        cols: usize,
        log: bool,
        scale: f32,
    },
    /// LayerNorm without the affine over the last axis of `[rows, cols]`:
    /// `y = (x - mean) / sqrt(var + eps)`, biased variance (PyTorch's).
    LayerNorm {
        rows: usize,
        cols: usize,
        eps: f32,
    },
    /// Backward of `LayerNorm` from its input x (the row statistics are recomputed):
    /// `dx = rstd * (dy - mean(dy) - xhat * mean(dy * xhat))`, `xhat = (x - mean) * rstd`.
    LayerNormGrad {
        rows: usize,
        cols: usize,
        eps: f32,
    },
    /// `loss = mean((p - t)^2)` over `n` elements, written to a 1-element buffer.
    MseLoss {
        n: usize,
    },
    /// `dp = 2 (p - t) / n * dloss`.
    MseGrad {
        n: usize,
    },
    /// `loss = mean(max(z, 0) - z t + log(1 + exp(-|z|)))`: binary cross-entropy from logits z.
    BceLogitsLoss {
        n: usize,
    },
    /// `dz = (sigmoid(z) - t) / n * dloss`.
    BceLogitsGrad {
        n: usize,
    },
    /// `loss = mean over rows of (logsumexp(z_row) - z_row[label])`, integer labels.
    /// Kernels cannot fail, so a label `>= cols` has an all-zero one-hot: that row adds
    /// `logsumexp(z_row)` (the label term is skipped) and the mean still divides by `rows`. The
    /// trainer validates labels on the host before they get here.
    SoftmaxCeLoss {
        rows: usize,
        cols: usize,
    },
    /// `dz = (softmax(z) - onehot(label)) / rows * dloss`; a label `>= cols` has an all-zero
    /// one-hot (its row is `softmax(z_row) / rows * dloss`), consistent with the loss above.
    SoftmaxCeGrad {
        rows: usize,
        cols: usize,
    },
    /// In-place SGD with momentum, Nesterov and L2 weight decay (PyTorch's `SGD`, dampening 0).
    Sgd {
        len: usize,
    },
    /// In-place Adam (L2 weight decay) or AdamW (`decoupled`: decoupled weight decay).
    Adam {
        len: usize,
        decoupled: bool,
    },
    /// In-place RMSprop (PyTorch's defaults: no momentum, not centered).
    Rmsprop {
        len: usize,
    },
    /// `out[o, j, i] = table[o, idx[j], i]`; an index out of range gives 0.
    Gather {
        outer: usize,
        axis_len: usize,
        inner: usize,
        n_idx: usize,
    },
    /// `out[o, a, i] = sum over j with idx[j] == a of src[o, j, i]` (out is overwritten).
    ScatterAdd {
        outer: usize,
        axis_len: usize,
        inner: usize,
        n_idx: usize,
    },
    Fill {
        len: usize,
        value: f32,
    },
    Copy {
        len: usize,
    },
    /// `cols[n, (c kh + ky) kw + kx, oy ow + ox] = x[n, c, oy sh - ph + ky dh, ox sw - pw + kx dw]`,
    /// `pad_value` where that falls outside the image (0 for convolution, -inf-like for max pooling).
    Im2col {
        win: Window2d,
        pad_value: f32,
    },
    /// The adjoint of `Im2col`: each image element sums the column entries that read it.
    Col2im {
        win: Window2d,
    },
    /// `out = x.permute(perm)` (see [`Permute`]).
    Permute(Permute),
    /// `out[o, j, i] = x[o, j + offset, i]` when `0 <= j + offset < src_len`, else 0, for `j` in
    /// `0..out_len`: a slice (offset >= 0, out_len <= src_len) or a zero pad (offset <= 0), which
    /// are each other's adjoint. Concat is pads added together.
    Window {
        outer: usize,
        src_len: usize,
        out_len: usize,
        inner: usize,
        offset: i32,
    },
    /// In place: `running = keep * running + gain * (value * scale)`. A running average (BatchNorm's
    /// running statistics: `keep = 1 - momentum`, `gain = momentum`, `scale` 1 for the mean and
    /// the unbiased factor `n / (n - 1)` for the variance) or a counter (`keep = gain = scale = 1`
    /// over a value of ones).
    RunningUpdate {
        len: usize,
        keep: f32,
        gain: f32,
        scale: f32,
    },
}

/// How a kernel uses one of its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Written (and possibly read) by the kernel: outputs and in-place state.
    Write,
}

/// One buffer a kernel binds: its WGSL binding number, role, type and the length it needs.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub binding: u32,
    pub name: &'static str,
    pub dtype: DType,
    pub len: usize,
    pub access: Access,
}

const fn slot(binding: u32, name: &'static str, dtype: DType, len: usize, access: Access) -> Slot {
    Slot { binding, name, dtype, len, access }
}

use Access::{Read, Write};
use DType::{F32, U32};

impl Kernel {
    /// Plain softmax (or log-softmax) over the last axis: scale 1, no mask.
    pub fn softmax(rows: usize, cols: usize, log: bool) -> Self {
        Kernel::Softmax { rows, cols, log, scale: 1.0, causal: false }
    }

    /// The backward of [`Kernel::softmax`].
    pub fn softmax_grad(rows: usize, cols: usize, log: bool) -> Self {
        Kernel::SoftmaxGrad { rows, cols, log, scale: 1.0 }
    }

    /// The WGSL entry point, which is also the kernel's name in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Matmul(_) => "matmul",
            Kernel::Unary { op, .. } => op.name(),
            Kernel::UnaryGrad { op, .. } => op.grad_name(),
            Kernel::BiasAct { .. } => "bias_act",
            Kernel::Binary { op, .. } => op.name(),
            Kernel::Reduce { op, .. } => op.name(),
            Kernel::Softmax { log: false, .. } => "softmax",
            Kernel::Softmax { log: true, .. } => "log_softmax",
            Kernel::SoftmaxGrad { log: false, .. } => "softmax_grad",
            Kernel::SoftmaxGrad { log: true, .. } => "log_softmax_grad",
            Kernel::LayerNorm { .. } => "layer_norm",
            Kernel::LayerNormGrad { .. } => "layer_norm_grad",
            Kernel::MseLoss { .. } => "mse_loss",
            Kernel::MseGrad { .. } => "mse_grad",
            Kernel::BceLogitsLoss { .. } => "bce_logits_loss",
            Kernel::BceLogitsGrad { .. } => "bce_logits_grad",
            Kernel::SoftmaxCeLoss { .. } => "softmax_ce_loss",
            Kernel::SoftmaxCeGrad { .. } => "softmax_ce_grad",
            Kernel::Sgd { .. } => "sgd",
            Kernel::Adam { decoupled: false, .. } => "adam",
            Kernel::Adam { decoupled: true, .. } => "adamw",
            Kernel::Rmsprop { .. } => "rmsprop",
            Kernel::Gather { .. } => "gather",
            Kernel::ScatterAdd { .. } => "scatter_add",
            Kernel::Fill { .. } => "fill",
            Kernel::Copy { .. } => "copy",
            Kernel::Im2col { .. } => "im2col",
            Kernel::Col2im { .. } => "col2im",
            Kernel::Permute(_) => "permute",
            Kernel::Window { .. } => "window",
            Kernel::RunningUpdate { .. } => "running_update",
        }
    }

    /// The shader file (in `shaders/`, without `.wgsl`) holding the entry point.
    pub fn family(&self) -> &'static str {
        match self {
            Kernel::Matmul(_) => "matmul",
            Kernel::Unary { .. } | Kernel::UnaryGrad { .. } | Kernel::BiasAct { .. } => "unary",
            Kernel::Binary { .. } => "binary",
            Kernel::Reduce { .. } => "reduce",
            Kernel::Softmax { .. } | Kernel::SoftmaxGrad { .. } => "softmax",
            Kernel::LayerNorm { .. } | Kernel::LayerNormGrad { .. } => "layer_norm",
            Kernel::MseLoss { .. }
            | Kernel::MseGrad { .. }
            | Kernel::BceLogitsLoss { .. }
            | Kernel::BceLogitsGrad { .. }
            | Kernel::SoftmaxCeLoss { .. }
            | Kernel::SoftmaxCeGrad { .. } => "loss",
            Kernel::Sgd { .. } | Kernel::Adam { .. } | Kernel::Rmsprop { .. } => "optim",
            Kernel::Gather { .. } | Kernel::ScatterAdd { .. } | Kernel::Fill { .. } | Kernel::Copy { .. } => {
                "memory"
            }
            Kernel::Im2col { .. } | Kernel::Col2im { .. } => "conv",
            Kernel::Permute(_) | Kernel::Window { .. } => "layout",
            Kernel::RunningUpdate { .. } => "running",
        }
    }

    /// The buffers of one launch, in the order a launch passes them.
    pub fn slots(&self) -> Vec<Slot> {
        match *self {
            Kernel::Matmul(mm) => vec![
                slot(1, "c", F32, mm.batch * mm.m * mm.n, Write),
                slot(2, "a", F32, mm.a_len(), Read),
                slot(3, "b", F32, mm.b_len(), Read),
            ],
            Kernel::Unary { len, .. } => vec![slot(1, "y", F32, len, Write), slot(2, "x", F32, len, Read)],
            Kernel::UnaryGrad { len, .. } => vec![
                slot(1, "dx", F32, len, Write),
                slot(2, "saved", F32, len, Read),
                slot(3, "dy", F32, len, Read),
            ],
            Kernel::BiasAct { rows, cols, .. } => vec![
                slot(1, "y", F32, rows * cols, Write),
                slot(2, "x", F32, rows * cols, Read),
                slot(3, "bias", F32, cols, Read),
            ],
            Kernel::Binary { bc, .. } => vec![
                slot(1, "c", F32, bc.len(), Write),
                slot(2, "a", F32, bc.a_len, Read),
                slot(3, "b", F32, bc.b_len, Read),
            ],
            Kernel::Reduce { op: ReduceOp::Argmax, outer, len, inner } => {
                vec![
                    slot(3, "index", U32, outer * inner, Write),
                    slot(2, "x", F32, outer * len * inner, Read),
                ]
            }
            Kernel::Reduce { outer, len, inner, .. } => {
                vec![slot(1, "y", F32, outer * inner, Write), slot(2, "x", F32, outer * len * inner, Read)]
            }
            Kernel::Softmax { rows, cols, .. } | Kernel::LayerNorm { rows, cols, .. } => {
                vec![slot(1, "y", F32, rows * cols, Write), slot(2, "x", F32, rows * cols, Read)]
            }
            Kernel::LayerNormGrad { rows, cols, .. } => vec![
                slot(1, "dx", F32, rows * cols, Write),
                slot(2, "x", F32, rows * cols, Read),
                slot(3, "dy", F32, rows * cols, Read),
            ],
            Kernel::SoftmaxGrad { rows, cols, .. } => vec![
                slot(1, "dx", F32, rows * cols, Write),
                slot(2, "y", F32, rows * cols, Read),
                slot(3, "dy", F32, rows * cols, Read),
            ],
            Kernel::MseLoss { n } | Kernel::BceLogitsLoss { n } => vec![
                slot(1, "loss", F32, 1, Write),
                slot(2, "pred", F32, n, Read),
                slot(3, "target", F32, n, Read),
            ],
            Kernel::MseGrad { n } | Kernel::BceLogitsGrad { n } => vec![
                slot(1, "dpred", F32, n, Write),
                slot(2, "pred", F32, n, Read),
                slot(3, "target", F32, n, Read),
                slot(4, "dloss", F32, 1, Read),
            ],
            Kernel::SoftmaxCeLoss { rows, cols } => vec![
                slot(1, "loss", F32, 1, Write),
                slot(2, "logits", F32, rows * cols, Read),
                slot(5, "labels", U32, rows, Read),
            ],
            Kernel::SoftmaxCeGrad { rows, cols } => vec![
                slot(1, "dlogits", F32, rows * cols, Write),
                slot(2, "logits", F32, rows * cols, Read),
                slot(5, "labels", U32, rows, Read),
                slot(4, "dloss", F32, 1, Read),
            ],
            Kernel::Sgd { len } | Kernel::Rmsprop { len } => vec![
                slot(1, "param", F32, len, Write),
                slot(2, "grad", F32, len, Read),
                slot(3, "hyper", F32, HYPER_LEN, Read),
                slot(4, "state", F32, len, Write),
            ],
            Kernel::Adam { len, .. } => vec![
                slot(1, "param", F32, len, Write),
                slot(2, "grad", F32, len, Read),
                slot(3, "hyper", F32, HYPER_LEN, Read),
                slot(4, "m", F32, len, Write),
                slot(5, "v", F32, len, Write),
            ],
            Kernel::Gather { outer, axis_len, inner, n_idx } => vec![
                slot(1, "out", F32, outer * n_idx * inner, Write),
                slot(2, "table", F32, outer * axis_len * inner, Read),
                slot(3, "index", U32, n_idx, Read),
            ],
            Kernel::ScatterAdd { outer, axis_len, inner, n_idx } => vec![
                slot(1, "out", F32, outer * axis_len * inner, Write),
                slot(2, "src", F32, outer * n_idx * inner, Read),
                slot(3, "index", U32, n_idx, Read),
            ],
            Kernel::Fill { len, .. } => vec![slot(1, "out", F32, len, Write)],
            Kernel::Copy { len } => vec![slot(1, "out", F32, len, Write), slot(2, "src", F32, len, Read)],
            Kernel::Im2col { win, .. } => {
                vec![slot(1, "cols", F32, win.cols_len(), Write), slot(2, "x", F32, win.image_len(), Read)]
            }
            Kernel::Col2im { win } => {
                vec![slot(1, "x", F32, win.image_len(), Write), slot(2, "cols", F32, win.cols_len(), Read)]
            }
            Kernel::Permute(pm) => {
                vec![slot(1, "out", F32, pm.len(), Write), slot(2, "x", F32, pm.len(), Read)]
            }
            Kernel::Window { outer, src_len, out_len, inner, .. } => vec![
                slot(1, "out", F32, outer * out_len * inner, Write),
                slot(2, "x", F32, outer * src_len * inner, Read),
            ],
            Kernel::RunningUpdate { len, .. } => {
                vec![slot(1, "running", F32, len, Write), slot(2, "value", F32, len, Read)]
            }
        }
    }

    /// Rejects sizes no backend can run: zero-sized work and dimensions past u32.
    pub fn validate(&self) -> Result<()> {
        if let Kernel::Im2col { win, .. } | Kernel::Col2im { win } = *self {
            win.check(self.name())?;
        }
        let dims: Vec<usize> = match *self {
            Kernel::Window { outer, src_len, out_len, inner, .. } => vec![outer, src_len, out_len, inner],
            Kernel::Matmul(mm) => vec![mm.batch, mm.m, mm.n, mm.k],
            Kernel::Reduce { outer, len, inner, .. } => vec![outer, len, inner],
            Kernel::BiasAct { rows, cols, .. }
            | Kernel::Softmax { rows, cols, .. }
            | Kernel::SoftmaxGrad { rows, cols, .. }
            | Kernel::LayerNorm { rows, cols, .. }
            | Kernel::LayerNormGrad { rows, cols, .. }
            | Kernel::SoftmaxCeLoss { rows, cols }
            | Kernel::SoftmaxCeGrad { rows, cols } => vec![rows, cols],
            Kernel::Gather { outer, axis_len, inner, n_idx }
            | Kernel::ScatterAdd { outer, axis_len, inner, n_idx } => vec![outer, axis_len, inner, n_idx],
            _ => self.slots().iter().map(|s| s.len).collect(),
        };
        if let Kernel::Unary { op: UnaryOp::LeakyRelu, alpha, .. }
        | Kernel::UnaryGrad { op: UnaryOp::LeakyRelu, alpha, .. }
        | Kernel::BiasAct { op: UnaryOp::LeakyRelu, alpha, .. } = *self
        {
            if alpha.is_nan() || alpha < 0.0 {
                return Err(Error::shape(self.name(), format!("negative slope must be >= 0, got {alpha}")));
            }
        }
        if dims.contains(&0) {
            return Err(Error::shape(self.name(), format!("zero-sized dimension in {dims:?}")));
        }
        match *self {
            Kernel::Softmax { scale, .. } | Kernel::SoftmaxGrad { scale, .. } if !scale.is_finite() => {
                return Err(Error::shape(self.name(), format!("scale must be finite, got {scale}")));
            }
            Kernel::Softmax { causal: true, log: true, .. } => {
                return Err(Error::shape(self.name(), "the causal mask is for softmax, not log-softmax"));
            }
            Kernel::Softmax { rows, cols, causal: true, .. } if rows % cols != 0 => {
                return Err(Error::shape(
                    self.name(),
                    format!("causal rows ({rows}) must be whole [T, T] blocks of T = cols = {cols}"),
                ));
            }
            Kernel::LayerNorm { eps, .. } | Kernel::LayerNormGrad { eps, .. }
                if !eps.is_finite() || eps < 0.0 =>
            {
                return Err(Error::shape(self.name(), format!("eps must be finite and >= 0, got {eps}")));
            }
            _ => {}
        }
        if self.slots().iter().any(|s| s.len > u32::MAX as usize) {
            return Err(Error::shape(self.name(), "a buffer has more than 2^32 - 1 elements"));
        }
        Ok(())
    }

    /// The scalar parameters the WGSL entry point reads from its uniform block, as 32-bit words.
    /// Each shader file declares a `Params` struct with these fields in this order.
    pub fn params(&self) -> [u32; 16] {
        let mut p = [0u32; 16];
        let mut put = |words: &[u32]| p[..words.len()].copy_from_slice(words);
        let u = |x: usize| x as u32;
        match *self {
            Kernel::Matmul(mm) => put(&[
                u(mm.batch),
                u(mm.m),
                u(mm.n),
                u(mm.k),
                mm.trans_a as u32,
                mm.trans_b as u32,
                if mm.a_batched { u(mm.m * mm.k) } else { 0 },
                if mm.b_batched { u(mm.k * mm.n) } else { 0 },
            ]),
            Kernel::Unary { len, alpha, .. } | Kernel::UnaryGrad { len, alpha, .. } => {
                put(&[u(len), alpha.to_bits()])
            }
            Kernel::Binary { bc, .. } => {
                // WGSL: { len, pad x3, out: vec4<u32>, a_strides: vec4<u32>, b_strides: vec4<u32> }
                let mut w = vec![u(bc.len()), 0, 0, 0];
                w.extend(bc.out.iter().map(|&d| d as u32));
                w.extend(bc.a_strides.iter().map(|&d| d as u32));
                w.extend(bc.b_strides.iter().map(|&d| d as u32));
                put(&w)
            }
            // WGSL: { len, alpha, cols, op } where op is the index of the op in UnaryOp::ALL
            Kernel::BiasAct { op, rows, cols, alpha } => {
                put(&[u(rows * cols), alpha.to_bits(), u(cols), op.code()])
            }
            Kernel::Reduce { outer, len, inner, .. } => put(&[u(outer), u(len), u(inner)]),
            // WGSL: { rows, cols, scale, causal }
            Kernel::Softmax { rows, cols, scale, causal, .. } => {
                put(&[u(rows), u(cols), scale.to_bits(), causal as u32])
            }
            Kernel::SoftmaxGrad { rows, cols, scale, .. } => put(&[u(rows), u(cols), scale.to_bits(), 0]),
            // WGSL: { rows, cols, eps }
            Kernel::LayerNorm { rows, cols, eps } | Kernel::LayerNormGrad { rows, cols, eps } => {
                put(&[u(rows), u(cols), eps.to_bits()])
            }
            Kernel::MseLoss { n }
            | Kernel::MseGrad { n }
            | Kernel::BceLogitsLoss { n }
            | Kernel::BceLogitsGrad { n } => put(&[u(n)]),
            Kernel::SoftmaxCeLoss { rows, cols } | Kernel::SoftmaxCeGrad { rows, cols } => {
                put(&[u(rows), u(cols)])
            }
            Kernel::Sgd { len } | Kernel::Adam { len, .. } | Kernel::Rmsprop { len } => put(&[u(len)]),
            Kernel::Gather { outer, axis_len, inner, n_idx }
            | Kernel::ScatterAdd { outer, axis_len, inner, n_idx } => {
                put(&[u(outer), u(axis_len), u(inner), u(n_idx)])
            }
            Kernel::Fill { len, value } => put(&[u(len), value.to_bits()]),
            Kernel::Copy { len } => put(&[u(len)]),
            // WGSL: { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, pad_value }
            Kernel::Im2col { win, .. } | Kernel::Col2im { win } => {
                let pad_value = match *self {
                    Kernel::Im2col { pad_value, .. } => pad_value,
                    _ => 0.0,
                };
                let (oh, ow) = (win.oh().unwrap_or(0), win.ow().unwrap_or(0));
                put(&[
                    u(win.n),
                    u(win.c),
                    u(win.h),
                    u(win.w),
                    u(win.kh),
                    u(win.kw),
                    u(win.sh),
                    u(win.sw),
                    u(win.ph),
                    u(win.pw),
                    u(win.dh),
                    u(win.dw),
                    u(oh),
                    u(ow),
                    pad_value.to_bits(),
                ])
            }
            // WGSL: { len, pad x3, out: vec4<u32>, src_strides: vec4<u32> }
            Kernel::Permute(pm) => {
                let mut w = vec![u(pm.len()), 0, 0, 0];
                w.extend(pm.out.iter().map(|&d| d as u32));
                w.extend(pm.src_strides.iter().map(|&d| d as u32));
                put(&w)
            }
            // WGSL: { outer, src_len, out_len, inner, offset: i32 }
            Kernel::Window { outer, src_len, out_len, inner, offset } => {
                put(&[u(outer), u(src_len), u(out_len), u(inner), offset as u32])
            }
            // WGSL: { len, keep, gain, scale }
            Kernel::RunningUpdate { len, keep, gain, scale } => {
                put(&[u(len), keep.to_bits(), gain.to_bits(), scale.to_bits()])
            }
        }
        p
    }
}

/// One small instance of every entry point, for tests that must cover them all.
pub fn one_of_each() -> Vec<Kernel> {
    let mut v = vec![Kernel::Matmul(Matmul::new(3, 5, 7))];
    for op in UnaryOp::ALL {
        v.push(Kernel::Unary { op, len: 9, alpha: 0.1 });
        v.push(Kernel::UnaryGrad { op, len: 9, alpha: 0.1 });
    }
    v.push(Kernel::BiasAct { op: UnaryOp::Relu, rows: 3, cols: 5, alpha: 0.0 });
    for op in BinaryOp::ALL {
        v.push(Kernel::Binary { op, bc: Broadcast::same(9) });
    }
    for op in ReduceOp::ALL {
        v.push(Kernel::Reduce { op, outer: 2, len: 5, inner: 3 });
    }
    for log in [false, true] {
        v.push(Kernel::softmax(3, 5, log));
        v.push(Kernel::softmax_grad(3, 5, log));
    }
    v.push(Kernel::Softmax { rows: 10, cols: 5, log: false, scale: 0.5, causal: true });
    v.push(Kernel::LayerNorm { rows: 3, cols: 5, eps: 1e-5 });
    v.push(Kernel::LayerNormGrad { rows: 3, cols: 5, eps: 1e-5 });
    v.extend([
        Kernel::MseLoss { n: 9 },
        Kernel::MseGrad { n: 9 },
        Kernel::BceLogitsLoss { n: 9 },
        Kernel::BceLogitsGrad { n: 9 },
        Kernel::SoftmaxCeLoss { rows: 3, cols: 5 },
        Kernel::SoftmaxCeGrad { rows: 3, cols: 5 },
        Kernel::Sgd { len: 9 },
        Kernel::Adam { len: 9, decoupled: false },
        Kernel::Adam { len: 9, decoupled: true },
        Kernel::Rmsprop { len: 9 },
        Kernel::Gather { outer: 2, axis_len: 5, inner: 3, n_idx: 4 },
        Kernel::ScatterAdd { outer: 2, axis_len: 5, inner: 3, n_idx: 4 },
        Kernel::Fill { len: 9, value: 1.5 },
        Kernel::Copy { len: 9 },
        Kernel::Im2col { win: Window2d::square(2, 3, 5, 4, 3, 1, 1, 1), pad_value: 0.0 },
        Kernel::Col2im { win: Window2d::square(2, 3, 5, 4, 3, 1, 1, 1) },
        Kernel::Permute(Permute::new("permute", &[2, 3, 4], &[1, 0, 2]).unwrap()),
        Kernel::Window { outer: 2, src_len: 5, out_len: 3, inner: 4, offset: 1 },
        Kernel::RunningUpdate { len: 9, keep: 0.9, gain: 0.1, scale: 1.25 },
    ]);
    v
}
