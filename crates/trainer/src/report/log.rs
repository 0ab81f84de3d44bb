//! A JSON-lines training log: one object per epoch, flushed as it is written, so a crash loses
//! nothing already reported.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::EpochRecord;
use crate::{Error, Result};

/// The JSON-lines epoch log of `FitOptions::log`: one object per epoch, flushed as written.
pub struct JsonLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonLog {
    /// Creates (or appends to, when resuming) the log at `path`.
    pub fn open(path: &Path, append: bool) -> Result<JsonLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonLog { path: path.to_path_buf(), out: BufWriter::new(file) })
    }

    /// Appends one epoch's record as a line and flushes it.
    pub fn write(&mut self, record: &EpochRecord) -> Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("epoch".into(), record.epoch.into());
        obj.insert("loss".into(), json_f64(record.loss));
        for (n, v) in &record.metrics {
            obj.insert(n.clone(), json_f64(*v));
        }
        if let Some(v) = record.val_loss {
            obj.insert("val_loss".into(), json_f64(v));
        }
        for (n, v) in &record.val_metrics {
            obj.insert(format!("val_{n}"), json_f64(*v));
        }
        obj.insert("lr".into(), json_f64(record.lr as f64));
        obj.insert("steps".into(), record.steps.into());
        obj.insert("seconds".into(), json_f64(record.seconds));
        obj.insert("steps_per_s".into(), json_f64(record.steps_per_s));
        if let Some((scale, skipped)) = record.loss_scale {
            obj.insert("loss_scale".into(), json_f64(scale as f64));
            obj.insert("skipped_steps".into(), skipped.into());
        }
        let line = serde_json::Value::Object(obj).to_string();
        writeln!(self.out, "{line}").and_then(|_| self.out.flush()).map_err(|e| Error::io(&self.path, e))
    }
}

fn json_f64(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
