//! `Sequential`: a stack of layers, Keras-style, whose parameters carry PyTorch `nn.Sequential`
//! `state_dict` names (`0.weight` is `[out, in]`; activations and dropout take indices of their own).

mod build;
mod prepare;
mod save;

use std::fmt::Write as _;

use kiln_graph::Optimizer;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::data::{SplitMix64, Standardizer};
pub(crate) use crate::layers::ParamSpec;
use crate::layers::{Activation, Layer};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::report::History;
use crate::trainable::{Compile, Core, Evaluation, Features, FitOptions, Param, Validation};
use crate::{Error, Result};

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
    /// Standardization of a regression target (one column), fitted on the training targets: the
    /// model learns `(y - mean) / std` and `predict` returns values in the original units (what
    /// scikit-learn's `TransformedTargetRegressor` does). Files from before it load without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_standardizer: Option<Standardizer>,
}

/// What `predict` returns: `rows` x `cols` values, row-major (it derefs to the flat slice).
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// Number of rows predicted (the data set's length).
    pub rows: usize,
    /// Outputs per row.
    pub cols: usize,
    /// `[rows, cols]`, row-major.
    pub values: Vec<f32>,
}

impl Predictions {
    /// Row `r`'s outputs.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.cols..(r + 1) * self.cols]
    }

    /// Every row's outputs, in order.
    pub fn row_iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.cols.max(1))
    }

    /// The shape, `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// The flat values.
    pub fn into_vec(self) -> Vec<f32> {
        self.values
    }
}

impl std::ops::Deref for Predictions {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.values
    }
}

impl PartialEq<Vec<f32>> for Predictions {
    fn eq(&self, other: &Vec<f32>) -> bool {
        self.values == *other
    }
}

impl PartialEq<[f32]> for Predictions {
    fn eq(&self, other: &[f32]) -> bool {
        self.values == other
    }
}

impl<'a> IntoIterator for &'a Predictions {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.values.iter()
    }
}

/// A parameter's state-dict name, shape and values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// A stack of [`Layer`]s trained as one model (Keras' `Sequential`): build it with
/// [`new`](Sequential::new) and [`add`](Sequential::add), [`compile`](Sequential::compile) it with
/// an optimizer, a loss and metrics, then [`fit`](Sequential::fit), [`evaluate`](Sequential::evaluate),
/// [`predict`](Sequential::predict), `save` and `load`. Parameters have PyTorch state-dict names
/// (`0.weight`, `0.bias`, ...) and layouts.
///
/// ```
/// use kiln_trainer::data::{Table, Target};
/// use kiln_trainer::prelude::*;
///
/// # fn main() -> kiln_trainer::Result<()> {
/// // XOR-like data: the class is 1 when exactly one of the two features is 1.
/// let table = Table::new(
///     vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0],
///     4,
///     2,
///     vec!["a".into(), "b".into()],
///     Target::Classes { ids: vec![0, 1, 1, 0], names: vec!["off".into(), "on".into()] },
/// )?;
/// let mut model = Sequential::new(&[2]).add(Dense(8, Relu)).add(Dense(2, Softmax));
/// model.compile(Optimizer::adam(1e-2), Loss::CrossEntropy, &[Metric::Accuracy])?;
/// let history = model.fit(&table, &FitOptions { epochs: 5, batch_size: 4, quiet: true, ..Default::default() })?;
/// assert_eq!(history.epochs.len(), 5);
///
/// let probs = model.predict(&table, 4)?; // class probabilities, one row per table row
/// assert_eq!(probs.shape(), [4, 2]);
/// assert!(probs.row_iter().all(|p| (p.iter().sum::<f32>() - 1.0).abs() < 1e-4));
/// let labels = model.predict_classes(&table, 4)?; // "off" or "on"
/// assert_eq!(labels.len(), 4);
/// # Ok(()) }
/// ```
pub struct Sequential {
    input_shape: Vec<usize>,
    layers: Vec<Layer>,
    seed: u64,
    /// Host copies of the parameters while no session holds them (before compile, after load).
    weights: Option<Vec<Vec<f32>>>,
    /// What the first `fit` on a table recorded (feature names, class labels, standardizers);
    /// saved with the model.
    pub data: DataInfo,
    /// The session, training progress and configuration (shared with the zoo models).
    core: Core,
}

