//! Reverse-mode autodiff as a graph-to-graph transform. Every backward rule is one match arm in
//! [`vjp`]; broadcasting is undone once, in [`Graph::sum_to`], not in each rule.

use kiln_device::{BinaryOp, DType, Patches, Prim, ReduceOp, Saved, UnaryOp};

use crate::error::{Error, Result};
use crate::graph::{Graph, NodeId, Op};
use crate::recompute::Recompute;
use crate::shape::{Batch, Fixed, Shape};

/// What an op's backward reads besides the incoming gradient: its inputs, its output, or neither.
/// The planner frees a forward buffer after its last reader, so rules that read less free more.
pub fn saved(op: &Op) -> Saved {
    let Op::Prim(p) = op else {
        return match op {
            Op::Reshape => Saved::Neither,
            _ => Saved::Input,
        };
    };
    match p {
        Prim::Unary { op, .. } => op.saved(),
        Prim::Binary(BinaryOp::Add | BinaryOp::Sub) => Saved::Neither,
        Prim::Im2col(_) | Prim::Col2im(_) | Prim::Permute { .. } | Prim::Window { .. } => Saved::Neither,
        Prim::Softmax { .. } | Prim::SoftmaxUpto { .. } => Saved::Output,
        Prim::Reduce { op: ReduceOp::Sum | ReduceOp::Mean, .. } | Prim::Cast { .. } => Saved::Neither,
        // max reads its output too (to find where the maximum was); every other op its inputs.
        _ => Saved::Input,
    }
}

impl Graph {
    /// `d loss / d p` for each parameter `p`, as new nodes of this graph. A non-scalar loss is
    /// summed. A parameter the loss does not depend on is an error, as is an op on the path from a
    /// parameter to the loss that has no backward rule. Segments marked with
    /// [`Graph::checkpoint`] are recomputed right before their backward (see its docs).
    pub fn gradients(&self, loss: NodeId, params: &[NodeId]) -> Result<Vec<NodeId>> {
        self.check()?;
        self.refuse_running_targets(params, "gradients")?;
        let n = loss.index() + 1;
        // Nodes that depend on a parameter, and nodes the loss depends on; gradients flow through both.
        let mut from_param = vec![false; n];
        for &p in params {
            if p.index() < n {
                from_param[p.index()] = true;
            }
        }
        let mut to_loss = vec![false; n];
        to_loss[loss.index()] = true;
        {
            let nodes = self.nodes();
            for i in 0..n {
                from_param[i] |= nodes[i].inputs.iter().any(|x| from_param[x.index()]);
            }
            for i in (0..n).rev() {
                if to_loss[i] {
                    nodes[i].inputs.iter().for_each(|x| to_loss[x.index()] = true);
                }
            }
        }
        let active = |id: NodeId| id.index() < n && from_param[id.index()] && to_loss[id.index()];

        let mut recompute = Recompute::new(self, n)?;
        let mut recast = std::collections::HashMap::new();
        let mut restored = std::collections::HashMap::new();
        let mut grads: Vec<Option<NodeId>> = vec![None; n];
        grads[loss.index()] = Some(self.backward_seed(loss));
        for i in (0..n).rev() {
            let (Some(gy), true) = (grads[i], active(NodeId(i as u32))) else { continue };
            let node = self.node(NodeId(i as u32));
            // A gradient has its tensor's type: a half operand of a matmul (f32 product) gets
            // its gradient cast to half, as in PyTorch, once its contributions (f32, from the
            // matmuls that read it) are summed.
            let gy = self.cast(gy, node.dtype);
            let wanted: Vec<bool> = node.inputs.iter().map(|&x| active(x)).collect();
            if !wanted.iter().any(|&w| w) {
                continue;
            }
            let b = self.recast_weights(recompute.backward_node(self, i), n, &mut recast);
            let (b, out) = self.saved_in_half(b, &mut restored);
            let contribs = vjp(self, b, out, gy, &wanted)?;
            for ((&x, c), w) in node.inputs.iter().zip(contribs).zip(wanted) {
                let Some(c) = c.filter(|_| w) else { continue };
                // summed in f32 for a half tensor (cast to its type above, when it is reached)
                let dtype = if self.dtype(x).is_half() { DType::F32 } else { self.dtype(x) };
                let c = self.cast(self.sum_to(c, &self.shape(x)), dtype);
                grads[x.index()] = Some(match grads[x.index()] {
                    None => c,
                    Some(prev) => self.add(prev, c),
                });
            }
        }
        self.check()?;
        params
            .iter()
            .map(|&p| {
                grads.get(p.index()).copied().flatten().ok_or_else(|| {
                    let name = self.name_of(p).unwrap_or_else(|| format!("node {}", p.index()));
                    Error::no_grad("gradients", format!("parameter '{name}' does not reach the loss"))
                })
            })
            .collect()
    }

