//! `Table`: an in-memory data set of f32 features (row-major `[rows, cols]`) and one target.

use serde::{Deserialize, Serialize};

use super::array::Array;
use crate::{Error, Result};

/// What to do with a numeric target column when reading a CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskHint {
    /// Text target: classes. Numeric target: classes if every value is an integer and there are at
    /// most [`MAX_AUTO_CLASSES`] distinct values, else regression.
    #[default]
    Auto,
    /// Always classes (numbers become class names such as "3" or "2.5").
    Classification,
    /// Always regression; a non-numeric target value is an error.
    Regression,
}

/// `TaskHint::Auto` treats an integer target with at most this many distinct values as classes.
pub const MAX_AUTO_CLASSES: usize = 20;

/// The target column of a [`Table`]: regression values, class ids with their names, or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Target {
    /// One value per row.
    Regression(Vec<f32>),
    /// One class id per row; `names[id]` is the label as written in the data. `names` is sorted
    /// (text labels lexicographically, numeric labels by value), so the mapping is deterministic;
    /// save it with the model.
    Classes {
        /// Class id of each row, below `names.len()`.
        ids: Vec<u32>,
        /// Label of each class id, sorted.
        names: Vec<String>,
    },
    /// No target (data to predict on).
    None,
}

impl Target {
    /// Number of rows with a target (`None` for no target).
    pub fn rows(&self) -> Option<usize> {
        match self {
            Target::Regression(v) => Some(v.len()),
            Target::Classes { ids, .. } => Some(ids.len()),
            Target::None => None,
        }
    }

    /// The class labels (indexed by class id), or `None` for a regression or no target.
    pub fn class_names(&self) -> Option<&[String]> {
        match self {
            Target::Classes { names, .. } => Some(names),
            _ => None,
        }
    }

    /// The target of the rows `indices`, in that order (indices must be in range).
    fn gather(&self, indices: &[usize]) -> Target {
        match self {
            Target::Regression(v) => Target::Regression(indices.iter().map(|&i| v[i]).collect()),
            Target::Classes { ids, names } => {
                Target::Classes { ids: indices.iter().map(|&i| ids[i]).collect(), names: names.clone() }
            }
            Target::None => Target::None,
        }
    }
}

/// An in-memory data set: `rows` rows of `cols` f32 features and one [`Target`], as read by
/// [`read_csv`](crate::data::read_csv) or built with [`Table::new`]. It implements
/// [`Dataset`](crate::data::Dataset), so it can be passed to `fit`, `evaluate` and `predict`.
///
/// ```
/// use kiln_trainer::data::{Table, Target};
///
/// # fn main() -> kiln_trainer::Result<()> {
/// // 3 rows of 2 features, two classes.
/// let table = Table::new(
///     vec![0.0, 1.0, 1.0, 0.0, 0.5, 0.5],
///     3,
///     2,
///     vec!["a".into(), "b".into()],
///     Target::Classes { ids: vec![0, 1, 1], names: vec!["no".into(), "yes".into()] },
/// )?;
/// assert_eq!(table.row(1), &[1.0, 0.0]);
/// assert_eq!(table.target.class_names().unwrap(), &["no", "yes"]);
/// let last_two = table.subset(&[1, 2])?;
/// assert_eq!(last_two.rows, 2);
///
/// // The parts must agree: 5 values are not 3 x 2.
/// assert!(Table::new(vec![0.0; 5], 3, 2, vec!["a".into(), "b".into()], Target::None).is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `[rows, cols]`, row-major.
    pub features: Vec<f32>,
    /// Number of rows (examples).
    pub rows: usize,
    /// Number of feature columns.
    pub cols: usize,
    /// One name per feature column (the CSV header, or `x0, x1, ...`).
    pub feature_names: Vec<String>,
    /// The target of each row.
    pub target: Target,
}

