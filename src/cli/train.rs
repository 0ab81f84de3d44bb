//! `kiln train` and the main job (the bundled digits): read the data, build the MLP, fit it with
//! early stopping, and write the model, its training log and its loss curves.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use kiln_device::BackendChoice;
use kiln_trainer::data::{
    check_feature_names, digits_train_test, read_csv, read_csv_labeled, train_val_split, Table, TaskHint,
};
use kiln_trainer::prelude::*;
use kiln_trainer::report::write_svg;
use kiln_trainer::{DataInfo, History, Layer};

use super::output::check_output;
use super::run_lock::RunLock;
use super::settings::{Task, TrainSettings};

/// Flag values that would train nothing or diverge at once, refused before any data is read.
fn check_settings(s: &TrainSettings) -> Result<()> {
    if let Some(lr) = s.lr {
        if !(lr.is_finite() && lr > 0.0) {
            bail!("--lr {lr}: the learning rate must be a positive number");
        }
    }
    if s.epochs == Some(0) {
        bail!("--epochs 0 would write an untrained model; give at least 1");
    }
    if s.batch_size == Some(0) {
        bail!("--batch-size 0: give at least 1");
    }
    if s.accumulate == Some(0) {
        bail!("--accumulate 0: give at least 1 batch per update");
    }
    if let Some(f) = s.validation_split {
        if !(0.0..1.0).contains(&f) {
            bail!("--validation-split {f}: must be in [0, 1) (0 means no validation)");
        }
    }
    Ok(())
}

/// Why the target was taken as this task, for the summary.
fn task_reason(asked: Option<Task>, table: &Table) -> String {
    if asked.is_some_and(|t| t != Task::Auto) {
        return "as asked with --task".into();
    }
    match &table.target {
        kiln_trainer::data::Target::Classes { names, .. } => {
            if names.iter().all(|n| n.parse::<f64>().is_ok()) {
                format!(
                    "the target holds {} distinct integers (at most {} make classes)",
                    names.len(),
                    kiln_trainer::data::MAX_AUTO_CLASSES
                )
            } else {
                format!("the target holds text labels ({} classes)", names.len())
            }
        }
        kiln_trainer::data::Target::Regression(v) => {
            if v.iter().all(|x| x.fract() == 0.0) {
                format!(
                    "the target holds numbers with more than {} distinct values",
                    kiln_trainer::data::MAX_AUTO_CLASSES
                )
            } else {
                "the target holds non-integer numbers".into()
            }
        }
        kiln_trainer::data::Target::None => String::new(),
    }
}

/// On `--resume`, the flags that shape the model or its optimizer must agree with the saved model
/// (`--lr` is an override: it replaces the saved learning rate).
fn check_resume_flags(s: &TrainSettings, model: &Sequential, saved: &Optimizer) -> Result<()> {
    let layers = model.layers();
    let hidden: Vec<usize> = layers[..layers.len().saturating_sub(1)]
        .iter()
        .filter_map(|l| match l {
            Layer::Dense(d) => Some(d.units),
            _ => None,
        })
        .collect();
    if let Some(h) = &s.hidden {
        if *h != hidden {
            bail!("--resume: --hidden {h:?} differs from the saved model's hidden layers {hidden:?}");
        }
    }
    if let Some(a) = &s.activation {
        let want = Activation::parse(a).with_context(|| format!("unknown activation '{a}'"))?;
        let saved_act = layers.first().and_then(|l| match l {
            Layer::Dense(d) => d.activation,
            _ => None,
        });
        if layers.len() > 1 && saved_act != Some(want) {
            bail!("--resume: --activation {a} differs from the saved model's {saved_act:?}");
        }
    }
    if let Some(o) = &s.optimizer {
        let want = optimizer(o, None)?;
        if std::mem::discriminant(&want) != std::mem::discriminant(saved) {
            bail!("--resume: --optimizer {o} differs from the saved model's {saved:?}");
        }
    }
    Ok(())
}

/// The task a table's target implies, checked against what the user asked for.
fn resolve_task(asked: Task, table: &Table) -> Result<Task> {
    let classes = table.target.class_names().map(<[String]>::len);
    Ok(match (asked, classes) {
        (Task::Regression, Some(_)) => bail!("--task regression, but the target holds class labels"),
        (Task::Regression, None) | (Task::Auto, None) => Task::Regression,
        (_, Some(k)) if k < 2 => bail!("the target has a single class; there is nothing to learn"),
        (Task::Binary, Some(k)) if k != 2 => bail!("--task binary, but the target has {k} classes"),
        (Task::Auto, Some(2)) | (Task::Binary, Some(_)) => Task::Binary,
        (Task::Auto | Task::Multiclass, Some(_)) => Task::Multiclass,
        (Task::Binary | Task::Multiclass, None) => bail!("a classification task needs class labels"),
    })
}

