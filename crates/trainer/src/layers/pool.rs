//! `MaxPool2d` and `AvgPool2d` over `[C, H, W]`: square windows, PyTorch's output size rule.

use kiln_graph::NodeId;
use serde::{Deserialize, Serialize};

use super::{chw, window_out, BuildCx, Layer, LayerImpl, LayerOut};
use crate::{Error, Result};

/// `nn.MaxPool2d(kernel, stride, padding)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxPool2d {
    /// Side of the square window, in pixels.
    pub kernel: usize,
    /// Step between windows, in pixels (default: the kernel).
    pub stride: usize,
    /// Padding on each side of `H` and `W`, in pixels (default 0).
    pub padding: usize,
}

/// `nn.AvgPool2d(kernel, stride, padding)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AvgPool2d {
    /// Side of the square window, in pixels.
    pub kernel: usize,
    /// Step between windows, in pixels (default: the kernel).
    pub stride: usize,
    /// Padding on each side of `H` and `W`, in pixels (default 0).
    pub padding: usize,
}

/// `MaxPool2d(kernel)` with stride = kernel, no padding (PyTorch's defaults).
#[allow(non_snake_case)]
pub fn MaxPool2d(kernel: usize) -> Layer {
    Layer::MaxPool2d(MaxPool2d { kernel, stride: kernel, padding: 0 })
}

/// `AvgPool2d(kernel)` with stride = kernel, no padding.
#[allow(non_snake_case)]
pub fn AvgPool2d(kernel: usize) -> Layer {
    Layer::AvgPool2d(AvgPool2d { kernel, stride: kernel, padding: 0 })
}

/// The shape rule both pools share.
fn pool_shape(i: usize, input: &[usize], kernel: usize, stride: usize, padding: usize) -> Result<Vec<usize>> {
    let (c, h, w) = chw(i, "Pool2d", input)?;
    if 2 * padding > kernel {
        return Err(Error::Model(format!("layer {i} (Pool2d): padding {padding} > kernel {kernel} / 2")));
    }
    Ok(vec![
        c,
        window_out(i, h, kernel, stride, padding, "Pool2d")?,
        window_out(i, w, kernel, stride, padding, "Pool2d")?,
    ])
}

impl LayerImpl for MaxPool2d {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        pool_shape(i, input, self.kernel, self.stride, self.padding)
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, cx.g.max_pool2d(h, self.kernel, self.stride, self.padding))
    }

    fn summary_line(&self, _: &[usize]) -> String {
        format!("MaxPool2d({}, {})", self.kernel, self.stride)
    }
}

impl LayerImpl for AvgPool2d {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        pool_shape(i, input, self.kernel, self.stride, self.padding)
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, cx.g.avg_pool2d(h, self.kernel, self.stride, self.padding))
    }

    fn summary_line(&self, _: &[usize]) -> String {
        format!("AvgPool2d({}, {})", self.kernel, self.stride)
    }
}
