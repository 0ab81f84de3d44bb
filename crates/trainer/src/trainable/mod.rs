//! The trainable core shared by [`Sequential`](crate::Sequential) and the zoo models: a model
//! describes its graph (inputs, outputs, loss, parameters with their names and initial values) and
//! its metadata through [`Trainable`]; [`Core`] owns the session and provides, once for all of
//! them, binding to a backend (what `Sequential::compile` does: gradients, clipping, the
//! optimizer; named apart from the graph's plan `compile`), fit with schedules, metrics, validation,
//! early stopping, progress and logs, evaluate and predict, and save / load / exact resume; and
//! data parallelism over several devices in one process (`Compile::devices`, `data_parallel.rs`; gradient buckets overlap the backward pass,
//! `buckets.rs`).

mod buckets;
mod data_parallel;
mod eval_shard;
mod fit;
mod language;
mod run;
mod save;

use kiln_device::{Backend, BackendChoice, HostData};
use kiln_graph::{Graph, NodeId, Optimizer, Session};

pub use crate::distributed::{AllReduce, SingleProcess};
pub use buckets::{DEFAULT_BUCKET_MB, FIRST_BUCKET_BYTES};
pub use data_parallel::StepTimes;
pub(crate) use fit::FitState;
pub use fit::{EarlyStopping, FitOptions, StoppedAt, Validation};
pub(crate) use language::{check_token_batch, check_windows, next_token_heads};
pub use run::{Evaluation, Features};
pub use save::optimizer_path;
pub(crate) use save::{set_weights_from, Progress};

use crate::checkpoint::{Checkpoint, Dtype};
use crate::data::Dataset;
use crate::layers::TrainState;
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::precision::{LossScaling, Precision};
use crate::schedule::Schedule;
use crate::stream::Prep;
use crate::{Error, Result};

/// How a model trains: what `compile` takes.
#[derive(Clone, Debug)]
pub struct Compile {
    /// Updates the parameters from their gradients (its learning rate is the schedule's base rate).
    pub optimizer: Optimizer,
    /// The loss minimized.
    pub loss: Loss,
    /// Reported each epoch besides the loss.
    pub metrics: Vec<Metric>,
    /// The device to run on (`Compile::new` takes what `KILN_BACKEND` names, auto when unset).
    pub backend: BackendChoice,
    /// How the learning rate changes over the steps (default constant).
    pub schedule: Schedule,
    /// Clip gradients to this global L2 norm before each update.
    pub clip_norm: Option<f32>,
    /// Gradient accumulation: micro-batches per optimizer update (default 1, no accumulation).
    /// The gradients of `accumulate` consecutive batches are summed on the device, each weighted
    /// by its rows over the rows of them all (a short last batch or window included), so an
    /// update equals one over a batch `accumulate` times larger (a mean-reduced loss); clipping
    /// sees the summed gradient. The step count and the schedule count updates; `fit`'s
    /// `batch_size` is the micro-batch, its `steps_per_epoch` counts updates; an interrupt stops
    /// `fit` at the next update.
    pub accumulate: usize,
    /// Data-parallel replicas in this process (default 1): each opens its own `backend` (a CPU
    /// backend with its share of the threads, or another device on the GPU adapter), trains on
    /// its contiguous share of every batch, and the row-weighted gradient sum updates replica 0,
    /// whose weights the others copy before each step (see `trainable/data_parallel.rs`).
    pub devices: usize,
    /// Activation checkpointing (default off): the segments the model marks (each transformer
    /// block of a `Llama` or `CharGpt`) keep only their inputs from the forward to the backward,
    /// which recomputes their inner activations just before it needs them (see
    /// `kiln_graph::Graph::checkpoint`): less memory for about one more forward per step, the
    /// same gradients. A model that marks no segment refuses it.
    pub recompute: bool,
    /// Gradient buckets of data-parallel training, in MiB (default [`DEFAULT_BUCKET_MB`], as
    /// PyTorch DDP; the first bucket at most 1 MiB): each replica's forward + backward runs in one
    /// part per bucket, and a bucket's gradients are summed (across replicas, then processes)
    /// while the backward pass of the next still computes. 0 sums every gradient after the
    /// whole backward (no overlap). The same losses and weights either way (bit for bit in one
    /// process and on 2 ranks; see `trainable/data_parallel.rs`).
    pub bucket_mb: f64,
    /// Mixed precision (default f32): with `Bf16` or `F16` the model's matmuls read half copies
    /// of their operands, autocast-style, while the master weights, their gradients and the
    /// optimizer state stay f32 (see [`Precision`]). Applied once, to the whole graph the model
    /// builds (`Graph::set_autocast`), so every layer and zoo model follows it.
    pub precision: Precision,
    /// Dynamic loss scaling (default [`LossScaling::Auto`]: on for f16 only), decided on the
    /// device inside the training step (see [`LossScaling`]).
    pub loss_scale: LossScaling,
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
            accumulate: 1,
            devices: 1,
            recompute: false,
            bucket_mb: DEFAULT_BUCKET_MB,
            precision: Precision::F32,
            loss_scale: LossScaling::Auto,
        }
    }
}