impl Table {
    /// A table from its parts. Errors (`Error::Shape`) unless they agree: features = rows x cols,
    /// one name per column, one target per row, class ids below the number of class names.
    pub fn new(
        features: Vec<f32>,
        rows: usize,
        cols: usize,
        feature_names: Vec<String>,
        target: Target,
    ) -> Result<Table> {
        if features.len() != rows * cols {
            return Err(Error::shape(
                "Table features",
                format!("{rows} x {cols} = {} values", rows * cols),
                format!("{} values", features.len()),
            ));
        }
        if feature_names.len() != cols {
            return Err(Error::shape(
                "Table feature names",
                format!("{cols} names"),
                format!("{} names", feature_names.len()),
            ));
        }
        if let Some(n) = target.rows() {
            if n != rows {
                return Err(Error::shape("Table target", format!("{rows} rows"), format!("{n} rows")));
            }
        }
        if let Target::Classes { ids, names } = &target {
            if let Some(&bad) = ids.iter().find(|&&id| id as usize >= names.len()) {
                return Err(Error::shape(
                    "Table class ids",
                    format!("ids below {} (the number of class names)", names.len()),
                    format!("id {bad}"),
                ));
            }
        }
        Ok(Table { features, rows, cols, feature_names, target })
    }

    /// A table from arrays read from NPY or IDX files: `features` is `[n, ...]` (flattened to
    /// `[n, prod(rest)]`, columns named `x0, x1, ...`), `labels` is `[n]` of class ids 0..k
    /// (class names "0".."k-1"), or `None` for no target.
    pub fn from_arrays(features: Array<f32>, labels: Option<Array<u32>>) -> Result<Table> {
        let rows = *features
            .shape
            .first()
            .ok_or_else(|| Error::shape("features array", "at least 1 dimension", "a scalar"))?;
        let cols: usize = features.shape[1..].iter().product();
        let target = match labels {
            None => Target::None,
            Some(labels) => {
                if labels.shape != [rows] {
                    return Err(Error::shape(
                        "labels array",
                        format!("[{rows}] (one label per feature row)"),
                        format!("{:?}", labels.shape),
                    ));
                }
                let k = labels.data.iter().max().map_or(0, |&m| m as usize + 1);
                Target::Classes { ids: labels.data, names: (0..k).map(|c| c.to_string()).collect() }
            }
        };
        let names = (0..cols).map(|c| format!("x{c}")).collect();
        Table::new(features.data, rows, cols, names, target)
    }

    /// The same table with its class ids renumbered by `names` (a model's labels), so a test set
    /// that lacks some class still means what the model means by each id. A label not in `names`
    /// is an error naming it; a table without classes is returned as is.
    pub fn relabel(&self, names: &[String]) -> Result<Table> {
        let Target::Classes { ids, names: own } = &self.target else { return Ok(self.clone()) };
        let index: std::collections::HashMap<&str, u32> =
            names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
        let map = own
            .iter()
            .map(|n| {
                index.get(n.as_str()).copied().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "class '{}' is not one of the model's labels",
                        super::lines::shorten(n)
                    ))
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        let target =
            Target::Classes { ids: ids.iter().map(|&i| map[i as usize]).collect(), names: names.to_vec() };
        Ok(Table { target, ..self.clone() })
    }

    /// Feature row `r` (`r < rows`).
    pub fn row(&self, r: usize) -> &[f32] {
        &self.features[r * self.cols..(r + 1) * self.cols]
    }

    /// The rows `indices`, in that order (e.g. one side of a split).
    pub fn subset(&self, indices: &[usize]) -> Result<Table> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.rows) {
            return Err(Error::InvalidArgument(format!(
                "row index {bad} out of range for a table of {} rows",
                self.rows
            )));
        }
        let mut features = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        Ok(Table {
            features,
            rows: indices.len(),
            cols: self.cols,
            feature_names: self.feature_names.clone(),
            target: self.target.gather(indices),
        })
    }
}