    /// Sums a gradient down to the shape of the tensor it belongs to: the adjoint of broadcasting.
    pub fn sum_to(&self, grad: NodeId, target: &Shape) -> NodeId {
        let mut g = grad;
        let mut shape = self.shape(g);
        // Leading axes the target lacks are summed in one reduction: `[B, T, dim]` is seen as
        // `[B*T, dim]` (a bias's gradient is one launch, not one per axis).
        let extra = shape.rank().saturating_sub(target.rank());
        if extra > 1 {
            let lead = match Shape(shape.0[..extra].to_vec()).symbolic_numel() {
                (c, 0) => Some(Fixed(c)),
                (c, 1) => Some(Batch(c)),
                _ => None, // the batch twice: fold the axes one at a time below
            };
            if let Some(lead) = lead {
                let mut dims = vec![lead];
                dims.extend_from_slice(&shape.0[extra..]);
                g = self.sum(self.reshape(g, &dims), 0, false);
                shape = self.shape(g);
            }
        }
        while shape.rank() > target.rank() {
            g = self.sum(g, 0, false);
            shape = self.shape(g);
        }
        for axis in 0..target.rank() {
            if target.0[axis] == Fixed(1) && shape.0[axis] != Fixed(1) {
                g = self.sum(g, axis, true);
            }
        }
        g
    }
}