/// A parameter or buffer of a model, as saved.
#[derive(Clone, Debug)]
pub(crate) struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    /// Saved and loaded, but not trained (BatchNorm running statistics).
    pub buffer: bool,
    pub file_dtype: Dtype,
    /// The optimizer's weight decay applies to it (Llama exempts its norm weights).
    pub decay: bool,
}

/// The graph a model describes to the core.
pub(crate) struct Heads {
    /// The input (`[batch, ...]` f32 features, or u32 token ids when `tokens`).
    pub x: NodeId,
    pub tokens: bool,
    /// The loss's target input.
    pub target: NodeId,
    pub out_train: NodeId,
    pub out_eval: NodeId,
    pub loss_train: NodeId,
    pub loss_eval: NodeId,
    /// Dropout masks and BatchNorm layers of the training chain.
    pub train: TrainState,
    /// Output elements per example (what metrics score a row against).
    pub out_width: usize,
    /// Every parameter and buffer, in `state_dict` order.
    pub params: Vec<(NodeId, Param)>,
}

/// What a model tells the core. The core adds gradients, clipping and the optimizer.
pub(crate) trait Trainable {
    /// Declares the parameters (with their initial values) and builds the training and
    /// evaluation outputs and losses on `g`.
    fn build(&self, g: &Graph, config: &Compile) -> Result<Heads>;

    /// How a data set's targets feed the loss (fit and evaluate).
    fn prep(&self, data: &dyn Dataset, loss: Loss) -> Result<Prep>;

    /// Checks that a data set's rows are the model's input (fit and predict).
    fn check_features(&self, data: &dyn Dataset) -> Result<()>;

    /// The vocabulary when the input is token ids.
    fn token_vocab(&self) -> Option<usize>;

    /// The standard deviation a regression target is divided by before the model learns it (1
    /// when the target is learned as is): losses and metrics are reported in the target's units.
    fn target_scale(&self) -> f64 {
        1.0
    }

    /// Seeds shuffling, the validation split and dropout masks.
    fn seed(&self) -> u64;

    /// Parameters and values while no session holds them (saving before compile).
    fn host_params(&self) -> Result<Vec<(Param, Vec<f32>)>>;

    /// The metadata saved with the model (architecture, vocabulary, ...).
    fn write_metadata(&self, ck: &mut Checkpoint) -> Result<()>;
}

/// An empty graph for a model trained with `config`: its matmuls autocast to the half type of
/// `config.precision` (the one place mixed precision is applied: every graph a model trains or
/// takes gradients through starts here).
pub(crate) fn model_graph(config: &Compile) -> Graph {
    let g = Graph::new();
    g.set_autocast(config.precision.autocast());
    g
}

