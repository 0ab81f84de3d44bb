//! `Flatten`: `[batch, a, b, ...]` to `[batch, a * b * ...]`.

use kiln_graph::NodeId;

use super::{BuildCx, Layer, LayerImpl, LayerOut};
use crate::Result;

/// The rules of [`Layer::Flatten`] (it has no settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flatten {}

/// `Flatten()`, Keras-style.
#[allow(non_snake_case)]
pub fn Flatten() -> Layer {
    Layer::Flatten
}

impl LayerImpl for Flatten {
    fn output_shape(&self, _: usize, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input.iter().product()])
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, cx.g.flatten(h))
    }

    fn summary_line(&self, _: &[usize]) -> String {
        "Flatten".to_string()
    }
}
