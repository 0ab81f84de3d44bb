//! CSV tables: a header line, one row per example, the target column found by name.
//!
//! Every error names the file, the line (1-based, the header is line 1) and the column (name and
//! 1-based number). Quoting, embedded newlines and a UTF-8 BOM are handled by the `csv` crate;
//! cells are trimmed of surrounding whitespace.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::table::{Table, Target, TaskHint, MAX_AUTO_CLASSES};
use crate::{Error, Result};

/// Reads a CSV whose column `target_column` is the target and all other columns are f32 features.
/// A non-numeric target becomes classes (names sorted); a numeric one follows `task`.
pub fn read_csv(path: impl AsRef<Path>, target_column: &str, task: TaskHint) -> Result<Table> {
    let path = path.as_ref();
    read_csv_from_reader(path, open(path)?, target_column, task)
}

/// [`read_csv`] from any reader; `path` only names the data in error messages.
pub fn read_csv_from_reader(
    path: &Path,
    reader: impl Read,
    target_column: &str,
    task: TaskHint,
) -> Result<Table> {
    let raw = parse(path, reader, Some(target_column), false)?;
    let target = raw.target_column(|values, lines, col| make_target(path, values, lines, col, task))?;
    Table::new(raw.features, raw.rows, raw.cols, raw.feature_names, target)
}

/// Reads a CSV with a target column whose class labels must come from `class_names` (the label set
/// saved with a model), so ids mean the same as at training time. An unknown label is an error.
pub fn read_csv_labeled(
    path: impl AsRef<Path>,
    target_column: &str,
    class_names: &[String],
) -> Result<Table> {
    let path = path.as_ref();
    let raw = parse(path, open(path)?, Some(target_column), false)?;
    let target = raw.target_column(|values, lines, col| {
        let index: HashMap<&str, u32> =
            class_names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
        let ids = values
            .iter()
            .zip(lines)
            .map(|(v, &line)| {
                index.get(v.as_str()).copied().or_else(|| numeric_match(v, class_names)).ok_or_else(|| {
                    Error::UnknownClass {
                        path: path.to_path_buf(),
                        line,
                        column: col.0.to_string(),
                        column_number: col.1,
                        value: v.clone(),
                        known: class_names.join(", "),
                    }
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        Ok(Target::Classes { ids, names: class_names.to_vec() })
    })?;
    Table::new(raw.features, raw.rows, raw.cols, raw.feature_names, target)
}

/// Reads a CSV without a target (data to predict on): every column is a feature.
pub fn read_csv_unlabeled(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let raw = parse(path, open(path)?, None, false)?;
    Table::new(raw.features, raw.rows, raw.cols, raw.feature_names, Target::None)
}

/// Reads a CSV to predict on: every column is a feature except `skip` (a model's target column),
/// which may be absent and is not parsed, so text labels in it are no error.
pub fn read_csv_features(path: impl AsRef<Path>, skip: &str) -> Result<Table> {
    let path = path.as_ref();
    let raw = parse(path, open(path)?, Some(skip), true)?;
    Table::new(raw.features, raw.rows, raw.cols, raw.feature_names, Target::None)
}

/// Checks that a CSV's feature columns (`found`) are exactly a model's (`expected`), in order.
/// The error names the missing and unexpected columns, or the first column out of order.
pub fn check_feature_names(path: &Path, found: &[String], expected: &[String]) -> Result<()> {
    if found == expected {
        return Ok(());
    }
    let quote = |v: Vec<&String>| v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    let missing: Vec<&String> = expected.iter().filter(|e| !found.contains(e)).collect();
    let extra: Vec<&String> = found.iter().filter(|f| !expected.contains(f)).collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", quote(missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", quote(extra)));
    }
    if parts.is_empty() {
        // Same set of names: either a different order or a different count of duplicates.
        let (i, (f, e)) = found
            .iter()
            .zip(expected)
            .enumerate()
            .find(|(_, (f, e))| f != e)
            .map(|(i, (f, e))| (i, (f.as_str(), e.as_str())))
            .unwrap_or((found.len().min(expected.len()), ("", "")));
        parts.push(format!(
            "same columns in a different order: feature #{} is '{f}', the model expects '{e}' \
             ({} features found, {} expected)",
            i + 1,
            found.len(),
            expected.len()
        ));
    }
    Err(Error::FeatureMismatch { path: path.to_path_buf(), detail: parts.join("; ") })
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(path, e))
}

/// The features parsed, plus the raw target cells (with their line numbers) for the caller to type.
struct Raw {
    features: Vec<f32>,
    rows: usize,
    cols: usize,
    feature_names: Vec<String>,
    target_name: String,
    /// 1-based column number of the target.
    target_number: usize,
    target_values: Vec<String>,
    lines: Vec<u64>,
}

impl Raw {
    fn target_column(
        &self,
        f: impl FnOnce(&[String], &[u64], (&str, usize)) -> Result<Target>,
    ) -> Result<Target> {
        f(&self.target_values, &self.lines, (&self.target_name, self.target_number))
    }
}

