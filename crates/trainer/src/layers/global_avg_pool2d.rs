//! `GlobalAvgPool2d`: `[C, H, W]` to `[C]`, the mean of each channel.

use kiln_graph::NodeId;

use super::{chw, BuildCx, Layer, LayerImpl, LayerOut};
use crate::Result;

/// The rules of [`Layer::GlobalAvgPool2d`] (it has no settings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalAvgPool2d {}

/// `[C, H, W]` -> `[C]`: the mean of each channel (`nn.AdaptiveAvgPool2d(1)` + flatten).
#[allow(non_snake_case)]
pub fn GlobalAvgPool2d() -> Layer {
    Layer::GlobalAvgPool2d
}

impl LayerImpl for GlobalAvgPool2d {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![chw(i, "GlobalAvgPool2d", input)?.0])
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, cx.g.global_avg_pool2d(h))
    }

    fn summary_line(&self, _: &[usize]) -> String {
        "AdaptiveAvgPool2d(1)".into()
    }
}
