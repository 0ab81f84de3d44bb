//! `Dense`: PyTorch's `nn.Linear` (weight `[out, in]`), optionally followed by an activation
//! that takes the next `nn.Sequential` index.

use kiln_graph::NodeId;
use serde::{Deserialize, Serialize};

use super::{Activation, BuildCx, Init, Layer, LayerImpl, LayerOut, ParamSpec};
use crate::{Error, Result};

/// `y = x W^T + b` over `[batch, features]`, then `activation` if any.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Output features (the `out` of the `[out, in]` weight).
    pub units: usize,
    /// Applied after the affine map (`None`: linear).
    pub activation: Option<Activation>,
    /// Initialization of the weight `[units, in]` (default Glorot uniform).
    pub kernel_init: Init,
    /// Initialization of the bias `[units]` (default zeros).
    pub bias_init: Init,
}

/// `Dense(units, activation)`, Keras-style, with Glorot-uniform weights and zero biases.
#[allow(non_snake_case)]
pub fn Dense(units: usize, activation: impl Into<Option<Activation>>) -> Layer {
    Layer::Dense(Dense {
        units,
        activation: activation.into(),
        kernel_init: Init::GlorotUniform,
        bias_init: Init::Zeros,
    })
}

impl LayerImpl for Dense {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        if input.len() != 1 {
            let dims = input.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
            return Err(Error::Model(format!(
                "layer {i} (Dense) takes [batch, features] but gets [batch, {dims}]; add Flatten() first"
            )));
        }
        if self.units == 0 {
            return Err(Error::Model(format!("layer {i} (Dense) has 0 units")));
        }
        Ok(vec![self.units])
    }

    fn params(&self, index: usize, input: &[usize]) -> Vec<ParamSpec> {
        let (fan_in, units) = (input.iter().product(), self.units);
        vec![
            ParamSpec::new(index, "weight", vec![units, fan_in], fan_in, units, self.kernel_init),
            ParamSpec::new(index, "bias", vec![units], fan_in, units, self.bias_init),
        ]
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        let linear = cx.g.linear(h, cx.params[0], Some(cx.params[1]));
        match self.activation {
            Some(a) => LayerOut { out: a.apply(cx.g, linear), pre: linear },
            None => LayerOut::plain(h, linear),
        }
    }

    fn summary_line(&self, input: &[usize]) -> String {
        format!("Linear({}, {})", input.iter().product::<usize>(), self.units)
    }

    fn summary_rows(&self, input: &[usize]) -> Vec<(String, usize)> {
        let fan_in: usize = input.iter().product();
        let mut rows = vec![(self.summary_line(input), self.units * fan_in + self.units)];
        rows.extend(self.activation.map(|a| (a.torch_name().to_string(), 0)));
        rows
    }

    fn torch_modules(&self) -> usize {
        1 + self.activation.is_some() as usize
    }

    fn final_activation(&self) -> Option<Activation> {
        self.activation
    }
}