/// `target`: the column kept as raw text; with `optional`, a CSV without it is fine.
fn parse(path: &Path, reader: impl Read, target: Option<&str>, optional: bool) -> Result<Raw> {
    let csv_err = |e: csv::Error| Error::Csv {
        path: path.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: match e.kind() {
            csv::ErrorKind::Io(io) => io.to_string(),
            csv::ErrorKind::Utf8 { err, .. } => {
                format!("invalid UTF-8 in field #{}", err.field() + 1)
            }
            _ => e.to_string(),
        },
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true) // ragged rows are reported below, with their line
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header: Vec<String> = rdr.headers().map_err(csv_err)?.iter().map(str::to_string).collect();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    for (i, name) in header.iter().enumerate() {
        if let Some(j) = header[..i].iter().position(|h| h == name) {
            return Err(Error::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: format!("column name '{name}' appears twice (#{} and #{})", j + 1, i + 1),
            });
        }
    }
    let target_index = match target {
        None => None,
        Some(t) => match header.iter().position(|h| h == t) {
            Some(i) => Some(i),
            None if optional => None,
            None => {
                return Err(Error::MissingColumn {
                    path: path.to_path_buf(),
                    column: t.to_string(),
                    available: header.join(", "),
                })
            }
        },
    };
    let feature_names: Vec<String> =
        header.iter().enumerate().filter(|&(i, _)| Some(i) != target_index).map(|(_, h)| h.clone()).collect();

    let mut features = Vec::new();
    let mut target_values = Vec::new();
    let mut lines = Vec::new();
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(csv_err)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(Error::RaggedRow {
                path: path.to_path_buf(),
                line,
                expected: header.len(),
                found: record.len(),
            });
        }
        for (i, cell) in record.iter().enumerate() {
            if Some(i) == target_index {
                target_values.push(cell.to_string());
                continue;
            }
            let (column, column_number) = (header[i].clone(), i + 1);
            if cell.is_empty() {
                return Err(Error::EmptyCell { path: path.to_path_buf(), line, column, column_number });
            }
            let v: f32 = cell.parse().map_err(|_| Error::NotNumeric {
                path: path.to_path_buf(),
                line,
                column: column.clone(),
                column_number,
                value: cell.to_string(),
            })?;
            if !v.is_finite() {
                return Err(Error::NotFinite {
                    path: path.to_path_buf(),
                    line,
                    column,
                    column_number,
                    value: cell.to_string(),
                });
            }
            features.push(v);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(Error::HeaderOnly { path: path.to_path_buf() });
    }
    let target_number = target_index.map_or(0, |i| i + 1);
    Ok(Raw {
        rows: lines.len(),
        cols: feature_names.len(),
        features,
        feature_names,
        target_name: target.unwrap_or_default().to_string(),
        target_number,
        target_values,
        lines,
    })
}

/// Types the target column: regression values or class ids (see [`TaskHint`]).
fn make_target(
    path: &Path,
    values: &[String],
    lines: &[u64],
    (column, column_number): (&str, usize),
    task: TaskHint,
) -> Result<Target> {
    let at = |i: usize| (path.to_path_buf(), lines[i], column.to_string(), column_number);
    if let Some(i) = values.iter().position(String::is_empty) {
        let (path, line, column, column_number) = at(i);
        return Err(Error::EmptyCell { path, line, column, column_number });
    }
    let parsed: Vec<Option<f64>> = values.iter().map(|v| v.parse().ok()).collect();
    let numeric = parsed.iter().all(Option::is_some);
    if task == TaskHint::Regression && !numeric {
        let i = parsed.iter().position(Option::is_none).unwrap_or(0);
        let (path, line, column, column_number) = at(i);
        return Err(Error::NotNumeric { path, line, column, column_number, value: values[i].clone() });
    }
    if !numeric {
        // Text labels: sorted unique names, id = position in that list.
        let names: Vec<String> = values.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let ids = values.iter().map(|v| names.binary_search(v).unwrap_or(0) as u32).collect();
        return Ok(Target::Classes { ids, names });
    }
    let nums: Vec<f64> = parsed.into_iter().flatten().collect();
    if let Some(i) = nums.iter().position(|v| !v.is_finite()) {
        let (path, line, column, column_number) = at(i);
        return Err(Error::NotFinite { path, line, column, column_number, value: values[i].clone() });
    }
    let mut distinct: Vec<f64> = nums.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let integers = nums.iter().all(|v| v.fract() == 0.0);
    let classes = match task {
        TaskHint::Classification => true,
        TaskHint::Regression => false,
        TaskHint::Auto => integers && distinct.len() <= MAX_AUTO_CLASSES,
    };
    if !classes {
        return Ok(Target::Regression(nums.into_iter().map(|v| v as f32).collect()));
    }
    // Numeric labels: sorted by value, named as the number ("3", "2.5").
    let ids =
        nums.iter().map(|v| distinct.binary_search_by(|d| d.total_cmp(v)).unwrap_or(0) as u32).collect();
    let names = distinct.iter().map(|v| format!("{v}")).collect();
    Ok(Target::Classes { ids, names })
}

/// A label such as "3.0" matches the saved class name "3" by value.
fn numeric_match(value: &str, names: &[String]) -> Option<u32> {
    let v: f64 = value.parse().ok()?;
    names.iter().position(|n| n.parse::<f64>().ok() == Some(v)).map(|i| i as u32)
}
