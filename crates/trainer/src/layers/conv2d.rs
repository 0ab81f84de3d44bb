//! `Conv2d`: PyTorch's `nn.Conv2d` over `[C, H, W]` with a square kernel, weight
//! `[filters, C / groups, k, k]`.

use kiln_graph::{Conv2dOpts, NodeId};
use serde::{Deserialize, Serialize};

use super::{chw, window_out, BuildCx, Init, Layer, LayerImpl, LayerOut, ParamSpec};
use crate::{Error, Result};

/// `nn.Conv2d(C, filters, kernel, stride, padding, groups=groups)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    /// Output channels.
    pub filters: usize,
    /// Side of the square kernel, in pixels.
    pub kernel: usize,
    /// Step between windows, in pixels (default 1).
    pub stride: usize,
    /// Zero padding added on each side of `H` and `W`, in pixels (default 0).
    pub padding: usize,
    /// Channel groups: input channels and `filters` must both be divisible by it (default 1).
    pub groups: usize,
    /// Initialization of the weight `[filters, C / groups, k, k]` (default He uniform).
    pub kernel_init: Init,
    /// Initialization of the bias `[filters]` (default zeros).
    pub bias_init: Init,
}

/// `Conv2d(filters, kernel)`: a square-kernel 2-D convolution over `[C, H, W]` inputs, stride 1,
/// no padding (set them with [`Layer::conv`]), He-uniform weights `[filters, C/groups, k, k]`.
#[allow(non_snake_case)]
pub fn Conv2d(filters: usize, kernel: usize) -> Layer {
    Layer::Conv2d(Conv2d {
        filters,
        kernel,
        stride: 1,
        padding: 0,
        groups: 1,
        kernel_init: Init::HeUniform,
        bias_init: Init::Zeros,
    })
}

impl LayerImpl for Conv2d {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        let Conv2d { filters, kernel, stride, padding, groups, .. } = *self;
        let (c, h, w) = chw(i, "Conv2d", input)?;
        if filters == 0 || groups == 0 || c % groups != 0 || filters % groups != 0 {
            return Err(Error::Model(format!(
                "layer {i} (Conv2d): {c} -> {filters} channels in {groups} groups"
            )));
        }
        Ok(vec![
            filters,
            window_out(i, h, kernel, stride, padding, "Conv2d")?,
            window_out(i, w, kernel, stride, padding, "Conv2d")?,
        ])
    }

    fn params(&self, index: usize, input: &[usize]) -> Vec<ParamSpec> {
        let Conv2d { filters, kernel, groups, kernel_init, bias_init, .. } = *self;
        let cg = input[0] / groups.max(1);
        let (fan_in, fan_out) = (cg * kernel * kernel, filters * kernel * kernel / groups.max(1));
        vec![
            ParamSpec::new(index, "weight", vec![filters, cg, kernel, kernel], fan_in, fan_out, kernel_init),
            ParamSpec::new(index, "bias", vec![filters], fan_in, fan_out, bias_init),
        ]
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        let (stride, padding) = ([self.stride; 2], [self.padding; 2]);
        let o = Conv2dOpts { stride, padding, dilation: [1, 1], groups: self.groups };
        LayerOut::plain(h, cx.g.conv2d(h, cx.params[0], Some(cx.params[1]), o))
    }

    fn summary_line(&self, input: &[usize]) -> String {
        let Conv2d { filters, kernel, stride, padding, groups, .. } = *self;
        format!(
            "Conv2d({}, {filters}, {kernel}, s={stride}, p={padding}{})",
            input.first().unwrap_or(&0),
            if groups > 1 { format!(", g={groups}") } else { String::new() }
        )
    }
}
