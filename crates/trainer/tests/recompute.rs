//! Activation checkpointing in the trainer (`Compile::recompute`): a small Llama's gradients and
//! a few training steps are the same bits with each block recomputed as without, on the CPU and
//! the GPU (lavapipe in CI); so are CharGpt's losses; the planned activations fall; the setting
//! saves, resumes and switches without losing the optimizer state; a model that marks no
//! segment refuses it; and the largest batch that fits a budget is found by planning alone.

use kiln_device::{open, Backend, BackendChoice};
use kiln_trainer::data::SplitMix64;
use kiln_trainer::prelude::*;
use kiln_trainer::zoo::{CharGpt, CharGptConfig, Llama, LlamaConfig};
use kiln_trainer::Compile;

const CONTEXT: usize = 9;
const BATCH: usize = 3;

fn config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 37,
        hidden_size: 24,
        intermediate_size: 40,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: Some(6),
        ..LlamaConfig::tiny()
    }
}

fn training(recompute: bool, backend: BackendChoice) -> Compile {
    let mut c = Llama::default_training();
    c.recompute = recompute;
    c.backend = backend;
    c.clip_norm = Some(1.0);
    c
}

/// `n` batches of random ids and their next-token targets.
fn batches(n: usize, vocab: usize, seed: u64) -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let ids: Vec<u32> = (0..BATCH * (CONTEXT + 1)).map(|_| rng.below(vocab as u64) as u32).collect();
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for row in ids.chunks(CONTEXT + 1) {
                x.extend_from_slice(&row[..CONTEXT]);
                y.extend_from_slice(&row[1..]);
            }
            (x, y)
        })
        .collect()
}

