//! The image and sequence layers of a `Sequential` model (Conv2d, pooling, LayerNorm): their
//! output shapes, parameters (PyTorch `state_dict` names and layouts) and graph. Kept apart from
//! `layers.rs` so the model's shared match statements each take one arm for all of them.

use kiln_graph::{Conv2dOpts, Graph, NodeId};

use crate::checkpoint::Dtype;
use crate::layers::{Init, Layer};
use crate::model::ParamSpec;
use crate::{Error, Result};

/// `Conv2d(filters, kernel)`: a square-kernel 2-D convolution over `[C, H, W]` inputs, stride 1,
/// no padding (set them with [`Layer::conv`]), He-uniform weights `[filters, C/groups, k, k]`.
#[allow(non_snake_case)]
pub fn Conv2d(filters: usize, kernel: usize) -> Layer {
    Layer::Conv2d {
        filters,
        kernel,
        stride: 1,
        padding: 0,
        groups: 1,
        kernel_init: Init::HeUniform,
        bias_init: Init::Zeros,
    }
}

/// `MaxPool2d(kernel)` with stride = kernel, no padding (PyTorch's defaults).
#[allow(non_snake_case)]
pub fn MaxPool2d(kernel: usize) -> Layer {
    Layer::MaxPool2d { kernel, stride: kernel, padding: 0 }
}

/// `AvgPool2d(kernel)` with stride = kernel, no padding.
#[allow(non_snake_case)]
pub fn AvgPool2d(kernel: usize) -> Layer {
    Layer::AvgPool2d { kernel, stride: kernel, padding: 0 }
}

/// `[C, H, W]` -> `[C]`: the mean of each channel (`nn.AdaptiveAvgPool2d(1)` + flatten).
#[allow(non_snake_case)]
pub fn GlobalAvgPool2d() -> Layer {
    Layer::GlobalAvgPool2d
}

/// `LayerNorm` over the last axis (eps 1e-5), weight 1 and bias 0 at the start.
#[allow(non_snake_case)]
pub fn LayerNorm() -> Layer {
    Layer::LayerNorm { eps: 1e-5 }
}

/// `BatchNorm()`: PyTorch's `BatchNorm1d(C)` after a `[C]` layer, `BatchNorm2d(C)` after a
/// `[C, H, W]` one (eps 1e-5, momentum 0.1); weight 1, bias 0, running mean 0, running var 1.
///
/// The running statistics and `num_batches_tracked` are updated on the device, in place, by each
/// training step itself (no read-back), with PyTorch's rule and the unbiased variance of that
/// step's batch (a short last batch uses its own `n / (n - 1)`).
#[allow(non_snake_case)]
pub fn BatchNorm() -> Layer {
    Layer::BatchNorm { eps: 1e-5, momentum: 0.1 }
}

/// `Embedding(vocab, dim)`: PyTorch's `nn.Embedding`, weight `[vocab, dim]` drawn from N(0, 1);
/// the first layer of a model whose input is `[T]` token ids in `0..vocab`.
#[allow(non_snake_case)]
pub fn Embedding(vocab: usize, dim: usize) -> Layer {
    Layer::Embedding { vocab, dim }
}

impl Layer {
    /// Sets a `Conv2d`'s stride, padding and groups (other layers are unchanged).
    pub fn conv(mut self, stride: usize, padding: usize, groups: usize) -> Self {
        if let Layer::Conv2d { stride: s, padding: p, groups: g, .. } = &mut self {
            (*s, *p, *g) = (stride, padding, groups);
        }
        self
    }

