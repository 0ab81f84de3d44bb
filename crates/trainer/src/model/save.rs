//! Saving and loading a `Sequential`: the core's file (see `trainable/save.rs`) whose tensors are
//! the PyTorch `nn.Sequential` `state_dict`, with the architecture (input shape, layers, seed) and
//! the data preparation in its metadata.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DataInfo, Sequential};
use crate::checkpoint::{Checkpoint, ARCHITECTURE};
use crate::layers::Layer;
use crate::trainable::{set_weights_from, Compile, Trainable};
use crate::{Error, Result};

pub(crate) const DATA: &str = "kiln.data";

#[derive(Serialize, Deserialize)]
pub(crate) struct Architecture {
    pub format: u32,
    pub input_shape: Vec<usize>,
    pub layers: Vec<Layer>,
    pub seed: u64,
}

impl Sequential {
    /// Writes the model to `path` (and, once compiled, its optimizer state next to it). A failure
    /// leaves any existing file untouched.
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.with_core(|core, net| core.save(net, path.as_ref()))
    }

    /// The architecture and data metadata of the model file.
    pub(crate) fn write_metadata(&self, ck: &mut Checkpoint) -> Result<()> {
        let arch = Architecture {
            format: 1,
            input_shape: self.input_shape.clone(),
            layers: self.layers.clone(),
            seed: self.seed,
        };
        ck.set_json(ARCHITECTURE, &arch)?;
        crate::validate::seal_architecture(ck);
        ck.set_json(DATA, &self.data)
    }

    /// Reads a model written by [`Sequential::save`]. Compile it to train or predict; when the
    /// optimizer state file sits next to it and the optimizer is the same kind, compiling
    /// restores that state and the step count, so `fit` continues exactly where it stopped.
    pub fn load(path: impl AsRef<Path>) -> Result<Sequential> {
        let path = path.as_ref();
        let ck = Checkpoint::read(path)?;
        let missing = |key: &str| Error::Metadata {
            key: key.into(),
            message: format!("{} has no Kiln architecture; is it a Kiln model file?", path.display()),
        };
        let arch: Architecture = ck.json(ARCHITECTURE)?.ok_or_else(|| missing(ARCHITECTURE))?;
        let format = arch.format;
        let mut model = Sequential::new(&arch.input_shape).seed(arch.seed);
        for layer in arch.layers {
            model.push(layer);
        }
        model.data = ck.json::<DataInfo>(DATA)?.unwrap_or_default();
        model.core.epochs_done =
            ck.json::<crate::trainable::Progress>(crate::checkpoint::STEP)?.map_or(0, |p| p.epochs);
        model.set_weights_from(&ck, path)?;
        crate::validate::check_loaded(&model, &ck, path, format)?;
        model.core.read_state(&ck, path)?;
        Ok(model)
    }

    /// Loads parameters by `state_dict` name from a safetensors file (PyTorch's or Kiln's), e.g.
    /// starting weights. Every parameter must be present with its shape; unknown tensors are errors.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.set_weights_from(&Checkpoint::read(path)?, path)
    }

    fn set_weights_from(&mut self, ck: &Checkpoint, path: &Path) -> Result<()> {
        let params: Vec<_> = self.host_params()?.into_iter().map(|(p, _)| p).collect();
        set_weights_from(ck, path, &params, |name, data| self.set_weight(name, data))
    }

    /// The training configuration saved with a loaded model, if any.
    pub fn saved_config(&self) -> Option<&Compile> {
        self.core.saved.as_ref()
    }
}
