//! `fit`: epochs of shuffled batches, validation, callbacks and reporting.

use std::path::PathBuf;

use kiln_device::HostData;
use kiln_graph::{Feed, Pending, Session};

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
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the weights of the best epoch when training stops.
    pub restore_best: bool,
}

impl EarlyStopping {
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
#[derive(Clone)]
pub struct FitOptions<'a> {
    /// Train until this many epochs have been done in total (see above).
    pub epochs: usize,
    pub batch_size: usize,
    pub shuffle: bool,
    pub validation: Validation<'a>,
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

fn improved(monitor: &str, new: f64, best: Option<f64>, min_delta: f64) -> bool {
    let maximize = monitor.ends_with("accuracy");
    match best {
        None => new.is_finite(),
        Some(b) if maximize => new > b + min_delta,
        Some(b) => new < b - min_delta,
    }
}

impl Core {
    /// Trains `net` on `data` (Keras' `fit`). Returns the per-epoch history. A NaN or infinite
    /// loss stops training with [`Error::NonFiniteLoss`] naming the step.
    pub fn fit(
        &mut self,
        net: &dyn Trainable,
        data: &(dyn Dataset + Sync),
        opts: &FitOptions<'_>,
    ) -> Result<History> {
        let config = self.bound_mut()?.config.clone();
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
        let mut log = match &opts.log {
            Some(p) => Some(JsonLog::open(p, self.epochs_done > 0)?),
            None => None,
        };
        let mut history = History::default();
        let (mut best, mut best_epoch, mut best_weights, mut waited) = (None, 0, None, 0);
        let logit_output = config.loss.output_is_logit();

        while self.epochs_done < opts.epochs {
            let epoch = self.epochs_done;
            let order: Vec<usize> = if opts.shuffle {
                epoch_order(train_rows.len(), net.seed(), epoch as u64)
                    .into_iter()
                    .map(|i| train_rows[i])
                    .collect()
            } else {
                train_rows.clone()
            };
            let steps = order.len().div_ceil(opts.batch_size.max(1));
            let mut progress = Progress::new(epoch + 1, opts.epochs, steps, opts.quiet);
            let mut tally = Tally::new(&config.metrics).scaled(net.target_scale(), config.loss);
            let vocab = net.token_vocab();
            let c = self.bound.as_mut().expect("compiled above");
            let masks = MaskPlan {
                layers: c.heads.train.masks.iter().map(|m| (m.rate, m.width)).collect(),
                seed: net.seed(),
                first_step: c.session.step_count(),
                tokens: vocab,
            };
            let mut in_flight: Option<(Pending, StepBatch)> = None;
            let mut lr = 0.0;
            let finish = |c: &mut Bound, (p, b): (Pending, StepBatch), tally: &mut Tally| -> Result<()> {
                let (loss, pred) = collect(&mut c.session, p)?;
                if !loss.is_finite() {
                    return Err(Error::NonFiniteLoss {
                        loss,
                        epoch: epoch + 1,
                        step: tally.steps + 1,
                        global_step: c.session.step_count(),
                    });
                }
                tally.add(&b, loss, &pred, c.heads.out_width, logit_output);
                Ok(())
            };
            stream(data, &order, opts.batch_size, prep, &masks, |batch| {
                lr = config.schedule.lr(config.optimizer.lr(), c.session.step_count());
                c.session.set_lr(lr);
                check_batch_norm_batch(&c.heads.train.bn, batch.rows)?;
                let fetch = [c.heads.loss_train, c.heads.out_train];
                let pending = c.session.train(&feeds(&c.heads, &batch, prep, true), &fetch)?;
                // the previous step's results arrive while this one runs
                if let Some(prev) = in_flight.replace((pending, batch)) {
                    finish(c, prev, &mut tally)?;
                    progress.step(tally.steps, || {
                        let mut parts = vec![format!("loss {:.4}", tally.loss())];
                        parts.extend(tally.metric_values().iter().map(|(n, v)| format!("{n} {v:.4}")));
                        parts.join(" - ")
                    });
                }
                Ok(())
            })?;
            if let Some(last) = in_flight.take() {
                finish(c, last, &mut tally)?;
            }
            let seconds = progress.elapsed();
            self.epochs_done += 1;

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
            };
            // about 20 epoch lines per run; the bar shows every epoch on a terminal
            let every = (opts.epochs / 20).max(1);
            let show = record.epoch == 1 || record.epoch.is_multiple_of(every) || record.epoch == opts.epochs;
            progress.finish(&format!("{} - {:.0} steps/s", record.summary(), record.steps_per_s), show);
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
            if improved(&monitor, value, best, min_delta) {
                best = Some(value);
                best_epoch = self.epochs_done;
                waited = 0;
                if opts.early_stopping.as_ref().is_some_and(|e| e.restore_best) {
                    best_weights = Some(self.params(net)?);
                }
                if let Some(path) = &opts.checkpoint_best {
                    self.save(net, path)?;
                }
            } else {
                waited += 1;
            }
            if crate::interrupt::stop_requested() {
                break; // asked to stop (SIGINT): this epoch's weights are kept, to resume from
            }
            if let Some(es) = &opts.early_stopping {
                if waited > es.patience {
                    history.stopped_early = true;
                    break;
                }
            }
        }
        if let Some(weights) = best_weights.filter(|_| !crate::interrupt::stop_requested()) {
            if best_epoch != self.epochs_done {
                let b = self.bound_mut()?;
                for (p, w) in &weights {
                    b.session.set_param(&p.name, w)?;
                }
                history.restored_epoch = Some(best_epoch);
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
        Ok(history)
    }
}
