//! `fit`: epochs of shuffled batches, validation, callbacks and reporting.

use std::path::PathBuf;

use kiln_device::HostData;
use kiln_graph::{Feed, Pending, Session};
use serde::{Deserialize, Serialize};

use super::{Bound, Core, Heads, Trainable};
use crate::data::{epoch_order, train_val_split, Dataset};
use crate::layers::check_batch_norm_batch;
use crate::losses::Loss;
use crate::metrics::{Metric, MetricSum, Truth};
use crate::report::{EpochRecord, History, JsonLog, Progress};
use crate::stream::{stream, MaskPlan, Prep, StepBatch};
use crate::{Error, Result};

/// Where validation data comes from.
#[derive(Clone, Copy, Default)]
pub enum Validation<'a> {
    /// No validation: no `val_` values, early stopping and `checkpoint_best` watch `loss`.
    #[default]
    None,
    /// Hold out this fraction of the training rows (seeded), as Keras' `validation_split`.
    Split(f64),
    /// A separate data set.
    Data(&'a (dyn Dataset + Sync)),
}

/// Stop when a monitored value has not improved for `patience` epochs.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    /// `loss`, `val_loss`, a metric name or `val_` + a metric name. Losses and errors are
    /// minimized; accuracy is maximized.
    pub monitor: String,
    /// Epochs without improvement after which training stops.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the weights of the best epoch when training stops.
    pub restore_best: bool,
}

impl EarlyStopping {
    /// Watch `monitor` with `patience` epochs; `min_delta` 0, best weights restored.
    pub fn new(monitor: &str, patience: usize) -> Self {
        EarlyStopping { monitor: monitor.to_string(), patience, min_delta: 0.0, restore_best: true }
    }
}

/// How `fit` trains (Keras' `fit` arguments).
///
/// `epochs` counts epochs **in total**, as Keras' `epochs` with `initial_epoch` set to the epochs
/// the model has already done: a fresh model trains epochs `1..=epochs`, a model that has done
/// `n` epochs (a second `fit`, or one loaded to resume) trains epochs `n+1..=epochs`. Asking for
/// no more than `n` would train nothing, so it is an error that says what to ask for: after 100
/// epochs, `epochs: 110` trains 10 more.
///
/// On a [`Table`](crate::data::Table) (anything whose [`Dataset::feature_names`] are known) the
/// first `fit` of a model records the feature names and class labels in
/// [`Sequential::data`](crate::Sequential), and, unless turned off, fits a standardizer of the
/// features (`standardize`) and of a regression target (`standardize_target`) on the training
/// rows; `fit`, `evaluate` and `predict` then apply them to every data set (pass raw data, not
/// data standardized by hand), and `save` stores them with the model.
///
/// Defaults: 1 epoch, batches of 32, shuffled, no validation, no early stopping, checkpoint, log or
/// curves, progress shown, features and regression targets standardized.
///
/// ```
/// use kiln_trainer::prelude::*;
///
/// let opts = FitOptions {
///     epochs: 50,
///     batch_size: 64,
///     validation: Validation::Split(0.2), // hold out 20% of the training rows
///     early_stopping: Some(EarlyStopping::new("val_loss", 5)),
///     quiet: true,
///     ..Default::default()
/// };
/// assert!(opts.shuffle && opts.standardize);
/// assert_eq!(FitOptions::default().epochs, 1);
/// ```
#[derive(Clone)]
pub struct FitOptions<'a> {
    /// Train until this many epochs have been done in total (see above).
    pub epochs: usize,
    /// Rows per training step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Visit the rows in a new seeded order every epoch (else in order).
    pub shuffle: bool,
    /// Where the `val_` loss and metrics of each epoch come from.
    pub validation: Validation<'a>,
    /// Stop when a monitored value stops improving (`None`: train all `epochs`).
    pub early_stopping: Option<EarlyStopping>,
    /// Save the model here whenever the early-stopping monitor (or `val_loss`, else `loss`)
    /// improves.
    pub checkpoint_best: Option<PathBuf>,
    /// A JSON-lines log, one object per epoch.
    pub log: Option<PathBuf>,
    /// Write the loss and metric curves of this fit here as an SVG plot
    /// ([`write_svg`](crate::report::write_svg)) when it ends.
    pub curves: Option<PathBuf>,
    /// No progress bars, epoch lines or end-of-training line.
    pub quiet: bool,
    /// Standardize the features (per column, statistics of the training rows) on the first fit of
    /// a table, as the CLI does (default on).
    pub standardize: bool,
    /// Standardize a regression target (MSE or MAE loss, one output) on the first fit of a table;
    /// losses, metrics and predictions stay in the target's units (default on).
    pub standardize_target: bool,
    /// Keras' `steps_per_epoch`: an epoch is this many steps (the validation, log line,
    /// checkpoint and early-stopping interval), taken from passes over the rows that continue
    /// across epochs (pass `p` in its own seeded order when shuffling). How a language model
    /// trains for a number of steps with a validation loss every N of them. `None`: an epoch is
    /// one pass over the rows.
    pub steps_per_epoch: Option<usize>,
    /// With `steps_per_epoch`: the run's optimizer steps in all, counted from its first epoch
    /// (resumed fits included); the epoch that reaches it is cut short there (a language model
    /// trained for `--steps 250` with a validation every 100: epochs of 100, 100 and 50).
    pub max_steps: Option<usize>,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            validation: Validation::None,
            early_stopping: None,
            checkpoint_best: None,
            log: None,
            curves: None,
            quiet: false,
            standardize: true,
            standardize_target: true,
            steps_per_epoch: None,
            max_steps: None,
        }
    }
}

