//! End-to-end training: convergence on the CPU and on the GPU backend (lavapipe in CI), the same
//! losses on both, exact resume from a checkpoint, and the save/load round trip.

use kiln::data::{digits_train_test, Standardizer, Table, Target};
use kiln::device::BackendChoice;
use kiln::prelude::*;
use kiln::trainer::{History, Sequential};

/// The GPU backend, or `None` with a loud note; under `KILN_REQUIRE_GPU=1` a missing adapter fails.
fn gpu_available() -> bool {
    kiln_device::testing::gpu_or_skip("GPU training").is_some()
}

/// Two noisy interleaved half-moons, seeded: a problem a small MLP must bend a boundary for.
fn moons(rows: usize, seed: u64) -> Table {
    let mut rng = kiln::data::SplitMix64::new(seed);
    let mut unit = || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
    let (mut x, mut ids) = (Vec::new(), Vec::new());
    for i in 0..rows {
        let class = (i % 2) as u32;
        let t = std::f32::consts::PI * unit();
        let (cx, cy) = if class == 0 { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
        x.extend([cx + 0.15 * (unit() - 0.5), cy + 0.15 * (unit() - 0.5)]);
        ids.push(class);
    }
    let names = vec!["x".to_string(), "y".to_string()];
    Table::new(x, rows, 2, names, Target::Classes { ids, names: vec!["a".into(), "b".into()] }).unwrap()
}

fn moons_model(backend: BackendChoice) -> Sequential {
    let mut m =
        Sequential::new(&[2]).add(Dense(16, Tanh)).add(Dense(16, Relu)).add(Dense(1, Sigmoid)).seed(3);
    let mut cfg = Compile::new(Optimizer::adam(0.02), Loss::BinaryCrossEntropy, &[Metric::Accuracy]);
    cfg.backend = backend;
    m.compile_with(cfg).unwrap();
    m
}

fn fit(model: &mut Sequential, data: &Table, epochs: usize, batch: usize) -> History {
    let opts = FitOptions { epochs, batch_size: batch, quiet: true, ..Default::default() };
    model.fit(data, &opts).unwrap()
}

#[test]
fn digits_mlp_reaches_95_percent_on_cpu() {
    let (mut train, mut test) = digits_train_test().unwrap();
    let sc = Standardizer::fit_table(&train).unwrap();
    sc.apply_table(&mut train).unwrap();
    sc.apply_table(&mut test).unwrap();
    let mut model = Sequential::new(&[64]).add(Dense(64, Relu)).add(Dense(10, Softmax)).seed(1);
    let mut cfg = Compile::new(Optimizer::adam(1e-3), Loss::CrossEntropy, &[Metric::Accuracy]);
    cfg.backend = BackendChoice::Cpu;
    model.compile_with(cfg).unwrap();
    let h = fit(&mut model, &train, 25, 32);
    assert!(h.epochs[0].loss > 4.0 * h.last().unwrap().loss, "loss fell too little: {:?}", h.epochs);
    let acc = model.evaluate(&test, 256).unwrap().get("accuracy").unwrap();
    assert!(acc >= 0.95, "test accuracy {acc}");
}

#[test]
fn cpu_and_gpu_train_to_the_same_losses_and_accuracy() {
    if !gpu_available() {
        return;
    }
    let data = moons(200, 9);
    let (mut cpu, mut gpu) = (moons_model(BackendChoice::Cpu), moons_model(BackendChoice::Gpu));
    // Same seed, same batches: the first epochs' losses agree to float32 rounding.
    let (hc, hg) = (fit(&mut cpu, &data, 3, 50), fit(&mut gpu, &data, 3, 50));
    for (c, g) in hc.epochs.iter().zip(&hg.epochs) {
        assert!(
            (c.loss - g.loss).abs() <= 1e-4 * c.loss.abs().max(1e-3),
            "epoch {}: cpu {} gpu {}",
            c.epoch,
            c.loss,
            g.loss
        );
    }
    // Trained on: both learn the moons (the same accuracy band).
    let (hc, hg) = (fit(&mut cpu, &data, 40, 50), fit(&mut gpu, &data, 40, 50));
    let (ac, ag) = (hc.last().unwrap().get("accuracy").unwrap(), hg.last().unwrap().get("accuracy").unwrap());
    assert!(ac >= 0.95 && ag >= 0.95, "accuracy cpu {ac}, gpu {ag}");
    assert!((ac - ag).abs() <= 0.03, "accuracy cpu {ac}, gpu {ag}");
}

#[test]
fn resumed_training_ends_with_the_same_weights() {
    let data = moons(120, 4);
    let dir = std::env::temp_dir().join(format!("kiln-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("half.safetensors");
    let with_dropout = || {
        let mut m =
            Sequential::new(&[2]).add(Dense(12, Relu)).add(Dropout(0.2)).add(Dense(1, Sigmoid)).seed(5);
        let mut cfg = Compile::new(Optimizer::adam(0.01), Loss::BinaryCrossEntropy, &[]);
        cfg.backend = BackendChoice::Cpu;
        cfg.schedule = Schedule::Cosine { total: 30, min_lr: 0.001 };
        m.compile_with(cfg).unwrap();
        m
    };
    let mut straight = with_dropout();
    fit(&mut straight, &data, 4, 16);

    let mut first = with_dropout();
    fit(&mut first, &data, 2, 16);
    first.save(&path).unwrap();
    let mut resumed = Sequential::load(&path).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    let mut cfg = resumed.saved_config().unwrap().clone();
    cfg.backend = BackendChoice::Cpu;
    resumed.compile_with(cfg).unwrap();
    fit(&mut resumed, &data, 4, 16);

    let (a, b) = (straight.weights().unwrap(), resumed.weights().unwrap());
    assert_eq!(a, b, "resumed weights differ from an uninterrupted run");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn saved_model_predicts_the_same() {
    let data = moons(64, 2);
    let mut model = moons_model(BackendChoice::Cpu);
    fit(&mut model, &data, 5, 16);
    let before = model.predict(&data, 32).unwrap();
    let path = std::env::temp_dir().join(format!("kiln-roundtrip-{}.safetensors", std::process::id()));
    model.save(&path).unwrap();
    let mut loaded = Sequential::load(&path).unwrap();
    let mut cfg = loaded.saved_config().unwrap().clone();
    cfg.backend = BackendChoice::Cpu;
    loaded.compile_with(cfg).unwrap();
    assert_eq!(loaded.predict(&data, 32).unwrap(), before);
    assert_eq!(loaded.layers(), model.layers());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(kiln::trainer::optimizer_path(&path));
}

#[test]
fn a_diverging_loss_stops_training_with_the_step() {
    let data = moons(64, 1);
    let mut model = Sequential::new(&[2]).add(Dense(8, Relu)).add(Dense(1, None)).seed(1);
    let mut cfg = Compile::new(Optimizer::sgd(1e6), Loss::Mse, &[]);
    cfg.backend = BackendChoice::Cpu;
    model.compile_with(cfg).unwrap();
    let regression = Table::new(
        data.features.clone(),
        64,
        2,
        data.feature_names.clone(),
        Target::Regression(vec![1e3; 64]),
    )
    .unwrap();
    let err = model
        .fit(&regression, &FitOptions { epochs: 50, batch_size: 8, quiet: true, ..Default::default() })
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("the loss became") && msg.contains("step"), "{msg}");
}
