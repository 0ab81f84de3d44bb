//! Builder methods: one per primitive, then the ops derived from primitives. Each checks shapes at
//! build time and names the op and both shapes when they do not fit.

use kiln_device::{BinaryOp, DType, Prim, ReduceOp, UnaryOp};

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, NodeId, Op};
use crate::shape::{Batch, Dim, Fixed, Shape};

use DType::{F32, U32};

/// The most dimensions the device's broadcasting binary kernel takes.
const MAX_RANK: usize = 4;

fn want(op: &'static str, n: &Node, dtype: DType) -> Result<()> {
    if n.dtype != dtype {
        return Err(Error::shape(op, format!("expects {dtype:?}, got a {:?} tensor {}", n.dtype, n.shape)));
    }
    Ok(())
}

/// An error unless `n` holds floats (f32, f16 or bf16).
fn want_float(op: &'static str, n: &Node) -> Result<()> {
    if n.dtype == U32 {
        return Err(Error::shape(op, format!("expects f32, f16 or bf16, got a u32 tensor {}", n.shape)));
    }
    Ok(())
}

fn same(op: &'static str, a: &Node, b: &Node) -> Result<()> {
    if a.shape != b.shape {
        return Err(Error::shape(op, format!("shapes {} and {} differ", a.shape, b.shape)));
    }
    Ok(())
}

impl Graph {
    // ---- leaves ----

    /// An f32 input of shape `[B, rest...]`, fed every step.
    pub fn input(&self, name: &str, rest: &[usize]) -> NodeId {
        self.leaf(Op::Input { name: name.into() }, Shape::batched(rest), F32, None)
    }

    /// A u32 input of shape `[B, rest...]` (class labels, indices).
    pub fn input_u32(&self, name: &str, rest: &[usize]) -> NodeId {
        self.leaf(Op::Input { name: name.into() }, Shape::batched(rest), U32, None)
    }

    /// A trainable parameter, zero until the session sets it.
    pub fn param(&self, name: &str, shape: &[usize]) -> NodeId {
        self.leaf(Op::Param { name: name.into() }, Shape::fixed(shape), F32, None)
    }

    /// A trainable parameter with initial values.
    pub fn param_init(&self, name: &str, shape: &[usize], init: Vec<f32>) -> NodeId {
        self.leaf(Op::Param { name: name.into() }, Shape::fixed(shape), F32, Some(init))
    }

    pub(crate) fn state(&self, name: &str, shape: Shape) -> NodeId {
        self.leaf(Op::State { name: name.into() }, shape, F32, None)
    }

    /// Persistent state with initial contents (the loss scaler's).
    pub(crate) fn state_init(&self, name: &str, shape: &[usize], init: Vec<f32>) -> NodeId {
        self.leaf(Op::State { name: name.into() }, Shape::fixed(shape), F32, Some(init))
    }

    /// A constant tensor.
    pub fn constant(&self, shape: &[usize], data: Vec<f32>) -> NodeId {
        self.leaf(Op::Const, Shape::fixed(shape), F32, Some(data))
    }

    /// A scalar constant (shape `[]`), which broadcasts against anything.
    pub fn scalar(&self, value: f32) -> NodeId {
        self.constant(&[], vec![value])
    }

    /// A tensor of `shape` (which may hold the batch) filled with `value`.
    pub fn fill(&self, shape: Shape, value: f32) -> NodeId {
        self.push(Op::Fill { value, per_batch: false }, &[], shape, F32)
    }

    fn leaf(&self, op: Op, shape: Shape, dtype: DType, init: Option<Vec<f32>>) -> NodeId {
        if let Op::Input { name } | Op::Param { name } | Op::State { name } = &op {
            if self.find(name).is_some() {
                return self.fail(Error::name(op.name(), name, "declared twice"));
            }
        }
        let n = shape.numel(1);
        if let Some(data) = &init {
            if data.len() != n {
                return self.fail(Error::shape(
                    op.name(),
                    format!("shape {shape} holds {n} values, got {}", data.len()),
                ));
            }
        }
        self.push_node(Node { op, inputs: vec![], shape, dtype, init })
    }

    // ---- primitives ----

