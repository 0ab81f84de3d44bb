//! `Sequential`: a stack of layers, Keras-style, whose parameters carry PyTorch `nn.Sequential`
//! `state_dict` names (`0.weight` is `[out, in]`; activations and dropout take indices of their own).

mod build;
mod fit;
mod run;
mod save;

use std::fmt::Write as _;

use kiln_device::BackendChoice;
use kiln_graph::{Optimizer, Session};
use serde::{Deserialize, Serialize};

pub use fit::{EarlyStopping, FitOptions, Validation};
pub use run::{Evaluation, Features};
pub use save::optimizer_path;

use crate::data::{SplitMix64, Standardizer};
pub(crate) use crate::layers::ParamSpec;
use crate::layers::{Activation, Layer};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::schedule::Schedule;
use crate::{Error, Result};
use build::Built;

/// How a model trains: what `compile` takes.
#[derive(Clone, Debug)]
pub struct Compile {
    pub optimizer: Optimizer,
    pub loss: Loss,
    pub metrics: Vec<Metric>,
    pub backend: BackendChoice,
    pub schedule: Schedule,
    /// Clip gradients to this global L2 norm before each update.
    pub clip_norm: Option<f32>,
}

impl Compile {
    /// The backend comes from `KILN_BACKEND` (auto when unset or invalid).
    pub fn new(optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Self {
        Compile {
            optimizer,
            loss,
            metrics: metrics.to_vec(),
            backend: BackendChoice::from_env().unwrap_or_default(),
            schedule: Schedule::Constant,
            clip_norm: None,
        }
    }
}

/// What the model knows about its data, saved with it so `evaluate` and `predict` prepare new data
/// the same way.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Feature column names, in order.
    pub features: Vec<String>,
    /// Class names when the target is a class (`labels[id]`).
    pub labels: Option<Vec<String>>,
    /// Standardization fitted on the training data.
    pub standardizer: Option<Standardizer>,
    /// The target column name.
    pub target: Option<String>,
}

/// A parameter's state-dict name, shape and values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

pub struct Sequential {
    input_shape: Vec<usize>,
    layers: Vec<Layer>,
    seed: u64,
    /// Host copies of the parameters while no session holds them (before compile, after load).
    weights: Option<Vec<Vec<f32>>>,
    compiled: Option<Compiled>,
    /// Epochs trained so far (what a resumed `fit` continues from).
    pub(crate) epochs_done: usize,
    pub data: DataInfo,
    /// The training configuration a loaded model was saved with.
    saved: Option<Compile>,
    /// Optimizer state (and step) read by `load`, applied by the next `compile`.
    pending_state: Option<(crate::checkpoint::Checkpoint, u64)>,
}

pub(crate) struct Compiled {
    session: Session,
    built: Built,
    config: Compile,
}

impl Sequential {
    /// An empty model for examples of shape `input_shape` (e.g. `&[64]` for 64 features).
    pub fn new(input_shape: &[usize]) -> Self {
        Sequential {
            input_shape: input_shape.to_vec(),
            layers: Vec::new(),
            seed: 0,
            weights: None,
            compiled: None,
            epochs_done: 0,
            data: DataInfo::default(),
            saved: None,
            pending_state: None,
        }
    }

    /// Adds a layer (builder style): `Sequential::new(&[4]).add(Dense(8, Relu)).add(Dense(1, Sigmoid))`.
    #[allow(clippy::should_implement_trait)] // Keras' name; `Sequential + Layer` would read worse
    pub fn add(mut self, layer: Layer) -> Self {
        self.push(layer);
        self
    }

