//! Saving and loading the trainable core: a safetensors file whose tensors are the model's
//! `state_dict` (PyTorch names, loadable with `load_state_dict`), with the model's own metadata
//! (architecture, data preparation, vocabulary), the training progress and the training
//! configuration; and a companion `*.optim.safetensors` with the optimizer state and step and
//! what the next `fit` continues from (early-stopping counters, the last weights when the model
//! holds restored best ones, the best weights when they are not the model's, an epoch cut short by
//! an interrupt), so training resumes exactly in every mode. Both are written atomically, the
//! optimizer file first (its digest is recorded in the model file, written last).

use std::path::{Path, PathBuf};

use kiln_graph::Optimizer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::fit::{Counters, FitState};
use super::{data_parallel, Compile, Core, Param, Trainable};
use crate::checkpoint::{Checkpoint, OPTIMIZER, STEP};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::precision::{LossScaling, Precision};
use crate::schedule::Schedule;
use crate::{Error, Result};

#[derive(Serialize, Deserialize)]
pub(crate) struct Training {
    optimizer: Value,
    loss: Loss,
    metrics: Vec<Metric>,
    schedule: Schedule,
    clip_norm: Option<f32>,
    /// Micro-batches per update (absent in files saved before accumulation: 1).
    #[serde(default = "one")]
    accumulate: usize,
    /// Activation checkpointing (absent in files saved before it: off).
    #[serde(default)]
    recompute: bool,
    /// Mixed precision (absent in files saved before it: f32).
    #[serde(default)]
    precision: Precision,
    /// Loss scaling (absent in files saved before it: auto).
    #[serde(default)]
    loss_scale: LossScaling,
}

