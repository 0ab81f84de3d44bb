//! `Dropout`: in training, a mask input per layer (`dropout.N`, drawn on the host for each step
//! from the model's seed and the global step, so a resumed run draws the same masks); at
//! evaluation, the identity.

use kiln_graph::NodeId;
use serde::{Deserialize, Serialize};

use super::{unit, BuildCx, Layer, LayerImpl, LayerOut, Mode};
use crate::data::SplitMix64;
use crate::{Error, Result};

/// Zeroes each element with probability `rate` during training and scales the rest by
/// `1 / (1 - rate)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub rate: f32,
}

/// `Dropout(rate)`, Keras-style.
#[allow(non_snake_case)]
pub fn Dropout(rate: f32) -> Layer {
    Layer::Dropout(Dropout { rate })
}

/// A dropout layer's mask input: `[batch, width]` of 0 or `1 / (1 - rate)`, made on the host.
#[derive(Clone, Debug)]
pub(crate) struct Mask {
    pub node: NodeId,
    pub rate: f32,
    pub width: usize,
}

/// The masks of one batch of `rows` at global step `step`, one per `(rate, width)` layer.
pub(crate) fn draw_masks(layers: &[(f32, usize)], seed: u64, step: u64, rows: usize) -> Vec<Vec<f32>> {
    layers
        .iter()
        .enumerate()
        .map(|(l, &(rate, width))| {
            let mut rng =
                SplitMix64::new(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((l as u64) << 56));
            let keep = 1.0 / (1.0 - rate);
            (0..rows * width).map(|_| if unit(&mut rng) < rate as f64 { 0.0 } else { keep }).collect()
        })
        .collect()
}

impl LayerImpl for Dropout {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        let rate = self.rate;
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::Model(format!("layer {i} (Dropout): rate {rate} is not in [0, 1)")));
        }
        Ok(input.to_vec())
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        if cx.mode == Mode::Eval || self.rate <= 0.0 {
            return LayerOut::plain(h, h);
        }
        let node = cx.g.input(&format!("dropout.{}", cx.index), cx.output);
        cx.state.masks.push(Mask { node, rate: self.rate, width: cx.output.iter().product() });
        LayerOut::plain(h, cx.g.mul(h, node))
    }

    fn summary_line(&self, _: &[usize]) -> String {
        format!("Dropout({})", self.rate)
    }
}
