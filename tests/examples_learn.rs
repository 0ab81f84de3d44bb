//! End-to-end: the models behind `examples/cnn_digits` and `examples/char_transformer` learn on
//! the CPU backend (the loss falls by a stated factor in a fixed number of steps), and the
//! transformer's checkpoint resumes exactly.

use kiln::data::{char_batch, digits_train_test, CharCorpus, SplitMix64, Standardizer};
use kiln::device::{open, BackendChoice};
use kiln::prelude::*;
use kiln::trainer::zoo::{lenet_digits, CharGpt, CharGptConfig};

const SHAKESPEARE: &str = include_str!("../data/tinyshakespeare.txt");

#[test]
fn cnn_digits_loss_falls_10x_in_90_steps() {
    let (mut train, mut test) = digits_train_test().unwrap();
    let sc = Standardizer::fit_table(&train).unwrap();
    sc.apply_table(&mut train).unwrap();
    sc.apply_table(&mut test).unwrap();
    let mut model = lenet_digits(7);
    let mut cfg = Compile::new(Optimizer::adam(2e-3), Loss::CrossEntropy, &[Metric::Accuracy]);
    cfg.backend = BackendChoice::Cpu;
    model.compile_with(cfg).unwrap();
    let before = model.evaluate(&train, 256).unwrap().loss;
    // 1,438 rows at batch 32: 45 steps per epoch
    let opts = FitOptions { epochs: 2, batch_size: 32, quiet: true, ..Default::default() };
    model.fit(&train, &opts).unwrap();
    let after = model.evaluate(&train, 256).unwrap().loss;
    let test_eval = model.evaluate(&test, 256).unwrap();
    let acc = test_eval.get("accuracy").unwrap();
    eprintln!("cnn: train loss {before:.4} -> {after:.4}, test accuracy {acc:.4}");
    assert!(before > 2.0, "an untrained 10-class model starts above ln 10 ~ 2.3, got {before}");
    assert!(after < before / 10.0, "loss {before} -> {after}: did not fall 10x in 90 steps");
    assert!(acc > 0.9, "test accuracy {acc} after 90 steps");
}

fn tiny_gpt(vocab: usize) -> CharGpt {
    let cfg = CharGptConfig {
        vocab,
        dim: 32,
        layers: 2,
        heads: 4,
        context: 32,
        lr: 3e-3,
        weight_decay: 0.01,
        seed: 5,
    };
    CharGpt::new(cfg, open(BackendChoice::Cpu).unwrap()).unwrap()
}

#[test]
fn char_transformer_loss_falls_1_5x_in_200_steps_and_resumes_exactly() {
    let corpus = CharCorpus::from_text(&SHAKESPEARE[..40_000]).unwrap();
    let (train, val) = corpus.split(0.1).unwrap();
    let mut model = tiny_gpt(corpus.vocab_size());
    let mut rng = SplitMix64::new(11);
    let (vx, vy) = char_batch(val, 32, 32, &mut SplitMix64::new(3)).unwrap();
    let before = model.eval_loss(&vx, &vy).unwrap();
    for _ in 0..200 {
        let (x, y) = char_batch(train, 32, 8, &mut rng).unwrap();
        model.train_step(&x, &y).unwrap();
    }
    let after = model.eval_loss(&vx, &vy).unwrap();
    eprintln!("char transformer: validation loss {before:.4} -> {after:.4}");
    let uniform = (corpus.vocab_size() as f32).ln();
    assert!(
        (before - uniform).abs() < 0.5,
        "starts near ln {} = {uniform}, got {before}",
        corpus.vocab_size()
    );
    assert!(after < before / 1.5, "validation loss {before} -> {after}: did not fall 1.5x in 200 steps");

    // save, load into a fresh model, and continue: the same losses as continuing in place
    let dir = std::env::temp_dir().join(format!("kiln-gpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gpt.safetensors");
    model.save(&path, &corpus.vocab_string()).unwrap();
    let (mut resumed, vocab) = CharGpt::load(&path, open(BackendChoice::Cpu).unwrap()).unwrap();
    assert_eq!(vocab, corpus.vocab_string());
    assert_eq!(resumed.step(), 200);
    assert_eq!(resumed.eval_loss(&vx, &vy).unwrap().to_bits(), after.to_bits());
    let mut rng2 = rng.clone();
    for _ in 0..3 {
        let (x, y) = char_batch(train, 32, 8, &mut rng).unwrap();
        let (x2, y2) = char_batch(train, 32, 8, &mut rng2).unwrap();
        let (a, b) = (model.train_step(&x, &y).unwrap(), resumed.train_step(&x2, &y2).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "resumed training diverged: {a} vs {b}");
    }
    let sample = resumed.generate(&train[..5], 40, 0.8, &mut SplitMix64::new(1)).unwrap();
    assert_eq!(sample.len(), 40);
    assert!(sample.iter().all(|&i| (i as usize) < corpus.vocab_size()));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn char_transformer_rejects_bad_input() {
    let corpus = CharCorpus::from_text("to be or not to be").unwrap();
    let mut model = tiny_gpt(corpus.vocab_size());
    let e = model.train_step(&[0; 31], &[0; 31]).unwrap_err().to_string();
    assert!(e.contains("[batch, 32]"), "{e}");
    let e = model.train_step(&[99; 32], &[0; 32]).unwrap_err().to_string();
    assert!(e.contains("token id 99"), "{e}");
    let dir = std::env::temp_dir().join(format!("kiln-gpt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("not_a_model.safetensors");
    std::fs::write(&path, b"garbage").unwrap();
    let e = CharGpt::load(&path, open(BackendChoice::Cpu).unwrap()).err().unwrap().to_string();
    assert!(e.contains("not_a_model.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