/// `net`'s graph with its gradients, clipping and optimizer updates: what a training session runs.
pub(crate) fn training_graph(net: &dyn Trainable, config: &Compile) -> Result<(Graph, Heads)> {
    let g = model_graph(config);
    let heads = net.build(&g, config)?;
    g.check()?;
    if config.recompute && g.segments().is_empty() {
        return Err(Error::InvalidArgument(
            "recompute: this model marks no segment to recompute (activation checkpointing is \
             for models that mark their blocks, such as Llama and CharGpt)"
                .into(),
        ));
    }
    // buffers (BatchNorm running statistics) are parameters of the graph, so they persist and
    // save like one, but they get no gradient and no optimizer update
    let trained: Vec<&(NodeId, Param)> = heads.params.iter().filter(|(_, p)| !p.buffer).collect();
    let trainable: Vec<NodeId> = trained.iter().map(|(n, _)| *n).collect();
    let decay: Vec<bool> = trained.iter().map(|(_, p)| p.decay).collect();
    declare_scaler(&g, config)?;
    let mut grads = g.gradients(heads.loss_train, &trainable)?;
    if config.accumulate == 0 {
        return Err(Error::InvalidArgument("accumulate: at least 1 micro-batch per update".into()));
    }
    if config.accumulate > 1 {
        grads = g.accumulate_gradients(&trainable, &grads, config.accumulate)?;
    }
    if g.scaler().is_some() {
        // (the accumulated sum: the scale is the same for every micro-batch of an update)
        grads = g.unscale_gradients(&grads)?;
    }
    if let Some(max_norm) = config.clip_norm {
        grads = g.clip_grad_norm(&grads, max_norm).0;
    }
    g.optimize_with(&trainable, &grads, config.optimizer, &decay)?;
    Ok((g, heads))
}

/// Declares the loss scaler `config` asks for on `g` (before its gradients are taken: they are
/// seeded with the scale).
pub(crate) fn declare_scaler(g: &Graph, config: &Compile) -> Result<()> {
    if let Some(scaler) = config.loss_scale.resolve(config.precision) {
        g.grad_scaler(scaler)?;
    }
    Ok(())
}

/// The loss scaler's state in `session` (`None` when the model trains without one).
pub(crate) fn scaler_state(session: &mut Session) -> Result<Option<kiln_graph::ScalerState>> {
    if session.graph().scaler().is_none() {
        return Ok(None);
    }
    let scale = session.get_state(kiln_graph::LOSS_SCALE)?;
    let tracker = session.get_state(kiln_graph::LOSS_SCALE_TRACKER)?;
    Ok(Some(kiln_graph::ScalerState::from_words(&scale, &tracker)))
}

/// A model bound to a backend: its session, graph heads and training configuration.
pub(crate) struct Bound {
    pub session: Session,
    pub heads: Heads,
    pub config: Compile,
    /// Micro-batches accumulated since the last optimizer update (below `config.accumulate`).
    pub micro: usize,
    /// The other replicas when `config.devices > 1`.
    pub replicas: Option<data_parallel::Replicas>,
}

/// Training state every model shares (see the module docs).
#[derive(Default)]
pub(crate) struct Core {
    pub bound: Option<Bound>,
    /// Epochs trained so far (what a resumed `fit` continues from).
    pub epochs_done: usize,
    /// The training configuration a loaded model was saved with.
    pub saved: Option<Compile>,
    /// Optimizer state (and step) read by `load`, applied by the next `compile`.
    pub pending_state: Option<(Checkpoint, u64)>,
    /// What the next `fit` continues from (early-stopping counters, best and last weights, an
    /// interrupted epoch); saved in the optimizer file.
    pub fit_state: Option<FitState>,
}

impl Core {
    /// Builds `net`'s graph with gradients and optimizer updates and binds it to `backend` (or the
    /// one `config` names). Parameters of an already bound model keep their current values.
    pub fn bind(
        &mut self,
        net: &dyn Trainable,
        config: Compile,
        backend: Option<Box<dyn Backend>>,
    ) -> Result<()> {
        let carried: Option<Vec<(String, Vec<f32>)>> = match &mut self.bound {
            Some(b) => Some(
                b.heads
                    .params
                    .iter()
                    .map(|(_, p)| Ok((p.name.clone(), b.session.get_param(&p.name)?)))
                    .collect::<Result<_>>()?,
            ),
            None => None,
        };
        let procs = crate::distributed::size();
        if (config.devices > 1 || procs > 1) && config.accumulate > 1 {
            return Err(Error::InvalidArgument(format!(
                "accumulate {} with devices {} in {procs} processes: gradient accumulation and \
                 several devices or processes do not combine yet; use one of them (a larger global \
                 batch over the devices, or accumulation on one device)",
                config.accumulate, config.devices
            )));
        }
        // several processes (an MPI job): every process is a data-parallel replica
        let (mut session, heads, replicas) = if config.devices > 1 || procs > 1 {
            let (session, heads, replicas) = data_parallel::bind(net, &config, backend)?;
            (session, heads, Some(replicas))
        } else {
            let (g, heads) = training_graph(net, &config)?;
            let backend = match backend {
                Some(b) => b,
                None => kiln_device::open(config.backend)?,
            };
            (Session::new(g, backend)?, heads, None)
        };
        for (name, values) in carried.unwrap_or_default() {
            session.set_param(&name, &values)?;
        }
        self.bound = Some(Bound { session, heads, config, micro: 0, replicas });
        self.restore_pending_state()
    }

