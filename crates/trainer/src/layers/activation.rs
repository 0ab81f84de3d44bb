//! Elementwise activations: a layer of their own (`Layer::Activation`) or the tail of a `Dense`.

use kiln_graph::{Graph, NodeId};
use serde::{Deserialize, Serialize};

use super::{BuildCx, LayerImpl, LayerOut};
use crate::{Error, Result};

/// Elementwise activations (each is a module of its own in PyTorch's `nn.Sequential`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// Negative slope (PyTorch's default is 0.01).
    LeakyRelu(f32),
    /// `1 / (1 + e^-x)`, in `(0, 1)`.
    Sigmoid,
    /// Hyperbolic tangent, in `(-1, 1)`.
    Tanh,
    /// Gaussian error linear unit (`nn.GELU`).
    Gelu,
    /// `x * sigmoid(x)` (PyTorch's `nn.SiLU`, the swish of Llama-class MLPs).
    Silu,
    /// Softmax over the last axis.
    Softmax,
}

impl Activation {
    /// The PyTorch module that computes it (for `summary` and the interop notes).
    pub fn torch_name(&self) -> &'static str {
        match self {
            Activation::Relu => "ReLU",
            Activation::LeakyRelu(_) => "LeakyReLU",
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::Gelu => "GELU",
            Activation::Silu => "SiLU",
            Activation::Softmax => "Softmax",
        }
    }

    /// Parses `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`, `silu`, `softmax` (CLI and config files).
    pub fn parse(s: &str) -> Option<Activation> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "leaky_relu" | "leakyrelu" => Activation::LeakyRelu(0.01),
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "gelu" => Activation::Gelu,
            "silu" | "swish" => Activation::Silu,
            "softmax" => Activation::Softmax,
            _ => return None,
        })
    }

    /// The activation applied to `h`.
    pub(crate) fn apply(self, g: &Graph, h: NodeId) -> NodeId {
        match self {
            Activation::Relu => g.relu(h),
            Activation::LeakyRelu(slope) => g.leaky_relu(h, slope),
            Activation::Sigmoid => g.sigmoid(h),
            Activation::Tanh => g.tanh(h),
            Activation::Gelu => g.gelu(h),
            Activation::Silu => g.silu(h),
            Activation::Softmax => g.softmax(h),
        }
    }
}

impl LayerImpl for Activation {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        if let Activation::LeakyRelu(a) = *self {
            if a < 0.0 {
                return Err(Error::Model(format!("layer {i} (LeakyReLU): negative slope {a} must be >= 0")));
            }
        }
        Ok(input.to_vec())
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, self.apply(cx.g, h))
    }

    fn summary_line(&self, _: &[usize]) -> String {
        self.torch_name().to_string()
    }

    fn final_activation(&self) -> Option<Activation> {
        Some(*self)
    }
}
