//! Helpers for tests (the `testing` cargo feature; the workspace's dev-dependencies enable it).
//! Not part of the API a program builds on.

use crate::kernels::*;
use crate::{open, Backend, BackendChoice, DType};

/// Whether `KILN_REQUIRE_GPU=1` asks GPU tests to fail instead of skipping.
pub fn gpu_required() -> bool {
    std::env::var("KILN_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// Opens the GPU backend (software adapters included), or says loudly that `what` was not tested
/// on the GPU and returns `None`. Under `KILN_REQUIRE_GPU=1` (CI) a missing adapter panics instead.
pub fn gpu_or_skip(what: &str) -> Option<Box<dyn Backend>> {
    match open(BackendChoice::Gpu) {
        Ok(b) => Some(b),
        Err(e) if gpu_required() => panic!("KILN_REQUIRE_GPU=1 but no GPU adapter could be opened: {e}"),
        Err(e) => {
            eprintln!(
                "\n*** SKIPPED: no GPU adapter ({e}).\n*** {what} was NOT tested on the GPU; set \
                 KILN_REQUIRE_GPU=1 to fail instead.\n"
            );
            None
        }
    }
}

/// One small instance of every entry point, for tests that must cover them all.
pub fn one_of_each() -> Vec<Kernel> {
    let mut v = vec![Kernel::Matmul(Matmul::new(3, 5, 7))];
    v.push(Kernel::Matmul(Matmul::new(3, 5, 7).with_tile(MatmulTile::Blocked)));
    for tile in MatmulTile::ALL {
        v.push(Kernel::Matmul(Matmul::new(3, 5, 7).with_tile(tile).with_dtypes(DType::BF16, DType::F16)));
    }
    for (from, to) in Cast::PAIRS {
        v.push(Kernel::Cast(Cast::new(from, to, 9)));
    }
    for op in UnaryOp::ALL {
        v.push(Kernel::Unary(Unary::Forward { op, len: 9, alpha: 0.1 }));
        v.push(Kernel::Unary(Unary::Backward { op, len: 9, alpha: 0.1 }));
    }
    v.push(Kernel::Unary(Unary::BiasAct { op: UnaryOp::Relu, rows: 3, cols: 5, alpha: 0.0 }));
    for op in BinaryOp::ALL {
        v.push(Kernel::Binary(Binary { op, bc: Broadcast::same(9) }));
    }
    for op in ReduceOp::ALL {
        v.push(Kernel::Reduce(Reduce { op, outer: 2, len: 5, inner: 3 }));
    }
    for log in [false, true] {
        v.push(Kernel::softmax(3, 5, log));
        v.push(Kernel::softmax_grad(3, 5, log));
    }
    v.push(Kernel::Softmax(Softmax::Forward { rows: 10, cols: 5, log: false, scale: 0.5, causal: true }));
    v.push(Kernel::Softmax(Softmax::Upto { rows: 12, cols: 5, scale: 0.5, queries: 3 }));
    v.push(Kernel::LayerNorm(LayerNorm::Forward { rows: 3, cols: 5, eps: 1e-5 }));
    v.push(Kernel::LayerNorm(LayerNorm::Backward { rows: 3, cols: 5, eps: 1e-5 }));
    v.push(Kernel::LayerNorm(LayerNorm::RmsForward { rows: 3, cols: 5, eps: 1e-5 }));
    v.push(Kernel::LayerNorm(LayerNorm::RmsBackward { rows: 3, cols: 5, eps: 1e-5 }));
    for rms in [false, true] {
        v.push(Kernel::LayerNorm(LayerNorm::AffineForward { rows: 3, cols: 5, eps: 1e-5, rms }));
        v.push(Kernel::LayerNorm(LayerNorm::AffineBackward { rows: 3, cols: 5, eps: 1e-5, rms }));
        v.push(Kernel::LayerNorm(LayerNorm::DyXhat { rows: 3, cols: 5, eps: 1e-5, rms }));
    }
    for glu in [Glu::Swiglu { len: 9 }, Glu::SwigluGradGate { len: 9 }, Glu::SwigluGradUp { len: 9 }] {
        v.push(Kernel::Glu(glu));
    }
    for loss in [
        Loss::MseLoss { n: 9 },
        Loss::MseGrad { n: 9 },
        Loss::BceLogitsLoss { n: 9 },
        Loss::BceLogitsGrad { n: 9 },
        Loss::SoftmaxCeLoss { rows: 3, cols: 5 },
        Loss::SoftmaxCeGrad { rows: 3, cols: 5 },
    ] {
        v.push(Kernel::Loss(loss));
    }
    for opt in [
        Optim::Sgd { len: 9, decayed: 9 },
        Optim::Adam { len: 9, decoupled: false, decayed: 9 },
        Optim::Adam { len: 9, decoupled: true, decayed: 9 },
        Optim::Rmsprop { len: 9, decayed: 9 },
    ] {
        v.push(Kernel::Optim(opt));
    }
    for mem in [
        Memory::Gather { outer: 2, axis_len: 5, inner: 3, n_idx: 4 },
        Memory::ScatterAdd { outer: 2, axis_len: 5, inner: 3, n_idx: 4 },
        Memory::Fill { len: 9, value: 1.5 },
        Memory::Copy { len: 9 },
        Memory::WriteRows { outer: 2, axis_len: 5, inner: 3, n_idx: 2 },
    ] {
        v.push(Kernel::Memory(mem));
    }
    let win = Window2d::square(2, 3, 5, 4, 3, 1, 1, 1);
    v.push(Kernel::Conv(Conv::Im2col { win, pad_value: 0.0 }));
    v.push(Kernel::Conv(Conv::Col2im { win }));
    v.push(Kernel::Layout(Layout::Permute(Permute::new("permute", &[2, 3, 4], &[1, 0, 2]).unwrap())));
    v.push(Kernel::Layout(Layout::SlicePad { outer: 2, src_len: 5, out_len: 3, inner: 4, offset: 1 }));
    for inverse in [false, true] {
        v.push(Kernel::Rope(Rope { rows: 6, heads: 2, half: 3, table_rows: 3, inverse }));
    }
    v.push(Kernel::Running(RunningUpdate { len: 9, keep: 0.9, gain: 0.1, scale: 1.25 }));
    v.push(Kernel::Pooling(Pooling::MaxPool { win }));
    v.push(Kernel::Pooling(Pooling::MaxPoolGrad { win }));
    v.push(Kernel::LossScale(LossScale::Unscale { len: 9 }));
    for adam in [false, true] {
        v.push(Kernel::LossScale(LossScale::Update { growth: 2.0, backoff: 0.5, interval: 3, adam }));
    }
    v
}
