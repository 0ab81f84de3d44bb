//! Data parallelism in one process (`Compile::devices`): N replicas on a global batch B train as
//! one device on batch B: the same losses and weights within float32 summation tolerance, for an
//! MLP through `fit` (odd sizes: 23 rows in batches of 10 over 3 CPU replicas, so rows split 4/3/3
//! and the last batch 1/1/1; dropout, accuracy, clipping) and for a tiny Llama through
//! `train_step` on CPU replicas and on 2 GPU devices opened on one adapter (lavapipe in CI). One
//! set of weights is saved (replica 0) and exact resume holds on several devices.
//!
//! Tolerance: a replica sums its rows' gradients in another order than one device does and the
//! row-weighted sum across replicas adds one more rounding, so gradients agree to a few float32
//! ulps (~1e-7 relative); Adam divides by the root of the second moment, which can magnify that
//! for near-zero gradients over a few steps, hence 2e-4 relative + 2e-5 absolute on weights and
//! 1e-5 relative on losses. Weighting the replicas equally instead of by rows (4/10, 3/10, 3/10)
//! changes the first update by ~10% of a step, far outside these bounds.

mod common;

use common::temp_dir;
use kiln_device::{open, BackendChoice};
use kiln_trainer::data::{Array, SplitMix64, Table};
use kiln_trainer::prelude::*;
use kiln_trainer::zoo::{Llama, LlamaConfig};
use kiln_trainer::History;

fn close(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0.0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= abs + rel * w.abs(), "{what}[{i}]: {g} on several devices, {w} on one");
        worst = worst.max((g - w).abs());
    }
    eprintln!("{what}: worst |difference| {worst:e}");
}

fn table(rows: usize, seed: u64) -> Table {
    let mut rng = SplitMix64::new(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..rows {
        let v: Vec<f32> = (0..7).map(|_| rng.below(2000) as f32 / 1000.0 - 1.0).collect();
        y.push(u32::from(v[0] + 0.5 * v[1] > 0.1) + u32::from(v[2] > 0.3));
        x.extend(v);
    }
    Table::from_arrays(Array { shape: vec![rows, 7], data: x }, Some(Array { shape: vec![rows], data: y }))
        .unwrap()
}

fn mlp(devices: usize) -> Sequential {
    mlp_buckets(devices, kiln_trainer::DEFAULT_BUCKET_MB)
}

fn mlp_buckets(devices: usize, bucket_mb: f64) -> Sequential {
    let mut m = Sequential::new(&[7])
        .add(Dense(13, Tanh))
        .add(Dropout(0.25))
        .add(Dense(11, Relu))
        .add(Dense(3, Softmax))
        .seed(5);
    let mut c = Compile::new(Optimizer::adam(0.01), Loss::CrossEntropy, &[Metric::Accuracy]);
    c.backend = BackendChoice::Cpu;
    c.clip_norm = Some(0.8);
    (c.devices, c.bucket_mb) = (devices, bucket_mb);
    m.compile_with(c).unwrap();
    m
}

fn opts(epochs: usize) -> FitOptions<'static> {
    FitOptions { epochs, batch_size: 10, quiet: true, ..FitOptions::default() }
}

fn flat(w: Vec<(String, Vec<usize>, Vec<f32>)>) -> Vec<f32> {
    w.into_iter().flat_map(|t| t.2).collect()
}

fn losses(h: &History) -> Vec<f32> {
    h.epochs.iter().map(|r| r.loss as f32).collect()
}

#[test]
fn mlp_on_three_cpu_replicas_trains_as_one_device() {
    let data = table(23, 3);
    let mut one = mlp(1);
    let mut three = mlp(3);
    let h1 = one.fit(&data, &opts(4)).unwrap();
    let h3 = three.fit(&data, &opts(4)).unwrap();
    close("epoch losses", &losses(&h3), &losses(&h1), 1e-5, 1e-6);
    let acc = |h: &History| h.epochs.iter().map(|r| r.metrics[0].1 as f32).collect::<Vec<_>>();
    assert_eq!(acc(&h3), acc(&h1), "accuracy counts the same predictions");
    close("weights", &flat(three.weights().unwrap()), &flat(one.weights().unwrap()), 2e-4, 2e-5);
    let t = three.step_times().expect("three replicas");
    assert_eq!(t.steps, 12, "3 steps per epoch for 4 epochs");
    assert!(one.step_times().is_none());
}

