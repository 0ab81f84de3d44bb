//! Embedding as the first layer of a `Sequential` model, on the CPU backend: token ids come as
//! integer-valued f32 features, are checked and fed as u32; the output is the weight's rows.

use kiln_device::BackendChoice;
use kiln_trainer::data::{Array, SplitMix64, Table};
use kiln_trainer::prelude::*;

fn cpu(optimizer: Optimizer, loss: Loss, metrics: &[Metric]) -> Compile {
    let mut c = Compile::new(optimizer, loss, metrics);
    c.backend = BackendChoice::Cpu;
    c
}

#[test]
fn output_is_the_weight_rows_and_bad_ids_are_errors() {
    let mut m = Sequential::new(&[3]).add(Embedding(5, 2)).add(Flatten()).seed(1);
    assert_eq!(m.output_shapes().unwrap(), vec![vec![3, 2], vec![6]]);
    let w = m.weights().unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].0.as_str(), w[0].1.as_slice()), ("0.weight", &[5, 2][..]));
    let table = w[0].2.clone();
    assert!(table.iter().any(|v| v.abs() > 0.5), "N(0, 1) init: {table:?}");
    assert!(m.summary().unwrap().contains("Embedding(5, 2)"));

    m.compile_with(cpu(Optimizer::sgd(0.1), Loss::Mse, &[])).unwrap();
    let ids = [4.0, 0.0, 2.0, 1.0, 1.0, 3.0];
    let out = m.predict_features(&ids).unwrap();
    let want: Vec<f32> =
        ids.iter().flat_map(|&t| table[t as usize * 2..t as usize * 2 + 2].to_vec()).collect();
    assert_eq!(out, want);

    let err = m.predict_features(&[0.0, 1.0, 2.0, 1.0, 2.5, 0.0]).unwrap_err().to_string();
    assert!(err.contains("row 1 column 1") && err.contains("2.5"), "{err}");
    let err = m.predict_features(&[0.0, 1.0, 5.0]).unwrap_err().to_string();
    assert!(err.contains("row 0 column 2") && err.contains("0..5"), "{err}");
    let err = m.predict_features(&[-1.0, 1.0, 0.0]).unwrap_err().to_string();
    assert!(err.contains("row 0 column 0"), "{err}");

    let late = Sequential::new(&[3]).add(Dense(4, None)).add(Embedding(5, 2));
    assert!(late.output_shapes().is_err(), "Embedding must be the first layer");
}

#[test]
fn a_tiny_model_learns_a_token_to_class_mapping() {
    // class = map[first token]; the second token is noise
    let (vocab, classes, rows) = (7usize, 4u32, 140usize);
    let map = [2u32, 0, 3, 1, 1, 0, 2];
    let mut rng = SplitMix64::new(11);
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for r in 0..rows {
        let t0 = (r % vocab) as u32;
        features.extend([t0 as f32, rng.below(vocab as u64) as f32]);
        labels.push(map[t0 as usize]);
    }
    assert_eq!(labels.iter().max(), Some(&(classes - 1)));
    let data = Table::from_arrays(
        Array { shape: vec![rows, 2], data: features.clone() },
        Some(Array { shape: vec![rows], data: labels.clone() }),
    )
    .unwrap();
    let mut m = Sequential::new(&[2]).add(Embedding(vocab, 8)).add(Flatten()).add(Dense(4, Softmax)).seed(3);
    m.compile_with(cpu(Optimizer::adam(0.05), Loss::CrossEntropy, &[Metric::Accuracy])).unwrap();
    let before = m.weights().unwrap()[0].2.clone();
    let opts = FitOptions { epochs: 30, batch_size: 16, quiet: true, ..Default::default() };
    let h = m.fit(&data, &opts).unwrap();
    let (first, last) = (h.epochs[0].loss, h.epochs.last().unwrap().loss);
    eprintln!("embedding: loss {first} -> {last}");
    assert!(last < first / 10.0, "loss {first} -> {last} did not fall 10x");
    let eval = m.evaluate(&data, 64).unwrap();
    assert_eq!(eval.get("accuracy"), Some(1.0), "{eval:?}");
    assert_ne!(m.weights().unwrap()[0].2, before, "the embedding table was trained");

    let dir = std::env::temp_dir().join(format!("kiln-emb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emb.safetensors");
    let pred = m.predict_features(&features).unwrap();
    m.save(&path).unwrap();
    let mut loaded = Sequential::load(&path).unwrap();
    loaded.compile_with(cpu(Optimizer::adam(0.05), Loss::CrossEntropy, &[])).unwrap();
    assert_eq!(loaded.predict_features(&features).unwrap(), pred);
    std::fs::remove_dir_all(&dir).ok();
}
