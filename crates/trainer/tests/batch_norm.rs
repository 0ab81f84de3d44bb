//! BatchNorm in a `Sequential` model, on the CPU backend: the training forward against a float64
//! reference, the running statistics against PyTorch's update rule, evaluation with the running
//! statistics, the state_dict names, a save/load round trip, and learning on the digits.

mod common;

use common::{f32_bytes, safetensors_bytes, temp_dir};
use kiln_device::BackendChoice;
use kiln_trainer::checkpoint::{Checkpoint, Dtype};
use kiln_trainer::data::{digits_train_test, Array, SplitMix64, Standardizer, Table};
use kiln_trainer::prelude::*;
use kiln_trainer::Layer;

const EPS: f64 = 1e-5;

fn uniform(rng: &mut SplitMix64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| lo + (hi - lo) * ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)).collect()
}

fn cpu(optimizer: Optimizer) -> Compile {
    let mut c = Compile::new(optimizer, Loss::CrossEntropy, &[]);
    c.backend = BackendChoice::Cpu;
    c
}

/// Per-channel (mean, biased var) of rows `x` (`[n, c, p]` flattened) in float64.
fn stats(x: &[f64], n: usize, c: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
    let at = |r: usize, ch: usize, k: usize| x[(r * c + ch) * p + k];
    let cnt = (n * p) as f64;
    let mean: Vec<f64> = (0..c)
        .map(|ch| {
            (0..n).flat_map(|r| (0..p).map(move |k| (r, k))).map(|(r, k)| at(r, ch, k)).sum::<f64>() / cnt
        })
        .collect();
    let var = (0..c)
        .map(|ch| {
            (0..n)
                .flat_map(|r| (0..p).map(move |k| (r, k)))
                .map(|(r, k)| (at(r, ch, k) - mean[ch]).powi(2))
                .sum::<f64>()
                / cnt
        })
        .collect();
    (mean, var)
}

/// `(x - mean) / sqrt(var + eps) * w + b`, per channel, float64.
fn normalize(x: &[f64], c: usize, p: usize, mean: &[f64], var: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / p) % c;
            (v - mean[ch]) / (var[ch] + EPS).sqrt() * w[ch] + b[ch]
        })
        .collect()
}