#[test]
fn several_devices_save_replica_zero_and_resume_exactly() {
    let data = table(23, 4);
    let d = temp_dir("data-parallel-resume");
    let mut straight = mlp(3);
    let h = straight.fit(&data, &opts(4)).unwrap();
    let mut half = mlp(3);
    let h1 = half.fit(&data, &opts(2)).unwrap();
    let path = d.join("half.safetensors");
    half.save(&path).unwrap();
    let mut resumed = Sequential::load(&path).unwrap();
    assert_eq!(flat(resumed.weights().unwrap()), flat(half.weights().unwrap()), "replica 0's weights saved");
    let mut cfg = resumed.saved_config().unwrap().clone();
    (cfg.backend, cfg.devices) = (BackendChoice::Cpu, 3);
    resumed.compile_with(cfg).unwrap();
    let h2 = resumed.fit(&data, &opts(4)).unwrap();
    let mut both = losses(&h1);
    both.extend(losses(&h2));
    assert_eq!(both, losses(&h), "resumed losses, bit for bit");
    let bits =
        |m: &mut Sequential| flat(m.weights().unwrap()).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&mut resumed), bits(&mut straight), "resumed weights, bit for bit");
    // the gradient buffers are not optimizer state
    let optim = kiln_trainer::checkpoint::Checkpoint::read(kiln_trainer::optimizer_path(&path)).unwrap();
    assert!(optim.tensors.iter().all(|t| !t.name.ends_with("grad")), "no gradient buffer saved");
    std::fs::remove_dir_all(&d).ok();
}

fn llama_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 41,
        hidden_size: 24,
        intermediate_size: 40,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: Some(6),
        ..LlamaConfig::tiny()
    }
}

/// 5 random sequences of 8 inputs and their next tokens.
fn llama_batch(rng: &mut SplitMix64) -> (Vec<u32>, Vec<u32>) {
    let seq: Vec<u32> = (0..5 * 9).map(|_| rng.below(41) as u32).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for row in seq.chunks(9) {
        x.extend_from_slice(&row[..8]);
        y.extend_from_slice(&row[1..]);
    }
    (x, y)
}

fn llama_training(backend: BackendChoice, devices: usize) -> Compile {
    llama_training_buckets(backend, devices, kiln_trainer::DEFAULT_BUCKET_MB)
}

fn llama_training_buckets(backend: BackendChoice, devices: usize, bucket_mb: f64) -> Compile {
    let mut training = Llama::default_training();
    training.optimizer = Optimizer::adamw(3e-3);
    training.clip_norm = Some(1.0);
    (training.backend, training.devices, training.bucket_mb) = (backend, devices, bucket_mb);
    training
}

/// Steps of batch 5 (context 8) on `devices` replicas: each step's loss and the final weights.
fn llama_steps(backend: BackendChoice, devices: usize, steps: usize) -> (Vec<f32>, Vec<f32>) {
    llama_steps_buckets(backend, devices, steps, kiln_trainer::DEFAULT_BUCKET_MB)
}

fn llama_steps_buckets(
    backend: BackendChoice,
    devices: usize,
    steps: usize,
    bucket_mb: f64,
) -> (Vec<f32>, Vec<f32>) {
    let training = llama_training_buckets(backend, devices, bucket_mb);
    let mut m = Llama::with_training(llama_config(), 8, 11, training, open(backend).unwrap()).unwrap();
    let mut rng = SplitMix64::new(9);
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (x, y) = llama_batch(&mut rng);
        losses.push(m.train_step(&x, &y).unwrap());
    }
    if devices > 1 {
        assert_eq!(m.step_times().unwrap().steps, steps as u64);
    }
    (losses, flat(m.state_dict().unwrap()))
}

#[test]
fn tiny_llama_on_cpu_replicas_trains_as_one_device() {
    let (l1, w1) = llama_steps(BackendChoice::Cpu, 1, 4);
    for devices in [2, 3] {
        let (ln, wn) = llama_steps(BackendChoice::Cpu, devices, 4);
        close(&format!("llama losses, {devices} replicas"), &ln, &l1, 1e-5, 1e-6);
        close(&format!("llama weights, {devices} replicas"), &wn, &w1, 2e-4, 2e-5);
    }
}

