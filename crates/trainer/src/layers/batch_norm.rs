//! `BatchNorm`: PyTorch's `BatchNorm1d(C)` over `[C]` or `BatchNorm2d(C)` over `[C, H, W]`, with
//! its running statistics as buffers (`running_mean`, `running_var`, `num_batches_tracked`)
//! updated on the device, in place, by each training step.

use kiln_graph::NodeId;
use serde::{Deserialize, Serialize};

use super::{BuildCx, Init, Layer, LayerImpl, LayerOut, Mode, ParamSpec};
use crate::checkpoint::Dtype;
use crate::{Error, Result};

/// Batch statistics in training (which also update the running mean and unbiased running
/// variance with `momentum`, as PyTorch does), the running statistics at evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f32,
    /// Weight of the new batch in the running statistics (PyTorch's convention, default 0.1).
    pub momentum: f32,
}

/// `BatchNorm()`: PyTorch's `BatchNorm1d(C)` after a `[C]` layer, `BatchNorm2d(C)` after a
/// `[C, H, W]` one (eps 1e-5, momentum 0.1); weight 1, bias 0, running mean 0, running var 1.
///
/// The running statistics and `num_batches_tracked` are updated on the device, in place, by each
/// training step itself (no read-back), with PyTorch's rule and the unbiased variance of that
/// step's batch (a short last batch uses its own `n / (n - 1)`).
#[allow(non_snake_case)]
pub fn BatchNorm() -> Layer {
    Layer::BatchNorm(BatchNorm { eps: 1e-5, momentum: 0.1 })
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

/// Before a training step of `rows` examples: each BatchNorm layer's unbiased batch variance
/// (which the step blends into the running variance on the device) needs more than one value per
/// channel. The plan would refuse to compile too; this names the layer and says what to do.
pub(crate) fn check_batch_norm_batch(layers: &[BnLayer], rows: usize) -> Result<()> {
    for bn in layers {
        let n = rows * bn.per_row;
        if n < 2 {
            return Err(Error::Model(format!(
                "BatchNorm layer {}: a training batch needs more than 1 value per channel, got {n} \
                 (use a batch size above 1, or drop the last short batch)",
                bn.prefix.trim_end_matches('.')
            )));
        }
    }
    Ok(())
}

impl LayerImpl for BatchNorm {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        let BatchNorm { eps, momentum } = *self;
        if input.len() != 1 && input.len() != 3 {
            return Err(Error::Model(format!(
                "layer {i} (BatchNorm) takes [batch, C] or [batch, C, H, W], got [batch, {input:?}]"
            )));
        }
        if eps.is_nan() || eps <= 0.0 || !(0.0..=1.0).contains(&momentum) {
            return Err(Error::Model(format!(
                "layer {i} (BatchNorm): eps {eps} must be > 0 and momentum {momentum} in [0, 1]"
            )));
        }
        Ok(input.to_vec())
    }

    fn params(&self, index: usize, input: &[usize]) -> Vec<ParamSpec> {
        let c = input[0];
        let spec = |suffix: &str, init| ParamSpec::new(index, suffix, vec![c], c, c, init);
        vec![
            spec("weight", Init::Constant(1.0)),
            spec("bias", Init::Zeros),
            spec("running_mean", Init::Zeros).buffer(),
            spec("running_var", Init::Constant(1.0)).buffer(),
            // an f32 on the device (exact to 2^24 steps), int64 in files as in PyTorch
            ParamSpec {
                file_dtype: Dtype::I64,
                ..ParamSpec::new(index, "num_batches_tracked", vec![], 1, 1, Init::Zeros).buffer()
            },
        ]
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        let &[w, b, running_mean, running_var, count] = cx.params else {
            unreachable!("BatchNorm has 5 parameters")
        };
        let g = cx.g;
        let out = match cx.mode {
            Mode::Train => {
                // PyTorch's rule, in place in every training step: running = (1 - m) running +
                // m batch, with the unbiased batch variance
                let (y, mean, var) = g.batch_norm_train(h, w, b, self.eps);
                let per_row: usize = cx.input[1..].iter().product();
                g.running_update(running_mean, mean, self.momentum, None);
                g.running_update(running_var, var, self.momentum, Some(per_row));
                g.count_steps(count);
                cx.state.bn.push(BnLayer { prefix: format!("{}.", cx.index), per_row });
                y
            }
            Mode::Eval => g.batch_norm_eval(h, w, b, running_mean, running_var, self.eps),
        };
        LayerOut::plain(h, out)
    }

    fn summary_line(&self, input: &[usize]) -> String {
        format!("BatchNorm{}d({})", if input.len() == 3 { 2 } else { 1 }, input.first().unwrap_or(&0))
    }
}
