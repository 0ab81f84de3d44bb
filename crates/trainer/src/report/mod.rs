//! What training reports: a record per epoch, a progress bar, a JSON-lines log and a plot.

mod log;
mod plot;
mod progress;

use serde::Serialize;

pub use log::JsonLog;
pub use plot::write_svg;
pub use progress::Progress;

/// One epoch of training.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's rows.
    pub loss: f64,
    /// (name, value) per compiled metric.
    pub metrics: Vec<(String, f64)>,
    /// Loss on the validation data, if any.
    pub val_loss: Option<f64>,
    /// (`val_` + name, value) per compiled metric on the validation data.
    pub val_metrics: Vec<(String, f64)>,
    /// Learning rate of the epoch's last step.
    pub lr: f32,
    /// Training steps in the epoch: optimizer updates (batches, or batches / accumulate rounded up).
    pub steps: usize,
    /// Wall-clock seconds of the epoch, validation included.
    pub seconds: f64,
    /// Training steps (optimizer updates) per second.
    pub steps_per_s: f64,
    /// With loss scaling: the scale at the epoch's end and the steps skipped so far (an overflow
    /// in the gradients), in all epochs.
    pub loss_scale: Option<(f32, u64)>,
}

impl EpochRecord {
    /// The value of `key` (`loss`, `val_loss`, a metric name, or `val_` + a metric name).
    pub fn get(&self, key: &str) -> Option<f64> {
        match key {
            "loss" => Some(self.loss),
            "val_loss" => self.val_loss,
            _ => match key.strip_prefix("val_") {
                Some(m) => self.val_metrics.iter().find(|(n, _)| n == m).map(|x| x.1),
                None => self.metrics.iter().find(|(n, _)| n == key).map(|x| x.1),
            },
        }
    }

    /// `loss 0.1234 - accuracy 0.9700 - val_loss ...`
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("loss {:.4}", self.loss)];
        parts.extend(self.metrics.iter().map(|(n, v)| format!("{n} {v:.4}")));
        if let Some(v) = self.val_loss {
            parts.push(format!("val_loss {v:.4}"));
        }
        parts.extend(self.val_metrics.iter().map(|(n, v)| format!("val_{n} {v:.4}")));
        if let Some((scale, skipped)) = self.loss_scale {
            parts.push(format!("loss scale {scale} ({skipped} skipped)"));
        }
        parts.join(" - ")
    }
}

/// Every epoch of one `fit`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    /// The epochs this fit trained, in order.
    pub epochs: Vec<EpochRecord>,
    /// The epoch (1-based) whose weights the model holds at the end, when early stopping restored
    /// the best one.
    pub restored_epoch: Option<usize>,
    /// Early stopping ended the fit before `epochs`.
    pub stopped_early: bool,
    /// What early stopping (and the best-epoch choice) watched: `val_loss`, `loss`, a metric.
    pub monitor: String,
    /// Where an interrupt ([`crate::interrupt`]) stopped the fit inside an epoch (saved, the model
    /// resumes from that step); `None` when it stopped at an epoch's end or was not interrupted.
    pub stopped_at: Option<crate::trainable::StoppedAt>,
}

impl History {
    /// The record of the last epoch trained, if any.
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The record of the epoch whose weights the model holds at the end: the restored epoch when
    /// early stopping restored one, else the last.
    pub fn final_epoch(&self) -> Option<&EpochRecord> {
        match self.restored_epoch {
            Some(e) => self.epochs.iter().find(|r| r.epoch == e).or(self.last()),
            None => self.last(),
        }
    }

    /// How the fit ended, when early stopping ended it or restored an epoch: `stopped early after
    /// epoch 31 (val_loss did not improve for 10 epochs); restored the weights of epoch 21: loss ...`.
    pub fn end_line(&self) -> Option<String> {
        let last = self.last()?;
        if !self.stopped_early && self.restored_epoch.is_none() {
            return None;
        }
        let mut line = if self.stopped_early {
            format!("stopped early after epoch {} ({} stopped improving)", last.epoch, self.monitor)
        } else {
            format!("trained to epoch {}", last.epoch)
        };
        match self.restored_epoch.and_then(|e| self.epochs.iter().find(|r| r.epoch == e)) {
            Some(best) => {
                line.push_str(&format!("; restored the weights of epoch {}: {}", best.epoch, best.summary()))
            }
            None => line.push_str(&format!("; kept epoch {}'s weights (the best)", last.epoch)),
        }
        Some(line)
    }
}