    /// `a @ b` for `a: [.., m, k]`, `b: [.., k, n]` (rank 2, or rank 3 with a leading batch).
    pub fn matmul(&self, a: NodeId, b: NodeId) -> NodeId {
        self.matmul_t(a, b, false, false)
    }

    /// `op(a) @ op(b)` where `op` transposes the last two axes when asked. Either operand may be
    /// f16 or bf16 (a [`Graph::cast`]): the product accumulates in f32 and is f32.
    pub fn matmul_t(&self, a: NodeId, b: NodeId, trans_a: bool, trans_b: bool) -> NodeId {
        self.prim(Prim::Matmul { trans_a, trans_b }, &[a, b], |n| {
            let (sa, sb) = (&n[0].shape, &n[1].shape);
            let err = |why: &str| Error::shape("matmul", format!("{sa} @ {sb}{why}"));
            want_float("matmul", n[0])?;
            want_float("matmul", n[1])?;
            if !(2..=3).contains(&sa.rank()) || !(2..=3).contains(&sb.rank()) {
                return Err(err(": operands must have rank 2 or 3"));
            }
            let mk = |s: &Shape, t: bool| {
                let r = s.rank();
                let (x, y) = (s.0[r - 2], s.0[r - 1]);
                if t {
                    (y, x)
                } else {
                    (x, y)
                }
            };
            let ((m, k1), (k2, nn)) = (mk(sa, trans_a), mk(sb, trans_b));
            if k1 != k2 {
                return Err(err(&format!(": inner dimensions {k1} and {k2} differ")));
            }
            let batch = match (sa.rank(), sb.rank()) {
                (3, 3) if sa.0[0] != sb.0[0] => return Err(err(": batch dimensions differ")),
                (3, _) => Some(sa.0[0]),
                (_, 3) => Some(sb.0[0]),
                _ => None,
            };
            let mut dims: Vec<Dim> = batch.into_iter().collect();
            dims.extend([m, nn]);
            Ok((Shape(dims), F32))
        })
    }

    /// `x` converted to `dtype` (f32, f16 or bf16), rounding to nearest even as the `half` crate
    /// does; `x` itself when it already has that type, and through f32 between the two half types.
    /// Its gradient is the incoming gradient cast back to `x`'s type (PyTorch's `.to(dtype)`).
    pub fn cast(&self, x: NodeId, dtype: DType) -> NodeId {
        let from = self.dtype(x);
        if from == dtype {
            return x;
        }
        if from.is_half() && dtype.is_half() {
            return self.cast(self.cast(x, F32), dtype);
        }
        self.prim(Prim::Cast { from, to: dtype }, &[x], |n| Ok((n[0].shape.clone(), dtype)))
    }

