//! CSV tables: a header line, one row per example, the target column found by name.
//!
//! Every error names the file, the physical line (1-based, the header is line 1; `\n`, `\r\n` and a
//! lone `\r` each end a line) and the column (name and 1-based number); long cells are shortened. Quoting, embedded newlines and a UTF-8 BOM are handled by the `csv` crate;
//! cells are trimmed of surrounding whitespace.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::lines::{shorten, shorten_list, Counting};
use super::table::{Table, Target, TaskHint, MAX_AUTO_CLASSES};
use crate::{Error, Result};

/// Reads a CSV whose column `target_column` is the target and all other columns are f32 features.
/// A non-numeric target becomes classes (names sorted); a numeric one follows `task`.
///
/// Errors: the file cannot be read, the target column is missing, or a feature cell is not a
/// number (the error names the file, line and column).
///
/// ```
/// use kiln_trainer::data::{read_csv, TaskHint};
///
/// # fn main() -> kiln_trainer::Result<()> {
/// let dir = std::env::temp_dir().join(format!("kiln-read-csv-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("iris.csv");
/// std::fs::write(&path, "sepal,petal,species\n5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,virginica\n").unwrap();
///
/// let table = read_csv(&path, "species", TaskHint::Auto)?;
/// assert_eq!((table.rows, table.cols), (3, 2));
/// assert_eq!(table.feature_names, ["sepal", "petal"]);
/// assert_eq!(table.target.class_names().unwrap(), ["setosa", "versicolor", "virginica"]);
/// assert_eq!(table.row(1), &[7.0, 4.7]);
///
/// // A target column that is not in the header is an error naming it.
/// assert!(read_csv(&path, "label", TaskHint::Auto).is_err());
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
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
                        column: shorten(col.0),
                        column_number: col.1,
                        value: shorten(v),
                        known: shorten_list(class_names),
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
    let quote = |v: Vec<&String>| shorten_list(&v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>());
    let (found_set, expected_set): (HashSet<&String>, HashSet<&String>) =
        (found.iter().collect(), expected.iter().collect());
    let missing: Vec<&String> = expected.iter().filter(|e| !found_set.contains(e)).collect();
    let extra: Vec<&String> = found.iter().filter(|f| !expected_set.contains(f)).collect();
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
            "same columns in a different order: feature #{} is '{}', the model expects '{}' \
             ({} features found, {} expected)",
            i + 1,
            shorten(f),
            shorten(e),
            found.len(),
            expected.len()
        ));
    }
    Err(Error::FeatureMismatch { path: path.to_path_buf(), detail: parts.join("; ") })
}

