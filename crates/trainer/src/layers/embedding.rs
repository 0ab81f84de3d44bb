//! `Embedding`: PyTorch's `nn.Embedding(vocab, dim)`, the first layer of a model over token ids.

use kiln_graph::NodeId;
use serde::{Deserialize, Serialize};

use super::{BuildCx, Init, Layer, LayerImpl, LayerOut, ParamSpec};
use crate::{Error, Result};

/// `nn.Embedding(vocab, dim)`, only as the first layer: the model's input becomes `[T]` token ids
/// (u32 on the device; data sets hold them as integer-valued f32 features, checked and converted
/// on the host), the output `[T, dim]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Number of token ids (`0..vocab`).
    pub vocab: usize,
    /// Width of each token's vector.
    pub dim: usize,
}

/// `Embedding(vocab, dim)`: PyTorch's `nn.Embedding`, weight `[vocab, dim]` drawn from N(0, 1);
/// the first layer of a model whose input is `[T]` token ids in `0..vocab`.
#[allow(non_snake_case)]
pub fn Embedding(vocab: usize, dim: usize) -> Layer {
    Layer::Embedding(Embedding { vocab, dim })
}

impl LayerImpl for Embedding {
    fn output_shape(&self, i: usize, input: &[usize]) -> Result<Vec<usize>> {
        let Embedding { vocab, dim } = *self;
        if i != 0 || input.len() != 1 {
            return Err(Error::Model(format!(
                "layer {i} (Embedding) must be the first layer, over [batch, T] token ids \
                 (got [batch, {input:?}])"
            )));
        }
        if vocab == 0 || dim == 0 {
            return Err(Error::Model(format!("layer {i} (Embedding): vocab {vocab}, dim {dim}")));
        }
        Ok(vec![input[0], dim])
    }

    fn params(&self, index: usize, _: &[usize]) -> Vec<ParamSpec> {
        // He-normal with fan_in 2 is N(0, 1), PyTorch's nn.Embedding init
        vec![ParamSpec::new(index, "weight", vec![self.vocab, self.dim], 2, self.dim, Init::HeNormal)]
    }

    fn build(&self, cx: &mut BuildCx<'_>, h: NodeId) -> LayerOut {
        LayerOut::plain(h, cx.g.gather(cx.params[0], h, 0)) // [B, T] ids -> [B, T, dim]
    }

    fn summary_line(&self, _: &[usize]) -> String {
        format!("Embedding({}, {})", self.vocab, self.dim)
    }

    fn token_vocab(&self) -> Option<usize> {
        Some(self.vocab)
    }
}
