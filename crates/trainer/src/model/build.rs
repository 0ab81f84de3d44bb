//! The model as a graph: one chain of layers for training (with dropout masks fed each step) and
//! one for inference, sharing the parameters; the loss on both; gradients and optimizer updates.

use kiln_graph::{Graph, NodeId};

use super::{Compile, Sequential};
use crate::layers::{Activation, Layer};
use crate::losses::TargetKind;
use crate::{Error, Result};

/// A dropout layer's mask input: `[batch, width]` of 0 or `1 / (1 - rate)`, made on the host.
#[derive(Clone, Debug)]
pub(crate) struct Mask {
    pub node: NodeId,
    pub rate: f32,
    pub width: usize,
}

/// A BatchNorm layer of the training chain. Its running statistics and `num_batches_tracked` are
/// updated on the device by the training plan itself (`Graph::running_update`); the host only
/// checks that a batch has more than one value per channel, which the unbiased variance needs.
#[derive(Clone, Debug)]
pub(crate) struct BnLayer {
    /// `N.` of its state_dict names.
    pub prefix: String,
    /// Values per channel per example (H * W, or 1).
    pub per_row: usize,
}

pub(crate) struct Built {
    graph: Option<Graph>,
    pub x: NodeId,
    pub target: NodeId,
    pub out_train: NodeId,
    pub out_eval: NodeId,
    pub loss_train: NodeId,
    pub loss_eval: NodeId,
    pub masks: Vec<Mask>,
    pub bn: Vec<BnLayer>,
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

fn activate(g: &Graph, a: Activation, h: NodeId) -> NodeId {
    match a {
        Activation::Relu => g.relu(h),
        Activation::LeakyRelu(slope) => g.leaky_relu(h, slope),
        Activation::Sigmoid => g.sigmoid(h),
        Activation::Tanh => g.tanh(h),
        Activation::Gelu => g.gelu(h),
        Activation::Softmax => g.softmax(h),
    }
}

/// Runs the layers from `x`; returns the output and the node before the final activation.
fn chain(
    g: &Graph,
    model: &Sequential,
    x: NodeId,
    params: &[NodeId],
    mut masks: Option<&mut Vec<Mask>>,
    mut bn: Option<&mut Vec<BnLayer>>,
) -> Result<(NodeId, NodeId)> {
    let shapes = model.output_shapes()?;
    let (mut h, mut pre) = (x, x);
    let (mut p, mut index) = (0, 0);
    let mut input_shape = model.input_shape.clone();
    for (layer, shape) in model.layers.iter().zip(&shapes) {
        pre = h;
        match layer {
            Layer::Dense { activation, .. } => {
                h = g.linear(h, params[p], Some(params[p + 1]));
                p += 2;
                if let Some(a) = activation {
                    pre = h;
                    h = activate(g, *a, h);
                }
            }
            Layer::Activation(a) => h = activate(g, *a, h),
            Layer::Flatten => h = g.flatten(h),
            other @ (Layer::Conv2d { .. }
            | Layer::MaxPool2d { .. }
            | Layer::AvgPool2d { .. }
            | Layer::GlobalAvgPool2d
            | Layer::LayerNorm { .. }) => {
                let (out, used) = other.arch_apply(g, h, &params[p..]);
                h = out;
                p += used;
            }
            Layer::BatchNorm { eps, momentum } => {
                let (w, b, running_mean, running_var, count) =
                    (params[p], params[p + 1], params[p + 2], params[p + 3], params[p + 4]);
                h = match bn.as_deref_mut() {
                    Some(bn) => {
                        // PyTorch's rule, in place in every training step: running = (1 - m)
                        // running + m batch, with the unbiased batch variance
                        let (y, mean, var) = g.batch_norm_train(h, w, b, *eps);
                        let per_row: usize = input_shape[1..].iter().product();
                        g.running_update(running_mean, mean, *momentum, None);
                        g.running_update(running_var, var, *momentum, Some(per_row));
                        g.count_steps(count);
                        bn.push(BnLayer { prefix: format!("{index}."), per_row });
                        y
                    }
                    None => g.batch_norm_eval(h, w, b, running_mean, running_var, *eps),
                };
                p += 5; // weight, bias, running_mean, running_var, num_batches_tracked
            }
            Layer::Embedding { .. } => {
                h = g.gather(params[p], h, 0); // [B, T] ids -> [B, T, dim]
                p += 1;
            }
            Layer::Dropout { rate } => {
                if let Some(masks) = masks.as_deref_mut() {
                    if *rate > 0.0 {
                        let node = g.input(&format!("dropout.{index}"), shape);
                        masks.push(Mask { node, rate: *rate, width: shape.iter().product() });
                        h = g.mul(h, node);
                    }
                }
            }
        }
        index += layer.torch_modules();
        input_shape = shape.clone();
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
    let mut masks = Vec::new();
    let mut bn = Vec::new();
    let (out_train, pre_train) = chain(&g, model, x, &params, Some(&mut masks), Some(&mut bn))?;
    let (out_eval, pre_eval) = chain(&g, model, x, &params, None, None)?;
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
        masks,
        bn,
        out_width,
        tokens: model.token_vocab().is_some(),
    })
}
