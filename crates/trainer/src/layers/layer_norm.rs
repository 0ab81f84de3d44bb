//! `LayerNorm`: PyTorch's `nn.LayerNorm(d)` over the last axis, weight 1 and bias 0 at the start.

use kiln_graph::NodeId;
use serde::{Deserialize, Serialize};

use super::{BuildCx, Init, Layer, LayerImpl, LayerOut, ParamSpec};
use crate::Result;

/// `nn.LayerNorm` over the last axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f32,
}

/// `LayerNorm` over the last axis (eps 1e-5), weight 1 and bias 0 at the start.
#[allow(non_snake_case)]
pub fn LayerNorm() -> Layer {
    Layer::LayerNorm(LayerNorm { eps: 1e-5 })
}

impl LayerImpl for LayerNorm {
    fn output_shape(&self, _: usize, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn params(&self, index: usize, input: &[usize]) -> Vec<ParamSpec> {
        let d = *input.last().unwrap_or(&1);
        vec![
            ParamSpec::new(index, "weight", vec![d], d, d, Init::Constant(1.0)),
            ParamSpec::new(index, "bias", vec![d], d, d, Init::Zeros),
        ]
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, cx.g.layer_norm(h, cx.params[0], cx.params[1], self.eps))
    }

    fn summary_line(&self, input: &[usize]) -> String {
        format!("LayerNorm({})", input.last().unwrap_or(&0))
    }
}