fn llama(recompute: bool, choice: BackendChoice, backend: Box<dyn Backend>) -> Llama {
    Llama::with_training(config(), CONTEXT, 5, training(recompute, choice), backend).unwrap()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Gradients, then three training steps (losses and every weight after them) with and without
/// recompute on `choice`.
fn llama_matches(choice: BackendChoice, open_backend: &dyn Fn() -> Box<dyn Backend>) {
    let (mut with, mut without) = (llama(true, choice, open_backend()), llama(false, choice, open_backend()));
    let data = batches(4, config().vocab_size, 3);
    let (x, y) = &data[0];
    let (gw, go) = (with.gradients(x, y).unwrap(), without.gradients(x, y).unwrap());
    assert_eq!(gw.len(), go.len());
    for ((name, a), (_, b)) in gw.iter().zip(&go) {
        assert!(b.iter().any(|v| *v != 0.0), "{name}: a zero gradient");
        assert!(same_bits(a, b), "{choice:?}: {name}'s gradient differs with recompute");
    }
    for (x, y) in &data[1..] {
        let (lw, lo) = (with.train_step(x, y).unwrap(), without.train_step(x, y).unwrap());
        assert_eq!(lw.to_bits(), lo.to_bits(), "{choice:?}: loss {lw} with recompute, {lo} without");
    }
    let (sw, so) = (with.state_dict().unwrap(), without.state_dict().unwrap());
    for ((name, _, a), (_, _, b)) in sw.iter().zip(&so) {
        assert!(same_bits(a, b), "{choice:?}: {name} differs after training with recompute");
    }
}

#[test]
fn a_llama_trains_the_same_with_its_blocks_recomputed_on_the_cpu() {
    llama_matches(BackendChoice::Cpu, &|| open(BackendChoice::Cpu).unwrap());
}

#[test]
fn a_llama_trains_the_same_with_its_blocks_recomputed_on_the_gpu() {
    if kiln_device::testing::gpu_or_skip("Llama activation checkpointing").is_none() {
        return;
    }
    llama_matches(BackendChoice::Gpu, &|| open(BackendChoice::Gpu).unwrap());
}

#[test]
fn a_char_gpt_trains_the_same_with_its_blocks_recomputed() {
    let config = CharGptConfig { dim: 16, layers: 2, heads: 2, context: CONTEXT, ..CharGptConfig::new(23) };
    let model = |recompute: bool| {
        let mut t = CharGpt::default_training(&config);
        (t.recompute, t.backend) = (recompute, BackendChoice::Cpu);
        CharGpt::with_training(config.clone(), t, open(BackendChoice::Cpu).unwrap()).unwrap()
    };
    let (mut with, mut without) = (model(true), model(false));
    for (x, y) in batches(3, 23, 11) {
        let (lw, lo) = (with.train_step(&x, &y).unwrap(), without.train_step(&x, &y).unwrap());
        assert!((lw - lo).abs() <= 1e-6 * lo.abs(), "loss {lw} with recompute, {lo} without");
    }
}

#[test]
fn recompute_plans_fewer_activation_bytes() {
    let c = LlamaConfig::tiny();
    let plan = |recompute| Llama::plan_memory(&c, 64, 4, &training(recompute, BackendChoice::Cpu)).unwrap();
    let (with, without) = (plan(true), plan(false));
    eprintln!("tiny at 4 x 64: without {without:?}\nwith {with:?}");
    assert_eq!(
        (with.parameter_bytes, with.optimizer_bytes),
        (without.parameter_bytes, without.optimizer_bytes)
    );
    // without: every block's norms, projections, attention scores [4, 4, 64, 64], MLP, ...
    // with: the four blocks' inputs [4, 64, 128] and the loss tail (final norm, logits [4, 64, 256])
    let row = 4 * 4 * 64 * 128;
    assert!(with.activation_bytes < 12 * row as u64, "{with:?}");
    assert!(without.activation_bytes > 3 * with.activation_bytes, "{without:?} vs {with:?}");
    assert!(with.total_bytes() < without.total_bytes());
    assert!(with.launches > without.launches);
}

#[test]
fn recompute_saves_resumes_and_switches_without_losing_state() {
    let dir = std::env::temp_dir().join(format!("kiln-recompute-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let data = batches(4, config().vocab_size, 9);
    let cpu = || open(BackendChoice::Cpu).unwrap();
    let mut m = llama(true, BackendChoice::Cpu, cpu());
    m.train_step(&data[0].0, &data[0].1).unwrap();
    m.save(&path).unwrap();
    let mut loaded = Llama::load(&path, cpu()).unwrap();
    assert!(loaded.training().recompute, "the setting is saved");
    // switching keeps the weights, the AdamW moments and the step: the next steps are the same
    loaded.set_recompute(false).unwrap();
    assert!(!loaded.training().recompute);
    assert_eq!(loaded.step(), 1);
    for (x, y) in &data[1..] {
        let (a, b) = (m.train_step(x, y).unwrap(), loaded.train_step(x, y).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_that_marks_no_segment_refuses_recompute() {
    let mut m = Sequential::new(&[3]).add(Dense(4, Relu)).add(Dense(2, None));
    let mut c = Compile::new(Optimizer::sgd(0.1), Loss::CrossEntropy, &[]);
    (c.backend, c.recompute) = (BackendChoice::Cpu, true);
    let e = m.compile_with(c).unwrap_err().to_string();
    assert!(e.contains("marks no segment to recompute"), "{e}");
}

#[test]
fn the_largest_batch_that_fits_is_found_by_planning() {
    let c = config();
    for recompute in [false, true] {
        let t = training(recompute, BackendChoice::Cpu);
        let plan = |b| Llama::plan_memory(&c, 32, b, &t).unwrap().total_bytes();
        let budget = (plan(13) + plan(14)) / 2;
        let (batch, m) = Llama::largest_batch(&c, 32, &t, budget).unwrap().unwrap();
        assert_eq!(batch, 13, "recompute {recompute}");
        assert_eq!(m.total_bytes(), plan(13));
        assert!(Llama::largest_batch(&c, 32, &t, plan(1) - 1).unwrap().is_none());
    }
    // the same budget holds more sequences with recompute
    let fit = |r| Llama::largest_batch(&c, 32, &training(r, BackendChoice::Cpu), 4 << 20).unwrap().unwrap().0;
    assert!(fit(true) > fit(false), "{} vs {}", fit(true), fit(false));
}