/// Opens a data file; only regular files are read (a device such as `/dev/zero` or a FIFO could
/// feed the parser without end).
fn open(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::format(
            path,
            "not a regular file (a device, FIFO or directory); give a data file",
        ));
    }
    Ok(file)
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
    let (reader, lines_index) = Counting::new(reader);
    let line_of = |p: Option<&csv::Position>| p.map_or(0, |p| lines_index.line_of(p.byte()));
    let csv_err = |e: csv::Error| Error::Csv {
        path: path.to_path_buf(),
        line: line_of(e.position()),
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
    let header_line = line_of(rdr.headers().ok().and_then(|h| h.position()));
    let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        if let Some(j) = first_seen.insert(name, i) {
            return Err(Error::Csv {
                path: path.to_path_buf(),
                line: header_line,
                message: format!("column name '{}' appears twice (#{} and #{})", shorten(name), j + 1, i + 1),
            });
        }
    }
    let target_index = match target {
        None => None,
        Some(t) => match first_seen.get(t).copied() {
            Some(i) => Some(i),
            None if optional => None,
            None => {
                return Err(Error::MissingColumn {
                    path: path.to_path_buf(),
                    column: shorten(t),
                    available: shorten_list(&header),
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
        let line = line_of(record.position());
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
            let (column, column_number) = (shorten(&header[i]), i + 1);
            if cell.is_empty() {
                return Err(Error::EmptyCell { path: path.to_path_buf(), line, column, column_number });
            }
            let v: f32 = cell.parse().map_err(|_| Error::NotNumeric {
                path: path.to_path_buf(),
                line,
                column: column.clone(),
                column_number,
                value: shorten(cell),
            })?;
            if !v.is_finite() {
                return Err(Error::NotFinite {
                    path: path.to_path_buf(),
                    line,
                    column,
                    column_number,
                    value: shorten(cell),
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
    let at = |i: usize| (path.to_path_buf(), lines[i], shorten(column), column_number);
    if let Some(i) = values.iter().position(String::is_empty) {
        let (path, line, column, column_number) = at(i);
        return Err(Error::EmptyCell { path, line, column, column_number });
    }
    // -0 is 0: one class, one value (total order would tell them apart)
    let parsed: Vec<Option<f64>> =
        values.iter().map(|v| v.parse::<f64>().ok().map(|x| if x == 0.0 { 0.0 } else { x })).collect();
    let odd: Vec<usize> = (0..values.len()).filter(|&i| parsed[i].is_none()).collect();
    let numeric = odd.is_empty();
    if task == TaskHint::Regression && !numeric {
        let (path, line, column, column_number) = at(odd[0]);
        return Err(Error::NotNumeric { path, line, column, column_number, value: shorten(&values[odd[0]]) });
    }
    if task == TaskHint::Auto && !numeric && odd.len() * MOSTLY_NUMERIC_ODDS <= values.len() {
        // a numeric column with a few typos would silently become hundreds of classes
        let cells: Vec<String> =
            odd.iter().take(5).map(|&i| format!("line {} '{}'", lines[i], shorten(&values[i]))).collect();
        let more = if odd.len() > 5 { format!(" and {} more", odd.len() - 5) } else { String::new() };
        return Err(Error::Csv {
            path: path.to_path_buf(),
            line: lines[odd[0]],
            message: format!(
                "target column '{}' (#{column_number}) holds numbers except in {} of {} cells: {}{more}; \
                 fix those cells, or ask for classification (--task multiclass) to take every value \
                 as a class name",
                shorten(column),
                odd.len(),
                values.len(),
                cells.join(", ")
            ),
        });
    }
    if !numeric {
        // Text labels: sorted unique names, id = position in that list.
        let names: Vec<String> = values.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let index: HashMap<&str, u32> =
            names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
        let ids = values.iter().map(|v| index[v.as_str()]).collect();
        return Ok(Target::Classes { ids, names });
    }
    let nums: Vec<f64> = parsed.into_iter().flatten().collect();
    if let Some(i) = nums.iter().position(|v| !v.is_finite()) {
        let (path, line, column, column_number) = at(i);
        return Err(Error::NotFinite { path, line, column, column_number, value: shorten(&values[i]) });
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
    // Numeric labels: sorted by value, named as the number ("3", "2.5"); every value is in
    // `distinct` (finite, -0 folded into 0), so the search is exact.
    let ids = nums
        .iter()
        .map(|v| distinct.binary_search_by(|d| d.total_cmp(v)).map(|i| i as u32))
        .collect::<std::result::Result<Vec<u32>, usize>>()
        .map_err(|_| Error::InvalidArgument("internal: a numeric label missing from its classes".into()))?;
    let names = distinct.iter().map(|v| format!("{v}")).collect();
    Ok(Target::Classes { ids, names })
}

/// With [`TaskHint::Auto`], a target whose non-numeric cells are at most one in this many is taken
/// for a numeric column with typos (an error naming them), not for class names.
const MOSTLY_NUMERIC_ODDS: usize = 10;

/// A label such as "3.0" matches the saved class name "3" by value.
fn numeric_match(value: &str, names: &[String]) -> Option<u32> {
    let v: f64 = value.parse().ok()?;
    names.iter().position(|n| n.parse::<f64>().ok() == Some(v)).map(|i| i as u32)
}
