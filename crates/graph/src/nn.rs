//! Network building blocks composed from primitives (so they need no kernels or backward rules
//! of their own): convolution (im2col + batched matmul), pooling (im2col + reduce), layer and
//! batch normalization, multi-head self-attention and a pre-norm transformer block. LayerNorm and
//! RMSNorm with their affine, and attention's scaled, causally masked softmax are each one fused
//! primitive ([`Graph::layer_norm`], [`Graph::rms_norm`], [`Graph::scaled_softmax`]).

use kiln_device::{DType, Patches, Prim, ReduceOp};

use crate::error::Error;
use crate::graph::{Graph, NodeId};
use crate::shape::{Batch, Dim, Fixed};

/// `torch.nn.Conv2d`'s geometry arguments (`[height, width]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOpts {
    /// Step between windows, `[h, w]` (default `[1, 1]`).
    pub stride: [usize; 2],
    /// Zero padding on each side, `[h, w]` (default `[0, 0]`).
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[h, w]` (default `[1, 1]`).
    pub dilation: [usize; 2],
    /// Channel groups; input channels and filters must be divisible by it (default 1).
    pub groups: usize,
}

impl Default for Conv2dOpts {
    fn default() -> Self {
        Conv2dOpts { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }
    }
}

/// Multi-head self-attention weights (PyTorch `Linear` layouts: `w*` are `[dim, dim]`).
#[derive(Clone, Copy, Debug)]
pub struct Attention {
    /// Attention heads; the model width must be divisible by it.
    pub heads: usize,
    /// Mask out future positions (decoder self-attention).
    pub causal: bool,
    /// Query projection weight `[dim, dim]`.
    pub wq: NodeId,
    /// Query projection bias `[dim]`.
    pub bq: NodeId,
    /// Key projection weight `[dim, dim]`.
    pub wk: NodeId,
    /// Key projection bias `[dim]`.
    pub bk: NodeId,
    /// Value projection weight `[dim, dim]`.
    pub wv: NodeId,
    /// Value projection bias `[dim]`.
    pub bv: NodeId,
    /// Output projection weight `[dim, dim]`.
    pub wo: NodeId,
    /// Output projection bias `[dim]`.
    pub bo: NodeId,
}

/// A pre-norm transformer block: `h = x + attn(ln1(x))`, `y = h + fc2(gelu(fc1(ln2(h))))`.
#[derive(Clone, Copy, Debug)]
pub struct TransformerBlock {
    /// First LayerNorm (before attention): (weight, bias), each `[dim]`.
    pub ln1: (NodeId, NodeId),
    /// The self-attention.
    pub attn: Attention,
    /// Second LayerNorm (before the MLP): (weight, bias), each `[dim]`.
    pub ln2: (NodeId, NodeId),
    /// MLP up-projection: (weight `[hidden, dim]`, bias `[hidden]`).
    pub fc1: (NodeId, NodeId),
    /// MLP down-projection: (weight `[dim, hidden]`, bias `[dim]`).
    pub fc2: (NodeId, NodeId),
}

impl TransformerBlock {
    /// Declares the block's parameters as `{prefix}.ln1.weight`, `{prefix}.attn.q.weight`, ...;
    /// `init(shape, fan_in)` gives each weight matrix its values (biases start at 0, LayerNorm
    /// weights at 1).
    pub fn new(
        g: &Graph,
        prefix: &str,
        dim: usize,
        heads: usize,
        hidden: usize,
        causal: bool,
        init: &mut dyn FnMut(&[usize], usize) -> Vec<f32>,
    ) -> Self {
        let mut linear = |name: &str, out: usize, inp: usize| {
            let w = g.param_init(&format!("{prefix}.{name}.weight"), &[out, inp], init(&[out, inp], inp));
            let b = g.param_init(&format!("{prefix}.{name}.bias"), &[out], vec![0.0; out]);
            (w, b)
        };
        let (wq, bq) = linear("attn.q", dim, dim);
        let (wk, bk) = linear("attn.k", dim, dim);
        let (wv, bv) = linear("attn.v", dim, dim);
        let (wo, bo) = linear("attn.out", dim, dim);
        let fc1 = linear("mlp.fc1", hidden, dim);
        let fc2 = linear("mlp.fc2", dim, hidden);
        let ln = |name: &str| {
            (
                g.param_init(&format!("{prefix}.{name}.weight"), &[dim], vec![1.0; dim]),
                g.param_init(&format!("{prefix}.{name}.bias"), &[dim], vec![0.0; dim]),
            )
        };
        let (ln1, ln2) = (ln("ln1"), ln("ln2"));
        TransformerBlock {
            ln1,
            attn: Attention { heads, causal, wq, bq, wk, bk, wv, bv, wo, bo },
            ln2,
            fc1,
            fc2,
        }
    }

    /// Every parameter of the block.
    pub fn params(&self) -> Vec<NodeId> {
        let a = &self.attn;
        vec![
            self.ln1.0, self.ln1.1, a.wq, a.bq, a.wk, a.bk, a.wv, a.bv, a.wo, a.bo, self.ln2.0, self.ln2.1,
            self.fc1.0, self.fc1.1, self.fc2.0, self.fc2.1,
        ]
    }
}

impl Graph {
    fn dims_fixed(&self, x: NodeId, from: usize) -> Option<Vec<usize>> {
        self.shape(x).0[from..].iter().map(|d| if let Fixed(n) = d { Some(*n) } else { None }).collect()
    }

    /// `torch.nn.functional.conv2d`: `x [N, C, H, W]`, `w [O, C/groups, kh, kw]`, `b [O]`, as
    /// im2col + one batched matmul (groups: the group axis becomes the matmul batch).
    pub fn conv2d(&self, x: NodeId, w: NodeId, b: Option<NodeId>, o: Conv2dOpts) -> NodeId {
        let (sx, sw) = (self.shape(x), self.shape(w));
        let (Some(xd), Some(wd)) = (self.dims_fixed(x, 1), self.dims_fixed(w, 0)) else {
            return self.fail(Error::shape(
                "conv2d",
                format!("x {sx} and w {sw} need fixed [C, H, W] and [O, C/g, kh, kw]"),
            ));
        };
        let g = o.groups.max(1);
        if sx.rank() != 4 || wd.len() != 4 || xd[0] % g != 0 || wd[0] % g != 0 || wd[1] * g != xd[0] {
            return self.fail(Error::shape(
                "conv2d",
                format!("x {sx} (NCHW) and weight {sw} ([O, C/{g}, kh, kw]) do not fit"),
            ));
        }
        let (c, out, k) = (xd[0], wd[0], wd[1] * wd[2] * wd[3]);
        let p = Patches {
            kernel: [wd[2], wd[3]],
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
            pad_value: 0.0,
        };
        let cols = self.im2col(x, p); // [N, C*kh*kw, L]
        let Some(Fixed(l)) = self.shape(cols).0.get(2).copied() else { return cols };
        let win = p.window(&[1, c, xd[1], xd[2]]);
        let (oh, ow) = (win.oh().unwrap_or(0), win.ow().unwrap_or(0));
        let n = sx.0[0];
        let y = if g == 1 {
            let w2 = self.reshape(w, &[Fixed(out), Fixed(k)]);
            self.matmul(w2, cols) // [N, O, L]
        } else {
            let nl = scale_dim(n, l);
            let cols = self.reshape(cols, &[n, Fixed(g), Fixed(k), Fixed(l)]);
            let cols = self.permute(cols, &[1, 2, 0, 3]); // [g, k, N, L]
            let cols = self.reshape(cols, &[Fixed(g), Fixed(k), nl]);
            let w3 = self.reshape(w, &[Fixed(g), Fixed(out / g), Fixed(k)]);
            let y = self.matmul(w3, cols); // [g, O/g, N*L]
            let y = self.reshape(y, &[Fixed(g), Fixed(out / g), n, Fixed(l)]);
            self.permute(y, &[2, 0, 1, 3]) // [N, g, O/g, L]
        };
        let y = self.reshape(y, &[n, Fixed(out), Fixed(oh), Fixed(ow)]);
        match b {
            Some(b) => self.add(y, self.reshape(b, &[Fixed(out), Fixed(1), Fixed(1)])),
            None => y,
        }
    }

    /// Pooling of every `k x k` window of `x [N, C, H, W]`: im2col over each channel as its own
    /// image, then a reduction over the window.
    fn pool2d(
        &self,
        op: ReduceOp,
        x: NodeId,
        k: usize,
        stride: usize,
        padding: usize,
        pad_value: f32,
    ) -> NodeId {
        let name = if op == ReduceOp::Max { "max_pool2d" } else { "avg_pool2d" };
        let s = self.shape(x);
        let Some(d) = self.dims_fixed(x, 1).filter(|d| d.len() == 3) else {
            return self
                .fail(Error::shape(name, format!("expects [N, C, H, W] with fixed C, H, W, got {s}")));
        };
        if 2 * padding > k {
            return self
                .fail(Error::shape(name, format!("padding {padding} must be at most half the kernel {k}")));
        }
        let p = Patches {
            kernel: [k, k],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            pad_value,
        };
        let win = p.window(&[1, 1, d[1], d[2]]);
        let (Some(oh), Some(ow)) = (win.oh(), win.ow()) else {
            return self.fail(Error::shape(
                name,
                format!("window {k} (stride {stride}, padding {padding}) larger than {s}"),
            ));
        };
        let n = s.0[0];
        let planes = self.reshape(x, &[scale_dim(n, d[0]), Fixed(1), Fixed(d[1]), Fixed(d[2])]);
        let cols = self.im2col(planes, p); // [N*C, k*k, OH*OW]
        let y = self.reduce(op, cols, 1, false); // [N*C, OH*OW]
        self.reshape(y, &[n, Fixed(d[0]), Fixed(oh), Fixed(ow)])
    }

    /// `torch.nn.functional.max_pool2d(x, k, stride, padding)`: one kernel forward and one
    /// backward, with PyTorch's choice of the element a window's gradient goes to (its first
    /// largest, in row-major window order; padding never wins).
    pub fn max_pool2d(&self, x: NodeId, k: usize, stride: usize, padding: usize) -> NodeId {
        let p = Patches {
            kernel: [k, k],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            pad_value: 0.0,
        };
        self.max_pool(x, p)
    }

    /// `torch.nn.functional.avg_pool2d(x, k, stride, padding)` (`count_include_pad=True`).
    pub fn avg_pool2d(&self, x: NodeId, k: usize, stride: usize, padding: usize) -> NodeId {
        self.pool2d(ReduceOp::Mean, x, k, stride, padding, 0.0)
    }

    /// `[N, C, H, W]` -> `[N, C]`: the mean over each channel's plane.
    pub fn global_avg_pool2d(&self, x: NodeId) -> NodeId {
        let s = self.shape(x);
        let Some(d) = self.dims_fixed(x, 1).filter(|d| d.len() == 3) else {
            return self.fail(Error::shape("global_avg_pool2d", format!("expects [N, C, H, W], got {s}")));
        };
        let flat = self.reshape(x, &[s.0[0], Fixed(d[0]), Fixed(d[1] * d[2])]);
        self.mean(flat, 2, false)
    }

    /// `torch.nn.functional.layer_norm` over the last axis, with `weight` and `bias` of its size:
    /// one kernel each way (biased variance as PyTorch's; the affine applied in the same launch,
    /// the same values as [`Graph::layer_norm_no_affine`] times `weight` plus `bias`). The
    /// backward recomputes the normalized input for the weight's gradient, so nothing but `x` is
    /// kept for it.
    pub fn layer_norm(&self, x: NodeId, weight: NodeId, bias: NodeId, eps: f32) -> NodeId {
        self.norm_affine(x, &[weight, bias], eps, false)
    }

    /// Hugging Face `LlamaRMSNorm` over the last axis with `weight` of its size: one kernel each
    /// way (the same values as [`Graph::rms_norm_no_affine`] times `weight`).
    pub fn rms_norm(&self, x: NodeId, weight: NodeId, eps: f32) -> NodeId {
        self.norm_affine(x, &[weight], eps, true)
    }

    /// The normalization of `x`'s last axis with its affine `[w]` or `[w, b]` (each of that
    /// axis's length).
    fn norm_affine(&self, x: NodeId, affine: &[NodeId], eps: f32, rms: bool) -> NodeId {
        let name = if rms { "rms_norm" } else { "layer_norm" };
        let inputs: Vec<NodeId> = [&[x][..], affine].concat();
        self.prim(Prim::NormAffine { eps, rms }, &inputs, |n| {
            if n[0].dtype != DType::F32 {
                return Err(Error::shape(name, format!("x must be f32, got {:?}", n[0].dtype)));
            }
            let cols = n[0].shape.0.last().copied();
            for a in &n[1..] {
                if a.dtype != DType::F32 || a.shape.rank() != 1 || a.shape.0.first().copied() != cols {
                    return Err(Error::shape(
                        name,
                        format!(
                            "weight and bias must be f32 of x's last axis: x is {}, got {}",
                            n[0].shape, a.shape
                        ),
                    ));
                }
            }
            Ok((n[0].shape.clone(), DType::F32))
        })
    }

    pub(crate) fn norm_dy_xhat(&self, eps: f32, rms: bool, x: NodeId, dy: NodeId) -> NodeId {
        self.prim(Prim::NormDyXhat { eps, rms }, &[x, dy], |n| Ok((n[0].shape.clone(), DType::F32)))
    }

    pub(crate) fn norm_affine_grad(&self, eps: f32, rms: bool, x: NodeId, dy: NodeId, w: NodeId) -> NodeId {
        self.prim(Prim::NormAffineGrad { eps, rms }, &[x, dy, w], |n| Ok((n[0].shape.clone(), DType::F32)))
    }

    /// Batch normalization in training mode over `x [N, C]` or `[N, C, H, W]`: normalizes with the
    /// batch statistics and returns `(y, batch_mean [C], batch_var [C])` (biased variance); the
    /// caller updates running statistics from the last two.
    pub fn batch_norm_train(
        &self,
        x: NodeId,
        weight: NodeId,
        bias: NodeId,
        eps: f32,
    ) -> (NodeId, NodeId, NodeId) {
        let s = self.shape(x);
        let Some(d) = self.dims_fixed(x, 1).filter(|d| d.len() == 1 || d.len() == 3) else {
            let bad =
                self.fail(Error::shape("batch_norm", format!("expects [N, C] or [N, C, H, W], got {s}")));
            return (bad, bad, bad);
        };
        let c = d[0];
        // [N, C, P]: statistics over axes 0 and 2
        let xr = self.reshape(x, &[s.0[0], Fixed(c), Fixed(d.iter().skip(1).product())]);
        let mean = self.mean(self.mean(xr, 2, true), 0, true);
        let xc = self.sub(xr, mean);
        let var = self.mean(self.mean(self.mul(xc, xc), 2, true), 0, true);
        let rstd = self.reciprocal(self.sqrt(self.add(var, self.scalar(eps))));
        let wb = |t: NodeId| self.reshape(t, &[Fixed(c), Fixed(1)]);
        let y = self.add(self.mul(self.mul(xc, rstd), wb(weight)), wb(bias));
        (self.reshape(y, &s.0), self.reshape(mean, &[Fixed(c)]), self.reshape(var, &[Fixed(c)]))
    }

    /// Batch normalization in evaluation mode: `(x - running_mean) / sqrt(running_var + eps) * w + b`.
    pub fn batch_norm_eval(
        &self,
        x: NodeId,
        weight: NodeId,
        bias: NodeId,
        running_mean: NodeId,
        running_var: NodeId,
        eps: f32,
    ) -> NodeId {
        let s = self.shape(x);
        let Some(d) = self.dims_fixed(x, 1).filter(|d| d.len() == 1 || d.len() == 3) else {
            return self.fail(Error::shape("batch_norm", format!("expects [N, C] or [N, C, H, W], got {s}")));
        };
        let c = d[0];
        let per_c = |t: NodeId| {
            if d.len() == 3 {
                self.reshape(t, &[Fixed(c), Fixed(1), Fixed(1)])
            } else {
                t
            }
        };
        let rstd = self.reciprocal(self.sqrt(self.add(running_var, self.scalar(eps))));
        let scale = per_c(self.mul(weight, rstd));
        self.add(self.mul(self.sub(x, per_c(running_mean)), scale), per_c(bias))
    }

    /// Multi-head self-attention over `x [B, T, dim]` with scaled dot products, an optional
    /// causal mask (position `i` attends to `j <= i`) and an output projection. The scale and the
    /// mask are part of one softmax kernel ([`Graph::scaled_softmax`]).
    pub fn self_attention(&self, x: NodeId, a: &Attention) -> NodeId {
        let s = self.shape(x);
        let Some(d) = self.dims_fixed(x, 1).filter(|d| d.len() == 2) else {
            return self.fail(Error::shape("self_attention", format!("expects [B, T, dim], got {s}")));
        };
        let (t, dim, h) = (d[0], d[1], a.heads.max(1));
        if dim % h != 0 {
            return self
                .fail(Error::shape("self_attention", format!("dim {dim} is not a multiple of {h} heads")));
        }
        let (b, hd) = (s.0[0], dim / h);
        let bh = scale_dim(b, h);
        // [B, T, dim] -> [B, T, H, hd] -> [B, H, T, hd] -> [B*H, T, hd]
        let heads = |w: NodeId, bias: NodeId| {
            let y = self.linear(x, w, Some(bias));
            let y = self.permute(self.reshape(y, &[b, Fixed(t), Fixed(h), Fixed(hd)]), &[0, 2, 1, 3]);
            self.reshape(y, &[bh, Fixed(t), Fixed(hd)])
        };
        let (q, k, v) = (heads(a.wq, a.bq), heads(a.wk, a.bk), heads(a.wv, a.bv));
        // under autocast: half q, k, v and probabilities (as in `grouped_query_attention`)
        let (q, k, v) = (self.autocast_operand(q), self.autocast_operand(k), self.autocast_operand(v));
        let scores = self.matmul_t(q, k, false, true); // [B*H, T, T]
        let probs = self.autocast_operand(self.scaled_softmax(scores, 1.0 / (hd as f32).sqrt(), a.causal));
        let ctx = self.matmul(probs, v); // [B*H, T, hd]
        let ctx = self.permute(self.reshape(ctx, &[b, Fixed(h), Fixed(t), Fixed(hd)]), &[0, 2, 1, 3]);
        let ctx = self.reshape(ctx, &[b, Fixed(t), Fixed(dim)]);
        self.linear(ctx, a.wo, Some(a.bo))
    }

    /// A pre-norm transformer block over `x [B, T, dim]` (LayerNorm eps 1e-5).
    pub fn transformer_block(&self, x: NodeId, blk: &TransformerBlock) -> NodeId {
        let h = self.add(x, self.self_attention(self.layer_norm(x, blk.ln1.0, blk.ln1.1, 1e-5), &blk.attn));
        let m = self.layer_norm(h, blk.ln2.0, blk.ln2.1, 1e-5);
        let m =
            self.linear(self.gelu(self.linear(m, blk.fc1.0, Some(blk.fc1.1))), blk.fc2.0, Some(blk.fc2.1));
        self.add(h, m)
    }
}

/// `n * k` for a dimension that may hold the batch.
pub(crate) fn scale_dim(n: Dim, k: usize) -> Dim {
    match n {
        Fixed(m) => Fixed(m * k),
        Batch(m) => Batch(m * k),
    }
}