fn optimizer(name: &str, lr: Option<f32>) -> Result<Optimizer> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "adam" => Optimizer::adam(lr.unwrap_or(1e-3)),
        "adamw" => Optimizer::adamw(lr.unwrap_or(1e-3)),
        "sgd" => Optimizer::sgd(lr.unwrap_or(1e-2)),
        "rmsprop" => Optimizer::rmsprop(lr.unwrap_or(1e-3)),
        other => bail!("unknown optimizer '{other}': expected adam, adamw, sgd or rmsprop"),
    })
}

/// The MLP for a task: hidden layers, then the output layer and the loss that fits the task.
fn build_model(
    inputs: usize,
    s: &TrainSettings,
    task: Task,
    classes: usize,
) -> Result<(Sequential, Loss, Vec<Metric>)> {
    let act_name = s.activation.as_deref().unwrap_or("relu");
    let act = Activation::parse(act_name).filter(|a| *a != Activation::Softmax).with_context(|| {
        format!("unknown activation '{act_name}': expected relu, leaky_relu, tanh, sigmoid, gelu or silu")
    })?;
    let hidden = s.hidden.as_deref().unwrap_or(&[100]);
    let outputs = if task == Task::Multiclass { classes } else { 1 };
    super::plan::check_mlp_memory(inputs, hidden, outputs, s.batch_size.unwrap_or(200))?;
    let mut model = Sequential::new(&[inputs]).seed(s.seed.unwrap_or(0));
    for &units in hidden {
        if units == 0 {
            bail!("--hidden: a layer of 0 units");
        }
        model = model.add(Dense(units, act));
    }
    Ok(match task {
        Task::Binary => (model.add(Dense(1, Sigmoid)), Loss::BinaryCrossEntropy, vec![Metric::Accuracy]),
        Task::Multiclass => (model.add(Dense(classes, Softmax)), Loss::CrossEntropy, vec![Metric::Accuracy]),
        _ => (model.add(Dense(1, None)), Loss::Mse, vec![Metric::Mae]),
    })
}

/// Training data from a CSV (a validation CSV must have the same columns and labels).
fn read_training(s: &TrainSettings) -> Result<(Table, Option<Table>, String)> {
    let data = s.data.as_ref().context("--data FILE.csv is required")?;
    let target = s.target.as_ref().context("--target COLUMN is required")?;
    let hint = match s.task.unwrap_or(Task::Auto) {
        Task::Auto => TaskHint::Auto,
        Task::Regression => TaskHint::Regression,
        Task::Binary | Task::Multiclass => TaskHint::Classification,
    };
    let train = read_csv(data, target, hint)?;
    let val = match &s.validation {
        None => None,
        Some(path) => {
            let v = match train.target.class_names() {
                Some(names) => read_csv_labeled(path, target, names)?,
                None => read_csv(path, target, TaskHint::Regression)?,
            };
            check_feature_names(path, &v.feature_names, &train.feature_names)?;
            Some(v)
        }
    };
    Ok((train, val, target.clone()))
}

/// Writes `<out stem><suffix>` next to the model.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{stem}{suffix}"))
}

