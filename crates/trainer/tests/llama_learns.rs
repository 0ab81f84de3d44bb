//! A small Llama learns Tiny Shakespeare (bundled) on the CPU: byte tokens, tokenized on first
//! use, random windows of a memory-mapped token file, warmup + cosine AdamW with weight decay
//! on matrices, clipping, a validation loss every 50 steps through `fit`, then an exact resume.

mod common;

use kiln_device::BackendChoice;
use kiln_trainer::data::{ensure_tokenized, ByteTokenizer, Dataset};
use kiln_trainer::zoo::{Llama, Sampling};
use kiln_trainer::{FitOptions, Optimizer, Schedule, Validation};

const STEPS: usize = 200;
const EVERY: usize = 50;

fn training() -> kiln_trainer::Compile {
    let mut c = Llama::default_training();
    c.optimizer = Optimizer::AdamW { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    c.schedule = Schedule::Warmup {
        steps: 20,
        then: Box::new(Schedule::Cosine { total: (STEPS - 20) as u64, min_lr: 3e-4 }),
    };
    c.clip_norm = Some(1.0);
    c.backend = BackendChoice::Cpu;
    c
}

fn opts<'a>(val: &'a (dyn Dataset + Sync), epochs: usize) -> FitOptions<'a> {
    FitOptions {
        epochs,
        batch_size: 16,
        shuffle: false,
        validation: Validation::Data(val),
        quiet: true,
        standardize: false,
        standardize_target: false,
        steps_per_epoch: Some(EVERY),
        ..Default::default()
    }
}

#[test]
fn a_small_llama_learns_tiny_shakespeare_and_resumes_exactly() {
    let dir = std::env::temp_dir().join(format!("kiln-llama-learns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tinyshakespeare.txt");
    let tokens = ensure_tokenized(text, &ByteTokenizer, dir.join("shakespeare.byte.tokens")).unwrap();
    let (train, val) = tokens.split(0.1).unwrap();
    let context = 32;
    let train = train.random_windows(context, STEPS * 16, 1).unwrap();
    let val = val.random_windows(context, 64, 2).unwrap();
    let cpu = || kiln_device::open(BackendChoice::Cpu).unwrap();

    let mut m = Llama::with_training(common::small_llama(), context, 3, training(), cpu()).unwrap();
    let before = m.evaluate(&val, 16).unwrap().loss;
    assert!((before - 256f64.ln()).abs() < 0.1, "an untrained model predicts uniformly: {before}");
    // half the run, saved and resumed, then the rest; and the same run uninterrupted
    let h1 = m.fit(&train, &opts(&val, STEPS / EVERY / 2)).unwrap();
    let path = dir.join("half.safetensors");
    m.save(&path).unwrap();
    let mut resumed = Llama::load(&path, cpu()).unwrap();
    let h2 = resumed.fit(&train, &opts(&val, STEPS / EVERY)).unwrap();
    let after = h2.epochs.last().unwrap().val_loss.unwrap();
    eprintln!("validation loss {before:.3} -> {after:.3} in {STEPS} steps");
    // the stated bar: validation loss falls from ln(256) = 5.55 to under 2.8 in 200 CPU steps
    assert!(after < 2.8, "validation loss {before:.3} -> {after:.3} after {STEPS} steps");
    assert_eq!(resumed.step(), STEPS as u64);
    assert_eq!(h1.epochs.len() + h2.epochs.len(), STEPS / EVERY);

    let mut straight = Llama::with_training(common::small_llama(), context, 3, training(), cpu()).unwrap();
    let h = straight.fit(&train, &opts(&val, STEPS / EVERY)).unwrap();
    let losses = |hs: &[&kiln_trainer::History]| -> Vec<u64> {
        hs.iter().flat_map(|h| h.epochs.iter().map(|e| e.val_loss.unwrap().to_bits())).collect()
    };
    assert_eq!(losses(&[&h1, &h2]), losses(&[&h]), "resumed and uninterrupted runs differ");
    assert_eq!(
        resumed.param("model.layers.1.mlp.down_proj.weight").unwrap(),
        straight.param("model.layers.1.mlp.down_proj.weight").unwrap()
    );
    // and it writes something Shakespeare-shaped: mostly letters and spaces
    let mut g = resumed.generator(120).unwrap();
    let out = g.generate(&[b'\n' as u32], 100, &Sampling { seed: 4, ..Sampling::default() }).unwrap();
    let text = kiln_trainer::data::Tokenizer::decode(&ByteTokenizer, &out);
    let letters = text.chars().filter(|c| c.is_ascii_alphabetic() || *c == ' ').count();
    assert!(letters > 60, "{text:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
