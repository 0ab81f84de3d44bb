//! The model as a graph: one chain of layers for training (with dropout masks fed each step) and
//! one for inference, sharing the parameters; the loss on both; gradients and optimizer updates.

use kiln_graph::{Graph, NodeId};

use super::{Compile, Sequential};
use crate::layers::{BuildCx, Mode, TrainState};
use crate::losses::TargetKind;
use crate::{Error, Result};

pub(crate) struct Built {
    graph: Option<Graph>,
    pub x: NodeId,
    pub target: NodeId,
    pub out_train: NodeId,
    pub out_eval: NodeId,
    pub loss_train: NodeId,
    pub loss_eval: NodeId,
    /// Dropout masks and BatchNorm layers of the training chain.
    pub train: TrainState,
    pub out_width: usize,
    /// The input is token ids (fed as u32 from `Batch::tokens`).
    pub tokens: bool,
}

impl Built {
    /// The graph, for the session that will own it (node ids stay valid).
    pub fn graph_take(&mut self) -> Graph {
        self.graph.take().expect("graph taken once")
    }
}

/// Runs the layers from `x` in `mode`; returns the output and the node before the final
/// activation.
fn chain(
    g: &Graph,
    model: &Sequential,
    x: NodeId,
    params: &[NodeId],
    mode: Mode,
    state: &mut TrainState,
) -> Result<(NodeId, NodeId)> {
    let shapes = model.output_shapes()?;
    let (mut h, mut pre) = (x, x);
    let (mut p, mut index) = (0, 0);
    let mut input = model.input_shape.as_slice();
    for (layer, shape) in model.layers.iter().zip(&shapes) {
        let imp = layer.imp();
        let used = imp.params(index, input).len();
        let mut cx = BuildCx {
            g,
            mode,
            index,
            input,
            output: shape,
            params: &params[p..p + used],
            state: &mut *state,
        };
        let out = imp.build(&mut cx, h);
        (h, pre) = (out.out, out.pre);
        p += used;
        index += imp.torch_modules();
        input = shape;
    }
    g.check()?;
    Ok((h, pre))
}

pub(crate) fn build(model: &Sequential, config: &Compile, weights: &[Vec<f32>]) -> Result<Built> {
    let g = Graph::new();
    let out_width = model.output_width()?;
    let loss = config.loss;
    let x = match model.token_vocab() {
        Some(_) => g.input_u32("x", &model.input_shape),
        None => g.input("x", &model.input_shape),
    };
    let target = match loss.target_kind() {
        TargetKind::Labels => g.input_u32("y", &[]),
        TargetKind::Values | TargetKind::OneHot => g.input("y", &[out_width]),
    };
    if loss.target_kind() == TargetKind::Labels && model.output_shapes()?.last().is_some_and(|s| s.len() != 1)
    {
        return Err(Error::Model(format!("{} needs a [batch, classes] output", loss.name())));
    }
    let specs = model.param_specs()?;
    let params: Vec<NodeId> =
        specs.iter().zip(weights).map(|(s, w)| g.param_init(&s.name, &s.shape, w.clone())).collect();

    let fused = loss.fuses(model.last_activation());
    let mut train = TrainState::default();
    let (out_train, pre_train) = chain(&g, model, x, &params, Mode::Train, &mut train)?;
    let (out_eval, pre_eval) = chain(&g, model, x, &params, Mode::Eval, &mut TrainState::default())?;
    let logits = |out, pre| if fused { pre } else { out };
    let loss_train = loss.build(&g, out_train, logits(out_train, pre_train), target);
    let loss_eval = loss.build(&g, out_eval, logits(out_eval, pre_eval), target);
    g.check()?;

    // buffers (BatchNorm running statistics) are parameters of the graph, so they persist and
    // save like one, but they get no gradient and no optimizer update
    let trainable: Vec<NodeId> =
        specs.iter().zip(&params).filter(|(s, _)| !s.buffer).map(|(_, &p)| p).collect();
    let mut grads = g.gradients(loss_train, &trainable)?;
    if let Some(max_norm) = config.clip_norm {
        grads = g.clip_grad_norm(&grads, max_norm).0;
    }
    g.optimize(&trainable, &grads, config.optimizer)?;
    Ok(Built {
        graph: Some(g),
        x,
        target,
        out_train,
        out_eval,
        loss_train,
        loss_eval,
        train,
        out_width,
        tokens: model.token_vocab().is_some(),
    })
}
