//! Saving and loading models: a safetensors file whose tensors are the PyTorch `nn.Sequential`
//! `state_dict` (loadable with `load_state_dict`), with the architecture, data preparation and
//! training configuration in its metadata; and a companion `*.optim.safetensors` with the
//! optimizer state and step, so training resumes exactly. Both are written atomically.

use std::path::{Path, PathBuf};

use kiln_graph::Optimizer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Compile, DataInfo, Sequential};
use crate::checkpoint::{Checkpoint, ARCHITECTURE, OPTIMIZER, STEP};
use crate::layers::Layer;
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::schedule::Schedule;
use crate::{Error, Result};

const DATA: &str = "kiln.data";

#[derive(Serialize, Deserialize)]
struct Architecture {
    format: u32,
    input_shape: Vec<usize>,
    layers: Vec<Layer>,
    seed: u64,
}

#[derive(Serialize, Deserialize)]
struct Training {
    optimizer: Value,
    loss: Loss,
    metrics: Vec<Metric>,
    schedule: Schedule,
    clip_norm: Option<f32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub(crate) struct Progress {
    pub step: u64,
    pub epochs: usize,
}

/// The companion file holding optimizer state: `model.safetensors` -> `model.optim.safetensors`.
pub fn optimizer_path(model: &Path) -> PathBuf {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    model.with_file_name(format!("{stem}.optim.safetensors"))
}

fn optimizer_to_json(o: &Optimizer) -> Value {
    match *o {
        Optimizer::Sgd { lr, momentum, weight_decay, nesterov } => {
            json!({"name": "sgd", "lr": lr, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov})
        }
        Optimizer::Adam { lr, beta1, beta2, eps, weight_decay } => {
            json!({"name": "adam", "lr": lr, "betas": [beta1, beta2], "eps": eps, "weight_decay": weight_decay})
        }
        Optimizer::AdamW { lr, beta1, beta2, eps, weight_decay } => {
            json!({"name": "adamw", "lr": lr, "betas": [beta1, beta2], "eps": eps, "weight_decay": weight_decay})
        }
        Optimizer::Rmsprop { lr, alpha, eps, weight_decay } => {
            json!({"name": "rmsprop", "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay})
        }
    }
}

fn optimizer_from_json(v: &Value) -> Result<Optimizer> {
    let bad = || Error::Metadata { key: OPTIMIZER.into(), message: format!("unreadable optimizer {v}") };
    let f = |k: &str| v.get(k).and_then(Value::as_f64).map(|x| x as f32).ok_or_else(bad);
    let beta = |i: usize| {
        v.get("betas").and_then(|b| b.get(i)).and_then(Value::as_f64).map(|x| x as f32).ok_or_else(bad)
    };
    Ok(match v.get("name").and_then(Value::as_str).ok_or_else(bad)? {
        "sgd" => Optimizer::Sgd {
            lr: f("lr")?,
            momentum: f("momentum")?,
            weight_decay: f("weight_decay")?,
            nesterov: v.get("nesterov").and_then(Value::as_bool).ok_or_else(bad)?,
        },
        "adam" => Optimizer::Adam {
            lr: f("lr")?,
            beta1: beta(0)?,
            beta2: beta(1)?,
            eps: f("eps")?,
            weight_decay: f("weight_decay")?,
        },
        "adamw" => Optimizer::AdamW {
            lr: f("lr")?,
            beta1: beta(0)?,
            beta2: beta(1)?,
            eps: f("eps")?,
            weight_decay: f("weight_decay")?,
        },
        "rmsprop" => Optimizer::Rmsprop {
            lr: f("lr")?,
            alpha: f("alpha")?,
            eps: f("eps")?,
            weight_decay: f("weight_decay")?,
        },
        _ => return Err(bad()),
    })
}

impl Sequential {
    /// Writes the model to `path` (and, once compiled, its optimizer state next to it). A failure
    /// leaves any existing file untouched.
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut ck = Checkpoint::new();
        let dtypes = self.param_specs()?.into_iter().map(|s| s.file_dtype);
        for ((name, shape, data), dtype) in self.weights()?.into_iter().zip(dtypes) {
            ck.push_as(&name, &shape, data, dtype)?;
        }
        let arch = Architecture {
            format: 1,
            input_shape: self.input_shape.clone(),
            layers: self.layers.clone(),
            seed: self.seed,
        };
        ck.set_json(ARCHITECTURE, &arch)?;
        crate::validate::seal_architecture(&mut ck);
        ck.set_json(DATA, &self.data)?;
        let step = self.compiled.as_ref().map_or(0, |c| c.session.step_count());
        let progress = Progress { step, epochs: self.epochs_done };
        ck.set_json(STEP, &progress)?;
        if let Some(c) = &mut self.compiled {
            let cfg = &c.config;
            let training = Training {
                optimizer: optimizer_to_json(&cfg.optimizer),
                loss: cfg.loss,
                metrics: cfg.metrics.clone(),
                schedule: cfg.schedule.clone(),
                clip_norm: cfg.clip_norm,
            };
            ck.set_json(OPTIMIZER, &training)?;
            let mut state = Checkpoint::new();
            for name in c.session.state_names() {
                let data = c.session.get_state(&name)?;
                state.push(&name, &[data.len()], data)?;
            }
            state.set_json(STEP, &progress)?;
            crate::validate::write_optimizer(&state, &optimizer_path(path), &mut ck)?;
        }
        ck.write(path)
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
        model.epochs_done = ck.json::<Progress>(STEP)?.map_or(0, |p| p.epochs);
        model.set_weights_from(&ck, path)?;
        crate::validate::check_loaded(&model, &ck, path, format)?;
        if let Some(t) = ck.json::<Training>(OPTIMIZER)? {
            let mut cfg = Compile::new(optimizer_from_json(&t.optimizer)?, t.loss, &t.metrics);
            cfg.schedule = t.schedule;
            cfg.clip_norm = t.clip_norm;
            model.saved = Some(cfg);
        }
        let opt_path = optimizer_path(path);
        if opt_path.exists() {
            let state = crate::validate::read_optimizer(&ck, &opt_path, path)?;
            let progress: Option<Progress> = state.json(STEP)?;
            if progress.map(|p| p.epochs) != Some(model.epochs_done) {
                return Err(Error::Metadata {
                    key: STEP.into(),
                    message: format!("{} is from another save than {}", opt_path.display(), path.display()),
                });
            }
            model.pending_state = Some((state, progress.map_or(0, |p| p.step)));
        }
        Ok(model)
    }

    /// Loads parameters by `state_dict` name from a safetensors file (PyTorch's or Kiln's), e.g.
    /// starting weights. Every parameter must be present with its shape; unknown tensors are errors.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.set_weights_from(&Checkpoint::read(path)?, path)
    }

    fn set_weights_from(&mut self, ck: &Checkpoint, path: &Path) -> Result<()> {
        let specs = self.param_specs()?;
        for s in &specs {
            let t = ck.get(&s.name).ok_or_else(|| Error::Tensor {
                path: path.into(),
                tensor: s.name.clone(),
                message: format!("missing: the model needs '{}' of shape {:?}", s.name, s.shape),
            })?;
            if t.shape != s.shape {
                return Err(Error::Tensor {
                    path: path.into(),
                    tensor: s.name.clone(),
                    message: format!("shape {:?} does not match the model's {:?}", t.shape, s.shape),
                });
            }
        }
        if let Some(extra) = ck.tensors.iter().find(|t| !specs.iter().any(|s| s.name == t.name)) {
            return Err(Error::Tensor {
                path: path.into(),
                tensor: extra.name.clone(),
                message: "not a parameter of this model".into(),
            });
        }
        for s in &specs {
            let data = &ck.get(&s.name).expect("checked above").data;
            self.set_weight(&s.name, data)?;
        }
        Ok(())
    }

    /// The training configuration saved with a loaded model, if any.
    pub fn saved_config(&self) -> Option<&Compile> {
        self.saved.as_ref()
    }

    /// After compile: applies optimizer state read by `load` when the optimizer kind matches.
    pub(crate) fn restore_pending_state(&mut self) -> Result<()> {
        let Some((state, step)) = self.pending_state.take() else { return Ok(()) };
        let Some(c) = &mut self.compiled else { return Ok(()) };
        let names = c.session.state_names();
        if names.is_empty() || !names.iter().all(|n| state.get(n).is_some()) {
            return Ok(()); // another optimizer: start it fresh
        }
        for n in names {
            let data = &state.get(&n).expect("checked above").data;
            c.session.set_state(&n, data)?;
        }
        c.session.set_step_count(step);
        Ok(())
    }
}