    /// The output shape (without the batch) for input `shape`, for the layers of this file;
    /// `None` for the others.
    pub(crate) fn arch_output_shape(&self, i: usize, shape: &[usize]) -> Option<Result<Vec<usize>>> {
        if !self.is_arch() {
            return None;
        }
        let chw = |name: &str| {
            if shape.len() == 3 {
                Ok((shape[0], shape[1], shape[2]))
            } else {
                Err(Error::Model(format!(
                    "layer {i} ({name}) takes [batch, C, H, W], got [batch, {shape:?}]"
                )))
            }
        };
        let out = |n: usize, k: usize, s: usize, p: usize, name: &str| {
            let span = k;
            if k == 0 || s == 0 || n + 2 * p < span {
                return Err(Error::Model(format!(
                    "layer {i} ({name}): window {k} (stride {s}, padding {p}) does not fit size {n}"
                )));
            }
            Ok((n + 2 * p - span) / s + 1)
        };
        Some((|| match *self {
            Layer::Conv2d { filters, kernel, stride, padding, groups, .. } => {
                let (c, h, w) = chw("Conv2d")?;
                if filters == 0 || groups == 0 || c % groups != 0 || filters % groups != 0 {
                    return Err(Error::Model(format!(
                        "layer {i} (Conv2d): {c} -> {filters} channels in {groups} groups"
                    )));
                }
                Ok(vec![
                    filters,
                    out(h, kernel, stride, padding, "Conv2d")?,
                    out(w, kernel, stride, padding, "Conv2d")?,
                ])
            }
            Layer::MaxPool2d { kernel, stride, padding } | Layer::AvgPool2d { kernel, stride, padding } => {
                let (c, h, w) = chw("Pool2d")?;
                if 2 * padding > kernel {
                    return Err(Error::Model(format!(
                        "layer {i} (Pool2d): padding {padding} > kernel {kernel} / 2"
                    )));
                }
                Ok(vec![
                    c,
                    out(h, kernel, stride, padding, "Pool2d")?,
                    out(w, kernel, stride, padding, "Pool2d")?,
                ])
            }
            Layer::GlobalAvgPool2d => Ok(vec![chw("GlobalAvgPool2d")?.0]),
            Layer::LayerNorm { .. } => Ok(shape.to_vec()),
            Layer::BatchNorm { eps, momentum } => {
                if shape.len() != 1 && shape.len() != 3 {
                    return Err(Error::Model(format!(
                        "layer {i} (BatchNorm) takes [batch, C] or [batch, C, H, W], got [batch, {shape:?}]"
                    )));
                }
                if eps.is_nan() || eps <= 0.0 || !(0.0..=1.0).contains(&momentum) {
                    return Err(Error::Model(format!(
                        "layer {i} (BatchNorm): eps {eps} must be > 0 and momentum {momentum} in [0, 1]"
                    )));
                }
                Ok(shape.to_vec())
            }
            Layer::Embedding { vocab, dim } => {
                if i != 0 || shape.len() != 1 {
                    return Err(Error::Model(format!(
                        "layer {i} (Embedding) must be the first layer, over [batch, T] token ids \
                         (got [batch, {shape:?}])"
                    )));
                }
                if vocab == 0 || dim == 0 {
                    return Err(Error::Model(format!("layer {i} (Embedding): vocab {vocab}, dim {dim}")));
                }
                Ok(vec![shape[0], dim])
            }
            _ => unreachable!("is_arch checked above"),
        })())
    }

    fn is_arch(&self) -> bool {
        matches!(
            self,
            Layer::Conv2d { .. }
                | Layer::MaxPool2d { .. }
                | Layer::AvgPool2d { .. }
                | Layer::GlobalAvgPool2d
                | Layer::LayerNorm { .. }
                | Layer::BatchNorm { .. }
                | Layer::Embedding { .. }
        )
    }

