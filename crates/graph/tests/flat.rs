//! Flat parameter memory (`flat.rs`): one optimizer launch over every parameter trains the same
//! bits as one launch per parameter, on the CPU backend and on the GPU adapter, with AdamW's
//! decay groups, SGD with momentum, gradient clipping and dynamic loss scaling (overflowing
//! steps skipped included); and the graphs whose gradients cannot live in views keep one update
//! per parameter.

mod common;

use common::Rng;
use kiln_device::cpu::CpuBackend;
use kiln_device::Backend;
use kiln_graph::{
    FlatLayout, GradScaler, Graph, HostData, NodeId, Optimizer, ScalerState, Session, LOSS_SCALE,
    LOSS_SCALE_TRACKER,
};

/// Opens a backend (`None`: no GPU adapter, said loudly).
type Open = fn() -> Option<Box<dyn Backend>>;

fn backends() -> Vec<Open> {
    vec![|| Some(Box::new(CpuBackend::new())), || kiln_device::testing::gpu_or_skip("flat parameter memory")]
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    AdamwGroups,
    SgdClipped,
    ScaledAdam,
}

struct Net {
    x: NodeId,
    y: NodeId,
    loss: NodeId,
    params: Vec<NodeId>,
}

/// Linear (bias) -> LayerNorm (weight, bias) -> GELU -> Linear (no bias), softmax
/// cross-entropy; odd sizes.
fn net(v: Variant) -> (Graph, Net) {
    let g = Graph::new();
    let mut rng = Rng::new(7);
    let x = g.input("x", &[13]);
    let y = g.input_u32("y", &[]);
    let mut init = |name: &str, shape: &[usize], scale: f32, shift: f32| {
        let n = shape.iter().product();
        g.param_init(name, shape, rng.vec(n).iter().map(|v| v * scale + shift).collect())
    };
    let (w1, b1) = (init("0.weight", &[21, 13], 0.3, 0.0), init("0.bias", &[21], 0.3, 0.0));
    let (lw, lb) = (init("1.weight", &[21], 0.1, 1.0), init("1.bias", &[21], 0.1, 0.0));
    let w2 = init("2.weight", &[7, 21], 0.2, 0.0);
    let params = vec![w1, b1, lw, lb, w2];
    if let Variant::ScaledAdam = v {
        // 2^127 times a loss scaled by 1e6: the first steps overflow and are skipped, then the
        // scale backs off (by 2^-12 a time) until the gradients are finite
        let backoff_factor = 2f32.powi(-12);
        let config = GradScaler {
            init_scale: 2f32.powi(127),
            growth_interval: 2,
            backoff_factor,
            ..GradScaler::default()
        };
        g.grad_scaler(config).unwrap();
    }
    let h = g.layer_norm(g.linear(x, w1, Some(b1)), lw, lb, 1e-5);
    let mut loss = g.softmax_cross_entropy(g.linear(g.gelu(h), w2, None), y);
    if let Variant::ScaledAdam = v {
        loss = g.scale(loss, 1e6);
    }
    let mut grads = g.gradients(loss, &params).unwrap();
    match v {
        Variant::AdamwGroups => {
            let opt = Optimizer::AdamW { lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.3 };
            g.optimize_with(&params, &grads, opt, &[true, false, false, false, true]).unwrap();
        }
        Variant::SgdClipped => {
            grads = g.clip_grad_norm(&grads, 0.5).0;
            let opt = Optimizer::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 1e-2, nesterov: true };
            g.optimize(&params, &grads, opt).unwrap();
        }
        Variant::ScaledAdam => {
            grads = g.unscale_gradients(&grads).unwrap();
            g.optimize(&params, &grads, Optimizer::adam(0.02)).unwrap();
        }
    }
    (g, Net { x, y, loss, params })
}

/// Losses, parameters and optimizer state after `steps` steps.
fn train(s: &mut Session, n: &Net, steps: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut rng = Rng::new(3);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (xs, ys) = (rng.vec(9 * 13), rng.below(9, 7));
        let out = s.train_sync(&[(n.x, HostData::F32(&xs)), (n.y, HostData::U32(&ys))], &[n.loss]).unwrap();
        losses.push(out[0][0].to_bits());
    }
    let mut tensors = Vec::new();
    for name in s.param_names().into_iter().chain(s.state_names()) {
        let v = if s.param_names().contains(&name) { s.get_param(&name) } else { s.get_state(&name) };
        tensors.push(v.unwrap().iter().map(|x| x.to_bits()).collect());
    }
    (losses, tensors)
}

#[test]
fn one_update_over_flat_memory_trains_the_same_bits_as_one_per_parameter() {
    for v in [Variant::AdamwGroups, Variant::SgdClipped, Variant::ScaledAdam] {
        for open in backends() {
            let (Some(a), Some(b)) = (open(), open()) else { continue };
            let ((ga, na), (gb, nb)) = (net(v), net(v));
            let name = a.info().name.clone();
            let mut flat = Session::new(ga, a).unwrap();
            let mut per = Session::new_per_parameter(gb, b).unwrap();
            let layout = flat.flat_layout().expect("the gradients can live in views").clone();
            assert_eq!(layout.chunks.len(), 1);
            assert!(per.flat_layout().is_none());
            let launches = |s: &mut Session| s.plan(9, true, &[na.loss]).unwrap().launches();
            assert_eq!(launches(&mut flat) + na.params.len() - 1, launches(&mut per), "{v:?}");
            let (fa, fb) = (train(&mut flat, &na, 6), train(&mut per, &nb, 6));
            assert_eq!(fa.0, fb.0, "{v:?} on {name}: losses");
            assert_eq!(fa.1, fb.1, "{v:?} on {name}: parameters and state");
            if let Variant::ScaledAdam = v {
                let (scale, tracker) =
                    (flat.get_state(LOSS_SCALE).unwrap(), flat.get_state(LOSS_SCALE_TRACKER).unwrap());
                let state = ScalerState::from_words(&scale, &tracker);
                assert!(state.skipped > 0 && state.applied > 0, "{state:?}");
            }
            // the decayed parameters first: the AdamW groups' layout
            if let Variant::AdamwGroups = v {
                let order: Vec<NodeId> = layout.chunks[0].members.iter().map(|m| m.param).collect();
                let p = &na.params;
                assert_eq!(order, [p[0], p[4], p[1], p[2], p[3]]);
            }
        }
    }
}

/// A gradient that is a graph leaf (a buffer from outside, as data parallelism's reduced
/// gradients) cannot be a view: one update per parameter.
#[test]
fn gradients_that_are_leaves_keep_one_update_per_parameter() {
    let g = Graph::new();
    let w = g.param("w", &[5]);
    let fed = g.constant(&[5], vec![0.5, -1.0, 2.0, 0.25, 3.0]);
    g.optimize(&[w], &[fed], Optimizer::adam(1e-3)).unwrap();
    assert!(FlatLayout::of(&g, u64::MAX).is_none());
    let s = Session::new(g, Box::new(CpuBackend::new())).unwrap();
    assert!(s.flat_layout().is_none());
}
