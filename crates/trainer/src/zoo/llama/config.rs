//! The Llama architecture's sizes, read and written as Hugging Face's `config.json`
//! (`LlamaConfig`: the same field names, so a SmolLM2 folder's file loads as is and a saved one
//! loads in `transformers`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// A Llama-style decoder: token embedding, `num_hidden_layers` pre-norm blocks (RMSNorm,
/// grouped-query attention with rotary embeddings, SwiGLU MLP), a final RMSNorm and a head
/// tied to the embedding (or not), no biases. Field names and defaults are `transformers`'
/// `LlamaConfig`'s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Token ids `0..vocab_size`.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention: `num_attention_heads` is a multiple of it).
    pub num_key_value_heads: usize,
    /// Width of one head (`hidden_size / num_attention_heads` when absent).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm's epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    /// Rotary embedding base (also read from `rope_parameters.rope_theta`, where newer
    /// `transformers` versions write it).
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    /// The output head reuses the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The longest sequence the model is meant for (generation's cache size by default).
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// Standard deviation of the initial weights (`N(0, initializer_range)`, as `transformers`).
    #[serde(default = "default_init")]
    pub initializer_range: f32,
}

fn default_eps() -> f32 {
    1e-6
}
fn default_theta() -> f32 {
    10_000.0
}
fn default_positions() -> usize {
    2048
}
fn default_init() -> f32 {
    0.02
}

/// The named configurations `--config` takes.
pub const PRESETS: [&str; 2] = ["tiny", "smollm2-135m"];

impl LlamaConfig {
    /// SmolLM2-135M (HuggingFaceTB/SmolLM2-135M's `config.json`): vocab 49,152, width 576, 30
    /// layers, 9 query and 3 key/value heads of 64, MLP 1,536, RMSNorm eps 1e-5, rope theta
    /// 100,000, tied embeddings: 134,515,008 parameters.
    pub fn smollm2_135m() -> Self {
        LlamaConfig {
            vocab_size: 49_152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: 3,
            head_dim: Some(64),
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            tie_word_embeddings: true,
            max_position_embeddings: 8192,
            initializer_range: 0.041_666_668,
        }
    }

    /// A SmolLM2-shaped toy for a byte vocabulary (256 ids): width 128, 4 layers, 4 query and 2
    /// key/value heads of 32, MLP 384, tied embeddings: about 0.8M parameters, which a 2-core CPU
    /// trains at several steps per second.
    pub fn tiny() -> Self {
        LlamaConfig {
            vocab_size: 256,
            hidden_size: 128,
            intermediate_size: 384,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: Some(32),
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            max_position_embeddings: 1024,
            initializer_range: 0.02,
        }
    }

