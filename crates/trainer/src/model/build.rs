//! The model as a graph for the trainable core: one chain of layers for training (with dropout
//! masks fed each step) and one for inference, sharing the parameters; the loss on both.

use kiln_graph::{Graph, NodeId};

use super::Sequential;
use crate::checkpoint::Checkpoint;
use crate::data::Dataset;
use crate::layers::{BuildCx, Mode, TrainState};
use crate::losses::{Loss, TargetKind};
use crate::stream::Prep;
use crate::trainable::{Compile, Heads, Param, Trainable};
use crate::{Error, Result};

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

impl Trainable for Sequential {
    fn build(&self, g: &Graph, config: &Compile) -> Result<Heads> {
        let out_width = self.output_width()?;
        let loss = config.loss;
        let x = match self.token_vocab() {
            Some(_) => g.input_u32("x", &self.input_shape),
            None => g.input("x", &self.input_shape),
        };
        let target = match loss.target_kind() {
            TargetKind::Labels => g.input_u32("y", &[]),
            TargetKind::Values | TargetKind::OneHot => g.input("y", &[out_width]),
        };
        if loss.target_kind() == TargetKind::Labels
            && self.output_shapes()?.last().is_some_and(|s| s.len() != 1)
        {
            return Err(Error::Model(format!("{} needs a [batch, classes] output", loss.name())));
        }
        let weights = self.host_weights()?;
        let specs = self.param_list()?;
        let params: Vec<NodeId> =
            specs.iter().zip(weights).map(|(s, w)| g.param_init(&s.name, &s.shape, w)).collect();

        let fused = loss.fuses(self.last_activation());
        let mut train = TrainState::default();
        let (out_train, pre_train) = chain(g, self, x, &params, Mode::Train, &mut train)?;
        let (out_eval, pre_eval) = chain(g, self, x, &params, Mode::Eval, &mut TrainState::default())?;
        let logits = |out, pre| if fused { pre } else { out };
        let loss_train = loss.build(g, out_train, logits(out_train, pre_train), target);
        let loss_eval = loss.build(g, out_eval, logits(out_eval, pre_eval), target);
        Ok(Heads {
            x,
            tokens: self.token_vocab().is_some(),
            target,
            out_train,
            out_eval,
            loss_train,
            loss_eval,
            train,
            out_width,
            params: params.into_iter().zip(specs).collect(),
        })
    }

    fn prep(&self, data: &dyn Dataset, loss: Loss) -> Result<Prep> {
        Prep::new(data, loss, self.output_width()?)
    }

    fn check_features(&self, data: &dyn Dataset) -> Result<()> {
        if data.feature_width() != self.input_shape.iter().product::<usize>() {
            return Err(Error::Model(format!(
                "the data has {} features per row but the model takes {:?}",
                data.feature_width(),
                self.input_shape
            )));
        }
        Ok(())
    }

    fn token_vocab(&self) -> Option<usize> {
        Sequential::token_vocab(self)
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn target_scale(&self) -> f64 {
        self.data.target_standardizer.as_ref().and_then(|s| s.std.first()).map_or(1.0, |&s| s as f64)
    }

    fn host_params(&self) -> Result<Vec<(Param, Vec<f32>)>> {
        Ok(self.param_list()?.into_iter().zip(self.host_weights()?).collect())
    }

    fn write_metadata(&self, ck: &mut Checkpoint) -> Result<()> {
        Sequential::write_metadata(self, ck)
    }
}