fn one() -> usize {
    1
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub(crate) struct Progress {
    pub step: u64,
    pub epochs: usize,
}

/// Optimizer-file metadata key: the [`FitState`] counters and where its weights are.
const FIT: &str = "kiln.fit";
/// Optimizer-file tensor name prefixes: the weights training continues from, and the best weights
/// early stopping will restore, when they are not the model file's own tensors.
const LAST: &str = "kiln.last/";
const BEST: &str = "kiln.best/";

/// [`FitState`] as the optimizer file records it.
#[derive(Serialize, Deserialize)]
struct SavedFit {
    counters: Counters,
    /// The last weights are in the file (as `kiln.last/<name>`); else they are the model's.
    last_in_file: bool,
    /// Where the best weights are: none held, the model's tensors, or the file (`kiln.best/<name>`).
    best: Option<Held>,
}

#[derive(Serialize, Deserialize, PartialEq)]
enum Held {
    Model,
    File,
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

impl Core {
    /// Writes `net` to `path` (and, once compiled, its optimizer state next to it). A failure
    /// leaves any existing file untouched.
    pub fn save(&mut self, net: &dyn Trainable, path: &Path) -> Result<()> {
        if let Some(c) = self.bound.as_ref().filter(|c| c.micro > 0) {
            // the accumulators are not saved: they are empty at every update
            return Err(Error::InvalidArgument(format!(
                "save: {} of {} micro-batches are accumulated but not yet applied; save after the \
                 update (every {}-th train_step)",
                c.micro, c.config.accumulate, c.config.accumulate
            )));
        }
        let mut ck = Checkpoint::new();
        let params = self.params(net)?;
        for (p, data) in &params {
            ck.push_as(&p.name, &p.shape, data.clone(), p.file_dtype)?;
        }
        net.write_metadata(&mut ck)?;
        let step = self.bound.as_ref().map_or(0, |c| c.session.step_count());
        let progress = Progress { step, epochs: self.epochs_done };
        ck.set_json(STEP, &progress)?;
        if let Some(c) = &mut self.bound {
            let cfg = &c.config;
            let training = Training {
                optimizer: optimizer_to_json(&cfg.optimizer),
                loss: cfg.loss,
                metrics: cfg.metrics.clone(),
                schedule: cfg.schedule.clone(),
                clip_norm: cfg.clip_norm,
                accumulate: cfg.accumulate,
                recompute: cfg.recompute,
                precision: cfg.precision,
                loss_scale: cfg.loss_scale,
            };
            ck.set_json(OPTIMIZER, &training)?;
            let mut state = Checkpoint::new();
            for name in c.session.state_names().into_iter().filter(|n| !data_parallel::is_grad_state(n)) {
                let data = c.session.get_state(&name)?;
                state.push(&name, &[data.len()], data)?;
            }
            state.set_json(STEP, &progress)?;
            if let Some(fit) = &self.fit_state {
                let is_model = |w: &[(String, Vec<f32>)]| {
                    w.len() == params.len()
                        && w.iter().zip(&params).all(|((n, a), (p, b))| {
                            *n == p.name
                                && a.len() == b.len()
                                && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
                        })
                };
                let mut push = |prefix: &str, w: &[(String, Vec<f32>)]| -> Result<()> {
                    for (n, v) in w {
                        state.push(&format!("{prefix}{n}"), &[v.len()], v.clone())?;
                    }
                    Ok(())
                };
                let last = fit.last_weights.as_deref().filter(|w| !is_model(w));
                if let Some(w) = last {
                    push(LAST, w)?;
                }
                let best = match fit.best_weights.as_deref() {
                    None => None,
                    Some(w) if is_model(w) => Some(Held::Model),
                    Some(w) => {
                        push(BEST, w)?;
                        Some(Held::File)
                    }
                };
                let saved = SavedFit { counters: fit.counters.clone(), last_in_file: last.is_some(), best };
                state.set_json(FIT, &saved)?;
            }
            crate::validate::write_optimizer(&state, &optimizer_path(path), &mut ck)?;
        }
        ck.write(path)
    }

    /// Reads what `save` wrote besides the parameters and the model's own metadata: the epochs
    /// done, the training configuration, and the optimizer state file next to `path` (applied by
    /// the next compile when the optimizer is the same kind).
    pub fn read_state(&mut self, ck: &Checkpoint, path: &Path) -> Result<()> {
        self.epochs_done = ck.json::<Progress>(STEP)?.map_or(0, |p| p.epochs);
        if let Some(t) = ck.json::<Training>(OPTIMIZER)? {
            let mut cfg = Compile::new(optimizer_from_json(&t.optimizer)?, t.loss, &t.metrics);
            cfg.schedule = t.schedule;
            cfg.clip_norm = t.clip_norm;
            cfg.accumulate = t.accumulate;
            cfg.recompute = t.recompute;
            cfg.precision = t.precision;
            cfg.loss_scale = t.loss_scale;
            self.saved = Some(cfg);
        }
        let opt_path = optimizer_path(path);
        if opt_path.exists() {
            let state = crate::validate::read_optimizer(ck, &opt_path, path)?;
            let progress: Option<Progress> = state.json(STEP)?;
            if progress.map(|p| p.epochs) != Some(self.epochs_done) {
                return Err(Error::Metadata {
                    key: STEP.into(),
                    message: format!("{} is from another save than {}", opt_path.display(), path.display()),
                });
            }
            self.fit_state = match state.json::<SavedFit>(FIT)? {
                Some(saved) => Some(fit_state_from(saved, ck, &state, &opt_path)?),
                None => None, // saved before fit state was (or before any fit)
            };
            self.pending_state = Some((state, progress.map_or(0, |p| p.step)));
        }
        Ok(())
    }

    /// After compile: applies optimizer state read by `load` when the optimizer kind matches.
    pub(crate) fn restore_pending_state(&mut self) -> Result<()> {
        let Some((state, step)) = self.pending_state.take() else { return Ok(()) };
        let Some(c) = &mut self.bound else { return Ok(()) };
        let names: Vec<String> =
            c.session.state_names().into_iter().filter(|n| !data_parallel::is_grad_state(n)).collect();
        // the loss scaler's state is restored when the file has it (a model saved without loss
        // scaling and resumed with it starts from the initial scale)
        let scaler = |n: &String| n == kiln_graph::LOSS_SCALE || n == kiln_graph::LOSS_SCALE_TRACKER;
        let (scaler_names, names): (Vec<String>, Vec<String>) = names.into_iter().partition(scaler);
        for n in scaler_names.iter().filter(|n| state.get(n).is_some()) {
            c.session.set_state(n, &state.get(n).expect("checked").data)?;
        }
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

/// The fit state recorded in an optimizer file `state` saved with the model `ck`.
fn fit_state_from(saved: SavedFit, ck: &Checkpoint, state: &Checkpoint, path: &Path) -> Result<FitState> {
    let from_file = |prefix: &str| -> Result<Vec<(String, Vec<f32>)>> {
        ck.tensors
            .iter()
            .map(|t| {
                let name = format!("{prefix}{}", t.name);
                let w = state.get(&name).filter(|w| w.data.len() == t.data.len()).ok_or_else(|| {
                    Error::Tensor {
                        path: path.into(),
                        tensor: name.clone(),
                        message: format!("missing, or not the size of the model's '{}'", t.name),
                    }
                })?;
                Ok((t.name.clone(), w.data.clone()))
            })
            .collect()
    };
    let model = || ck.tensors.iter().map(|t| (t.name.clone(), t.data.clone())).collect();
    Ok(FitState {
        counters: saved.counters,
        last_weights: if saved.last_in_file { Some(from_file(LAST)?) } else { None },
        best_weights: match saved.best {
            None => None,
            Some(Held::Model) => Some(model()),
            Some(Held::File) => Some(from_file(BEST)?),
        },
    })
}

/// Checks that `ck` holds exactly the parameters `params` (each with its shape) and hands each
/// one's values to `set`.
pub(crate) fn set_weights_from(
    ck: &Checkpoint,
    path: &Path,
    params: &[Param],
    mut set: impl FnMut(&str, &[f32]) -> Result<()>,
) -> Result<()> {
    for s in params {
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
    if let Some(extra) = ck.tensors.iter().find(|t| !params.iter().any(|s| s.name == t.name)) {
        return Err(Error::Tensor {
            path: path.into(),
            tensor: extra.name.clone(),
            message: "not a parameter of this model".into(),
        });
    }
    for s in params {
        set(&s.name, &ck.get(&s.name).expect("checked above").data)?;
    }
    Ok(())
}