    /// Elementwise `op` on an f32 tensor; `alpha` is the op's parameter (LeakyReLU's slope), else 0.
    pub fn unary(&self, op: UnaryOp, x: NodeId, alpha: f32) -> NodeId {
        self.prim(Prim::Unary { op, alpha }, &[x], |n| {
            want(op.name(), n[0], F32)?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    /// `-x`, elementwise.
    pub fn neg(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Neg, x, 0.0)
    }
    /// `e^x`, elementwise.
    pub fn exp(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Exp, x, 0.0)
    }
    /// Natural logarithm, elementwise.
    pub fn log(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Log, x, 0.0)
    }
    /// Square root, elementwise.
    pub fn sqrt(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Sqrt, x, 0.0)
    }
    /// `1 / x`, elementwise.
    pub fn reciprocal(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Reciprocal, x, 0.0)
    }
    /// `|x|`, elementwise.
    pub fn abs(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Abs, x, 0.0)
    }
    /// `max(x, 0)`, elementwise.
    pub fn relu(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Relu, x, 0.0)
    }
    /// `x` where positive, else `slope * x`.
    pub fn leaky_relu(&self, x: NodeId, slope: f32) -> NodeId {
        self.unary(UnaryOp::LeakyRelu, x, slope)
    }
    /// `1 / (1 + e^-x)`, elementwise.
    pub fn sigmoid(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Sigmoid, x, 0.0)
    }
    /// Hyperbolic tangent, elementwise.
    pub fn tanh(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Tanh, x, 0.0)
    }
    /// GELU (the exact, erf form), elementwise.
    pub fn gelu(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Gelu, x, 0.0)
    }
    /// SiLU (swish), `x * sigmoid(x)`: PyTorch's `nn.SiLU`.
    pub fn silu(&self, x: NodeId) -> NodeId {
        self.unary(UnaryOp::Silu, x, 0.0)
    }

    pub(crate) fn unary_grad(&self, op: UnaryOp, alpha: f32, saved: NodeId, dy: NodeId) -> NodeId {
        self.prim(Prim::UnaryGrad { op, alpha }, &[saved, dy], |n| {
            same(op.grad_name(), n[0], n[1])?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    /// `a op b` with numpy broadcasting (at most 4 dimensions).
    pub fn binary(&self, op: BinaryOp, a: NodeId, b: NodeId) -> NodeId {
        self.prim(Prim::Binary(op), &[a, b], |n| {
            want(op.name(), n[0], F32)?;
            want(op.name(), n[1], F32)?;
            let (sa, sb) = (&n[0].shape, &n[1].shape);
            let out = sa
                .broadcast(sb)
                .ok_or_else(|| Error::shape(op.name(), format!("shapes {sa} and {sb} do not broadcast")))?;
            if out.rank() > MAX_RANK {
                return Err(Error::shape(op.name(), format!("{sa} and {sb}: at most {MAX_RANK} dimensions")));
            }
            Ok((out, F32))
        })
    }

    /// `a + b`, broadcasting.
    pub fn add(&self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Add, a, b)
    }
    /// `a - b`, broadcasting.
    pub fn sub(&self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Sub, a, b)
    }
    /// `a * b`, broadcasting.
    pub fn mul(&self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Mul, a, b)
    }
    /// `a / b`, broadcasting.
    pub fn div(&self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Div, a, b)
    }
    /// Elementwise maximum of `a` and `b`, broadcasting.
    pub fn maximum(&self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Max, a, b)
    }
    /// Elementwise minimum of `a` and `b`, broadcasting.
    pub fn minimum(&self, a: NodeId, b: NodeId) -> NodeId {
        self.binary(BinaryOp::Min, a, b)
    }

    /// Reduces `axis` with sum, mean or max (argmax: see [`Graph::argmax`]).
    pub fn reduce(&self, op: ReduceOp, x: NodeId, axis: usize, keep: bool) -> NodeId {
        self.prim(Prim::Reduce { op, axis, keep }, &[x], |n| {
            want(op.name(), n[0], F32)?;
            let s = &n[0].shape;
            if axis >= s.rank() {
                return Err(Error::shape(op.name(), format!("axis {axis} out of range for {s}")));
            }
            let mut out = s.with_one(axis);
            if !keep {
                out.0.remove(axis);
            }
            Ok((out, if op == ReduceOp::Argmax { U32 } else { F32 }))
        })
    }

    /// Sum over `axis`; `keep` keeps it as a dimension of size 1.
    pub fn sum(&self, x: NodeId, axis: usize, keep: bool) -> NodeId {
        self.reduce(ReduceOp::Sum, x, axis, keep)
    }
    /// Mean over `axis`; `keep` keeps it as a dimension of size 1.
    pub fn mean(&self, x: NodeId, axis: usize, keep: bool) -> NodeId {
        self.reduce(ReduceOp::Mean, x, axis, keep)
    }
    /// Maximum over `axis`; `keep` keeps it as a dimension of size 1.
    pub fn max(&self, x: NodeId, axis: usize, keep: bool) -> NodeId {
        self.reduce(ReduceOp::Max, x, axis, keep)
    }
    /// Index of the first maximum along `axis`, as u32.
    pub fn argmax(&self, x: NodeId, axis: usize) -> NodeId {
        self.reduce(ReduceOp::Argmax, x, axis, false)
    }

    /// Softmax over the last axis.
    pub fn softmax(&self, x: NodeId) -> NodeId {
        self.softmax_op(x, false, 1.0, false)
    }
    /// Log-softmax over the last axis.
    pub fn log_softmax(&self, x: NodeId) -> NodeId {
        self.softmax_op(x, true, 1.0, false)
    }

    /// Attention's softmax in one kernel: `softmax(scale * x)` over the last axis. With `causal`,
    /// `x` is `[.., T, T]` and entry `(i, j)` with `j > i` is left out (its output is exactly 0),
    /// as an additive `-inf` mask above the diagonal would do.
    pub fn scaled_softmax(&self, x: NodeId, scale: f32, causal: bool) -> NodeId {
        self.softmax_op(x, false, scale, causal)
    }

    /// [`Graph::scaled_softmax`] masked by query positions: `x` is `[.., Tq, Tk]` and `positions`
    /// a u32 tensor of the `Tq` query positions; entry `(r, j)` (r counting the rows of every
    /// `[Tq, Tk]` block) is kept iff `j <= positions[r mod Tq]`, the others are exactly 0 (a
    /// position `>= Tk` keeps the whole row). A decode step attends so over a cache of `Tk = Tmax`
    /// keys of which the first `pos + 1` are valid (see [`Graph::cache_write`]). The rows of `x`
    /// must be whole blocks of `Tq`, checked when the plan is compiled.
    pub fn scaled_softmax_upto(&self, x: NodeId, scale: f32, positions: NodeId) -> NodeId {
        self.prim(Prim::SoftmaxUpto { scale }, &[x, positions], |n| {
            want("softmax_upto", n[0], F32)?;
            want("softmax_upto", n[1], U32)?;
            if n[0].shape.rank() < 2 {
                return Err(Error::shape("softmax_upto", format!("needs [.., Tq, Tk], got {}", n[0].shape)));
            }
            Ok((n[0].shape.clone(), F32))
        })
    }

    fn softmax_op(&self, x: NodeId, log: bool, scale: f32, causal: bool) -> NodeId {
        let op = Prim::Softmax { log, scale, causal };
        let name = op.name();
        self.prim(op, &[x], |n| {
            want(name, n[0], F32)?;
            let s = &n[0].shape;
            if s.rank() == 0 {
                return Err(Error::shape(name, "needs at least one axis, got a scalar"));
            }
            if causal && (s.rank() < 2 || s.0[s.rank() - 1] != s.0[s.rank() - 2]) {
                return Err(Error::shape(name, format!("a causal mask needs [.., T, T], got {s}")));
            }
            Ok((s.clone(), F32))
        })
    }

    pub(crate) fn softmax_grad(&self, log: bool, scale: f32, y: NodeId, dy: NodeId) -> NodeId {
        let op = Prim::SoftmaxGrad { log, scale };
        let name = op.name();
        self.prim(op, &[y, dy], |n| {
            same(name, n[0], n[1])?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    /// `(x - mean) / sqrt(var + eps)` over the last axis, biased variance: LayerNorm without its
    /// affine (one kernel forward, one backward). [`Graph::layer_norm`] adds weight and bias.
    pub fn layer_norm_no_affine(&self, x: NodeId, eps: f32) -> NodeId {
        self.prim(Prim::LayerNorm { eps }, &[x], |n| {
            want("layer_norm", n[0], F32)?;
            if n[0].shape.rank() == 0 {
                return Err(Error::shape("layer_norm", "needs at least one axis, got a scalar"));
            }
            Ok((n[0].shape.clone(), F32))
        })
    }

    pub(crate) fn layer_norm_grad(&self, eps: f32, x: NodeId, dy: NodeId) -> NodeId {
        self.prim(Prim::LayerNormGrad { eps }, &[x, dy], |n| {
            same("layer_norm_grad", n[0], n[1])?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    /// `x / sqrt(mean(x^2) + eps)` over the last axis: RMSNorm without its weight (Hugging Face
    /// `LlamaRMSNorm`; one kernel forward, one backward). [`Graph::rms_norm`] adds the weight.
    pub fn rms_norm_no_affine(&self, x: NodeId, eps: f32) -> NodeId {
        self.prim(Prim::RmsNorm { eps }, &[x], |n| {
            want("rms_norm", n[0], F32)?;
            if n[0].shape.rank() == 0 {
                return Err(Error::shape("rms_norm", "needs at least one axis, got a scalar"));
            }
            Ok((n[0].shape.clone(), F32))
        })
    }

    pub(crate) fn rms_norm_grad(&self, eps: f32, x: NodeId, dy: NodeId) -> NodeId {
        self.prim(Prim::RmsNormGrad { eps }, &[x, dy], |n| {
            same("rms_norm_grad", n[0], n[1])?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    /// `silu(gate) * up` elementwise, one fused kernel (the SwiGLU product of a Llama MLP,
    /// `down(silu(gate(x)) * up(x))`). `gate` and `up` must have the same shape (no broadcasting).
    pub fn swiglu(&self, gate: NodeId, up: NodeId) -> NodeId {
        self.prim(Prim::Swiglu, &[gate, up], |n| {
            want("swiglu", n[0], F32)?;
            want("swiglu", n[1], F32)?;
            if n[0].shape != n[1].shape {
                return Err(Error::shape(
                    "swiglu",
                    format!("gate {} and up {} must have the same shape", n[0].shape, n[1].shape),
                ));
            }
            Ok((n[0].shape.clone(), F32))
        })
    }

    pub(crate) fn swiglu_grad_gate(&self, gate: NodeId, up: NodeId, dy: NodeId) -> NodeId {
        self.prim(Prim::SwigluGradGate, &[gate, up, dy], |n| {
            same("swiglu_grad_gate", n[0], n[1])?;
            same("swiglu_grad_gate", n[0], n[2])?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    pub(crate) fn swiglu_grad_up(&self, gate: NodeId, dy: NodeId) -> NodeId {
        self.prim(Prim::SwigluGradUp, &[gate, dy], |n| {
            same("swiglu_grad_up", n[0], n[1])?;
            Ok((n[0].shape.clone(), F32))
        })
    }

    /// Mean squared error over all elements (fused kernel), a scalar.
    pub fn mse_loss(&self, pred: NodeId, target: NodeId) -> NodeId {
        self.pair_loss(Prim::MseLoss, pred, target)
    }

    /// Mean binary cross-entropy from logits, targets in [0, 1] (fused kernel), a scalar.
    pub fn bce_with_logits(&self, logits: NodeId, target: NodeId) -> NodeId {
        self.pair_loss(Prim::BceLogitsLoss, logits, target)
    }

    fn pair_loss(&self, op: Prim, pred: NodeId, target: NodeId) -> NodeId {
        let name = op.name();
        self.prim(op, &[pred, target], |n| {
            want(name, n[0], F32)?;
            want(name, n[1], F32)?;
            same(name, n[0], n[1])?;
            Ok((Shape::scalar(), F32))
        })
    }

    pub(crate) fn pair_loss_grad(&self, op: Prim, pred: NodeId, target: NodeId, dloss: NodeId) -> NodeId {
        self.prim(op, &[pred, target, dloss], |n| Ok((n[0].shape.clone(), F32)))
    }

    /// Mean over rows of the softmax cross-entropy of `logits: [.., C]` against u32 class
    /// `labels: [..]` (fused kernel), a scalar.
    pub fn softmax_cross_entropy(&self, logits: NodeId, labels: NodeId) -> NodeId {
        self.prim(Prim::SoftmaxCeLoss, &[logits, labels], |n| {
            want("softmax_ce_loss", n[0], F32)?;
            want("softmax_ce_loss", n[1], U32)?;
            let (sl, sy) = (&n[0].shape, &n[1].shape);
            if sl.rank() == 0 || sl.0[..sl.rank() - 1] != sy.0[..] {
                return Err(Error::shape(
                    "softmax_ce_loss",
                    format!("logits {sl} need labels of shape {sl} without its last axis, got {sy}"),
                ));
            }
            Ok((Shape::scalar(), F32))
        })
    }

    pub(crate) fn softmax_ce_grad(&self, logits: NodeId, labels: NodeId, dloss: NodeId) -> NodeId {
        self.prim(Prim::SoftmaxCeGrad, &[logits, labels, dloss], |n| Ok((n[0].shape.clone(), F32)))
    }

    /// The same data seen as `shape`; the element counts must agree (symbolically).
    pub fn reshape(&self, x: NodeId, shape: &[Dim]) -> NodeId {
        let to = Shape(shape.to_vec());
        self.build(Op::Reshape, &[x], |n| {
            if n[0].shape.symbolic_numel() != to.symbolic_numel() {
                return Err(Error::shape("reshape", format!("cannot view {} as {to}", n[0].shape)));
            }
            Ok((to.clone(), n[0].dtype))
        })
    }

    /// `out = table` with `axis` replaced by the index's dimensions, picking entries by index.
    pub fn gather(&self, table: NodeId, index: NodeId, axis: usize) -> NodeId {
        self.prim(Prim::Gather { axis }, &[table, index], |n| {
            want("gather", n[0], F32)?;
            want("gather", n[1], U32)?;
            let (st, si) = (&n[0].shape, &n[1].shape);
            if axis >= st.rank() {
                return Err(Error::shape("gather", format!("axis {axis} out of range for table {st}")));
            }
            let mut dims = st.0[..axis].to_vec();
            dims.extend_from_slice(&si.0);
            dims.extend_from_slice(&st.0[axis + 1..]);
            Ok((Shape(dims), F32))
        })
    }

    /// The adjoint of [`Graph::gather`]: sums `src` entries into `axis_len` positions of `axis`.
    pub fn scatter_add(&self, src: NodeId, index: NodeId, axis: usize, axis_len: Dim) -> NodeId {
        self.prim(Prim::ScatterAdd { axis }, &[src, index], |n| {
            want("scatter_add", n[0], F32)?;
            want("scatter_add", n[1], U32)?;
            let (ss, si) = (&n[0].shape, &n[1].shape);
            let r = si.rank();
            if ss.rank() < axis + r || ss.0[axis..axis + r] != si.0[..] {
                return Err(Error::shape(
                    "scatter_add",
                    format!("src {ss} must hold index {si} at axis {axis}"),
                ));
            }
            let mut dims = ss.0[..axis].to_vec();
            dims.push(axis_len);
            dims.extend_from_slice(&ss.0[axis + r..]);
            Ok((Shape(dims), F32))
        })
    }

    // ---- derived from primitives ----

    /// `x @ w^T + b` with PyTorch's layout: `w` is `[out, in]`, `b` is `[out]`. Under autocast
    /// ([`Graph::set_autocast`]) the matmul reads half copies of `x` and `w`; the bias add and
    /// the result stay f32.
    pub fn linear(&self, x: NodeId, w: NodeId, b: Option<NodeId>) -> NodeId {
        let y = self.matmul_t(self.autocast_operand(x), self.autocast_operand(w), false, true);
        match b {
            Some(b) => self.add(y, b),
            None => y,
        }
    }

    /// `x * s` for a constant `s`.
    pub fn scale(&self, x: NodeId, s: f32) -> NodeId {
        let c = self.scalar(s);
        self.mul(x, c)
    }

    /// All dimensions folded into one: `[B, 28, 28]` becomes `[784B]`.
    pub fn flatten_all(&self, x: NodeId) -> NodeId {
        let (c, p) = self.shape(x).symbolic_numel();
        let d = match p {
            0 => Fixed(c),
            1 => Batch(c),
            _ => return self.fail(Error::shape("flatten", format!("{} has two batch axes", self.shape(x)))),
        };
        self.reshape(x, &[d])
    }

    /// `[B, a, b, ..]` seen as `[B, a*b*..]`.
    pub fn flatten(&self, x: NodeId) -> NodeId {
        let s = self.shape(x);
        if s.rank() == 0 {
            return self.fail(Error::shape("flatten", "needs at least one axis, got a scalar"));
        }
        let rest = Shape(s.0[1..].to_vec()).symbolic_numel();
        if rest.1 != 0 {
            return self.fail(Error::shape("flatten", format!("{s} has the batch past the first axis")));
        }
        self.reshape(x, &[s.0[0], Fixed(rest.0)])
    }

    /// The sum of every element, a scalar.
    pub fn sum_all(&self, x: NodeId) -> NodeId {
        let flat = self.flatten_all(x);
        self.sum(flat, 0, false)
    }

    /// The mean of every element, a scalar.
    pub fn mean_all(&self, x: NodeId) -> NodeId {
        let flat = self.flatten_all(x);
        self.mean(flat, 0, false)
    }
}