/// Mean softmax cross-entropy of logits rows of `width` against `labels`.
fn cross_entropy(logits: &[f64], width: usize, labels: &[u32]) -> f64 {
    let total: f64 = logits
        .chunks(width)
        .zip(labels)
        .map(|(z, &y)| {
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - z[y as usize]
        })
        .sum();
    total / labels.len() as f64
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

/// One case: BatchNorm (as the first layer, then Flatten for images) over input `shape`,
/// trained for 3 steps, of `batch`, `batch` and `last` rows, with fixed weights; checks loss,
/// running stats, eval. A short last batch has its own unbiased factor `n / (n - 1)`.
fn check_case(shape: &[usize], batch: usize, last: usize, seed: u64) {
    let (c, p) = (shape[0], shape[1..].iter().product::<usize>());
    let width = c * p;
    let sizes = [batch, batch, last];
    let rows: usize = sizes.iter().sum();
    let mut rng = SplitMix64::new(seed);
    let x = uniform(&mut rng, rows * width, -2.0, 3.0);
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(width as u64) as u32).collect();
    let w = uniform(&mut rng, c, 0.5, 1.5);
    let b = uniform(&mut rng, c, -0.5, 0.5);
    let mut feat_shape = vec![rows];
    feat_shape.extend_from_slice(shape);
    let table = Table::from_arrays(
        Array { shape: feat_shape, data: x.iter().map(|&v| v as f32).collect() },
        Some(Array { shape: vec![rows], data: labels.clone() }),
    )
    .unwrap();

    let mut m = Sequential::new(shape).add(BatchNorm());
    if shape.len() == 3 {
        m = m.add(Flatten());
    }
    m.set_weight("0.weight", &w.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
    m.set_weight("0.bias", &b.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
    // lr 0: the weights stay as set, so every batch's loss has a float64 reference
    m.compile_with(cpu(Optimizer::sgd(0.0))).unwrap();
    // the raw rows: the float64 reference normalizes exactly these
    let opts = FitOptions {
        epochs: 1,
        batch_size: batch,
        shuffle: false,
        quiet: true,
        standardize: false,
        ..Default::default()
    };
    let h = m.fit(&table, &opts).unwrap();

    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    let mut loss = 0.0;
    for (k, &size) in sizes.iter().enumerate() {
        let start = k * batch;
        let xb = &x[start * width..(start + size) * width];
        let (mean, var) = stats(xb, size, c, p);
        let y = normalize(xb, c, p, &mean, &var, &w, &b);
        // the epoch loss is the mean over rows
        loss += cross_entropy(&y, width, &labels[start..start + size]) * size as f64 / rows as f64;
        let n = (size * p) as f64;
        for ch in 0..c {
            rm[ch] = 0.9 * rm[ch] + 0.1 * mean[ch];
            rv[ch] = 0.9 * rv[ch] + 0.1 * var[ch] * n / (n - 1.0);
        }
    }
    let got = h.epochs[0].loss;
    assert!(close(got, loss, 1e-5), "{shape:?}: training loss {got} vs float64 reference {loss}");

    let weights = m.weights().unwrap();
    let get = |name: &str| weights.iter().find(|(n, _, _)| n == name).unwrap().2.clone();
    for (name, want) in [("0.running_mean", &rm), ("0.running_var", &rv)] {
        let have = get(name);
        for (ch, (&h, &w)) in have.iter().zip(want.iter()).enumerate() {
            assert!(close(h as f64, w, 1e-5), "{shape:?} {name}[{ch}]: {h} vs PyTorch rule {w}");
        }
    }
    assert_eq!(get("0.num_batches_tracked"), vec![3.0]);

    // predict normalizes with the running statistics
    let pred = m.predict_features(&x.iter().map(|&v| v as f32).collect::<Vec<_>>()).unwrap();
    let want = normalize(&x, c, p, &rm, &rv, &w, &b);
    for (i, (&g, &r)) in pred.iter().zip(&want).enumerate() {
        assert!(close(g as f64, r, 1e-4), "{shape:?} eval output {i}: {g} vs {r}");
    }
}

#[test]
fn training_forward_running_stats_and_eval_match_float64() {
    check_case(&[5], 7, 7, 1); // [B, C], as after Dense
    check_case(&[3, 5, 3], 5, 5, 2); // [B, C, H, W], as after Conv2d
}

#[test]
fn a_short_last_batch_gets_its_own_unbiased_factor() {
    check_case(&[5], 7, 2, 3); // n = 7, 7, then 2: factors 7/6, 7/6, 2
    check_case(&[3, 5, 3], 5, 1, 4); // n = 75, 75, then 15
}

#[test]
fn buffers_are_named_saved_loaded_and_not_optimized() {
    let mut rng = SplitMix64::new(9);
    let rows = 24;
    let x: Vec<f32> = uniform(&mut rng, rows * 6, 1.0, 4.0).iter().map(|&v| v as f32).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(3) as u32).collect();
    let table = Table::from_arrays(
        Array { shape: vec![rows, 6], data: x.clone() },
        Some(Array { shape: vec![rows], data: labels }),
    )
    .unwrap();
    let mut m = Sequential::new(&[6]).add(Dense(4, None)).add(BatchNorm()).add(Dense(3, Softmax)).seed(4);
    let names: Vec<(String, Vec<usize>)> = m.weights().unwrap().into_iter().map(|(n, s, _)| (n, s)).collect();
    let want: Vec<(String, Vec<usize>)> = [
        ("0.weight", vec![4, 6]),
        ("0.bias", vec![4]),
        ("1.weight", vec![4]),
        ("1.bias", vec![4]),
        ("1.running_mean", vec![4]),
        ("1.running_var", vec![4]),
        ("1.num_batches_tracked", vec![]),
        ("2.weight", vec![3, 4]),
        ("2.bias", vec![3]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(names, want);
    let s = m.summary().unwrap();
    assert!(s.contains("BatchNorm1d(4)"), "{s}");
    assert!(s.contains("total parameters: 51"), "buffers are not counted as parameters: {s}");

    // AdamW decays every parameter it updates, even with a zero gradient: the running
    // statistics would drift from PyTorch's rule if the optimizer touched them
    m.compile_with(cpu(Optimizer::AdamW {
        lr: 0.05,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.5,
    }))
    .unwrap();
    let opts = FitOptions { epochs: 2, batch_size: 8, shuffle: true, quiet: true, ..Default::default() };
    m.fit(&table, &opts).unwrap();
    let before = m.weights().unwrap();
    let get =
        |w: &[(String, Vec<usize>, Vec<f32>)], name: &str| w.iter().find(|t| t.0 == name).unwrap().2.clone();
    assert_eq!(get(&before, "1.num_batches_tracked"), vec![6.0]);
    let rm = get(&before, "1.running_mean");
    assert!(rm.iter().any(|v| v.abs() > 1e-3), "running mean never moved: {rm:?}");
    let pred = m.predict_features(&x).unwrap();

    let dir = std::env::temp_dir().join(format!("kiln-bn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bn.safetensors");
    m.save(&path).unwrap();
    let optim = Checkpoint::read(kiln_trainer::optimizer_path(&path)).unwrap();
    assert!(
        optim
            .tensors
            .iter()
            .all(|t| !t.name.starts_with("1.running") && !t.name.starts_with("1.num_batches")),
        "buffers have no optimizer state"
    );
    assert!(optim.tensors.iter().any(|t| t.name.starts_with("1.weight")));

    let mut loaded = Sequential::load(&path).unwrap();
    assert_eq!(loaded.weights().unwrap(), before);
    loaded.compile_with(cpu(Optimizer::sgd(0.1))).unwrap();
    assert_eq!(loaded.weights().unwrap(), before);
    assert_eq!(loaded.predict_features(&x).unwrap(), pred);
    std::fs::remove_dir_all(&dir).ok();

    // a one-row training batch has no variance to estimate (PyTorch refuses it too)
    let one = table.subset(&[0]).unwrap();
    let err = m.fit(&one, &FitOptions { epochs: 3, batch_size: 8, quiet: true, ..Default::default() });
    assert!(err.unwrap_err().to_string().contains("more than 1 value per channel"));

    let bad = Sequential::new(&[2, 3]).add(BatchNorm());
    assert!(bad.output_shapes().is_err(), "[C, L] is not a BatchNorm input here");
}

#[test]
fn a_model_with_batch_norm_learns_digits() {
    let (mut train, _) = digits_train_test().unwrap();
    let scaler = Standardizer::fit_table(&train).unwrap();
    scaler.apply_table(&mut train).unwrap();
    let train = train.subset(&(0..400).collect::<Vec<_>>()).unwrap();
    let mut m = Sequential::new(&[1, 8, 8])
        .add(Conv2d(6, 3).conv(1, 1, 1))
        .add(BatchNorm())
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2))
        .add(Flatten())
        .add(Dense(32, None))
        .add(BatchNorm())
        .add(Layer::Activation(Relu))
        .add(Dense(10, Softmax))
        .seed(5);
    let mut config = Compile::new(Optimizer::adam(3e-3), Loss::CrossEntropy, &[Metric::Accuracy]);
    config.backend = BackendChoice::Cpu;
    m.compile_with(config).unwrap();
    let opts = FitOptions { epochs: 6, batch_size: 32, quiet: true, ..Default::default() };
    let h = m.fit(&train, &opts).unwrap();
    let (first, last) = (h.epochs[0].loss, h.epochs.last().unwrap().loss);
    eprintln!("digits with BatchNorm: loss {first} -> {last}");
    assert!(last < first / 4.0, "loss {first} -> {last} did not fall 4x in 6 epochs");
    // evaluation (running statistics) agrees with training on the same rows
    let eval = m.evaluate(&train, 64).unwrap();
    eprintln!("eval loss with running statistics: {}", eval.loss);
    assert!(eval.get("accuracy").unwrap() > 0.8, "{eval:?}");
}

/// PyTorch's `state_dict` holds `num_batches_tracked` as int64: such a file loads, and Kiln writes
/// the same dtype (read back by `load`).
#[test]
fn num_batches_tracked_is_int64_in_files_both_ways() {
    let d = temp_dir("bn-int64");
    let model = || Sequential::new(&[3]).add(BatchNorm()).add(Dense(2, None));
    let (w, b, rm, rv) = ([1.5f32, 0.5, 2.0], [0.1f32, -0.2, 0.3], [0.25f32, -1.0, 2.0], [1.5f32, 0.75, 3.0]);
    let (dw, db) = ([0.5f32, -0.25, 1.0, 2.0, 0.0, -1.0], [0.01f32, 0.02]);
    // as `safetensors.torch.save_file(model.state_dict(), ...)` writes it: no metadata
    let torch = safetensors_bytes(&[
        ("0.weight", "F32", vec![3], f32_bytes(&w)),
        ("0.bias", "F32", vec![3], f32_bytes(&b)),
        ("0.running_mean", "F32", vec![3], f32_bytes(&rm)),
        ("0.running_var", "F32", vec![3], f32_bytes(&rv)),
        ("0.num_batches_tracked", "I64", vec![], 1234i64.to_le_bytes().to_vec()),
        ("1.weight", "F32", vec![2, 3], f32_bytes(&dw)),
        ("1.bias", "F32", vec![2], f32_bytes(&db)),
    ]);
    let path = d.join("torch.safetensors");
    std::fs::write(&path, torch).unwrap();
    let mut m = model();
    m.load_weights(&path).unwrap();
    let want: Vec<(String, Vec<usize>, Vec<f32>)> = [
        ("0.weight", vec![3], w.to_vec()),
        ("0.bias", vec![3], b.to_vec()),
        ("0.running_mean", vec![3], rm.to_vec()),
        ("0.running_var", vec![3], rv.to_vec()),
        ("0.num_batches_tracked", vec![], vec![1234.0]),
        ("1.weight", vec![2, 3], dw.to_vec()),
        ("1.bias", vec![2], db.to_vec()),
    ]
    .into_iter()
    .map(|(n, s, v)| (n.to_string(), s, v))
    .collect();
    assert_eq!(m.weights().unwrap(), want);

    // training counts on from 1234; the saved file says I64 like PyTorch's
    m.compile_with(cpu(Optimizer::sgd(0.01))).unwrap();
    let x: Vec<f32> = (0..8 * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    let table = Table::from_arrays(
        Array { shape: vec![8, 3], data: x },
        Some(Array { shape: vec![8], data: vec![0, 1, 1, 0, 1, 0, 0, 1] }),
    )
    .unwrap();
    m.fit(&table, &FitOptions { epochs: 1, batch_size: 4, quiet: true, ..Default::default() }).unwrap();
    let saved = d.join("kiln.safetensors");
    m.save(&saved).unwrap();
    let ck = Checkpoint::read(&saved).unwrap();
    for t in &ck.tensors {
        let want = if t.name == "0.num_batches_tracked" { Dtype::I64 } else { Dtype::F32 };
        assert_eq!(t.dtype, want, "{}", t.name);
    }
    assert_eq!(ck.get("0.num_batches_tracked").unwrap().data, vec![1236.0]);
    // the header itself, and the 8 bytes of the value, as PyTorch reads them
    let bytes = std::fs::read(&saved).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let entry = &header["0.num_batches_tracked"];
    assert_eq!(entry["dtype"], "I64", "{header}");
    let begin = 8 + n + entry["data_offsets"][0].as_u64().unwrap() as usize;
    assert_eq!(i64::from_le_bytes(bytes[begin..begin + 8].try_into().unwrap()), 1236);
    let mut loaded = Sequential::load(&saved).unwrap();
    assert_eq!(loaded.weights().unwrap(), m.weights().unwrap());
    std::fs::remove_dir_all(&d).ok();
}

/// Training 4 epochs straight, or 2, save, load and 2 more, ends with the same weights, running
/// statistics and `num_batches_tracked`, bit for bit (a short last batch in every epoch).
#[test]
fn resumed_training_with_batch_norm_is_exact() {
    let d = temp_dir("bn-resume");
    let mut rng = SplitMix64::new(31);
    let rows = 22;
    let x: Vec<f32> = uniform(&mut rng, rows * 2 * 4 * 4, -1.0, 2.0).iter().map(|&v| v as f32).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(3) as u32).collect();
    let table = Table::from_arrays(
        Array { shape: vec![rows, 2, 4, 4], data: x },
        Some(Array { shape: vec![rows], data: labels }),
    )
    .unwrap();
    let model = || {
        let mut m = Sequential::new(&[2, 4, 4])
            .add(Conv2d(3, 3).conv(1, 1, 1))
            .add(BatchNorm())
            .add(Layer::Activation(Relu))
            .add(Flatten())
            .add(Dense(8, None))
            .add(BatchNorm())
            .add(Dense(3, Softmax))
            .seed(12);
        m.compile_with(cpu(Optimizer::adam(0.01))).unwrap();
        m
    };
    let opts = |epochs| FitOptions { epochs, batch_size: 8, quiet: true, ..Default::default() };
    let mut straight = model();
    straight.fit(&table, &opts(4)).unwrap();

    let mut first = model();
    first.fit(&table, &opts(2)).unwrap();
    let path = d.join("half.safetensors");
    first.save(&path).unwrap();
    let mut resumed = Sequential::load(&path).unwrap();
    let mut cfg = resumed.saved_config().unwrap().clone();
    cfg.backend = BackendChoice::Cpu;
    resumed.compile_with(cfg).unwrap();
    resumed.fit(&table, &opts(4)).unwrap();
    let (a, b) = (straight.weights().unwrap(), resumed.weights().unwrap());
    assert_eq!(a, b);
    let count = a.iter().find(|t| t.0 == "1.num_batches_tracked").unwrap();
    assert_eq!(count.2, vec![12.0], "3 batches (8, 8, 6) per epoch");
    std::fs::remove_dir_all(&d).ok();
}
