//! `kiln evaluate`: a saved model's loss and metrics on a labelled CSV.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_trainer::data::{check_feature_names, read_csv, read_csv_labeled, TaskHint};
use kiln_trainer::Metric;

use super::predict::open_model;

#[derive(clap::Args)]
pub struct Args {
    /// A model written by `kiln train`.
    #[arg(long)]
    model: PathBuf,
    /// CSV with the model's feature columns and the target column.
    #[arg(long)]
    data: PathBuf,
    /// Target column [default: the one the model was trained on].
    #[arg(long)]
    target: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// auto, gpu or cpu [default: KILN_BACKEND, else auto].
    #[arg(long)]
    backend: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let mut model = kiln_trainer::Sequential::load(&a.model)?;
    let target = a.target.or(model.data.target.clone()).context("--target COLUMN is required")?;
    let table = match &model.data.labels {
        Some(names) => read_csv_labeled(&a.data, &target, names)?,
        None => read_csv(&a.data, &target, TaskHint::Regression)?,
    };
    check_feature_names(&a.data, &table.feature_names, &model.data.features)?;
    let classify = model.data.labels.is_some();
    let metrics = if classify { vec![Metric::Accuracy] } else { vec![Metric::Mse, Metric::Mae] };
    open_model(&mut model, a.backend.as_deref(), &metrics)?;
    let eval = model.evaluate(&table, 512)?;
    if a.json {
        let mut obj = serde_json::Map::new();
        obj.insert("loss".into(), eval.loss.into());
        for (name, value) in &eval.metrics {
            obj.insert(name.clone(), (*value).into());
        }
        obj.insert("rows".into(), table.rows.into());
        println!("{}", serde_json::Value::Object(obj));
    } else {
        let parts: Vec<String> = eval.metrics.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
        println!("{} rows: loss {:.4} - {}", table.rows, eval.loss, parts.join(" - "));
    }
    Ok(())
}
