//! The library as a new user meets it (issue 12): `fit` on a table records feature names, labels and
//! standardizers, `evaluate` and `predict` apply them and check columns by name, regression targets
//! are standardized by default and predicted in their own units, `predict` has a shape and
//! `predict_classes` labels, a second `fit` that would train nothing is an error, and `fit` says how
//! it stopped and can write its curves. Everything runs on the CPU backend.

use kiln::data::{SplitMix64, Table, Target};
use kiln::device::BackendChoice;
use kiln::prelude::*;
use kiln::trainer::Sequential;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-library-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unit(rng: &mut SplitMix64) -> f32 {
    (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32
}

/// Three classes of points around far-apart centres, with features on very different scales (a
/// model without standardization struggles), columns `a`, `b`, `c`.
fn blobs(rows: usize, seed: u64) -> Table {
    let mut rng = SplitMix64::new(seed);
    let (mut x, mut ids) = (Vec::new(), Vec::new());
    for i in 0..rows {
        let class = (i % 3) as u32;
        let c = class as f32;
        x.extend([
            1000.0 + 300.0 * c + 60.0 * unit(&mut rng),
            0.01 * c + 0.004 * unit(&mut rng),
            unit(&mut rng),
        ]);
        ids.push(class);
    }
    let names = ["a", "b", "c"].map(String::from).to_vec();
    let labels = ["setosa", "versicolor", "virginica"].map(String::from).to_vec();
    Table::new(x, rows, 3, names, Target::Classes { ids, names: labels }).unwrap()
}

/// `y = 500 + 355 * (sin(2 x0) + x1 x2)`: a target with mean 500 and a spread in the hundreds.
fn prices(rows: usize, seed: u64) -> Table {
    let mut rng = SplitMix64::new(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..rows {
        let v = [2.0 * unit(&mut rng) - 1.0, 2.0 * unit(&mut rng) - 1.0, 2.0 * unit(&mut rng) - 1.0];
        y.push(500.0 + 355.0 * ((2.0 * v[0]).sin() + v[1] * v[2]));
        x.extend(v);
    }
    let names = ["x0", "x1", "x2"].map(String::from).to_vec();
    Table::new(x, rows, 3, names, Target::Regression(y)).unwrap()
}

fn compiled(model: Sequential, optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Sequential {
    let mut model = model;
    let mut cfg = Compile::new(optimizer, loss, metrics);
    cfg.backend = BackendChoice::Cpu;
    model.compile_with(cfg).unwrap();
    model
}

fn classifier() -> Sequential {
    let m = Sequential::new(&[3]).add(Dense(16, Relu)).add(Dense(3, Softmax)).seed(5);
    compiled(m, Optimizer::adam(1e-2), Loss::CrossEntropy, &[Metric::Accuracy])
}

fn quiet(epochs: usize) -> FitOptions<'static> {
    FitOptions { epochs, batch_size: 32, quiet: true, ..Default::default() }
}

#[test]
fn fit_on_a_table_records_names_labels_and_standardizer_and_a_loaded_model_predicts_the_same() {
    let (train, test) = (blobs(300, 1), blobs(90, 2));
    let mut model = classifier();
    model.fit(&train, &quiet(30)).unwrap();
    assert_eq!(model.data.features, ["a", "b", "c"]);
    assert_eq!(model.data.labels.as_deref().unwrap(), ["setosa", "versicolor", "virginica"]);
    let sc = model.data.standardizer.clone().expect("fit standardizes by default");
    assert!((sc.mean[0] - 1330.0).abs() < 20.0 && sc.std[0] > 100.0, "{sc:?}");
    assert!(model.data.target_standardizer.is_none(), "no target scaler for classes");
    let acc = model.evaluate(&test, 64).unwrap().get("accuracy").unwrap();
    assert!(acc > 0.95, "raw data, standardized by the model: accuracy {acc}");

    let pred = model.predict(&test, 64).unwrap();
    assert_eq!(pred.shape(), [90, 3]);
    assert_eq!((pred.rows, pred.cols, pred.values.len()), (90, 3, 270));
    assert_eq!(pred.row(1).len(), 3);
    let classes = model.predict_classes(&test, 64).unwrap();
    assert_eq!(classes.len(), 90);
    assert_eq!(&classes[..3], ["setosa", "versicolor", "virginica"]);

    let dir = temp("roundtrip");
    let path = dir.join("blobs.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Sequential::load(&path).unwrap();
    assert_eq!(loaded.data, model.data, "labels and scaler travel in the file");
    assert_eq!(loaded.predict(&test, 64).unwrap(), pred);
    assert_eq!(loaded.predict_classes(&test, 64).unwrap(), classes);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn standardize_false_fits_no_scaler() {
    let mut model = classifier();
    let opts = FitOptions { standardize: false, ..quiet(1) };
    model.fit(&blobs(60, 1), &opts).unwrap();
    assert!(model.data.standardizer.is_none());
    assert_eq!(model.data.features, ["a", "b", "c"], "names are recorded all the same");
}

#[test]
fn evaluate_and_predict_name_missing_and_unexpected_columns() {
    let mut model = classifier();
    model.fit(&blobs(60, 1), &quiet(1)).unwrap();
    let mut other = blobs(30, 2);
    other.feature_names[2] = "d".into();
    let e = model.evaluate(&other, 32).unwrap_err().to_string();
    assert!(e.contains("missing 'c'") && e.contains("unexpected 'd'"), "{e}");
    let e = model.predict(&other, 32).unwrap_err().to_string();
    assert!(e.contains("missing 'c'") && e.contains("unexpected 'd'"), "{e}");
    let e = model.predict_classes(&other, 32).unwrap_err().to_string();
    assert!(e.contains("missing 'c'"), "{e}");
}

#[test]
fn regression_learns_by_default_and_predicts_in_the_targets_units() {
    // the README's regression settings: AdamW at 3e-4, 100 epochs, hidden 64, 32
    let (train, test) = (prices(400, 3), prices(200, 4));
    let m = Sequential::new(&[3]).add(Dense(64, Relu)).add(Dense(32, Relu)).add(Dense(1, None)).seed(2);
    let mut model = compiled(m, Optimizer::adamw(3e-4), Loss::Mse, &[Metric::Mae]);
    model.fit(&train, &quiet(100)).unwrap();
    let t = model.data.target_standardizer.clone().expect("regression targets are standardized");
    assert!((t.mean[0] - 500.0).abs() < 60.0 && t.std[0] > 150.0, "{t:?}");
    let mae = model.evaluate(&test, 64).unwrap().get("mae").unwrap();
    // predicting the mean gives about 250; unstandardized, this run stays above 300
    assert!(mae < 60.0, "test MAE {mae} (in the target's units)");
    let pred = model.predict(&test, 64).unwrap();
    let mean = pred.iter().sum::<f32>() / pred.len() as f32;
    assert!((mean - 500.0).abs() < 80.0, "predictions in the target's units, mean {mean}");
    let Target::Regression(y) = &test.target else { unreachable!() };
    let direct = pred.iter().zip(y).map(|(p, t)| (p - t).abs() as f64).sum::<f64>() / y.len() as f64;
    assert!((direct - mae).abs() < 1e-3 * mae.max(1.0), "evaluate's MAE {mae} vs predictions' {direct}");

    let dir = temp("regression");
    let path = dir.join("prices.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Sequential::load(&path).unwrap();
    assert_eq!(loaded.data.target_standardizer, Some(t));
    assert_eq!(loaded.predict(&test, 64).unwrap(), pred);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn standardize_target_false_learns_the_raw_target() {
    let m = Sequential::new(&[3]).add(Dense(8, Relu)).add(Dense(1, None));
    let mut model = compiled(m, Optimizer::adam(1e-3), Loss::Mse, &[Metric::Mae]);
    model.fit(&prices(64, 3), &FitOptions { standardize_target: false, ..quiet(1) }).unwrap();
    assert!(model.data.target_standardizer.is_none());
}

#[test]
fn a_model_file_without_a_target_scaler_still_loads() {
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1_model.safetensors");
    let model = Sequential::load(&fixture).unwrap();
    assert!(model.data.target_standardizer.is_none());
}

#[test]
fn a_second_fit_that_would_train_nothing_is_an_error_saying_what_to_ask_for() {
    let mut model = classifier();
    let data = blobs(60, 1);
    model.fit(&data, &quiet(3)).unwrap();
    let e = model.fit(&data, &quiet(2)).unwrap_err().to_string();
    assert!(e.contains("already trained 3 epochs") && e.contains("epochs = 5"), "{e}");
    assert_eq!(model.epochs_done(), 3);
    let h = model.fit(&data, &quiet(5)).unwrap();
    assert_eq!(h.epochs.iter().map(|r| r.epoch).collect::<Vec<_>>(), [4, 5], "epochs count in total");
}

#[test]
fn fit_says_it_stopped_early_and_which_epoch_it_restored_and_writes_curves() {
    let (train, val) = (blobs(120, 1), blobs(60, 2));
    let mut model = classifier();
    let dir = temp("curves");
    let svg = dir.join("curves.svg");
    let opts = FitOptions {
        validation: Validation::Data(&val),
        // improvement must be huge: after the first epoch, patience + 1 epochs without one stop it
        early_stopping: Some(EarlyStopping { min_delta: 1e9, ..EarlyStopping::new("val_loss", 2) }),
        curves: Some(svg.clone()),
        ..quiet(50)
    };
    let h = model.fit(&train, &opts).unwrap();
    assert!(h.stopped_early);
    assert_eq!(h.epochs.len(), 4);
    assert_eq!(h.restored_epoch, Some(1));
    assert_eq!(h.monitor, "val_loss");
    assert_eq!(h.final_epoch().unwrap().epoch, 1);
    let line = h.end_line().unwrap();
    assert!(
        line.contains("stopped early after epoch 4") && line.contains("restored the weights of epoch 1"),
        "{line}"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") || text.contains("<svg"), "{}", &text[..100.min(text.len())]);
    std::fs::remove_dir_all(&dir).ok();
}