/// The vector-Jacobian product of node `y` with incoming gradient `gy`: one contribution per input
/// (`None` for inputs that take none), possibly still broadcast. `wanted` marks the inputs whose
/// gradient is needed, so rules build only those.
/// The backward rule of node `y` for its incoming gradient `gy`: a contribution for each wanted
/// input. `out` is the value the rule reads for `y`'s output (`y` itself, or its copy kept in
/// half precision, see `Graph::saved_in_half`); `y`'s inputs are read from its node.
fn vjp(g: &Graph, y: NodeId, out: NodeId, gy: NodeId, wanted: &[bool]) -> Result<Vec<Option<NodeId>>> {
    let node = g.node(y);
    let x = &node.inputs;
    let w = |i: usize| wanted[i];
    let one = |a: NodeId| vec![Some(a)];
    let prim = match &node.op {
        Op::Prim(p) => p,
        // d/dx reshape(x) = reshape(g) back
        Op::Reshape => return Ok(one(g.reshape(gy, &g.shape(x[0]).0))),
        op @ (Op::Update { .. }
        | Op::RunningUpdate { .. }
        | Op::CacheWrite
        | Op::Accumulate
        | Op::ScaleUpdate { .. }) => {
            return Err(Error::no_grad(op.name(), "an in-place update has no backward rule"))
        }
        op => return Err(Error::no_grad(op.name(), "a leaf has no inputs")),
    };
    Ok(match prim {
        // d/dA (A B) = G B^T, d/dB = A^T G; with transposed operands the same, transposed back.
        Prim::Matmul { trans_a, trans_b } => {
            let (a, b) = (x[0], x[1]);
            let da = w(0).then(|| match (trans_a, trans_b) {
                (false, false) => g.matmul_t(gy, b, false, true),
                (false, true) => g.matmul_t(gy, b, false, false),
                (true, false) => g.matmul_t(b, gy, false, true),
                (true, true) => g.matmul_t(b, gy, true, true),
            });
            // A shared B under a batched, untransposed A (a Linear over [B, T, k]): the batch
            // entries' rows stack, so dB is one matmul over all B*T rows instead of B matmuls
            // and a sum over the batch.
            let rows = |t: NodeId| {
                let s = g.shape(t);
                match Shape(s.0[..2].to_vec()).symbolic_numel() {
                    (c, 0) => Some(g.reshape(t, &[Fixed(c), s.0[2]])),
                    (c, 1) => Some(g.reshape(t, &[Batch(c), s.0[2]])),
                    _ => None,
                }
            };
            if w(1) && g.shape(a).rank() == 3 && g.shape(b).rank() == 2 && !trans_a {
                if let (Some(a2), Some(gy2)) = (rows(a), rows(gy)) {
                    let db = match trans_b {
                        false => g.matmul_t(a2, gy2, true, false),
                        true => g.matmul_t(gy2, a2, true, false),
                    };
                    return Ok(vec![da, Some(db)]);
                }
            }
            let db = w(1).then(|| match (trans_a, trans_b) {
                (false, false) => g.matmul_t(a, gy, true, false),
                (false, true) => g.matmul_t(gy, a, true, false),
                (true, false) => g.matmul_t(a, gy, false, false),
                (true, true) => g.matmul_t(gy, a, true, true),
            });
            vec![da, db]
        }
        // d/dx cast(x) = 1: the gradient, cast back to x's type
        Prim::Cast { from, .. } => one(g.cast(gy, *from)),
        // d/dx f(x) = f'(saved) * g, where saved is x or y as the op says; d/dx -x = -1.
        Prim::Unary { op, alpha } => one(match op.saved() {
            Saved::Neither if *op == UnaryOp::Neg => g.neg(gy),
            Saved::Neither => return Err(Error::no_grad(op.name(), "no backward rule")),
            Saved::Input => g.unary_grad(*op, *alpha, x[0], gy),
            Saved::Output => g.unary_grad(*op, *alpha, out, gy),
        }),
        Prim::Binary(op) => {
            let (a, b) = (x[0], x[1]);
            match op {
                // d/da (a + b) = 1, d/db = 1
                BinaryOp::Add => vec![Some(gy), Some(gy)],
                // d/da (a - b) = 1, d/db = -1
                BinaryOp::Sub => vec![Some(gy), w(1).then(|| g.neg(gy))],
                // d/da (a b) = b, d/db = a
                BinaryOp::Mul => vec![w(0).then(|| g.mul(gy, b)), w(1).then(|| g.mul(gy, a))],
                // d/da (a / b) = 1/b, d/db = -a / b^2
                BinaryOp::Div => {
                    let da = g.div(gy, b);
                    vec![Some(da), w(1).then(|| g.neg(g.div(g.mul(da, a), b)))]
                }
                // d/da max(a, b) = [a >= b], d/db = [a < b] (ties go to a)
                BinaryOp::Max => vec![
                    w(0).then(|| g.mul(gy, g.binary(BinaryOp::Ge, a, b))),
                    w(1).then(|| g.mul(gy, g.binary(BinaryOp::Lt, a, b))),
                ],
                // d/da min(a, b) = [a <= b], d/db = [a > b] (ties go to a)
                BinaryOp::Min => vec![
                    w(0).then(|| g.mul(gy, g.binary(BinaryOp::Le, a, b))),
                    w(1).then(|| g.mul(gy, g.binary(BinaryOp::Gt, a, b))),
                ],
                // d/dx [a < b] = 0 almost everywhere: comparisons are piecewise constant.
                BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                    vec![None, None]
                }
            }
        }
        Prim::Reduce { op, axis, keep } => {
            let xs = g.shape(x[0]);
            let gk = if *keep { gy } else { g.reshape(gy, &xs.with_one(*axis).0) };
            let len = xs.0[*axis];
            match op {
                // d/dx sum(x) = 1, broadcast back along the axis
                ReduceOp::Sum => one(g.mul(gk, g.fill(xs, 1.0))),
                // d/dx mean(x) = 1/len
                ReduceOp::Mean => one(g.mul(gk, mean_fill(g, xs, len))),
                // d/dx max(x) = [x == max(x)]
                ReduceOp::Max => {
                    let yk = if *keep { out } else { g.reshape(out, &xs.with_one(*axis).0) };
                    one(g.mul(gk, g.binary(BinaryOp::Eq, x[0], yk)))
                }
                ReduceOp::Argmax => return Err(Error::no_grad("argmax", "integer output has no gradient")),
            }
        }
        // d/dx softmax(s x) = s y (g - sum(g y)); d/dx log_softmax(s x) = s (g - softmax(s x) sum(g)).
        // Causally masked entries have y = 0: no gradient, with no mask of its own.
        Prim::Softmax { log, scale, .. } => one(g.softmax_grad(*log, *scale, out, gy)),
        // d/dx xhat = rstd (g - mean(g) - xhat mean(g xhat)), statistics recomputed from x
        Prim::LayerNorm { eps } => one(g.layer_norm_grad(*eps, x[0], gy)),
        // d/dx (x rstd) = rstd (g - xhat mean(g xhat)), the statistic recomputed from x
        Prim::RmsNorm { eps } => one(g.rms_norm_grad(*eps, x[0], gy)),
        // y = xhat w (+ b): d/dx is the normalization's backward of g w (one kernel); d/dw the
        // row sums of g xhat (one kernel recomputes xhat from x and multiplies); d/db the row
        // sums of g
        &Prim::NormAffine { eps, rms } => {
            let dx = w(0).then(|| g.norm_affine_grad(eps, rms, x[0], gy, x[1]));
            let dw = w(1).then(|| g.sum_to(g.norm_dy_xhat(eps, rms, x[0], gy), &g.shape(x[1])));
            let mut grads = vec![dx, dw];
            if !rms {
                grads.push(w(2).then(|| g.sum_to(gy, &g.shape(x[2]))));
            }
            grads
        }
        // d/dgate silu(gate) up = g up silu'(gate), d/dup = g silu(gate)
        Prim::Swiglu => {
            vec![w(0).then(|| g.swiglu_grad_gate(x[0], x[1], gy)), w(1).then(|| g.swiglu_grad_up(x[0], gy))]
        }
        // d/dp mean((p - t)^2) = 2 (p - t) / n, d/dt = -d/dp
        Prim::MseLoss => {
            let dp = g.pair_loss_grad(Prim::MseGrad, x[0], x[1], gy);
            vec![Some(dp), w(1).then(|| g.neg(dp))]
        }
        // d/dz bce(z, t) = (sigmoid(z) - t) / n
        Prim::BceLogitsLoss => {
            if w(1) {
                return Err(Error::no_grad("bce_logits_loss", "no gradient with respect to the target"));
            }
            vec![Some(g.pair_loss_grad(Prim::BceLogitsGrad, x[0], x[1], gy)), None]
        }
        // d/dz ce(z, label) = (softmax(z) - onehot(label)) / rows; labels are integers
        Prim::SoftmaxCeLoss => vec![Some(g.softmax_ce_grad(x[0], x[1], gy)), None],
        // d/dtable gather(table, idx) = scatter_add(g, idx); indices are integers
        Prim::Gather { axis } => {
            let len = g.shape(x[0]).0[*axis];
            vec![Some(g.scatter_add(gy, x[1], *axis, len)), None]
        }
        // d/dsrc scatter_add(src, idx) = gather(g, idx)
        Prim::ScatterAdd { axis } => vec![Some(g.gather(gy, x[1], *axis)), None],
        // d/dx im2col(x) = col2im(g): each image element collects the columns that copied it
        Prim::Im2col(p) => one(g.col2im(gy, *p, &g.shape(x[0]))),
        // d/dx max_pool(x) routes each window's gradient to its winner
        Prim::MaxPool(p) => one(g.max_pool_grad(x[0], gy, *p)),
        Prim::MaxPoolGrad(_) => {
            return Err(Error::no_grad("max_pool_grad", "max pooling's backward has no backward rule"))
        }
        // d/dcols col2im(cols) = im2col(g), padded positions reading 0
        Prim::Col2im(p) => one(g.im2col(gy, Patches { pad_value: 0.0, ..*p })),
        // d/dx permute(x, p) = permute(g, p^-1)
        Prim::Permute { perm } => {
            let mut inv = vec![0; perm.len()];
            perm.iter().enumerate().for_each(|(d, &p)| inv[p] = d);
            one(g.permute(gy, &inv))
        }
        // d/dx window(x, offset) = window(g, -offset) back to x's length (slice <-> pad)
        Prim::Window { axis, offset } => {
            let len = g.shape(x[0]).0[*axis];
            one(g.window(gy, *axis, -offset, len))
        }
        // d/dscores softmax_upto = the softmax backward: masked outputs are 0, so is their gradient
        Prim::SoftmaxUpto { scale } => vec![Some(g.softmax_grad(false, *scale, out, gy)), None],
        // d/dx rope(x) = the inverse rotation of g; the tables are constants
        Prim::Rope { inverse } => {
            if w(1) || w(2) {
                return Err(Error::no_grad("rope", "the cos / sin tables are constants, with no gradient"));
            }
            vec![Some(g.rope_op(gy, x[1], x[2], !inverse)), None, None]
        }
        op @ (Prim::UnaryGrad { .. }
        | Prim::SoftmaxGrad { .. }
        | Prim::LayerNormGrad { .. }
        | Prim::RmsNormGrad { .. }
        | Prim::NormAffineGrad { .. }
        | Prim::NormDyXhat { .. }
        | Prim::SwigluGradGate
        | Prim::SwigluGradUp
        | Prim::MseGrad
        | Prim::BceLogitsGrad
        | Prim::SoftmaxCeGrad) => {
            return Err(Error::no_grad(op.name(), "no backward rule (second derivatives are not supported)"))
        }
    })
}

