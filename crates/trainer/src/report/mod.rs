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
    pub loss: f64,
    /// (name, value) per compiled metric.
    pub metrics: Vec<(String, f64)>,
    pub val_loss: Option<f64>,
    pub val_metrics: Vec<(String, f64)>,
    /// Learning rate of the epoch's last step.
    pub lr: f32,
    pub steps: usize,
    pub seconds: f64,
    pub steps_per_s: f64,
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
        parts.join(" - ")
    }
}

/// Every epoch of one `fit`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct History {
    pub epochs: Vec<EpochRecord>,
    /// The epoch (1-based) whose weights the model holds at the end, when early stopping restored
    /// the best one.
    pub restored_epoch: Option<usize>,
    pub stopped_early: bool,
    /// Where an interrupt ([`crate::interrupt`]) stopped the fit inside an epoch (saved, the model
    /// resumes from that step); `None` when it stopped at an epoch's end or was not interrupted.
    pub stopped_at: Option<crate::trainable::StoppedAt>,
}

impl History {
    pub fn last(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }
}