/// Sums over the batches of an epoch (train or evaluation).
pub(crate) struct Tally {
    loss: f64,
    rows: usize,
    pub steps: usize,
    pub metrics: Vec<MetricSum>,
    /// Factors that turn the loss and each metric back into the target's units (see `scaled`).
    loss_factor: f64,
    metric_factors: Vec<f64>,
}

impl Tally {
    pub fn new(metrics: &[Metric]) -> Self {
        Tally {
            loss: 0.0,
            rows: 0,
            steps: 0,
            metrics: metrics.iter().map(|&m| MetricSum::new(m)).collect(),
            loss_factor: 1.0,
            metric_factors: vec![1.0; metrics.len()],
        }
    }

    /// Reports errors in the original units of a target the model learns standardized (divided
    /// by `std`): absolute errors times `std`, squared errors times `std`².
    pub fn scaled(mut self, std: f64, loss: Loss) -> Self {
        let factor = |squared: bool| if squared { std * std } else { std };
        self.loss_factor = match loss {
            Loss::Mse => factor(true),
            Loss::Mae => factor(false),
            _ => 1.0,
        };
        self.metric_factors = self
            .metrics
            .iter()
            .map(|m| match m.metric {
                Metric::Mse => factor(true),
                Metric::Mae => factor(false),
                Metric::Accuracy => 1.0,
            })
            .collect();
        self
    }

    /// Adds one batch whose mean loss is `loss` and predictions `pred`.
    pub fn add(&mut self, batch: &StepBatch, loss: f32, pred: &[f32], width: usize, logit_output: bool) {
        self.loss += loss as f64 * batch.rows as f64;
        self.rows += batch.rows;
        self.steps += 1;
        let truth =
            if batch.values.is_empty() { Truth::Labels(&batch.labels) } else { Truth::Values(&batch.values) };
        let truth = match truth {
            // accuracy against class ids when we have them, whatever the loss wanted
            Truth::Values(_) if !batch.labels.is_empty() && width > 1 => Truth::Labels(&batch.labels),
            t => t,
        };
        for m in &mut self.metrics {
            m.add(pred, width, truth, logit_output);
        }
    }

    pub fn loss(&self) -> f64 {
        self.loss / self.rows as f64 * self.loss_factor
    }

    pub fn metric_values(&self) -> Vec<(String, f64)> {
        self.metrics
            .iter()
            .zip(&self.metric_factors)
            .map(|(m, f)| (m.metric.name().to_string(), m.value() * f))
            .collect()
    }
}