    /// Binds `net` again with `config` (another device count, backend or recompute setting),
    /// keeping the parameters, the optimizer state and the step.
    pub fn rebind(&mut self, net: &dyn Trainable, config: Compile) -> Result<()> {
        let b = self.bound_mut()?;
        let names = b.session.state_names().into_iter().filter(|n| !data_parallel::is_grad_state(n));
        let states = names.map(|n| Ok((b.session.get_state(&n)?, n))).collect::<Result<Vec<_>>>()?;
        let step = b.session.step_count();
        self.bind(net, config, None)?;
        let b = self.bound_mut()?;
        for (data, name) in states {
            b.session.set_state(&name, &data)?;
        }
        b.session.set_step_count(step);
        Ok(())
    }

    /// The loss scaler's state (`None` without one or before compile).
    pub fn loss_scale(&mut self) -> Result<Option<kiln_graph::ScalerState>> {
        match &mut self.bound {
            Some(b) => scaler_state(&mut b.session),
            None => Ok(None),
        }
    }

    /// Where data-parallel steps spent their time (`None` on one device or before compile).
    pub fn step_times(&self) -> Option<StepTimes> {
        self.bound.as_ref()?.replicas.as_ref().map(|r| r.times)
    }

    pub fn bound_mut(&mut self) -> Result<&mut Bound> {
        self.bound.as_mut().ok_or_else(|| Error::Model("call compile() before fit/evaluate/predict".into()))
    }

    /// Every parameter and its current values (from the session once bound).
    pub fn params(&mut self, net: &dyn Trainable) -> Result<Vec<(Param, Vec<f32>)>> {
        match &mut self.bound {
            Some(b) => {
                b.heads.params.iter().map(|(_, p)| Ok((p.clone(), b.session.get_param(&p.name)?))).collect()
            }
            None => net.host_params(),
        }
    }

    /// One optimizer step on fed inputs at the schedule's rate; returns the batch's mean loss
    /// (before the update). A non-finite loss is an error naming the step. With
    /// `accumulate = N`, a micro-step: every N-th call updates, from the N batches' gradients
    /// weighted equally (batches of one size).
    pub fn train_step(&mut self, feeds: &[(NodeId, HostData<'_>)]) -> Result<f32> {
        let b = self.bound_mut()?;
        let step = b.session.step_count();
        b.session.set_lr(b.config.schedule.lr(b.config.optimizer.lr(), step));
        let loss = match b.replicas {
            Some(_) => data_parallel::step(b, feeds, data_parallel::rows_of(&b.session, feeds), None)?.0,
            None => {
                let n = b.config.accumulate.max(1);
                let fetch = [b.heads.loss_train];
                let pending = if n > 1 {
                    b.session.set_grad_weight(1.0 / n as f32)?;
                    let update = b.micro + 1 == n;
                    let p = if update {
                        b.session.train(feeds, &fetch)?
                    } else {
                        b.session.accumulate(feeds, &fetch)?
                    };
                    b.micro = if update { 0 } else { b.micro + 1 };
                    p
                } else {
                    b.session.train(feeds, &fetch)?
                };
                b.session.wait(pending)?.remove(0).into_f32()?[0]
            }
        };
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss { loss, epoch: 0, step: 0, global_step: step + 1 });
        }
        Ok(loss)
    }
}
