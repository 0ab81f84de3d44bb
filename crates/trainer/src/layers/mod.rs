//! Layers of a [`Sequential`](crate::Sequential) model, one file each: its shape rule, its
//! parameters (PyTorch `state_dict` names, layouts and initialization), how it adds itself to the
//! graph in training and evaluation mode, its `summary` line, and its running state (BatchNorm) or
//! masks (Dropout). [`Layer`] is what a model file stores; each of its arms hands the work to the
//! layer's own type through `LayerImpl` (crate-internal).

mod activation;
mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod embedding;
mod flatten;
mod global_avg_pool2d;
mod init;
mod layer_norm;
mod pool;

use kiln_graph::{Graph, NodeId};
use serde::{Deserialize, Serialize};

pub use activation::Activation;
pub use batch_norm::BatchNorm;
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use global_avg_pool2d::GlobalAvgPool2d;
pub use init::Init;
pub use layer_norm::LayerNorm;
pub use pool::{AvgPool2d, MaxPool2d};

pub(crate) use batch_norm::{check_batch_norm_batch, BnLayer};
pub(crate) use dropout::{draw_masks, Mask};
pub(crate) use init::{gaussian, unit};

use crate::checkpoint::Dtype;
use crate::Result;

/// One layer of a [`Sequential`](crate::Sequential) model (what a model file's architecture
/// lists). Build them with the Keras-style constructors: [`Dense()`], [`Conv2d()`], ...
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Layer {
    /// `y = x W^T + b` (PyTorch `nn.Linear`), optionally followed by an activation.
    Dense(Dense),
    /// An activation on its own (its own `nn.Sequential` index, no parameters).
    Activation(Activation),
    /// Zeroes each element with probability `rate` during training and scales the rest by
    /// `1 / (1 - rate)`; the identity at evaluation.
    Dropout(Dropout),
    /// `[batch, a, b, ...]` to `[batch, a * b * ...]`.
    Flatten,
    /// `nn.Conv2d(C, filters, kernel, stride, padding, groups=groups)` over `[C, H, W]`.
    Conv2d(Conv2d),
    /// `nn.MaxPool2d`: the maximum of each square window of `[C, H, W]`.
    MaxPool2d(MaxPool2d),
    /// `nn.AvgPool2d`: the mean of each square window of `[C, H, W]`.
    AvgPool2d(AvgPool2d),
    /// `[C, H, W]` to `[C]`: the mean over each channel's `H x W` (`nn.AdaptiveAvgPool2d(1)` +
    /// flatten).
    GlobalAvgPool2d,
    /// `nn.LayerNorm` over the last axis.
    LayerNorm(LayerNorm),
    /// `nn.BatchNorm1d` over `[C]` or `nn.BatchNorm2d` over `[C, H, W]` (per channel).
    BatchNorm(BatchNorm),
    /// `nn.Embedding(vocab, dim)`, only as the first layer: the model's input becomes `[T]` token
    /// ids.
    Embedding(Embedding),
}

/// A parameter: its state-dict name, shape and where its initial values come from.
#[derive(Clone, Debug)]
pub(crate) struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub fan_in: usize,
    pub fan_out: usize,
    pub init: Init,
    /// A buffer (BatchNorm running statistics): saved and loaded with the parameters, but not
    /// trained by the optimizer.
    pub buffer: bool,
    /// How a saved file stores it (PyTorch's dtype: I64 for `num_batches_tracked`, else F32).
    pub file_dtype: Dtype,
}

impl ParamSpec {
    /// A trained F32 parameter named `{index}.{suffix}`.
    pub fn new(
        index: usize,
        suffix: &str,
        shape: Vec<usize>,
        fan_in: usize,
        fan_out: usize,
        init: Init,
    ) -> Self {
        ParamSpec {
            name: format!("{index}.{suffix}"),
            shape,
            fan_in,
            fan_out,
            init,
            buffer: false,
            file_dtype: Dtype::F32,
        }
    }

    /// The same, as a buffer (saved, not trained).
    pub fn buffer(self) -> Self {
        ParamSpec { buffer: true, ..self }
    }
}

/// Which chain a layer is added to: training (batch statistics, dropout masks) or evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Train,
    Eval,
}

/// What the training chain collects from its layers: the dropout masks fed each step and the
/// BatchNorm layers whose running statistics the step updates.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrainState {
    pub masks: Vec<Mask>,
    pub bn: Vec<BnLayer>,
}