/// Feeds for one batch.
pub(crate) fn feeds<'b>(built: &Heads, batch: &'b StepBatch, prep: Prep, train: bool) -> Vec<Feed<'b>> {
    let x = if built.tokens { HostData::U32(&batch.tokens) } else { HostData::F32(&batch.features) };
    let mut f: Vec<Feed<'b>> = vec![(built.x, x)];
    match prep {
        Prep::None => {}
        Prep::Labels | Prep::NextToken => f.push((built.target, HostData::U32(&batch.labels))),
        _ => f.push((built.target, HostData::F32(&batch.values))),
    }
    if train {
        f.extend(built.train.masks.iter().zip(&batch.masks).map(|(m, data)| (m.node, HostData::F32(data))));
    }
    f
}

/// Waits for a step and returns (loss, predictions).
pub(crate) fn collect(session: &mut Session, pending: Pending) -> Result<(f32, Vec<f32>)> {
    let mut out = session.wait(pending)?.into_iter();
    let loss =
        out.next().map(|v| v.into_f32()).transpose()?.and_then(|v| v.first().copied()).unwrap_or(f32::NAN);
    let pred = out.next().map(|v| v.into_f32()).transpose()?.unwrap_or_default();
    Ok((loss, pred))
}

/// What one `fit` hands the next, in memory and through `save`/`load` (the optimizer file), so that
/// fits resumed from any point train as one uninterrupted fit would: the monitor's counters, the
/// best weights (when early stopping will restore them) and the last weights (when the model holds
/// restored best weights), and the place in an epoch an interrupt stopped at. Shuffling, the
/// validation split and dropout masks need no state: they derive from the seed and the epoch or
/// the global step. A fit that stopped early has finished: the next one starts afresh from the
/// restored weights.
#[derive(Clone, Debug, Default)]
pub(crate) struct FitState {
    pub counters: Counters,
    /// By parameter name.
    pub best_weights: Option<Vec<(String, Vec<f32>)>>,
    /// The weights training continues from, when they are not the model's (restored best) ones.
    pub last_weights: Option<Vec<(String, Vec<f32>)>>,
}

/// The serializable part of [`FitState`]; floats as bits, exact through JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub monitor: String,
    /// The best monitored value (f64 bits), its epoch (1-based) and the epochs since.
    pub best: Option<u64>,
    pub best_epoch: usize,
    pub waited: usize,
    /// An epoch cut short by an interrupt.
    pub partial: Option<Partial>,
}

/// The part of an epoch done before an interrupt: resuming runs the rest of its shuffled order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Partial {
    pub steps_done: usize,
    pub batch_size: usize,
    /// Training rows, and whether they were shuffled (the order must be the same on resume).
    pub rows: usize,
    pub shuffle: bool,
    /// Micro-batches per update (files from before accumulation: 1); an interrupt stops at an
    /// update, so `steps_done` is a multiple of it.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// The epoch's sums so far: loss (f64 bits), rows, and (total, count) bits per metric.
    pub loss: u64,
    pub tally_rows: usize,
    pub metrics: Vec<[u64; 2]>,
    pub seconds: f64,
}

/// Where an interrupt stopped `fit` inside an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StoppedAt {
    /// 1-based.
    pub epoch: usize,
    /// Steps of that epoch done, of `steps`.
    pub step: usize,
    /// Steps in that epoch.
    pub steps: usize,
}

fn one() -> usize {
    1
}

/// The weight of batch `k` (of `rows` rows) of an epoch of `total` rows in batches of
/// `batch_size`, accumulated `n` per update: its rows over its window's rows, and whether it
/// completes the window (the window's last batch, or the epoch's).
fn micro_weight(k: usize, rows: usize, batch_size: usize, n: usize, total: usize) -> (f32, bool) {
    let start = (k / n) * n * batch_size;
    let end = (start + n * batch_size).min(total);
    let last = (k + 1).is_multiple_of(n) || (k + 1) * batch_size >= total;
    (rows as f32 / (end - start) as f32, last)
}

fn improved(monitor: &str, new: f64, best: Option<f64>, min_delta: f64) -> bool {
    let maximize = monitor.ends_with("accuracy");
    match best {
        None => new.is_finite(),
        Some(b) if maximize => new > b + min_delta,
        Some(b) => new < b - min_delta,
    }
}