/// Trains on `train` (validating on `val`) and saves to `out`. Returns the model and its history.
fn fit_and_save(
    s: &TrainSettings,
    mut train: Table,
    mut val: Option<Table>,
    target: String,
    out: &Path,
) -> Result<(Sequential, History)> {
    let task = resolve_task(s.task.unwrap_or(Task::Auto), &train)?;
    let why = task_reason(s.task, &train);
    let classes = train.target.class_names().map_or(0, <[String]>::len);
    let seed = s.seed.unwrap_or(0);
    if let (None, Some(f)) = (&val, s.validation_split.filter(|&f| f > 0.0)) {
        let (t, v) = train_val_split(train.rows, f, seed ^ 0x5A11)?;
        val = Some(train.subset(&v)?);
        train = train.subset(&t)?;
    }

    let (mut model, loss, metrics) = if s.resume {
        let model =
            Sequential::load(out).with_context(|| format!("--resume: cannot read {}", out.display()))?;
        check_feature_names(out, &train.feature_names, &model.data.features)?;
        if model.data.labels.as_deref() != train.target.class_names() {
            bail!("--resume: the data's labels differ from the model's ({:?})", model.data.labels);
        }
        let cfg = model.saved_config().context("--resume: the model file has no training state")?.clone();
        check_resume_flags(s, &model, &cfg.optimizer)?;
        kiln_trainer::validate::require_optimizer_file(out)
            .with_context(|| format!("--resume {}", out.display()))?;
        (model, cfg.loss, cfg.metrics)
    } else {
        build_model(train.cols, s, task, classes)?
    };
    if let Some(init) = &s.init {
        model.load_weights(init).with_context(|| format!("--init {}", init.display()))?;
    }

    // `fit` standardizes with statistics of the training rows only (the features unless
    // --no-standardize, a regression target always); a resumed model keeps its own.
    model.data = DataInfo {
        features: train.feature_names.clone(),
        labels: train.target.class_names().map(<[String]>::to_vec),
        standardizer: model.data.standardizer.clone(),
        target: Some(target),
        target_standardizer: model.data.target_standardizer.clone(),
    };

    let backend: BackendChoice = match &s.backend {
        Some(b) => b.parse()?,
        None => BackendChoice::from_env()?,
    };
    let mut config = Compile::new(optimizer(s.optimizer.as_deref().unwrap_or("adam"), s.lr)?, loss, &metrics);
    if s.resume {
        let saved = model.saved_config().cloned().expect("checked above");
        config.optimizer = if s.optimizer.is_some() || s.lr.is_some() {
            optimizer(s.optimizer.as_deref().unwrap_or("adam"), s.lr)?
        } else {
            saved.optimizer
        };
        config.accumulate = saved.accumulate;
        config.precision = saved.precision;
        config.loss_scale = saved.loss_scale;
    }
    if let Some(n) = s.accumulate {
        config.accumulate = n;
    }
    if let Some(p) = &s.precision {
        config.precision = p.parse()?;
    }
    if let Some(l) = &s.loss_scale {
        config.loss_scale = l.parse()?;
    }
    (config.backend, config.devices) = (backend, s.devices.unwrap_or(1).max(1));
    config.bucket_mb = s.bucket_mb.unwrap_or(kiln::trainer::DEFAULT_BUCKET_MB);
    // Open the device first: the model's buffers are checked against its limits before any is
    // allocated.
    let device = kiln_device::open(backend)?;
    let units: Vec<usize> = model
        .layers()
        .iter()
        .filter_map(|l| match l {
            Layer::Dense(d) => Some(d.units),
            _ => None,
        })
        .collect();
    if let Some((&outputs, hidden)) = units.split_last() {
        super::plan::check_mlp_on_device(
            train.cols,
            hidden,
            outputs,
            s.batch_size.unwrap_or(200),
            device.info(),
        )?;
    }
    model.compile_on(config, device)?;
    // in an MPI job every rank trains its share and rank 0 alone prints and writes files
    let root = kiln_trainer::distributed::is_root();
    if !s.quiet && root {
        eprint!("{}", model.summary()?);
        eprintln!("task: {} ({why})", task.name());
        eprintln!(
            "device: {}\ntraining on {} rows{}",
            model.device().unwrap_or_default(),
            train.rows,
            val.as_ref().map(|v| format!(", validating on {}", v.rows)).unwrap_or_default()
        );
    }

    let epochs = s.epochs.unwrap_or(200);
    let monitor = if val.is_some() { "val_loss" } else { "loss" };
    let log_final = beside(out, ".log.jsonl");
    let log_part = beside(out, ".log.jsonl.part");
    if s.resume && log_final.exists() && root {
        std::fs::copy(&log_final, &log_part).with_context(|| format!("{}", log_final.display()))?;
    }
    let val_ref: Option<&(dyn kiln_trainer::data::Dataset + Sync)> = val.as_ref().map(|v| v as _);
    let opts = FitOptions {
        epochs,
        batch_size: s.batch_size.unwrap_or(train.rows.min(200)),
        shuffle: !s.no_shuffle,
        validation: val_ref.map_or(Validation::None, Validation::Data),
        early_stopping: Some(EarlyStopping {
            monitor: monitor.into(),
            patience: s.patience.unwrap_or(10),
            min_delta: 1e-4,
            restore_best: true,
        }),
        checkpoint_best: None,
        log: Some(log_part.clone()),
        curves: None,
        quiet: s.quiet,
        standardize: !s.no_standardize,
        standardize_target: true,
        steps_per_epoch: None,
        max_steps: None,
    };
    let saved = model.fit(&train, &opts).map_err(anyhow::Error::from).and_then(|h| {
        if root {
            model.save(out).with_context(|| format!("writing {}", out.display()))?;
        }
        Ok(h)
    });
    let history = match saved {
        Ok(h) => h,
        Err(e) => {
            if root {
                let _ = std::fs::remove_file(&log_part); // no half-written log left behind
            }
            return Err(e);
        }
    };
    if !root {
        return Ok((model, history));
    }
    std::fs::rename(&log_part, &log_final).with_context(|| format!("{}", log_final.display()))?;
    if !history.epochs.is_empty() {
        write_svg(&beside(out, ".curves.svg"), &history.epochs)?;
    }
    if kiln_trainer::interrupt::stop_requested() {
        let at = match history.stopped_at {
            Some(s) => format!("at step {} of {} in epoch {}", s.step, s.steps, s.epoch),
            None => format!("after epoch {}", model.epochs_done()),
        };
        bail!(
            "interrupted {at}: the model and its optimizer state are saved to {} and {}; run the \
             same command with --resume to continue from there",
            out.display(),
            kiln_trainer::optimizer_path(out).display()
        );
    }
    Ok((model, history))
}