/// Where a layer adds itself to the graph.
pub(crate) struct BuildCx<'a> {
    pub g: &'a Graph,
    pub mode: Mode,
    /// The layer's first `nn.Sequential` index (the `N` of its `N.weight`).
    pub index: usize,
    /// Input and output shapes without the batch.
    pub input: &'a [usize],
    pub output: &'a [usize],
    /// The layer's own parameters, in the order of [`LayerImpl::params`].
    pub params: &'a [NodeId],
    pub state: &'a mut TrainState,
}

/// A layer's output node, and the node before its final activation (what a fused loss reads).
pub(crate) struct LayerOut {
    pub out: NodeId,
    pub pre: NodeId,
}

impl LayerOut {
    /// A layer that ends in no activation (`pre` is its input).
    pub fn plain(input: NodeId, out: NodeId) -> Self {
        LayerOut { out, pre: input }
    }
}

/// What every layer type provides. `index` is the layer's position in the model (for errors);
/// shapes are without the batch.
pub(crate) trait LayerImpl {
    /// The output shape for `input`, or an error naming layer `i`.
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>>;

    /// The parameters and buffers, in `state_dict` order, named from `index`.
    fn params(&self, _index: usize, _input: &[usize]) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// Adds the layer to the graph from `h`.
    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut;

    /// The PyTorch module `summary` shows.
    fn summary_line(&self, input: &[usize]) -> String;

    /// `summary` rows: (module, parameter count); one unless the layer takes two indices.
    fn summary_rows(&self, input: &[usize]) -> Vec<(String, usize)> {
        let n = self
            .params(0, input)
            .iter()
            .filter(|s| !s.buffer)
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        vec![(self.summary_line(input), n)]
    }

    /// How many `nn.Sequential` indices the layer takes.
    fn torch_modules(&self) -> usize {
        1
    }

    /// The activation the layer ends in, if any (a loss may fuse with it).
    fn final_activation(&self) -> Option<Activation> {
        None
    }

    /// The vocabulary when the layer takes token ids.
    fn token_vocab(&self) -> Option<usize> {
        None
    }
}

impl Layer {
    /// The layer's own type.
    pub(crate) fn imp(&self) -> &dyn LayerImpl {
        match self {
            Layer::Dense(l) => l,
            Layer::Activation(l) => l,
            Layer::Dropout(l) => l,
            Layer::Flatten => &Flatten {},
            Layer::Conv2d(l) => l,
            Layer::MaxPool2d(l) => l,
            Layer::AvgPool2d(l) => l,
            Layer::GlobalAvgPool2d => &GlobalAvgPool2d {},
            Layer::LayerNorm(l) => l,
            Layer::BatchNorm(l) => l,
            Layer::Embedding(l) => l,
        }
    }

    /// Sets the weight initializer of a `Dense` layer (other layers are unchanged).
    pub fn kernel_init(mut self, init: Init) -> Self {
        if let Layer::Dense(d) = &mut self {
            d.kernel_init = init;
        }
        self
    }

    /// Sets the bias initializer of a `Dense` layer (other layers are unchanged).
    pub fn bias_init(mut self, init: Init) -> Self {
        if let Layer::Dense(d) = &mut self {
            d.bias_init = init;
        }
        self
    }

    /// Sets a `Conv2d`'s stride, padding and groups (other layers are unchanged).
    pub fn conv(mut self, stride: usize, padding: usize, groups: usize) -> Self {
        if let Layer::Conv2d(c) = &mut self {
            (c.stride, c.padding, c.groups) = (stride, padding, groups);
        }
        self
    }
}

/// `[C, H, W]` of a layer that takes images, or an error naming layer `i`.
pub(crate) fn chw(i: usize, name: &str, shape: &[usize]) -> Result<(usize, usize, usize)> {
    if shape.len() == 3 {
        Ok((shape[0], shape[1], shape[2]))
    } else {
        Err(crate::Error::Model(format!("layer {i} ({name}) takes [batch, C, H, W], got [batch, {shape:?}]")))
    }
}

/// The output size of a window of `k` at stride `s` with padding `p` over `n`.
pub(crate) fn window_out(i: usize, n: usize, k: usize, s: usize, p: usize, name: &str) -> Result<usize> {
    if k == 0 || s == 0 || n + 2 * p < k {
        return Err(crate::Error::Model(format!(
            "layer {i} ({name}): window {k} (stride {s}, padding {p}) does not fit size {n}"
        )));
    }
    Ok((n + 2 * p - k) / s + 1)
}