impl Sequential {
    /// An empty model for examples of shape `input_shape` (e.g. `&[64]` for 64 features).
    pub fn new(input_shape: &[usize]) -> Self {
        Sequential {
            input_shape: input_shape.to_vec(),
            layers: Vec::new(),
            seed: 0,
            weights: None,
            data: DataInfo::default(),
            core: Core::default(),
        }
    }

    /// Runs `f` on the core with the model as its [`Trainable`](crate::trainable::Trainable).
    fn with_core<R>(&mut self, f: impl FnOnce(&mut Core, &Sequential) -> R) -> R {
        let mut core = std::mem::take(&mut self.core);
        let r = f(&mut core, self);
        self.core = core;
        r
    }

    /// Adds a layer (builder style): `Sequential::new(&[4]).add(Dense(8, Relu)).add(Dense(1, Sigmoid))`.
    #[allow(clippy::should_implement_trait)] // Keras' name; `Sequential + Layer` would read worse
    pub fn add(mut self, layer: Layer) -> Self {
        self.push(layer);
        self
    }

    /// Appends a layer in place (what [`add`](Sequential::add) does); the model must be compiled again.
    pub fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
        self.weights = None;
        self.core.bound = None;
    }

    /// Seeds weight initialization, shuffling and dropout (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.weights = None;
        self
    }

    /// Epochs trained so far (saved with the model).
    pub fn epochs_done(&self) -> usize {
        self.core.epochs_done
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The shape of one example, without the batch (what [`new`](Sequential::new) was given).
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

    /// The parameters as the core saves them.
    pub(crate) fn param_list(&self) -> Result<Vec<Param>> {
        let specs = self.param_specs()?;
        Ok(specs
            .into_iter()
            .map(|s| Param {
                name: s.name,
                shape: s.shape,
                buffer: s.buffer,
                file_dtype: s.file_dtype,
                decay: true,
            })
            .collect())
    }

    /// The host copies of the parameters, freshly initialized (from the seed) if there are none.
    pub(crate) fn host_weights(&self) -> Result<Vec<Vec<f32>>> {
        let specs = self.param_specs()?;
        if let Some(w) = &self.weights {
            return Ok(w.clone());
        }
        let mut rng = SplitMix64::new(self.seed ^ 0x5EED_F1A7);
        Ok(specs
            .iter()
            .map(|s| s.init.sample(s.shape.iter().product(), s.fan_in, s.fan_out, &mut rng))
            .collect())
    }

    /// Every parameter as (state-dict name, shape, values).
    pub fn weights(&mut self) -> Result<Vec<NamedTensor>> {
        let params = self.with_core(|core, net| core.params(net))?;
        Ok(params.into_iter().map(|(p, v)| (p.name, p.shape, v)).collect())
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
        match &mut self.core.bound {
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

    /// [`Sequential::compile_with`] on a backend the caller opened (to read its limits first,
    /// or to share one choice of device); `config.backend` is not used.
    pub fn compile_on(&mut self, config: Compile, backend: Box<dyn kiln_device::Backend>) -> Result<()> {
        self.with_core(|core, net| core.bind(net, config, Some(backend)))?;
        self.weights = None;
        Ok(())
    }

    /// Builds the training and inference graph and binds it to a backend. Parameters keep their
    /// current values (so a model can be recompiled with another optimizer or backend).
    pub fn compile_with(&mut self, config: Compile) -> Result<()> {
        self.with_core(|core, net| core.bind(net, config, None))?;
        self.weights = None;
        Ok(())
    }

    /// A model loaded from a file is ready to evaluate and predict: it compiles itself with the
    /// configuration it was saved with (on the default backend) the first time it is asked to.
    fn ready(&mut self) -> Result<()> {
        if self.core.bound.is_some() {
            return Ok(());
        }
        match self.core.saved.clone() {
            Some(config) => self.compile_with(config),
            None => Err(Error::Model(
                "call compile() before evaluate/predict (this model holds no training configuration)".into(),
            )),
        }
    }

    /// Where its data-parallel steps spent their time (compiled with `devices > 1`).
    pub fn step_times(&self) -> Option<crate::StepTimes> {
        self.core.step_times()
    }

    /// The loss scaler's scale and counts (read from the device), when it trains with one
    /// ([`crate::LossScaling`]).
    pub fn loss_scale(&mut self) -> Result<Option<kiln_graph::ScalerState>> {
        self.core.loss_scale()
    }

    /// The configuration the model was compiled with.
    pub fn compiled(&self) -> Option<&Compile> {
        self.core.bound.as_ref().map(|c| &c.config)
    }

    /// The device the model runs on (after `compile`).
    pub fn device(&self) -> Option<String> {
        self.core.bound.as_ref().map(|c| c.session.backend().info().to_string())
    }

    /// Trains on `data` (Keras' `fit`). Returns the per-epoch history. A NaN or infinite loss stops
    /// training with [`Error::NonFiniteLoss`] naming the step.
    ///
    /// On a table, the first `fit` records the feature names, the class labels and (unless
    /// [`FitOptions::standardize`] / [`FitOptions::standardize_target`] turn them off) the
    /// standardizers in [`Sequential::data`]; pass raw data, every call applies them.
    pub fn fit(&mut self, data: &(dyn Dataset + Sync), opts: &FitOptions<'_>) -> Result<History> {
        let out_width = self.output_width()?;
        self.core.bound_mut()?;
        crate::validate::note_labels(&mut self.data, data, out_width)?;
        if let Validation::Data(v) = &opts.validation {
            crate::validate::check_labels(&self.data, *v)?;
            self.check_columns(*v)?;
        }
        self.note_data(data, opts)?;
        let train = self.prepared(data);
        let val = match opts.validation {
            Validation::Data(v) => Some(self.prepared(v)),
            _ => None,
        };
        let opts = FitOptions {
            validation: match &val {
                Some(v) => Validation::Data(v),
                None => opts.validation,
            },
            ..opts.clone()
        };
        self.with_core(|core, net| core.fit(net, &train, &opts))
    }

    /// Loss and compiled metrics over `data` (Keras' `evaluate`), in the target's units. The
    /// model's standardizer is applied; a table's columns must be the model's (by name).
    pub fn evaluate(&mut self, data: &(dyn Dataset + Sync), batch_size: usize) -> Result<Evaluation> {
        crate::validate::check_labels(&self.data, data)?;
        self.check_columns(data)?;
        self.ready()?;
        let data = self.prepared(data);
        self.with_core(|core, net| core.evaluate_rows(net, &data, None, batch_size))
    }

    /// The model's outputs for every row of `data` (Keras' `predict`), with their shape: class
    /// probabilities, or regression values in the target's units. The model's standardizer is
    /// applied; a table's columns must be the model's (by name).
    pub fn predict(&mut self, data: &(dyn Dataset + Sync), batch_size: usize) -> Result<Predictions> {
        let cols = self.output_width()?;
        self.check_columns(data)?;
        self.ready()?;
        let prepared = self.prepared(data);
        let mut values = self.with_core(|core, net| core.predict(net, &prepared, batch_size))?;
        if let Some((mean, std)) = self.target_mean_std() {
            values.iter_mut().for_each(|v| *v = *v * std + mean);
        }
        Ok(Predictions { rows: data.len(), cols, values })
    }

    /// The predicted class label of every row of `data`, from the model's labels (recorded by
    /// `fit` on a table with class targets, saved with the model): the most probable class, or
    /// for one sigmoid output the second label when the probability exceeds 0.5.
    pub fn predict_classes(&mut self, data: &(dyn Dataset + Sync), batch_size: usize) -> Result<Vec<String>> {
        let labels = self.data.labels.clone().ok_or_else(|| {
            Error::Model(
                "predict_classes: the model has no class labels (fit it on a table whose target holds \
                 classes, or set model.data.labels)"
                    .into(),
            )
        })?;
        let threshold = if self.last_activation() == Some(Activation::Sigmoid) { 0.5 } else { 0.0 };
        let pred = self.predict(data, batch_size)?;
        Ok(pred
            .row_iter()
            .map(|row| {
                let id = if row.len() == 1 {
                    (row[0] > threshold) as usize
                } else {
                    crate::metrics::argmax(&row[..labels.len().min(row.len())])
                };
                labels.get(id).cloned().unwrap_or_else(|| id.to_string())
            })
            .collect())
    }

    /// `predict` on raw features `[rows, input width]` (in the units of the training data: the
    /// model's standardizer is applied).
    pub fn predict_features(&mut self, features: &[f32]) -> Result<Predictions> {
        let width = self.input_shape.iter().product::<usize>();
        if width == 0 || !features.len().is_multiple_of(width) {
            return Err(Error::shape("predict features", format!("a multiple of {width}"), features.len()));
        }
        self.predict(&Features { data: features, width }, 256)
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
