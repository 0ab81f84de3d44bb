//! Layers of a [`Sequential`](crate::Sequential) model and their initializers.

use serde::{Deserialize, Serialize};

use crate::data::SplitMix64;

/// Elementwise activations (each is a module of its own in PyTorch's `nn.Sequential`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    Relu,
    /// Negative slope (PyTorch's default is 0.01).
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    Gelu,
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
            Activation::Softmax => "Softmax",
        }
    }

    /// Parses `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`, `softmax` (CLI and config files).
    pub fn parse(s: &str) -> Option<Activation> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "leaky_relu" | "leakyrelu" => Activation::LeakyRelu(0.01),
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "gelu" => Activation::Gelu,
            "softmax" => Activation::Softmax,
            _ => return None,
        })
    }
}

/// How a weight tensor starts. All are seeded by the model's seed, so runs reproduce.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// U(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Keras' default for Dense kernels).
    GlorotUniform,
    /// N(0, s), s = sqrt(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// U(-l, l), l = sqrt(6 / fan_in).
    HeUniform,
    /// N(0, s), s = sqrt(2 / fan_in).
    HeNormal,
    Zeros,
    Constant(f32),
}

impl Init {
    /// Values for a `[fan_out, fan_in]` weight (or a `[fan_out]` bias with `fan_in` of its layer).
    pub fn sample(&self, len: usize, fan_in: usize, fan_out: usize, rng: &mut SplitMix64) -> Vec<f32> {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let uniform = |rng: &mut SplitMix64, limit: f64| {
            (0..len).map(|_| ((unit(rng) * 2.0 - 1.0) * limit) as f32).collect::<Vec<f32>>()
        };
        let normal =
            |rng: &mut SplitMix64, std: f64| (0..len).map(|_| (gaussian(rng) * std) as f32).collect();
        match *self {
            Init::GlorotUniform => uniform(rng, (6.0 / (fi + fo)).sqrt()),
            Init::GlorotNormal => normal(rng, (2.0 / (fi + fo)).sqrt()),
            Init::HeUniform => uniform(rng, (6.0 / fi).sqrt()),
            Init::HeNormal => normal(rng, (2.0 / fi).sqrt()),
            Init::Zeros => vec![0.0; len],
            Init::Constant(c) => vec![c; len],
        }
    }
}

/// Uniform in [0, 1) with 53 random bits.
pub(crate) fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Standard normal (Box-Muller).
pub(crate) fn gaussian(rng: &mut SplitMix64) -> f64 {
    let u1 = unit(rng).max(f64::MIN_POSITIVE);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One layer of a [`Sequential`](crate::Sequential) model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Layer {
    /// `y = x W^T + b` (PyTorch `nn.Linear`), optionally followed by an activation.
    Dense {
        units: usize,
        activation: Option<Activation>,
        kernel_init: Init,
        bias_init: Init,
    },
    Activation(Activation),
    /// Zeroes each element with probability `rate` during training and scales the rest by
    /// `1 / (1 - rate)`; the identity at evaluation.
    Dropout {
        rate: f32,
    },
    /// `[batch, a, b, ...]` to `[batch, a * b * ...]`.
    Flatten,
    /// `nn.Conv2d(C, filters, kernel, stride, padding, groups=groups)` over `[C, H, W]`.
    Conv2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        kernel_init: Init,
        bias_init: Init,
    },
    MaxPool2d {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    AvgPool2d {
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    GlobalAvgPool2d,
    /// `nn.LayerNorm` over the last axis.
    LayerNorm {
        eps: f32,
    },
    /// `nn.BatchNorm1d` over `[C]` or `nn.BatchNorm2d` over `[C, H, W]` (per channel): batch
    /// statistics in training (which also update the running mean and unbiased running variance
    /// with `momentum`, as PyTorch does), the running statistics at evaluation.
    BatchNorm {
        eps: f32,
        momentum: f32,
    },
    /// `nn.Embedding(vocab, dim)`, only as the first layer: the model's input becomes `[T]` token
    /// ids (u32 on the device; data sets hold them as integer-valued f32 features, checked and
    /// converted on the host), the output `[T, dim]`.
    Embedding {
        vocab: usize,
        dim: usize,
    },
}

/// `Dense(units, activation)`, Keras-style, with Glorot-uniform weights and zero biases.
#[allow(non_snake_case)]
pub fn Dense(units: usize, activation: impl Into<Option<Activation>>) -> Layer {
    Layer::Dense {
        units,
        activation: activation.into(),
        kernel_init: Init::GlorotUniform,
        bias_init: Init::Zeros,
    }
}

/// `Dropout(rate)`, Keras-style.
#[allow(non_snake_case)]
pub fn Dropout(rate: f32) -> Layer {
    Layer::Dropout { rate }
}

/// `Flatten()`, Keras-style.
#[allow(non_snake_case)]
pub fn Flatten() -> Layer {
    Layer::Flatten
}

impl Layer {
    /// Sets the weight initializer of a `Dense` layer (other layers are unchanged).
    pub fn kernel_init(mut self, init: Init) -> Self {
        if let Layer::Dense { kernel_init, .. } = &mut self {
            *kernel_init = init;
        }
        self
    }

    pub fn bias_init(mut self, init: Init) -> Self {
        if let Layer::Dense { bias_init, .. } = &mut self {
            *bias_init = init;
        }
        self
    }

    /// How many `nn.Sequential` indices the layer takes (Dense with an activation takes two).
    pub(crate) fn torch_modules(&self) -> usize {
        match self {
            Layer::Dense { activation: Some(_), .. } => 2,
            _ => 1,
        }
    }
}
