//! Metrics, accumulated on the host from each batch's predictions over an epoch.

use serde::{Deserialize, Serialize};

/// A value reported per epoch besides the loss (given to `compile`; `val_` + its name on validation
/// data), in the target's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Metric {
    /// Binary accuracy for one output (threshold 0.5, or 0 for logits), categorical accuracy
    /// (argmax) for several.
    Accuracy,
    /// Mean absolute error.
    Mae,
    /// Mean squared error.
    Mse,
}

impl Metric {
    /// The name in histories and logs (`"accuracy"`, `"mae"`, `"mse"`).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Mae => "mae",
            Metric::Mse => "mse",
        }
    }

    /// The metric a name means (`accuracy`/`acc`, `mae`, `mse`; case-insensitive), `None` if unknown.
    pub fn parse(s: &str) -> Option<Metric> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "accuracy" | "acc" => Metric::Accuracy,
            "mae" => Metric::Mae,
            "mse" => Metric::Mse,
            _ => return None,
        })
    }
}

/// The truth a batch is scored against.
#[derive(Clone, Copy, Debug)]
pub enum Truth<'a> {
    /// Values shaped like the predictions (regression, binary targets, one-hot rows).
    Values(&'a [f32]),
    /// One class id per row.
    Labels(&'a [u32]),
}

/// Running sums of one metric.
#[derive(Clone, Debug)]
pub struct MetricSum {
    /// The metric being summed.
    pub metric: Metric,
    total: f64,
    count: f64,
}

impl MetricSum {
    /// Empty sums of `metric`.
    pub fn new(metric: Metric) -> Self {
        MetricSum { metric, total: 0.0, count: 0.0 }
    }

    /// Adds a batch: `pred` is `[rows, width]`.
    pub fn add(&mut self, pred: &[f32], width: usize, truth: Truth<'_>, logit_output: bool) {
        let rows = pred.len() / width.max(1);
        match self.metric {
            Metric::Accuracy => {
                for r in 0..rows {
                    let row = &pred[r * width..(r + 1) * width];
                    let hit = match truth {
                        Truth::Labels(ids) => argmax(row) == ids[r] as usize,
                        Truth::Values(t) if width == 1 => {
                            let cut = if logit_output { 0.0 } else { 0.5 };
                            (row[0] > cut) == (t[r] > 0.5)
                        }
                        Truth::Values(t) => argmax(row) == argmax(&t[r * width..(r + 1) * width]),
                    };
                    self.total += hit as u32 as f64;
                }
                self.count += rows as f64;
            }
            Metric::Mae | Metric::Mse => {
                for (i, &p) in pred.iter().enumerate() {
                    let t = match truth {
                        Truth::Values(t) => t[i] as f64,
                        Truth::Labels(ids) => ids[i / width.max(1)] as f64,
                    };
                    let d = (p as f64 - t).abs();
                    self.total += if self.metric == Metric::Mae { d } else { d * d };
                }
                self.count += pred.len() as f64;
            }
        }
    }

    /// The running (total, count), to carry an epoch cut short into its resumption.
    pub(crate) fn sums(&self) -> (f64, f64) {
        (self.total, self.count)
    }

    pub(crate) fn set_sums(&mut self, total: f64, count: f64) {
        (self.total, self.count) = (total, count);
    }

    /// The metric over everything added (NaN when nothing was).
    pub fn value(&self) -> f64 {
        self.total / self.count
    }
}

/// Index of the first maximum.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