#[test]
fn tiny_llama_on_two_gpu_devices_trains_as_one() {
    if kiln_device::testing::gpu_or_skip("data-parallel Llama").is_none() {
        return;
    }
    let (l1, w1) = llama_steps(BackendChoice::Gpu, 1, 3);
    let (l2, w2) = llama_steps(BackendChoice::Gpu, 2, 3);
    close("gpu llama losses", &l2, &l1, 1e-5, 1e-6);
    close("gpu llama weights", &w2, &w1, 2e-4, 2e-5);
}

#[test]
fn a_model_moved_onto_several_devices_keeps_its_optimizer_state() {
    let (l1, w1) = llama_steps(BackendChoice::Cpu, 1, 4);
    // two steps on one device, then `set_devices(3)`, then two more: as four on one device
    let training = llama_training(BackendChoice::Cpu, 1);
    let mut m =
        Llama::with_training(llama_config(), 8, 11, training, open(BackendChoice::Cpu).unwrap()).unwrap();
    let mut rng = SplitMix64::new(9);
    let mut losses = Vec::new();
    for step in 0..4 {
        if step == 2 {
            m.set_devices(3, BackendChoice::Cpu).unwrap();
        }
        let (x, y) = llama_batch(&mut rng);
        losses.push(m.train_step(&x, &y).unwrap());
    }
    assert_eq!(m.step_times().unwrap().steps, 2);
    close("moved llama losses", &losses, &l1, 1e-5, 1e-6);
    close("moved llama weights", &flat(m.state_dict().unwrap()), &w1, 2e-4, 2e-5);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Bucket sizes: 0 (every gradient after the whole backward), 64 bytes (the Llama's 20 tensors
/// in 20 buckets, the MLP in 3), 600 bytes (the Llama in 15 buckets, the MLP in 2) and the
/// default (one bucket: these models are smaller than the first bucket's 1 MiB).
const BUCKETS: [f64; 4] = [0.0, 64.0 / 1048576.0, 600.0 / 1048576.0, kiln_trainer::DEFAULT_BUCKET_MB];

#[test]
fn overlapping_the_reduction_changes_no_bit_of_the_mlp() {
    let data = table(23, 6);
    let run = |mb: f64| {
        let mut m = mlp_buckets(3, mb);
        let h = m.fit(&data, &opts(3)).unwrap();
        let acc: Vec<f64> = h.epochs.iter().map(|r| r.metrics[0].1).collect();
        let t = m.step_times().unwrap();
        assert_eq!(t.steps, 9);
        assert!(t.hidden_s >= 0.0 && t.all_reduce_s > 0.0 && t.compute_s > 0.0, "{t:?}");
        (bits(&losses(&h)), acc, bits(&flat(m.weights().unwrap())))
    };
    let off = run(0.0);
    for mb in &BUCKETS[1..] {
        assert_eq!(run(*mb), off, "buckets of {mb} MiB and no overlap");
    }
}

#[test]
fn overlapping_the_reduction_changes_no_bit_of_the_llama() {
    let (l0, w0) = llama_steps_buckets(BackendChoice::Cpu, 2, 3, 0.0);
    for mb in &BUCKETS[1..] {
        let (l, w) = llama_steps_buckets(BackendChoice::Cpu, 2, 3, *mb);
        assert_eq!(bits(&l), bits(&l0), "losses, buckets of {mb} MiB and no overlap");
        assert_eq!(bits(&w), bits(&w0), "weights, buckets of {mb} MiB and no overlap");
    }
}

#[test]
fn overlapping_the_reduction_on_two_gpu_devices_changes_no_bit() {
    if kiln_device::testing::gpu_or_skip("data-parallel overlap").is_none() {
        return;
    }
    let (l0, w0) = llama_steps_buckets(BackendChoice::Gpu, 2, 2, 0.0);
    let (l, w) = llama_steps_buckets(BackendChoice::Gpu, 2, 2, BUCKETS[2]);
    assert_eq!(bits(&l), bits(&l0), "gpu losses");
    assert_eq!(bits(&w), bits(&w0), "gpu weights");
}

#[test]
fn batch_norm_is_refused_on_several_devices() {
    let mut m = Sequential::new(&[7]).add(Dense(5, Relu)).add(BatchNorm()).add(Dense(3, Softmax));
    let mut c = Compile::new(Optimizer::adam(0.01), Loss::CrossEntropy, &[]);
    (c.backend, c.devices) = (BackendChoice::Cpu, 2);
    let e = m.compile_with(c).expect_err("BatchNorm on 2 devices").to_string();
    assert!(e.contains("BatchNorm"), "{e}");
}
