//! The `Dataset` trait (what the training loop pulls batches from), its in-memory impl for `Table`,
//! and seeded epoch order, batching and train/validation split.

use super::rng::SplitMix64;
use super::table::{Table, Target};
use crate::{Error, Result};

/// Where [`Dataset::fetch`] writes the targets of a batch.
pub enum TargetBuf<'a> {
    /// Features only (prediction).
    None,
    /// One regression value per row.
    Values(&'a mut [f32]),
    /// One class id per row.
    Classes(&'a mut [u32]),
}

/// What `fit`, `evaluate` and `predict` read rows from: a [`Table`], or your own
/// type (e.g. streamed or generated data) implementing it.
pub trait Dataset {
    /// Number of rows.
    fn len(&self) -> usize;

    /// Whether the data set has no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of f32 features per row.
    fn feature_width(&self) -> usize;

    /// The number of classes when the targets are class ids, `None` for regression values or no
    /// target.
    fn num_classes(&self) -> Option<usize>;

    /// Whether each row has a target.
    fn has_target(&self) -> bool;

    /// The class names in id order when the data knows them (a [`Table`] read from CSV), so
    /// `fit` and `evaluate` can check they number the classes as the model does.
    fn class_names(&self) -> Option<&[String]> {
        None
    }

    /// The feature column names when the data knows them (a [`Table`]): `fit` records them in the
    /// model (and fits its standardizers), `evaluate` and `predict` check them by name.
    fn feature_names(&self) -> Option<&[String]> {
        None
    }

    /// Gathers the rows `indices` into `features` (`[indices.len(), feature_width]`, row-major) and
    /// their targets into `targets` (`[indices.len()]`). Buffers of the wrong size, an index out of
    /// range or a target kind the data does not have are errors; the buffers are caller-owned so a
    /// training loop can reuse them every step.
    fn fetch(&self, indices: &[usize], features: &mut [f32], targets: TargetBuf<'_>) -> Result<()>;
}

impl Dataset for Table {
    fn len(&self) -> usize {
        self.rows
    }

    fn feature_width(&self) -> usize {
        self.cols
    }

    fn num_classes(&self) -> Option<usize> {
        self.target.class_names().map(<[String]>::len)
    }

    fn has_target(&self) -> bool {
        self.target.rows().is_some()
    }

    fn class_names(&self) -> Option<&[String]> {
        self.target.class_names()
    }

    fn feature_names(&self) -> Option<&[String]> {
        Some(&self.feature_names)
    }

    fn fetch(&self, indices: &[usize], features: &mut [f32], targets: TargetBuf<'_>) -> Result<()> {
        let n = indices.len();
        if features.len() != n * self.cols {
            return Err(Error::shape(
                "Dataset::fetch features buffer",
                format!("{n} rows x {} features = {}", self.cols, n * self.cols),
                features.len(),
            ));
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.rows) {
            return Err(Error::InvalidArgument(format!(
                "row index {bad} out of range for a data set of {} rows",
                self.rows
            )));
        }
        let check = |len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(Error::shape("Dataset::fetch targets buffer", n, len))
            }
        };
        match (targets, &self.target) {
            (TargetBuf::None, _) => {}
            (TargetBuf::Values(out), Target::Regression(v)) => {
                check(out.len())?;
                for (o, &i) in out.iter_mut().zip(indices) {
                    *o = v[i];
                }
            }
            (TargetBuf::Classes(out), Target::Classes { ids, .. }) => {
                check(out.len())?;
                for (o, &i) in out.iter_mut().zip(indices) {
                    *o = ids[i];
                }
            }
            (buf, target) => {
                let want = match buf {
                    TargetBuf::Values(_) => "regression values",
                    _ => "class ids",
                };
                let have = match target {
                    Target::Regression(_) => "regression values",
                    Target::Classes { .. } => "class ids",
                    Target::None => "no target",
                };
                return Err(Error::InvalidArgument(format!("asked for {want} but the data set has {have}")));
            }
        }
        for (dst, &i) in features.chunks_exact_mut(self.cols.max(1)).zip(indices) {
            dst.copy_from_slice(self.row(i));
        }
        Ok(())
    }
}

/// The visiting order of `len` rows in epoch `epoch`: a permutation that depends only on
/// `(seed, epoch)`, so runs are reproducible and each epoch is shuffled differently.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let stream = seed ^ epoch.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    SplitMix64::new(stream).shuffle(&mut order);
    order
}

/// Splits `order` into batches of `batch_size`; the last batch holds the remainder (it is kept, not
/// dropped). `batch_size == 0` is an error.
pub fn batches(order: &[usize], batch_size: usize) -> Result<std::slice::Chunks<'_, usize>> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument("batch size must be at least 1".into()));
    }
    Ok(order.chunks(batch_size))
}

/// A seeded split of `len` rows into (train, validation) row indices, each in ascending order.
/// `round(len * val_fraction)` rows go to validation; `val_fraction` must be in `[0, 1)` and leave
/// at least one training row.
pub fn train_val_split(len: usize, val_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::InvalidArgument(format!(
            "validation fraction must be in [0, 1), got {val_fraction}"
        )));
    }
    let n_val = (len as f64 * val_fraction).round() as usize;
    if n_val >= len {
        return Err(Error::InvalidArgument(format!(
            "a validation fraction of {val_fraction} of {len} rows leaves no training rows"
        )));
    }
    let mut order: Vec<usize> = (0..len).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let mut val = order.split_off(len - n_val);
    order.sort_unstable();
    val.sort_unstable();
    Ok((order, val))
}