    pub fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
        self.weights = None;
        self.compiled = None;
    }

    /// Seeds weight initialization, shuffling and dropout (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.weights = None;
        self
    }

    /// Epochs trained so far (saved with the model).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The output shape (without the batch) after each layer; an error names the first layer whose
    /// input it cannot take.
    pub fn output_shapes(&self) -> Result<Vec<Vec<usize>>> {
        let mut shape = self.input_shape.clone();
        let mut out = Vec::new();
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::Model(format!(
                "input shape {shape:?} must be non-empty with no zero dimension"
            )));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer.imp().output_shape(i, &shape)?;
            out.push(shape.clone());
        }
        if out.is_empty() {
            return Err(Error::Model("the model has no layers".into()));
        }
        Ok(out)
    }

    /// Elements per example of the model's output.
    pub fn output_width(&self) -> Result<usize> {
        Ok(self.output_shapes()?.last().map_or(0, |s| s.iter().product()))
    }

    /// The vocabulary size when the model's input is token ids (it starts with `Embedding`).
    pub(crate) fn token_vocab(&self) -> Option<usize> {
        self.layers.first()?.imp().token_vocab()
    }

    /// The final activation, if the model ends in one.
    pub(crate) fn last_activation(&self) -> Option<Activation> {
        self.layers.last()?.imp().final_activation()
    }

    /// Every parameter, in `state_dict` order.
    pub(crate) fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        let shapes = self.output_shapes()?;
        let mut specs = Vec::new();
        let mut index = 0;
        let mut input = &self.input_shape;
        for (layer, shape) in self.layers.iter().zip(&shapes) {
            specs.extend(layer.imp().params(index, input));
            index += layer.imp().torch_modules();
            input = shape;
        }
        Ok(specs)
    }

    /// Current parameters, freshly initialized if the model has none yet.
    pub(crate) fn host_weights(&mut self) -> Result<Vec<Vec<f32>>> {
        let specs = self.param_specs()?;
        if let Some(c) = &mut self.compiled {
            return specs.iter().map(|s| Ok(c.session.get_param(&s.name)?)).collect();
        }
        if self.weights.is_none() {
            let mut rng = SplitMix64::new(self.seed ^ 0x5EED_F1A7);
            self.weights = Some(
                specs
                    .iter()
                    .map(|s| s.init.sample(s.shape.iter().product(), s.fan_in, s.fan_out, &mut rng))
                    .collect(),
            );
        }
        Ok(self.weights.clone().unwrap_or_default())
    }

    /// Every parameter as (state-dict name, shape, values).
    pub fn weights(&mut self) -> Result<Vec<NamedTensor>> {
        let specs = self.param_specs()?;
        let values = self.host_weights()?;
        Ok(specs.into_iter().zip(values).map(|(s, v)| (s.name, s.shape, v)).collect())
    }

    /// Overwrites one parameter by its state-dict name.
    pub fn set_weight(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let specs = self.param_specs()?;
        let i = specs.iter().position(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            Error::Model(format!("no parameter '{name}' (the model has: {})", names.join(", ")))
        })?;
        let want: usize = specs[i].shape.iter().product();
        if values.len() != want {
            return Err(Error::shape(format!("parameter '{name}' {:?}", specs[i].shape), want, values.len()));
        }
        match &mut self.compiled {
            Some(c) => c.session.set_param(name, values)?,
            None => {
                let mut w = self.host_weights()?;
                w[i] = values.to_vec();
                self.weights = Some(w);
            }
        }
        Ok(())
    }

    /// Keras-style `compile(optimizer, loss, metrics)` on the backend `KILN_BACKEND` names.
    pub fn compile(&mut self, optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Result<()> {
        self.compile_with(Compile::new(optimizer, loss, metrics))
    }

    /// Builds the training and inference graph and binds it to a backend. Parameters keep their
    /// current values (so a model can be recompiled with another optimizer or backend).
    pub fn compile_with(&mut self, config: Compile) -> Result<()> {
        let weights = self.host_weights()?;
        let mut built = build::build(self, &config, &weights)?;
        let backend = kiln_device::open(config.backend)?;
        let session = Session::new(built.graph_take(), backend)?;
        self.compiled = Some(Compiled { session, built, config });
        self.weights = None;
        self.restore_pending_state()
    }

    /// The configuration the model was compiled with.
    pub fn compiled(&self) -> Option<&Compile> {
        self.compiled.as_ref().map(|c| &c.config)
    }

    /// The device the model runs on (after `compile`).
    pub fn device(&self) -> Option<String> {
        self.compiled.as_ref().map(|c| c.session.backend().info().to_string())
    }

    pub(crate) fn compiled_mut(&mut self) -> Result<&mut Compiled> {
        self.compiled
            .as_mut()
            .ok_or_else(|| Error::Model("call compile() before fit/evaluate/predict".into()))
    }

    /// Layers, output shapes and parameter counts, as a table.
    pub fn summary(&self) -> Result<String> {
        let shapes = self.output_shapes()?;
        let mut s = String::new();
        let mut total = 0;
        let _ = writeln!(s, "{:<6} {:<22} {:<16} {:>10}", "index", "layer", "output shape", "params");
        let _ = writeln!(s, "{:<6} {:<22} {:<16} {:>10}", "", "input", shape_str(&self.input_shape), 0);
        let mut index = 0;
        let mut input = &self.input_shape;
        for (layer, shape) in self.layers.iter().zip(&shapes) {
            for (name, params) in layer.imp().summary_rows(input) {
                let _ = writeln!(s, "{:<6} {:<22} {:<16} {:>10}", index, name, shape_str(shape), params);
                total += params;
                index += 1;
            }
            input = shape;
        }
        let _ = writeln!(s, "total parameters: {total}");
        Ok(s)
    }
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

fn shape_str(dims: &[usize]) -> String {
    format!("[B, {}]", join(dims))
}
