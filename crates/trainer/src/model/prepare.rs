//! What a `Sequential` does to data before its graph sees it: on the first `fit` of a table it
//! records the feature names and fits the standardizers (features, regression target); every
//! `fit`, `evaluate` and `predict` then checks the columns by name and standardizes on the fly
//! ([`Prepared`]), and `predict` maps a standardized target back to its units.

use std::path::Path;

use super::Sequential;
use crate::data::{check_feature_names, train_val_split, Dataset, Standardizer, TargetBuf};
use crate::losses::Loss;
use crate::trainable::{FitOptions, Validation};
use crate::Result;

/// A data set seen through the model's standardizers (features and, for regression, the target).
pub(crate) struct Prepared<'a> {
    pub inner: &'a (dyn Dataset + Sync),
    pub features: Option<Standardizer>,
    /// (mean, std) of a standardized regression target.
    pub target: Option<(f32, f32)>,
}

impl Dataset for Prepared<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn feature_width(&self) -> usize {
        self.inner.feature_width()
    }
    fn num_classes(&self) -> Option<usize> {
        self.inner.num_classes()
    }
    fn has_target(&self) -> bool {
        self.inner.has_target()
    }
    fn class_names(&self) -> Option<&[String]> {
        self.inner.class_names()
    }
    fn feature_names(&self) -> Option<&[String]> {
        self.inner.feature_names()
    }
    fn fetch(&self, indices: &[usize], features: &mut [f32], targets: TargetBuf<'_>) -> Result<()> {
        match targets {
            TargetBuf::Values(values) => {
                self.inner.fetch(indices, features, TargetBuf::Values(&mut *values))?;
                if let Some((mean, std)) = self.target {
                    values.iter_mut().for_each(|v| *v = (*v - mean) / std);
                }
            }
            other => self.inner.fetch(indices, features, other)?,
        }
        if let Some(sc) = &self.features {
            sc.apply(features)?;
        }
        Ok(())
    }
}

/// Every row's features (`[rows, width]`) and, when asked, its regression target, of `rows`.
fn gather(data: &dyn Dataset, rows: &[usize], target: bool) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut x = vec![0f32; rows.len() * data.feature_width()];
    let mut y = vec![0f32; if target { rows.len() } else { 0 }];
    let buf = if target { TargetBuf::Values(&mut y) } else { TargetBuf::None };
    data.fetch(rows, &mut x, buf)?;
    Ok((x, y))
}

impl Sequential {
    /// Before the first `fit` on `data`: records its feature names and fits the standardizers
    /// `opts` asks for on its training rows (those a validation split leaves). A model that has
    /// trained keeps what it has, and its feature names must match.
    pub(crate) fn note_data(&mut self, data: &(dyn Dataset + Sync), opts: &FitOptions<'_>) -> Result<()> {
        let Some(names) = data.feature_names() else { return Ok(()) };
        if self.epochs_done() > 0 || !self.data.features.is_empty() {
            if !self.data.features.is_empty() {
                check_feature_names(Path::new("the training data"), names, &self.data.features)?;
            }
            if self.epochs_done() > 0 {
                return Ok(());
            }
        }
        self.data.features = names.to_vec();
        let rows: Vec<usize> = match opts.validation {
            Validation::Split(f) => train_val_split(data.len(), f, self.seed ^ 0x5A11)?.0,
            _ => (0..data.len()).collect(),
        };
        if rows.is_empty() {
            return Ok(()); // fit reports it
        }
        let regression = data.has_target()
            && data.num_classes().is_none()
            && self.output_width()? == 1
            && self.compiled().is_some_and(|c| matches!(c.loss, Loss::Mse | Loss::Mae));
        let want_x = opts.standardize && self.token_vocab().is_none() && self.data.standardizer.is_none();
        let want_y = opts.standardize_target && regression && self.data.target_standardizer.is_none();
        if !(want_x || want_y) {
            return Ok(());
        }
        let (x, y) = gather(data, &rows, want_y)?;
        if want_x {
            self.data.standardizer = Some(Standardizer::fit(&x, data.feature_width())?);
        }
        if want_y {
            self.data.target_standardizer = Some(Standardizer::fit(&y, 1)?);
        }
        Ok(())
    }

    /// Checks `data`'s columns against the model's by name (when both are known).
    pub(crate) fn check_columns(&self, data: &dyn Dataset) -> Result<()> {
        match data.feature_names() {
            Some(names) if !self.data.features.is_empty() => {
                check_feature_names(Path::new("the data"), names, &self.data.features)
            }
            _ => Ok(()),
        }
    }

    /// `data` as the model's graph sees it.
    pub(crate) fn prepared<'a>(&self, data: &'a (dyn Dataset + Sync)) -> Prepared<'a> {
        Prepared {
            inner: data,
            features: self.data.standardizer.clone().filter(|s| s.cols() == data.feature_width()),
            target: self.target_mean_std(),
        }
    }

    /// (mean, std) of the standardized regression target, if the model has one.
    pub(crate) fn target_mean_std(&self) -> Option<(f32, f32)> {
        let t = self.data.target_standardizer.as_ref()?;
        Some((*t.mean.first()?, *t.std.first()?))
    }
}