/// A tensor of `shape` holding `1 / len` (len may be a multiple of the batch).
fn mean_fill(g: &Graph, shape: Shape, len: crate::shape::Dim) -> NodeId {
    match len {
        Fixed(n) => g.fill(shape, 1.0 / n as f32),
        Batch(k) => g.push(Op::Fill { value: 1.0 / k as f32, per_batch: true }, &[], shape, DType::F32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule reads only what `saved` declares: the backward nodes of `y = op(x)` refer to `x`
    /// only when the op saves its input, and to `y` only when it saves its output (max reads both).
    #[test]
    fn backward_rules_read_what_they_declare() {
        type Build = fn(&Graph, NodeId, NodeId) -> NodeId;
        let cases: Vec<(&str, Build)> = vec![
            ("relu", |g, x, _| g.relu(x)),
            ("exp", |g, x, _| g.exp(x)),
            ("log", |g, x, _| g.log(x)),
            ("gelu", |g, x, _| g.gelu(x)),
            ("silu", |g, x, _| g.silu(x)),
            ("neg", |g, x, _| g.neg(x)),
            ("add", |g, x, w| g.add(x, w)),
            ("sub", |g, x, w| g.sub(x, w)),
            ("mul", |g, x, w| g.mul(x, w)),
            ("div", |g, x, w| g.div(x, w)),
            ("matmul", |g, x, w| g.matmul_t(x, w, false, true)),
            ("softmax", |g, x, _| g.softmax(x)),
            ("scaled_softmax", |g, x, _| g.scaled_softmax(x, 0.5, false)),
            ("layer_norm_no_affine", |g, x, _| g.layer_norm_no_affine(x, 1e-5)),
            ("rms_norm_no_affine", |g, x, _| g.rms_norm_no_affine(x, 1e-5)),
            ("swiglu", |g, x, w| g.swiglu(x, w)),
            ("sum", |g, x, _| g.sum(x, 1, false)),
            ("mean", |g, x, _| g.mean(x, 0, true)),
            ("reshape", |g, x, _| g.reshape(x, &[Fixed(12)])),
        ];
        for (name, build) in cases {
            let g = Graph::new();
            let x = g.param("x", &[3, 4]);
            let w = g.param("w", &[3, 4]);
            let y = build(&g, x, w);
            let loss = g.sum_all(y);
            let op = g.node(y).op;
            let before = g.len();
            g.gradients(loss, &[x]).unwrap();
            let nodes = g.nodes();
            let reads = |t: NodeId| nodes[before..].iter().any(|n| n.inputs.contains(&t));
            let (rx, ry) = (reads(x) || reads(w), reads(y));
            match saved(&op) {
                Saved::Neither => assert!(!rx && !ry, "{name} reads x: {rx}, y: {ry}"),
                Saved::Input => assert!(!ry, "{name} saves its input but reads its output"),
                Saved::Output => assert!(!rx, "{name} saves its output but reads its input"),
            }
        }
    }
}
