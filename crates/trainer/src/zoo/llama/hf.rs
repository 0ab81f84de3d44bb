//! Hugging Face model folders: `config.json` plus `model.safetensors` (or the shards a
//! `model.safetensors.index.json` lists), tensors named as `transformers` names them, in f32,
//! f16 or bf16. Saving writes the same layout in f32, which `LlamaForCausalLM.from_pretrained`
//! loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_device::Backend;

use super::{Llama, LlamaConfig};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::model::NamedTensor;
use crate::trainable::Compile;

/// The tensors of a model folder, merged from its shards.
fn read_weights(dir: &Path) -> Result<(Checkpoint, PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((Checkpoint::read(&single)?, single));
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(Error::InvalidArgument(format!(
            "{} has neither model.safetensors nor model.safetensors.index.json",
            dir.display()
        )));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
    let bad = |m: String| Error::Metadata { key: index.display().to_string(), message: m };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map: BTreeMap<String, String> = v
        .get("weight_map")
        .cloned()
        .ok_or_else(|| bad("no weight_map".into()))
        .and_then(|m| serde_json::from_value(m).map_err(|e| bad(e.to_string())))?;
    let mut shards: Vec<&String> = map.values().collect();
    shards.sort();
    shards.dedup();
    let mut all = Checkpoint::new();
    for shard in shards {
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(bad(format!("shard name '{shard}' is not a file in the folder")));
        }
        let c = Checkpoint::read(dir.join(shard))?;
        all.tensors.extend(c.tensors);
    }
    Ok((all, index))
}

/// A model's architecture and weights, from a Kiln checkpoint or a Hugging Face folder, without
/// building anything (what generation and evaluation start from).
pub struct Weights {
    /// The architecture.
    pub config: LlamaConfig,
    /// Every parameter: Hugging Face name, shape, values.
    pub tensors: Vec<NamedTensor>,
    /// The tokenizer: `byte`, or a `tokenizer.json` path (a Hugging Face folder's own, when it
    /// has one).
    pub tokenizer: Option<String>,
}

impl Weights {
    /// Reads a Kiln checkpoint written by [`Llama::save`] or a Hugging Face model folder.
    pub fn read(path: impl AsRef<Path>) -> Result<Weights> {
        let path = path.as_ref();
        if path.is_dir() {
            let config = LlamaConfig::read(path.join("config.json"))?;
            let (mut ck, _) = read_weights(path)?;
            if config.tie_word_embeddings {
                ck.tensors.retain(|t| t.name != "lm_head.weight");
            }
            let tok = path.join("tokenizer.json");
            let tokenizer = tok.is_file().then(|| tok.display().to_string());
            let tensors = ck.tensors.into_iter().map(|t| (t.name, t.shape, t.data)).collect();
            return Ok(Weights { config, tensors, tokenizer });
        }
        let ck = Checkpoint::read(path)?;
        let config: LlamaConfig = ck.json(super::CONFIG)?.ok_or_else(|| Error::Metadata {
            key: super::CONFIG.into(),
            message: format!(
                "{} is neither a Llama checkpoint written by Kiln nor a Hugging Face model folder",
                path.display()
            ),
        })?;
        let tokenizer = ck.json(super::TOKENIZER)?;
        let tensors = ck.tensors.into_iter().map(|t| (t.name, t.shape, t.data)).collect();
        Ok(Weights { config, tensors, tokenizer })
    }
}

impl Llama {
    /// Loads a Hugging Face Llama/SmolLM2 model folder (`config.json` and the safetensors
    /// weights, f32, f16 or bf16, sharded or not) for training sequences of `context` tokens with
    /// `training`, on `backend`. A tied model's `lm_head.weight`, when the file holds it, must
    /// equal the embedding.
    pub fn from_hf(
        dir: impl AsRef<Path>,
        context: usize,
        training: Compile,
        backend: Box<dyn Backend>,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let config = LlamaConfig::read(dir.join("config.json"))?;
        let (mut weights, path) = read_weights(dir)?;
        if config.tie_word_embeddings {
            if let Some(i) = weights.tensors.iter().position(|t| t.name == "lm_head.weight") {
                let head = weights.tensors.remove(i);
                let same = weights.get("model.embed_tokens.weight").is_some_and(|e| e.data == head.data);
                if !same {
                    return Err(Error::Tensor {
                        path,
                        tensor: head.name,
                        message: "differs from model.embed_tokens.weight, but config.json says the \
                                  embeddings are tied"
                            .into(),
                    });
                }
            }
        }
        let mut m = Llama::bind_new(config, context, 0, false, training, backend)?;
        m.set_weights(&weights, &path)?;
        Ok(m)
    }

    /// Writes a Hugging Face model folder: `config.json` and `model.safetensors` (f32, the
    /// parameters only), each atomically; `transformers`' `LlamaForCausalLM.from_pretrained(dir)`
    /// loads it. Creates the folder if needed.
    pub fn save_hf(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut ck = Checkpoint::new();
        for (name, shape, values) in self.state_dict()? {
            ck.push(&name, &shape, values)?;
        }
        ck.metadata.insert("format".into(), "pt".into());
        ck.write(dir.join("model.safetensors"))?;
        let json = serde_json::to_string_pretty(&self.config.to_hf_json()).expect("JSON");
        crate::checkpoint::write_atomic(&dir.join("config.json"), format!("{json}\n").as_bytes())
    }
}