/// The end line: where training stopped, and the numbers of the epoch whose weights were saved
/// (the restored one after early stopping), then every file written, by full path.
fn report(history: &History, out: &Path, quiet: bool) {
    if quiet || !kiln_trainer::distributed::is_root() {
        return;
    }
    // after early stopping, `fit` has printed where it stopped and the restored epoch's numbers
    let printed = history.end_line().is_some();
    if let (Some(last), Some(kept), false) = (history.last(), history.final_epoch(), printed) {
        let restored =
            history.restored_epoch.map(|e| format!("; weights of epoch {e} restored")).unwrap_or_default();
        let why = if history.stopped_early { "early stopping" } else { "epoch limit" };
        eprintln!(
            "stopped after epoch {} ({why}{restored}): epoch {}: {}",
            last.epoch,
            kept.epoch,
            kept.summary()
        );
    }
    let full = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    eprintln!(
        "model: {} (log: {}, curves: {})",
        full(out),
        full(&beside(out, ".log.jsonl")),
        full(&beside(out, ".curves.svg"))
    );
}

/// Every file `train` writes for `out`, checked against every file it reads, before any work.
fn check_outputs(s: &TrainSettings, out: &Path) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = Vec::new();
    for (flag, p) in [("--data", &s.data), ("--validation", &s.validation), ("--init", &s.init)] {
        if let Some(p) = p {
            inputs.push((flag, p.as_path()));
        }
    }
    check_output("--out", out, &inputs)?;
    for suffix in [".log.jsonl", ".log.jsonl.part", ".curves.svg"] {
        check_output("--out", &beside(out, suffix), &inputs)?;
    }
    check_output("--out", &kiln_trainer::optimizer_path(out), &inputs)
}

/// `kiln train`.
pub fn train_csv(s: TrainSettings) -> Result<()> {
    let out = s.out.clone().context("--out MODEL.safetensors is required")?;
    check_settings(&s)?;
    check_outputs(&s, &out)?;
    let _lock = RunLock::take(&out)?;
    super::interrupt::install();
    let (train, val, target) = read_training(&s)?;
    let (_, history) = fit_and_save(&s, train, val, target, &out)?;
    report(&history, &out, s.quiet);
    Ok(())
}

/// The main job: an MLP on the bundled UCI digits (80/20 split), then its test accuracy.
pub fn digits(mut s: TrainSettings) -> Result<()> {
    let start = Instant::now();
    let (train, test) = digits_train_test()?;
    let out = s.out.clone().unwrap_or_else(|| PathBuf::from("target/kiln/digits.safetensors"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    s.validation_split = s.validation_split.or(Some(0.1));
    check_settings(&s)?;
    check_outputs(&s, &out)?;
    let _lock = RunLock::take(&out)?;
    super::interrupt::install();
    let root = kiln_trainer::distributed::is_root();
    if !s.quiet && root {
        eprintln!(
            "Kiln main job: MLP on the UCI handwritten digits ({} train / {} test images)",
            train.rows, test.rows
        );
    }
    let (mut model, history) = fit_and_save(&s, train, None, "label".into(), &out)?;
    report(&history, &out, s.quiet);
    let eval = model.evaluate(&test, 512)?;
    if !root {
        return Ok(());
    }
    let acc = eval.get("accuracy").unwrap_or(f64::NAN);
    println!(
        "test accuracy: {:.2}% ({} images), test loss {:.4}, {:.1} s",
        100.0 * acc,
        test.rows,
        eval.loss,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