    /// Parameters of layer `index` given its input shape, in `state_dict` order.
    pub(crate) fn arch_param_specs(&self, index: usize, input: &[usize]) -> Vec<ParamSpec> {
        let spec = |suffix: &str, shape: Vec<usize>, fan_in, fan_out, init| ParamSpec {
            name: format!("{index}.{suffix}"),
            shape,
            fan_in,
            fan_out,
            init,
            buffer: false,
            file_dtype: Dtype::F32,
        };
        match *self {
            Layer::Conv2d { filters, kernel, groups, kernel_init, bias_init, .. } => {
                let cg = input[0] / groups.max(1);
                let (fan_in, fan_out) = (cg * kernel * kernel, filters * kernel * kernel / groups.max(1));
                vec![
                    spec("weight", vec![filters, cg, kernel, kernel], fan_in, fan_out, kernel_init),
                    spec("bias", vec![filters], fan_in, fan_out, bias_init),
                ]
            }
            Layer::LayerNorm { .. } => {
                let d = *input.last().unwrap_or(&1);
                vec![
                    spec("weight", vec![d], d, d, Init::Constant(1.0)),
                    spec("bias", vec![d], d, d, Init::Zeros),
                ]
            }
            Layer::BatchNorm { .. } => {
                let c = input[0];
                let buffer = |s: ParamSpec| ParamSpec { buffer: true, ..s };
                vec![
                    spec("weight", vec![c], c, c, Init::Constant(1.0)),
                    spec("bias", vec![c], c, c, Init::Zeros),
                    buffer(spec("running_mean", vec![c], c, c, Init::Zeros)),
                    buffer(spec("running_var", vec![c], c, c, Init::Constant(1.0))),
                    // an f32 on the device (exact to 2^24 steps), int64 in files as in PyTorch
                    ParamSpec {
                        file_dtype: Dtype::I64,
                        ..buffer(spec("num_batches_tracked", vec![], 1, 1, Init::Zeros))
                    },
                ]
            }
            Layer::Embedding { vocab, dim } => {
                // He-normal with fan_in 2 is N(0, 1), PyTorch's nn.Embedding init
                vec![spec("weight", vec![vocab, dim], 2, dim, Init::HeNormal)]
            }
            _ => vec![],
        }
    }

    /// The layer's graph from `h`, taking its parameters from the front of `params`; returns the
    /// output and how many parameters it used.
    pub(crate) fn arch_apply(&self, g: &Graph, h: NodeId, params: &[NodeId]) -> (NodeId, usize) {
        match *self {
            Layer::Conv2d { stride, padding, groups, .. } => {
                let o = Conv2dOpts { stride: [stride; 2], padding: [padding; 2], dilation: [1, 1], groups };
                (g.conv2d(h, params[0], Some(params[1]), o), 2)
            }
            Layer::MaxPool2d { kernel, stride, padding } => (g.max_pool2d(h, kernel, stride, padding), 0),
            Layer::AvgPool2d { kernel, stride, padding } => (g.avg_pool2d(h, kernel, stride, padding), 0),
            Layer::GlobalAvgPool2d => (g.global_avg_pool2d(h), 0),
            Layer::LayerNorm { eps } => (g.layer_norm(h, params[0], params[1], eps), 2),
            _ => (h, 0),
        }
    }

    /// The PyTorch module for `summary`, and its parameter count.
    pub(crate) fn arch_summary(&self, input: &[usize]) -> (String, usize) {
        let n: usize = self
            .arch_param_specs(0, input)
            .iter()
            .filter(|s| !s.buffer)
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        let name = match *self {
            Layer::Conv2d { filters, kernel, stride, padding, groups, .. } => format!(
                "Conv2d({}, {filters}, {kernel}, s={stride}, p={padding}{})",
                input.first().unwrap_or(&0),
                if groups > 1 { format!(", g={groups}") } else { String::new() }
            ),
            Layer::MaxPool2d { kernel, stride, .. } => format!("MaxPool2d({kernel}, {stride})"),
            Layer::AvgPool2d { kernel, stride, .. } => format!("AvgPool2d({kernel}, {stride})"),
            Layer::GlobalAvgPool2d => "AdaptiveAvgPool2d(1)".into(),
            Layer::LayerNorm { .. } => format!("LayerNorm({})", input.last().unwrap_or(&0)),
            Layer::BatchNorm { .. } => {
                format!("BatchNorm{}d({})", if input.len() == 3 { 2 } else { 1 }, input.first().unwrap_or(&0))
            }
            Layer::Embedding { vocab, dim } => format!("Embedding({vocab}, {dim})"),
            _ => String::new(),
        };
        (name, n)
    }
}
