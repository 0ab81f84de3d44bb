//! From a launch's kernel and buffer views to the kernel function that runs it.

use crate::kernel::{Kernel, ReduceOp};

use super::{elementwise, layer_norm, layout, loss, matmul, memory, optim, reduce, Par};

/// A written buffer, sliced to the length its slot needs.
pub(crate) enum Out<'a> {
    F(&'a mut [f32]),
    U(&'a mut [u32]),
}

/// A read buffer, sliced to the length its slot needs.
#[derive(Clone, Copy)]
pub(crate) enum In<'a> {
    F(&'a [f32]),
    U(&'a [u32]),
}

/// Runs one kernel. `outs` and `ins` are the kernel's Write and Read slots, each in slot order;
/// `compile` checked their count, dtype and length, so a mismatch here is a bug in this file.
pub(crate) fn run(k: &Kernel, outs: &mut [Out<'_>], ins: &[In<'_>], par: Par) {
    use In as I;
    use Out as O;
    match (*k, outs, ins) {
        (Kernel::Matmul(mm), [O::F(c)], [I::F(a), I::F(b)]) => matmul::matmul(&mm, c, a, b),
        (Kernel::Unary { op, alpha, .. }, [O::F(y)], [I::F(x)]) => elementwise::unary(par, op, alpha, y, x),
        (Kernel::UnaryGrad { op, alpha, .. }, [O::F(dx)], [I::F(s), I::F(dy)]) => {
            elementwise::unary_grad(par, op, alpha, dx, s, dy)
        }
        (Kernel::BiasAct { op, cols, alpha, .. }, [O::F(y)], [I::F(x), I::F(b)]) => {
            elementwise::bias_act(par, op, alpha, cols, y, x, b)
        }
        (Kernel::Binary { op, bc }, [O::F(c)], [I::F(a), I::F(b)]) => {
            elementwise::binary(par, op, &bc, c, a, b)
        }
        (Kernel::Reduce { op: ReduceOp::Argmax, outer, len, inner }, [O::U(idx)], [I::F(x)]) => {
            reduce::argmax(outer, len, inner, idx, x)
        }
        (Kernel::Reduce { op, outer, len, inner }, [O::F(y)], [I::F(x)]) => {
            reduce::reduce(par, op, outer, len, inner, y, x)
        }
        (Kernel::Softmax { cols, log, scale, causal, .. }, [O::F(y)], [I::F(x)]) => {
            reduce::softmax(par, cols, log, scale, causal, y, x)
        }
        (Kernel::SoftmaxGrad { cols, log, scale, .. }, [O::F(dx)], [I::F(y), I::F(dy)]) => {
            reduce::softmax_grad(par, cols, log, scale, dx, y, dy)
        }
        (Kernel::LayerNorm { cols, eps, .. }, [O::F(y)], [I::F(x)]) => {
            layer_norm::layer_norm(par, cols, eps, y, x)
        }
        (Kernel::LayerNormGrad { cols, eps, .. }, [O::F(dx)], [I::F(x), I::F(dy)]) => {
            layer_norm::layer_norm_grad(par, cols, eps, dx, x, dy)
        }
        (Kernel::MseLoss { .. }, [O::F(l)], [I::F(p), I::F(t)]) => loss::mse(l, p, t),
        (Kernel::MseGrad { .. }, [O::F(dp)], [I::F(p), I::F(t), I::F(dl)]) => loss::mse_grad(dp, p, t, dl[0]),
        (Kernel::BceLogitsLoss { .. }, [O::F(l)], [I::F(z), I::F(t)]) => loss::bce_logits(l, z, t),
        (Kernel::BceLogitsGrad { .. }, [O::F(dz)], [I::F(z), I::F(t), I::F(dl)]) => {
            loss::bce_logits_grad(dz, z, t, dl[0])
        }
        (Kernel::SoftmaxCeLoss { cols, .. }, [O::F(l)], [I::F(z), I::U(lab)]) => {
            loss::softmax_ce(cols, l, z, lab)
        }
        (Kernel::SoftmaxCeGrad { cols, .. }, [O::F(dz)], [I::F(z), I::U(lab), I::F(dl)]) => {
            loss::softmax_ce_grad(cols, dz, z, lab, dl[0])
        }
        (Kernel::Sgd { .. }, [O::F(p), O::F(v)], [I::F(g), I::F(h)]) => optim::sgd(p, v, g, h),
        (Kernel::Adam { decoupled, .. }, [O::F(p), O::F(m), O::F(v)], [I::F(g), I::F(h)]) => {
            optim::adam(decoupled, p, m, v, g, h)
        }
        (Kernel::Rmsprop { .. }, [O::F(p), O::F(sq)], [I::F(g), I::F(h)]) => optim::rmsprop(p, sq, g, h),
        (Kernel::Gather { outer, axis_len, inner, n_idx }, [O::F(out)], [I::F(t), I::U(idx)]) => {
            memory::gather(outer, axis_len, inner, n_idx, out, t, idx)
        }
        (Kernel::ScatterAdd { outer, axis_len, inner, n_idx }, [O::F(out)], [I::F(src), I::U(idx)]) => {
            memory::scatter_add(outer, axis_len, inner, n_idx, out, src, idx)
        }
        (Kernel::Fill { value, .. }, [O::F(out)], []) => out.fill(value),
        (Kernel::Copy { .. }, [O::F(out)], [I::F(src)]) => out.copy_from_slice(src),
        (Kernel::Im2col { win, pad_value }, [O::F(cols)], [I::F(x)]) => {
            layout::im2col(par, &win, pad_value, cols, x)
        }
        (Kernel::Col2im { win }, [O::F(x)], [I::F(cols)]) => layout::col2im(par, &win, x, cols),
        (Kernel::Permute(pm), [O::F(out)], [I::F(x)]) => layout::permute(&pm, out, x),
        (Kernel::Window { outer, src_len, out_len, inner, offset }, [O::F(out)], [I::F(x)]) => {
            layout::window(outer, src_len, out_len, inner, offset, out, x)
        }
        (Kernel::RunningUpdate { keep, gain, scale, .. }, [O::F(running)], [I::F(value)]) => {
            optim::running_update(keep, gain, scale, running, value)
        }
        (k, _, _) => unreachable!("{}: buffers do not match its slots", k.name()),
    }
}
