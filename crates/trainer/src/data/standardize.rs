//! `Standardizer`: per-column mean and standard deviation from training data, `(x - mean) / std`
//! applied to any data. Serializable (JSON) so the statistics travel with the model.

use serde::{Deserialize, Serialize};

use super::table::Table;
use crate::{Error, Result};

/// Per-column `(x - mean) / std`, fitted on training features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// Mean of each column.
    pub mean: Vec<f32>,
    /// Population standard deviation (divides by n, like scikit-learn's StandardScaler); 1 for a
    /// constant column so it maps to 0 instead of dividing by zero.
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Statistics of `features` (`[rows, cols]`, row-major, at least one row), in f64.
    pub fn fit(features: &[f32], cols: usize) -> Result<Standardizer> {
        if cols == 0 || features.is_empty() || features.len() / cols * cols != features.len() {
            return Err(Error::shape(
                "Standardizer::fit",
                format!("at least one row of {cols} columns"),
                format!("{} values", features.len()),
            ));
        }
        let rows = features.len() / cols;
        let mut mean = vec![0f64; cols];
        for row in features.chunks_exact(cols) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mut var = vec![0f64; cols];
        let mut constant = vec![true; cols];
        for row in features.chunks_exact(cols) {
            for c in 0..cols {
                let d = row[c] as f64 - mean[c];
                var[c] += d * d;
                constant[c] &= row[c] == features[c];
            }
        }
        let std = var
            .iter()
            .zip(&constant)
            .map(|(&v, &k)| if k { 1.0 } else { (v / rows as f64).sqrt() as f32 })
            .collect();
        Ok(Standardizer { mean: mean.into_iter().map(|m| m as f32).collect(), std })
    }

    /// [`Standardizer::fit`] on a table's features.
    pub fn fit_table(table: &Table) -> Result<Standardizer> {
        Standardizer::fit(&table.features, table.cols)
    }

    /// Number of columns it standardizes.
    pub fn cols(&self) -> usize {
        self.mean.len()
    }

    /// Standardizes `features` (`[rows, cols]`) in place.
    pub fn apply(&self, features: &mut [f32]) -> Result<()> {
        let cols = self.cols();
        if cols == 0 || features.len() / cols * cols != features.len() {
            return Err(Error::shape(
                "Standardizer::apply",
                format!("a multiple of {cols} values (rows x {cols} columns)"),
                format!("{} values", features.len()),
            ));
        }
        for row in features.chunks_exact_mut(cols) {
            for ((x, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *x = (*x - m) / s;
            }
        }
        Ok(())
    }

    /// Standardizes a table's features in place; its column count must be `cols()`.
    pub fn apply_table(&self, table: &mut Table) -> Result<()> {
        if table.cols != self.cols() {
            return Err(Error::shape(
                "Standardizer::apply_table",
                format!("{} columns", self.cols()),
                format!("{} columns", table.cols),
            ));
        }
        self.apply(&mut table.features)
    }

    /// The statistics as JSON (what a saved model stores; read back with `from_json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks (`mean` and `std` of one length, `std` finite and positive).
    pub fn from_json(json: &str) -> Result<Standardizer> {
        let bad = |message: String| Error::Metadata { key: "standardizer".into(), message };
        let s: Standardizer = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if s.mean.len() != s.std.len() {
            return Err(bad(format!("{} means but {} standard deviations", s.mean.len(), s.std.len())));
        }
        if let Some(c) = s.std.iter().position(|&v| !(v.is_finite() && v > 0.0)) {
            return Err(bad(format!("std of column {c} is {}, must be > 0", s.std[c])));
        }
        Ok(s)
    }
}