    /// A preset by name (`tiny`, `smollm2-135m`), or a `config.json` file (a Hugging Face
    /// model folder's, or one `kiln lm` wrote).
    pub fn named_or_file(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(LlamaConfig::tiny()),
            "smollm2-135m" | "smollm2_135m" => Ok(LlamaConfig::smollm2_135m()),
            _ => {
                let p = Path::new(name);
                if p.is_dir() {
                    LlamaConfig::read(p.join("config.json"))
                } else if p.exists() {
                    LlamaConfig::read(p)
                } else {
                    Err(Error::InvalidArgument(format!(
                        "unknown config '{name}': expected {} or a config.json file",
                        PRESETS.join(", ")
                    )))
                }
            }
        }
    }

    /// Reads a Hugging Face `config.json` (unknown fields are ignored; `model_type` must be
    /// `llama` when present).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: String| Error::Metadata { key: path.display().to_string(), message: m };
        let mut v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        if let Some(t) = v.get("model_type").and_then(Value::as_str) {
            if t != "llama" {
                return Err(bad(format!("model_type '{t}': only 'llama' (Llama, SmolLM2) is supported")));
            }
        }
        if v.get("rope_theta").is_none() {
            if let Some(t) = v.pointer("/rope_parameters/rope_theta").cloned() {
                v["rope_theta"] = t;
            }
        }
        for (key, what) in [("attention_bias", "biases in attention"), ("mlp_bias", "biases in the MLP")] {
            if v.get(key).and_then(Value::as_bool) == Some(true) {
                return Err(bad(format!("{key}: {what} are not supported")));
            }
        }
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str) {
            if act != "silu" {
                return Err(bad(format!("hidden_act '{act}': only 'silu' (SwiGLU) is supported")));
            }
        }
        if let Some(s) = v.get("rope_scaling").filter(|s| !s.is_null()) {
            return Err(bad(format!("rope_scaling {s} is not supported")));
        }
        let config: LlamaConfig = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        config.check().map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// The `config.json` a `transformers` `LlamaForCausalLM` loads (float32 weights).
    pub fn to_hf_json(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("a config serializes");
        let extra = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "attention_dropout": 0.0,
            "head_dim": self.head_dim(),
            "torch_dtype": "float32",
            "use_cache": true,
        });
        for (k, x) in extra.as_object().expect("an object") {
            v[k] = x.clone();
        }
        v
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Query heads per key/value head.
    pub fn group(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads.max(1)
    }

    /// Checks the sizes fit together.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("llama config: {m}")));
        let sizes = [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.head_dim(),
        ];
        if sizes.contains(&0) {
            return bad(format!("every size must be positive: {self:?}"));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("head_dim {} must be even (rotary embeddings)", self.head_dim()));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!("rms_norm_eps {} must be positive", self.rms_norm_eps));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return bad(format!("rope_theta {} must be above 1", self.rope_theta));
        }
        if self.vocab_size >= 1 << 24 {
            return bad(format!("vocab_size {} must be below 2^24", self.vocab_size));
        }
        Ok(())
    }

    /// Every parameter's name (Hugging Face's) and shape, in `state_dict` order. The head
    /// (`lm_head.weight`) is listed only when it is not tied to the embedding.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, hd) = (self.hidden_size, self.head_dim());
        let (q, kv, m) =
            (self.num_attention_heads * hd, self.num_key_value_heads * hd, self.intermediate_size);
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab_size, d])];
        for l in 0..self.num_hidden_layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            out.extend([
                (p("self_attn.q_proj.weight"), vec![q, d]),
                (p("self_attn.k_proj.weight"), vec![kv, d]),
                (p("self_attn.v_proj.weight"), vec![kv, d]),
                (p("self_attn.o_proj.weight"), vec![d, q]),
                (p("mlp.gate_proj.weight"), vec![m, d]),
                (p("mlp.up_proj.weight"), vec![m, d]),
                (p("mlp.down_proj.weight"), vec![d, m]),
                (p("input_layernorm.weight"), vec![d]),
                (p("post_attention_layernorm.weight"), vec![d]),
            ]);
        }
        out.push(("model.norm.weight".into(), vec![d]));
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".into(), vec![self.vocab_size, d]));
        }
        out
    }

    /// Number of trainable values (a tied head counted once, as `transformers` counts).
    pub fn parameters(&self) -> usize {
        self.parameter_shapes().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_135m_has_its_published_parameter_count() {
        assert_eq!(LlamaConfig::smollm2_135m().parameters(), 134_515_008);
        LlamaConfig::smollm2_135m().check().unwrap();
        LlamaConfig::tiny().check().unwrap();
    }

    #[test]
    fn reads_rope_theta_from_either_place_and_refuses_other_models() {
        let dir = std::env::temp_dir().join(format!("kiln-llama-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut v = LlamaConfig::tiny().to_hf_json();
        v.as_object_mut().unwrap().remove("rope_theta");
        v["rope_parameters"] = json!({"rope_theta": 500000.0, "rope_type": "default"});
        let p = dir.join("config.json");
        std::fs::write(&p, v.to_string()).unwrap();
        assert_eq!(LlamaConfig::read(&p).unwrap().rope_theta, 500000.0);
        v["model_type"] = json!("mistral");
        std::fs::write(&p, v.to_string()).unwrap();
        let e = LlamaConfig::read(&p).unwrap_err().to_string();
        assert!(e.contains("mistral") && e.contains("config.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