impl Core {
    /// Fails (on every rank) unless every rank of the process group starts this fit alike: the
    /// same training rows, batch size, epochs, epochs done, step, seed and weights.
    fn check_ranks_agree(&mut self, net: &dyn Trainable, opts: &FitOptions<'_>, rows: usize) -> Result<()> {
        let weights = self.params(net)?;
        let step = self.bound_mut()?.session.step_count();
        let what = [
            "number of training rows",
            "batch size",
            "number of epochs",
            "steps per epoch",
            "shuffle",
            "number of epochs done (a resumed file)",
            "optimizer step (a resumed file)",
            "seed",
            "weights (initial or resumed)",
        ];
        let values = [
            rows as u64,
            opts.batch_size as u64,
            opts.epochs as u64,
            opts.steps_per_epoch.map_or(0, |s| s as u64 + 1),
            u64::from(opts.shuffle),
            self.epochs_done as u64,
            step,
            net.seed(),
            crate::distributed::checksum(weights.iter().map(|(_, w)| w.as_slice())),
        ];
        crate::distributed::check_same(&what, &values)
    }

    /// Trains `net` on `data` (Keras' `fit`). Returns the per-epoch history. A NaN or infinite
    /// loss stops training with [`Error::NonFiniteLoss`] naming the step.
    pub fn fit(
        &mut self,
        net: &dyn Trainable,
        data: &(dyn Dataset + Sync),
        opts: &FitOptions<'_>,
    ) -> Result<History> {
        // in a job of several processes only rank 0 logs, plots, prints and checkpoints
        let root_opts;
        let opts = if crate::distributed::is_root() {
            opts
        } else {
            root_opts =
                FitOptions { log: None, curves: None, checkpoint_best: None, quiet: true, ..opts.clone() };
            &root_opts
        };
        let config = self.bound_mut()?.config.clone();
        let n_acc = config.accumulate.max(1);
        if self.bound_mut()?.micro > 0 {
            return Err(Error::InvalidArgument(
                "fit: micro-batches accumulated by train_step are not yet applied; finish the update \
                 first"
                    .into(),
            ));
        }
        if opts.epochs <= self.epochs_done {
            return Err(Error::InvalidArgument(format!(
                "fit: the model has already trained {done} epochs and `epochs` ({e}) counts epochs in \
                 total (Keras' `epochs` with `initial_epoch` = the epochs done), so there is nothing to \
                 train; ask for epochs = {more} to train {e} more",
                done = self.epochs_done,
                e = opts.epochs,
                more = self.epochs_done + opts.epochs.max(1),
            )));
        }
        let prep = net.prep(data, config.loss)?;
        net.check_features(data)?;
        let (train_rows, split_val) = match opts.validation {
            Validation::Split(f) => {
                let (t, v) = train_val_split(data.len(), f, net.seed() ^ 0x5A11)?;
                (t, Some(v))
            }
            _ => ((0..data.len()).collect(), None),
        };
        if train_rows.is_empty() {
            return Err(Error::InvalidArgument("no training rows".into()));
        }
        let monitor = opts.early_stopping.as_ref().map(|e| e.monitor.clone()).unwrap_or_else(|| {
            if matches!(opts.validation, Validation::None) { "loss" } else { "val_loss" }.to_string()
        });
        let mut known = vec!["loss".to_string()];
        known.extend(config.metrics.iter().map(|m| m.name().to_string()));
        if !matches!(opts.validation, Validation::None) {
            known.extend(known.clone().iter().map(|k| format!("val_{k}")));
        }
        if !known.contains(&monitor) {
            return Err(Error::InvalidArgument(format!(
                "cannot monitor '{monitor}': this fit reports {}",
                known.join(", ")
            )));
        }
        if crate::distributed::size() > 1 {
            self.check_ranks_agree(net, opts, train_rows.len())?;
        }
        let mut log = match &opts.log {
            Some(p) => Some(JsonLog::open(p, self.epochs_done > 0)?),
            None => None,
        };
        let mut history = History::default();
        let restore_best = opts.early_stopping.as_ref().is_some_and(|e| e.restore_best);
        let mut state = self.fit_state.take().unwrap_or_default();
        if state.counters.monitor != monitor {
            // a first fit, or one that monitors something else: counters start afresh
            let partial = state.counters.partial.take();
            state.counters = Counters { monitor: monitor.clone(), partial, ..Counters::default() };
            state.best_weights = None;
        }
        if !restore_best {
            state.best_weights = None;
        }
        if let Some(p) = &state.counters.partial {
            let (rows, metrics) = (train_rows.len(), config.metrics.len());
            if (p.batch_size, p.rows, p.shuffle, p.metrics.len(), p.accumulate)
                != (opts.batch_size, rows, opts.shuffle, metrics, n_acc)
            {
                let message = format!(
                    "resuming epoch {} at step {} needs the interrupted fit's batch size {}, {} \
                     training rows, shuffle {}, {} metrics and accumulate {} (given {}, {}, {}, {} \
                     and {})",
                    self.epochs_done + 1,
                    p.steps_done + 1,
                    p.batch_size,
                    p.rows,
                    p.shuffle,
                    p.metrics.len(),
                    p.accumulate,
                    opts.batch_size,
                    rows,
                    opts.shuffle,
                    metrics,
                    n_acc
                );
                self.fit_state = Some(state); // kept for a fit that matches
                return Err(Error::InvalidArgument(message));
            }
        }
        if self.epochs_done < opts.epochs {
            if let Some(last) = state.last_weights.take() {
                let b = self.bound_mut()?;
                for (name, w) in &last {
                    b.session.set_param(name, w)?;
                }
            }
        }
        let logit_output = config.loss.output_is_logit();

        while self.epochs_done < opts.epochs {
            let epoch = self.epochs_done;
            let pass_order = |pass: usize| -> Vec<usize> {
                if opts.shuffle {
                    epoch_order(train_rows.len(), net.seed(), pass as u64)
                        .into_iter()
                        .map(|i| train_rows[i])
                        .collect()
                } else {
                    train_rows.clone()
                }
            };
            let order: Vec<usize> = match opts.steps_per_epoch {
                None => pass_order(epoch),
                Some(spe) => {
                    // rows [epoch * per, (epoch + 1) * per) of the passes laid end to end
                    let (n, per) = (train_rows.len(), spe.max(1) * n_acc * opts.batch_size.max(1));
                    let (mut at, mut end) = (epoch * per, (epoch + 1) * per);
                    if let Some(total) = opts.max_steps {
                        end = end.min(total * n_acc * opts.batch_size.max(1));
                    }
                    let mut rows = Vec::with_capacity(per);
                    while at < end {
                        let (pass, from) = (at / n, at % n);
                        let take = (n - from).min(end - at);
                        rows.extend_from_slice(&pass_order(pass)[from..from + take]);
                        at += take;
                    }
                    rows
                }
            };
            if order.is_empty() {
                break; // `max_steps` reached before this epoch
            }
            let steps = order.len().div_ceil(opts.batch_size.max(1));
            let mut progress = Progress::new(epoch + 1, opts.epochs, steps, opts.quiet);
            let mut tally = Tally::new(&config.metrics).scaled(net.target_scale(), config.loss);
            let (mut skip, mut seconds_before) = (0, 0.0);
            // batches of this epoch submitted so far (the window of accumulation they fall in)
            let mut submitted = 0;
            if let Some(p) = state.counters.partial.take() {
                submitted = p.steps_done;
                skip = (p.steps_done * opts.batch_size).min(order.len());
                tally.loss = f64::from_bits(p.loss);
                tally.rows = p.tally_rows;
                tally.steps = p.steps_done;
                for (m, [total, count]) in tally.metrics.iter_mut().zip(&p.metrics) {
                    m.set_sums(f64::from_bits(*total), f64::from_bits(*count));
                }
                seconds_before = p.seconds;
            }
            let vocab = net.token_vocab();
            let c = self.bound.as_mut().expect("compiled above");
            let masks = MaskPlan {
                layers: c.heads.train.masks.iter().map(|m| (m.rate, m.width)).collect(),
                seed: net.seed(),
                // (masks by micro-batch: an epoch starts at an update, after step_count * n)
                first_step: c.session.step_count() * n_acc as u64,
                tokens: vocab,
            };
            let mut in_flight: Option<(Pending, StepBatch)> = None;
            let mut lr = 0.0;
            let finish_with =
                |c: &mut Bound, loss: f32, pred: &[f32], b: &StepBatch, tally: &mut Tally| -> Result<()> {
                    if !loss.is_finite() {
                        return Err(Error::NonFiniteLoss {
                            loss,
                            epoch: epoch + 1,
                            step: tally.steps + 1,
                            global_step: c.session.step_count(),
                        });
                    }
                    tally.add(b, loss, pred, c.heads.out_width, logit_output);
                    Ok(())
                };
            let finish = |c: &mut Bound, (p, b): (Pending, StepBatch), tally: &mut Tally| -> Result<()> {
                let (loss, pred) = collect(&mut c.session, p)?;
                finish_with(c, loss, &pred, &b, tally)
            };
            let mut stopped = false;
            let streamed = stream(data, &order[skip..], opts.batch_size, prep, &masks, |batch| {
                if crate::interrupt::stop_requested() && submitted.is_multiple_of(n_acc) {
                    // asked to stop (SIGINT): at the end of the step in flight (an update)
                    stopped = true;
                    return Err(Error::InvalidArgument("interrupted".into()));
                }
                lr = config.schedule.lr(config.optimizer.lr(), c.session.step_count());
                c.session.set_lr(lr);
                check_batch_norm_batch(&c.heads.train.bn, batch.rows)?;
                // the outputs are read back only when a metric scores them
                let fetch = [c.heads.loss_train, c.heads.out_train];
                let fetch = if config.metrics.is_empty() { &fetch[..1] } else { &fetch[..] };
                let reported = if c.replicas.is_some() {
                    // several devices: a synchronous step (the gradients are summed before the update)
                    let fed = feeds(&c.heads, &batch, prep, true);
                    let (loss, pred) =
                        super::data_parallel::step(c, &fed, batch.rows, fetch.get(1).copied())?;
                    finish_with(c, loss, &pred, &batch, &mut tally)?;
                    submitted += 1;
                    true
                } else {
                    let (weight, update) =
                        micro_weight(submitted, batch.rows, opts.batch_size, n_acc, order.len());
                    let fed = feeds(&c.heads, &batch, prep, true);
                    let pending = if n_acc == 1 {
                        c.session.train(&fed, fetch)?
                    } else {
                        c.session.set_grad_weight(weight)?;
                        c.micro = if update { 0 } else { c.micro + 1 };
                        if update {
                            c.session.train(&fed, fetch)?
                        } else {
                            c.session.accumulate(&fed, fetch)?
                        }
                    };
                    submitted += 1;
                    // the previous step's results arrive while this one runs
                    let prev = in_flight.replace((pending, batch));
                    prev.map(|prev| finish(c, prev, &mut tally)).transpose()?.is_some()
                };
                if reported {
                    // a language model's throughput in tokens (inputs per row times rows)
                    let tokens_per_s = vocab.map(|_| {
                        let rows = (tally.rows - skip.min(tally.rows)) as f64;
                        rows * data.feature_width().saturating_sub(1) as f64 / progress.elapsed().max(1e-9)
                    });
                    progress.step(tally.steps, || {
                        let mut parts = vec![format!("loss {:.4}", tally.loss())];
                        parts.extend(tally.metric_values().iter().map(|(n, v)| format!("{n} {v:.4}")));
                        parts.extend(tokens_per_s.map(|t| format!("{t:.0} tokens/s")));
                        parts.join(" - ")
                    });
                }
                Ok(())
            });
            match streamed {
                Err(_) if stopped => {}
                r => r?,
            }
            if let Some(last) = in_flight.take() {
                finish(c, last, &mut tally)?;
            }
            let seconds = seconds_before + progress.elapsed();
            if stopped {
                progress.finish("", false);
                if tally.steps > 0 {
                    state.counters.partial = Some(Partial {
                        steps_done: tally.steps,
                        batch_size: opts.batch_size,
                        rows: order.len(),
                        shuffle: opts.shuffle,
                        accumulate: n_acc,
                        loss: tally.loss.to_bits(),
                        tally_rows: tally.rows,
                        metrics: tally
                            .metrics
                            .iter()
                            .map(|m| {
                                let (t, n) = m.sums();
                                [t.to_bits(), n.to_bits()]
                            })
                            .collect(),
                        seconds,
                    });
                    history.stopped_at = Some(StoppedAt { epoch: epoch + 1, step: tally.steps, steps });
                }
                break;
            }
            self.epochs_done += 1;

            let steps = steps.div_ceil(n_acc); // optimizer updates
            let val = match (opts.validation, &split_val) {
                (Validation::Data(v), _) => Some(self.evaluate_rows(net, v, None, opts.batch_size)?),
                (Validation::Split(_), Some(rows)) => {
                    Some(self.evaluate_rows(net, data, Some(rows), opts.batch_size)?)
                }
                _ => None,
            };
            let record = EpochRecord {
                epoch: self.epochs_done,
                loss: tally.loss(),
                metrics: tally.metric_values(),
                val_loss: val.as_ref().map(|v| v.loss),
                val_metrics: val.map(|v| v.metrics).unwrap_or_default(),
                lr,
                steps,
                seconds,
                steps_per_s: steps as f64 / seconds.max(1e-9),
                loss_scale: super::scaler_state(&mut self.bound_mut()?.session)?
                    .map(|s| (s.scale, s.skipped)),
            };
            // about 20 epoch lines per run; the bar shows every epoch on a terminal
            let every = (opts.epochs / 20).max(1);
            let show = record.epoch == 1 || record.epoch.is_multiple_of(every) || record.epoch == opts.epochs;
            let mut line = format!("{} - {:.0} steps/s", record.summary(), record.steps_per_s);
            if vocab.is_some() {
                // a language model's throughput: input tokens per second
                let tokens = tally.rows as f64 * data.feature_width().saturating_sub(1) as f64;
                line.push_str(&format!(" - {:.0} tokens/s", tokens / seconds.max(1e-9)));
            }
            progress.finish(&line, show);
            if let Some(log) = &mut log {
                log.write(&record)?;
            }
            let value = record.get(&monitor).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "cannot monitor '{monitor}': not a loss or compiled metric here"
                ))
            })?;
            history.epochs.push(record);

            let min_delta = opts.early_stopping.as_ref().map_or(0.0, |e| e.min_delta);
            let cn = &mut state.counters;
            if improved(&monitor, value, cn.best.map(f64::from_bits), min_delta) {
                cn.best = Some(value.to_bits());
                cn.best_epoch = self.epochs_done;
                cn.waited = 0;
                if restore_best {
                    let w = self.params(net)?.into_iter().map(|(p, w)| (p.name, w)).collect();
                    state.best_weights = Some(w);
                }
                if let Some(path) = &opts.checkpoint_best {
                    // the file resumes as this fit would continue
                    self.fit_state = Some(state);
                    let saved = self.save(net, path);
                    state = self.fit_state.take().expect("set above");
                    saved?;
                }
            } else {
                cn.waited += 1;
            }
            if crate::interrupt::stop_requested() {
                break; // asked to stop (SIGINT): this epoch's weights are kept, to resume from
            }
            if let Some(es) = &opts.early_stopping {
                if state.counters.waited > es.patience {
                    history.stopped_early = true;
                    break;
                }
            }
        }
        let best_epoch = state.counters.best_epoch;
        // (held last weights mean the model holds the restored best ones already: a fit with no
        // epochs left)
        let restore = restore_best && state.last_weights.is_none() && best_epoch != self.epochs_done;
        if restore && !crate::interrupt::stop_requested() {
            if let Some(weights) = state.best_weights.take() {
                let last = self.params(net)?.into_iter().map(|(p, w)| (p.name, w)).collect();
                let b = self.bound_mut()?;
                for (name, w) in &weights {
                    b.session.set_param(name, w)?;
                }
                history.restored_epoch = Some(best_epoch);
                state.best_weights = Some(weights);
                state.last_weights = Some(last);
            }
        }
        history.monitor = monitor;
        if !opts.quiet {
            if let Some(line) = history.end_line() {
                eprintln!("{line}");
            }
        }
        if let Some(path) = opts.curves.as_ref().filter(|_| !history.epochs.is_empty()) {
            crate::report::write_svg(path, &history.epochs)?;
        }
        // a fit that stopped early has finished: the next starts afresh from the weights it holds
        self.fit_state = (!history.stopped_early).then_some(state);
        Ok(history)
    }
}
