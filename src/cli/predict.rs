//! `kiln predict`: a saved model's predictions for every row of a CSV, as CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_device::BackendChoice;
use kiln_trainer::data::{check_feature_names, read_csv_features, read_csv_unlabeled, Table, Target};
use kiln_trainer::{optimizer_path, Compile, Metric, Sequential};

use super::output::{check_output, write_atomic};

#[derive(clap::Args)]
pub struct Args {
    /// A model written by `kiln train`.
    #[arg(long)]
    model: PathBuf,
    /// CSV with the model's feature columns (a target column, if present, is ignored).
    #[arg(long)]
    data: PathBuf,
    /// Write the predictions here [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
    /// auto, gpu or cpu [default: KILN_BACKEND, else auto].
    #[arg(long)]
    backend: Option<String>,
}

/// Compiles a loaded model with its saved training configuration on the chosen backend.
pub fn open_model(model: &mut Sequential, backend: Option<&str>, metrics: &[Metric]) -> Result<()> {
    let mut config: Compile =
        model.saved_config().cloned().context("the model file has no training configuration")?;
    config.metrics = metrics.to_vec();
    config.backend = match backend {
        Some(b) => b.parse()?,
        None => BackendChoice::from_env()?,
    };
    model.compile_with(config)?;
    Ok(())
}

/// The model's feature columns of `table` (read without the target column), in the model's order.
fn select_features(path: &Path, table: Table, model: &Sequential) -> Result<Table> {
    let want = &model.data.features;
    check_feature_names(path, &table.feature_names, want)?;
    let at: std::collections::HashMap<&str, usize> =
        table.feature_names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let cols: Vec<usize> = want.iter().map(|w| at[w.as_str()]).collect();
    let mut features = Vec::with_capacity(table.rows * cols.len());
    for r in 0..table.rows {
        let row = table.row(r);
        features.extend(cols.iter().map(|&c| row[c]));
    }
    Ok(Table::new(features, table.rows, cols.len(), want.clone(), Target::None)?)
}

/// One CSV field: quoted (with `"` doubled) when it holds a comma, a quote, a line break or
/// surrounding spaces, so any label reads back as itself.
fn field(s: &str) -> String {
    let plain = !s.contains([',', '"', '\n', '\r']) && s.trim() == s;
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

pub fn run(a: Args) -> Result<()> {
    if let Some(out) = &a.out {
        let opt = optimizer_path(&a.model);
        check_output(
            "--out",
            out,
            &[("--model", &a.model), ("--data", &a.data), ("its optimizer file", &opt)],
        )?;
    }
    let mut model = Sequential::load(&a.model)?;
    let raw = match model.data.target.as_deref() {
        Some(target) => read_csv_features(&a.data, target)?,
        None => read_csv_unlabeled(&a.data)?,
    };
    let table = select_features(&a.data, raw, &model)?;
    open_model(&mut model, a.backend.as_deref(), &[])?;
    let pred = model.predict(&table, 512)?;
    let width = model.output_width()?;
    let mut csv = String::new();
    match &model.data.labels {
        Some(names) if width == 1 => {
            let positive = names.get(1).map_or("1", String::as_str);
            csv.push_str(&format!("prediction,{}\n", field(&format!("p_{positive}"))));
            for p in pred.iter() {
                csv.push_str(&format!("{},{p}\n", field(&names[(*p > 0.5) as usize])));
            }
        }
        Some(names) => {
            let header: Vec<String> = names.iter().map(|n| field(&format!("p_{n}"))).collect();
            csv.push_str(&format!("prediction,{}\n", header.join(",")));
            for row in pred.row_iter() {
                let best = kiln_trainer::metrics::argmax(&row[..names.len()]);
                let probs: Vec<String> = row[..names.len()].iter().map(|p| p.to_string()).collect();
                csv.push_str(&format!("{},{}\n", field(&names[best]), probs.join(",")));
            }
        }
        None => {
            csv.push_str("prediction\n");
            for p in pred.iter() {
                csv.push_str(&format!("{p}\n"));
            }
        }
    }
    match &a.out {
        Some(path) => write_atomic(path, csv.as_bytes()),
        None => std::io::stdout().write_all(csv.as_bytes()).context("writing predictions"),
    }
}
