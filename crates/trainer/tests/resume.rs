//! Exact resume in every mode (issue 11): `fit` for N epochs, save, load, `fit` to E equals one
//! uninterrupted `fit` to E bit for bit: the weights, the saved file's tensors, every epoch's
//! losses and metrics, and where early stopping stops and which epoch it restores. The model has
//! dropout (masks from the seed and the global step) and shuffles (order from the seed and the
//! epoch), so nothing random needs saving; the early-stopping counters and the best and last
//! weights do.

mod common;

use common::temp_dir;
use kiln_device::BackendChoice;
use kiln_trainer::checkpoint::Checkpoint;
use kiln_trainer::data::{Array, SplitMix64, Table};
use kiln_trainer::prelude::*;
use kiln_trainer::History;

fn table(rows: usize, seed: u64) -> Table {
    let mut rng = SplitMix64::new(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for _ in 0..rows {
        let v: Vec<f32> = (0..4).map(|_| rng.below(2000) as f32 / 1000.0 - 1.0).collect();
        let class = if v[0] + 0.5 * v[1] > 0.2 {
            0
        } else if v[2] > 0.0 {
            1
        } else {
            2
        };
        x.extend(v);
        y.push(class);
    }
    Table::from_arrays(Array { shape: vec![rows, 4], data: x }, Some(Array { shape: vec![rows], data: y }))
        .unwrap()
}

fn model() -> Sequential {
    let mut m = Sequential::new(&[4]).add(Dense(24, Relu)).add(Dropout(0.3)).add(Dense(3, Softmax)).seed(7);
    let mut c = Compile::new(Optimizer::adam(0.02), Loss::CrossEntropy, &[Metric::Accuracy]);
    c.backend = BackendChoice::Cpu;
    m.compile_with(c).unwrap();
    m
}

fn bits(m: &mut Sequential) -> Vec<(String, Vec<u32>)> {
    m.weights().unwrap().into_iter().map(|t| (t.0, t.2.iter().map(|v| v.to_bits()).collect())).collect()
}

fn records(h: &History) -> Vec<(usize, u64, Option<u64>, Vec<u64>)> {
    h.epochs
        .iter()
        .map(|r| {
            let m = r.metrics.iter().chain(&r.val_metrics).map(|x| x.1.to_bits()).collect();
            (r.epoch, r.loss.to_bits(), r.val_loss.map(f64::to_bits), m)
        })
        .collect()
}

/// Straight to `epochs`, and to `first`, save, load, then to `epochs`: the same in every way.
/// Returns both histories (uninterrupted, first part).
fn check(
    name: &str,
    data: &Table,
    opts: &dyn Fn(usize) -> FitOptions<'static>,
    first: usize,
    epochs: usize,
) -> (History, History) {
    let d = temp_dir(&format!("resume-{name}"));
    let mut straight = model();
    let h = straight.fit(data, &opts(epochs)).unwrap();
    let mut half = model();
    let h1 = half.fit(data, &opts(first)).unwrap();
    assert!(!h1.stopped_early, "{name}: the first part must not stop early");
    // a fit with no epochs left is refused (it would train nothing) and changes nothing: the
    // last weights stay held
    let e = half.fit(data, &opts(first)).expect_err("no epochs left");
    assert!(e.to_string().contains("nothing to train"), "{e}");
    let path = d.join("half.safetensors");
    half.save(&path).unwrap();
    let mut resumed = Sequential::load(&path).unwrap();
    let mut cfg = resumed.saved_config().unwrap().clone();
    cfg.backend = BackendChoice::Cpu;
    resumed.compile_with(cfg).unwrap();
    let h2 = resumed.fit(data, &opts(epochs)).unwrap();

    let mut both = records(&h1);
    both.extend(records(&h2));
    assert_eq!(both, records(&h), "{name}: the epochs' losses and metrics differ");
    assert_eq!((h2.stopped_early, h2.restored_epoch), (h.stopped_early, h.restored_epoch), "{name}");
    assert_eq!(bits(&mut resumed), bits(&mut straight), "{name}: the weights differ");
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    straight.save(&a).unwrap();
    resumed.save(&b).unwrap();
    assert_eq!(Checkpoint::read(&a).unwrap().tensors, Checkpoint::read(&b).unwrap().tensors, "{name}");
    std::fs::remove_dir_all(&d).ok();
    (h, h1)
}

static VAL: std::sync::OnceLock<Table> = std::sync::OnceLock::new();

fn es(monitor: &str, patience: usize) -> Option<EarlyStopping> {
    Some(EarlyStopping::new(monitor, patience))
}

#[test]
fn resume_without_validation_is_exact() {
    let data = table(90, 1);
    let opts = |epochs| FitOptions { epochs, batch_size: 16, quiet: true, ..Default::default() };
    check("plain", &data, &opts, 3, 6);
}

#[test]
fn resume_with_a_validation_split_and_restored_best_weights_is_exact() {
    let data = table(90, 2);
    let opts = |epochs| FitOptions {
        epochs,
        batch_size: 16,
        quiet: true,
        validation: Validation::Split(0.3),
        early_stopping: es("val_accuracy", 1000),
        ..Default::default()
    };
    let (h, h1) = check("split", &data, &opts, 6, 12);
    assert!(h.restored_epoch.is_some());
    assert!(h1.restored_epoch.is_some(), "the first part must restore best weights");
}

#[test]
fn resume_with_validation_data_is_exact() {
    let data = table(90, 3);
    let opts = |epochs| FitOptions {
        epochs,
        batch_size: 16,
        quiet: true,
        validation: Validation::Data(VAL.get_or_init(|| table(40, 33))),
        early_stopping: es("val_accuracy", 1000),
        ..Default::default()
    };
    let (h, h1) = check("data", &data, &opts, 6, 12);
    assert!(h.restored_epoch.is_some());
    assert!(h1.restored_epoch.is_some(), "the first part must restore best weights");
}

#[test]
fn resume_with_early_stopping_stops_and_restores_as_an_uninterrupted_fit() {
    let data = table(60, 4);
    let opts = |epochs| FitOptions {
        epochs,
        batch_size: 8,
        quiet: true,
        validation: Validation::Split(0.4),
        early_stopping: es("val_loss", 2),
        ..Default::default()
    };
    let mut probe = model();
    let h = probe.fit(&data, &opts(200)).unwrap();
    assert!(h.stopped_early, "the data must make early stopping stop");
    let stop = h.epochs.len();
    assert!(stop >= 4, "stopped at {stop}");
    // interrupted after the best epoch, while waiting (the model file then holds the restored
    // best weights and the optimizer file the last ones), and before it
    for first in [stop - 1, 1] {
        let (again, _) = check(&format!("early-{first}"), &data, &opts, first, 200);
        assert_eq!(again.epochs.len(), stop);
    }
}
