//! Mixed precision (`Compile::precision`, autocast-style): the digits MLP and a small Llama on
//! Tiny Shakespeare trained with bf16 and with f16 matmul operands end within 2% of the f32
//! loss at the same step count (on the CPU, and the MLP on a GPU adapter: lavapipe in CI); the
//! planned activation bytes fall with half precision while parameters and optimizer state stay
//! f32; a bf16 run saves and resumes exactly and trains the same bits with recompute; and half
//! precision Llama steps on a GPU adapter match the CPU's, as data-parallel replicas match one
//! device.

mod common;

use kiln_device::BackendChoice;
use kiln_trainer::data::{digits_train_test, ensure_tokenized, ByteTokenizer, Standardizer};
use kiln_trainer::prelude::*;
use kiln_trainer::zoo::{Llama, LlamaConfig};
use kiln_trainer::{GradScaler, LossScaling, Precision};

/// The final epoch's training loss of the digits MLP (64 -> 48 relu -> 10), 4 epochs of batches
/// of 64 with Adam, in `precision` on `backend`.
fn digits_loss(precision: Precision, backend: BackendChoice) -> f64 {
    let (mut train, _) = digits_train_test().unwrap();
    Standardizer::fit_table(&train).unwrap().apply_table(&mut train).unwrap();
    let mut m = Sequential::new(&[64]).add(Dense(48, Relu)).add(Dense(10, Softmax)).seed(7);
    let mut c = Compile::new(Optimizer::adam(3e-3), Loss::CrossEntropy, &[]);
    (c.backend, c.precision) = (backend, precision);
    m.compile_with(c).unwrap();
    let opts =
        FitOptions { epochs: 4, batch_size: 64, quiet: true, standardize: false, ..Default::default() };
    m.fit(&train, &opts).unwrap().epochs.last().unwrap().loss
}

/// `half` within 2% of `f32`, and not the same number (the setting did something).
fn within_2_percent(what: &str, f32_loss: f64, half: f64, precision: Precision) {
    eprintln!("{what}: f32 {f32_loss:.5}, {precision} {half:.5}");
    assert!(
        half.is_finite() && (half - f32_loss).abs() <= 0.02 * f32_loss,
        "{what}: {precision} {half} vs f32 {f32_loss}"
    );
    assert_ne!(half, f32_loss, "{what}: {precision} trained exactly as f32");
}

fn digits_case(backend: BackendChoice) {
    let f32_loss = digits_loss(Precision::F32, backend);
    assert!(f32_loss < 0.3, "the MLP learns the digits: {f32_loss}");
    for p in [Precision::Bf16, Precision::F16] {
        within_2_percent(&format!("digits MLP on {backend}"), f32_loss, digits_loss(p, backend), p);
    }
}

#[test]
fn the_digits_mlp_in_half_precision_ends_near_f32_on_the_cpu() {
    digits_case(BackendChoice::Cpu);
}

#[test]
fn the_digits_mlp_in_half_precision_ends_near_f32_on_a_gpu() {
    if kiln_device::testing::gpu_or_skip("mixed precision").is_none() {
        return;
    }
    digits_case(BackendChoice::Gpu);
}

const CONTEXT: usize = 32;
const STEPS: usize = 200;

fn llama_training(precision: Precision) -> Compile {
    let mut c = Llama::default_training();
    c.optimizer = Optimizer::AdamW { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    c.clip_norm = Some(1.0);
    (c.backend, c.precision) = (BackendChoice::Cpu, precision);
    c
}

fn cpu() -> Box<dyn kiln_device::Backend> {
    kiln_device::open(BackendChoice::Cpu).unwrap()
}

#[test]
fn a_small_llama_on_tiny_shakespeare_in_half_precision_ends_near_f32() {
    let dir = std::env::temp_dir().join(format!("kiln-precision-llama-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tinyshakespeare.txt");
    let tokens = ensure_tokenized(text, &ByteTokenizer, dir.join("shakespeare.byte.tokens")).unwrap();
    let (train, val) = tokens.split(0.1).unwrap();
    let train = train.random_windows(CONTEXT, STEPS * 16, 1).unwrap();
    let val = val.random_windows(CONTEXT, 64, 2).unwrap();
    let run = |precision: Precision| {
        let mut m = Llama::with_training(common::small_llama(), CONTEXT, 3, llama_training(precision), cpu())
            .unwrap();
        let opts = FitOptions {
            epochs: 1,
            batch_size: 16,
            shuffle: false,
            quiet: true,
            standardize: false,
            standardize_target: false,
            ..Default::default()
        };
        let train_loss = m.fit(&train, &opts).unwrap().epochs[0].loss;
        assert_eq!(m.step(), STEPS as u64);
        (train_loss, m.evaluate(&val, 16).unwrap().loss)
    };
    let (f32_train, f32_val) = run(Precision::F32);
    assert!(f32_val < 0.8 * 256f64.ln(), "the f32 run learns: validation loss {f32_val}");
    for p in [Precision::Bf16, Precision::F16] {
        let (t, v) = run(p);
        within_2_percent("small Llama, training loss", f32_train, t, p);
        within_2_percent("small Llama, validation loss", f32_val, v, p);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn half_precision_plans_fewer_activation_bytes() {
    let c = LlamaConfig::tiny();
    let plan_with = |p, scaling| {
        let mut t = llama_training(p);
        t.loss_scale = scaling;
        Llama::plan_memory(&c, 64, 4, &t).unwrap()
    };
    let plan = |p| plan_with(p, LossScaling::Auto);
    let (full, bf16, f16) = (plan(Precision::F32), plan(Precision::Bf16), plan(Precision::F16));
    eprintln!("tiny at 4 x 64: f32 {full:?}\nbf16 {bf16:?}\nf16 {f16:?}");
    assert_eq!(bf16, plan_with(Precision::F16, LossScaling::Off), "both half types take 2 bytes");
    // f16 scales its loss by default: one unscale per parameter, the seed, the scaler's step
    let params = Llama::new(c.clone(), 64, 1, cpu()).unwrap().state_dict().unwrap().len();
    assert_eq!(f16.launches, bf16.launches + params + 2, "{f16:?}");
    assert_eq!((f16.parameter_bytes, f16.activation_bytes), (bf16.parameter_bytes, bf16.activation_bytes));
    assert_eq!((bf16.parameter_bytes, bf16.optimizer_bytes), (full.parameter_bytes, full.optimizer_bytes));
    // kept in half instead of f32, per block and token: the inputs of every projection (q, k,
    // v, ctx, the normed MLP input, the SwiGLU product: 4 * width + MLP), the attention
    // probabilities (heads * context) and the SwiGLU gate and up (2 * MLP), 2 bytes each (the
    // norms keep only their input, f32 either way: the normalized rows their weights' gradients
    // need are recomputed)
    let (tokens, width, blocks) = (4 * 64u64, c.hidden_size as u64, c.num_hidden_layers as u64);
    let (mlp, probs) = (c.intermediate_size as u64, c.num_attention_heads as u64 * 64);
    let saved = blocks * tokens * 2 * (4 * width + 3 * mlp + probs);
    assert!(bf16.activation_bytes + saved <= full.activation_bytes, "{bf16:?} vs {full:?} (saves {saved})");
    assert!(bf16.total_bytes() < full.total_bytes());
}

#[test]
fn a_bf16_run_saves_and_resumes_exactly() {
    let dir = std::env::temp_dir().join(format!("kiln-precision-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let mut rng = kiln_trainer::data::SplitMix64::new(5);
    let batches: Vec<(Vec<u32>, Vec<u32>)> = (0..4)
        .map(|_| {
            let ids: Vec<u32> = (0..3 * 10).map(|_| rng.below(256) as u32).collect();
            (ids[..27].to_vec(), ids[3..].to_vec())
        })
        .collect();
    let config = LlamaConfig { num_hidden_layers: 2, ..common::small_llama() };
    let mut m = Llama::with_training(config, 9, 5, llama_training(Precision::Bf16), cpu()).unwrap();
    m.train_step(&batches[0].0, &batches[0].1).unwrap();
    m.save(&path).unwrap();
    let mut loaded = Llama::load(&path, cpu()).unwrap();
    assert_eq!(loaded.training().precision, Precision::Bf16, "the setting is saved");
    assert_eq!(loaded.step(), 1);
    for (x, y) in &batches[1..] {
        let (a, b) = (m.train_step(x, y).unwrap(), loaded.train_step(x, y).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
    }
    let (sa, sb) = (m.state_dict().unwrap(), loaded.state_dict().unwrap());
    for ((name, _, a), (_, _, b)) in sa.iter().zip(&sb) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{name} differs after resume");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Autocast and activation checkpointing combine: a bf16 Llama with each block recomputed
/// trains the same bits as without (the recomputed blocks cast their weights again).
#[test]
fn bf16_with_recompute_trains_the_same_bits() {
    let config = LlamaConfig { num_hidden_layers: 2, ..common::small_llama() };
    let model = |recompute: bool| {
        let mut t = llama_training(Precision::Bf16);
        t.recompute = recompute;
        Llama::with_training(config.clone(), 9, 5, t, cpu()).unwrap()
    };
    let (mut with, mut without) = (model(true), model(false));
    let mut rng = kiln_trainer::data::SplitMix64::new(8);
    for _ in 0..3 {
        let ids: Vec<u32> = (0..3 * 10).map(|_| rng.below(256) as u32).collect();
        let (x, y) = (&ids[..27], &ids[3..]);
        let (a, b) = (with.train_step(x, y).unwrap(), without.train_step(x, y).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "loss {a} with recompute, {b} without");
    }
}

/// A small Llama's bf16 and f16 steps on a GPU adapter match the CPU's within half precision
/// (the same roundings; only the f32 accumulation order differs).
#[test]
fn a_half_precision_llama_steps_alike_on_the_gpu_and_the_cpu() {
    if kiln_device::testing::gpu_or_skip("mixed precision Llama").is_none() {
        return;
    }
    let config = LlamaConfig { num_hidden_layers: 2, ..common::small_llama() };
    for p in [Precision::Bf16, Precision::F16] {
        let model = |choice: BackendChoice| {
            let mut t = llama_training(p);
            t.backend = choice;
            Llama::with_training(config.clone(), 9, 5, t, kiln_device::open(choice).unwrap()).unwrap()
        };
        let (mut gpu, mut host) = (model(BackendChoice::Gpu), model(BackendChoice::Cpu));
        let mut rng = kiln_trainer::data::SplitMix64::new(21);
        for step in 0..3 {
            let ids: Vec<u32> = (0..3 * 10).map(|_| rng.below(256) as u32).collect();
            let (x, y) = (&ids[..27], &ids[3..]);
            let (a, b) = (gpu.train_step(x, y).unwrap(), host.train_step(x, y).unwrap());
            assert!((a - b).abs() <= 2e-3 * b.abs(), "{p} step {step}: GPU loss {a}, CPU {b}");
        }
    }
}

/// Every graph a model trains through autocasts: data-parallel replicas (two CPU devices) train
/// a bf16 Llama as one device does, and not as f32 does.
#[test]
fn data_parallel_replicas_autocast_too() {
    let config = LlamaConfig { num_hidden_layers: 2, ..common::small_llama() };
    let model = |p: Precision, devices: usize| {
        let mut t = llama_training(p);
        t.devices = devices;
        Llama::with_training(config.clone(), 9, 5, t, cpu()).unwrap()
    };
    let (mut two, mut one, mut full) =
        (model(Precision::Bf16, 2), model(Precision::Bf16, 1), model(Precision::F32, 1));
    let mut rng = kiln_trainer::data::SplitMix64::new(13);
    for step in 0..3 {
        let ids: Vec<u32> = (0..4 * 10).map(|_| rng.below(256) as u32).collect();
        let (x, y) = (&ids[..36], &ids[4..]);
        let (a, b, c) =
            (two.train_step(x, y).unwrap(), one.train_step(x, y).unwrap(), full.train_step(x, y).unwrap());
        eprintln!("step {step}: bf16 on 2 devices {a}, on 1 {b}; f32 {c}");
        // the first loss is the same forward (the replicas' rows are the same rows); later ones
        // differ within bf16 rounding (each replica's weight gradient rounds to bf16 on its own)
        let tol = if step == 0 { 1e-6 } else { 2e-4 };
        assert!((a - b).abs() <= tol * b.abs(), "step {step}: 2 devices {a}, 1 device {b}");
        if step == 0 {
            assert!((b - c).abs() > 1e-5 * c.abs(), "bf16 {b} computes as f32 {c}");
        }
    }
}

/// A small f16 Llama on `backend` whose loss scale starts at `init_scale` and grows every 3
/// good updates.
fn overflowing_on(init_scale: f32, backend: BackendChoice) -> Llama {
    let mut t = llama_training(Precision::F16);
    (t.schedule, t.backend) = (Schedule::Constant, backend);
    t.loss_scale =
        LossScaling::Dynamic(GradScaler { init_scale, growth_interval: 3, ..GradScaler::default() });
    let config = LlamaConfig { num_hidden_layers: 2, ..common::small_llama() };
    Llama::with_training(config, 9, 5, t, kiln_device::open(backend).unwrap()).unwrap()
}

fn overflowing(init_scale: f32) -> Llama {
    overflowing_on(init_scale, BackendChoice::Cpu)
}

fn token_batches(n: usize, seed: u64) -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut rng = kiln_trainer::data::SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            // a repeating pattern the model can learn, with noise
            let ids: Vec<u32> = (0..3 * 10)
                .map(|i| if rng.below(4) == 0 { rng.below(256) as u32 } else { (i % 7) as u32 + 97 })
                .collect();
            (ids[..27].to_vec(), ids[3..].to_vec())
        })
        .collect()
}

fn weights(m: &mut Llama) -> Vec<Vec<u32>> {
    m.state_dict().unwrap().into_iter().map(|(_, _, v)| v.iter().map(|x| x.to_bits()).collect()).collect()
}

/// f16 gradients overflow under a scale of 2^40: the scaler skips those steps on the device
/// (weights bit for bit unchanged, the scale halved each time), then recovers: updates apply,
/// the scale grows every 3 good updates and backs off again when it overflows, and the loss
/// falls. The first applied update equals a fresh model's first step at the scale it recovered
/// to, bit for bit: the skipped steps left no trace, Adam's step count included.
#[test]
fn an_overflowing_loss_scale_skips_steps_and_recovers() {
    overflow_case(BackendChoice::Cpu);
}

/// The same on a GPU adapter: the skip decided by the WGSL kernels inside the submitted step.
#[test]
fn an_overflowing_loss_scale_skips_steps_and_recovers_on_a_gpu() {
    if kiln_device::testing::gpu_or_skip("loss scaling").is_none() {
        return;
    }
    overflow_case(BackendChoice::Gpu);
}

fn overflow_case(backend: BackendChoice) {
    let batches = token_batches(40, 11);
    let mut m = overflowing_on(2f32.powi(40), backend);
    let mut state = m.loss_scale().unwrap().expect("a loss scaler");
    assert_eq!((state.scale, state.skipped, state.applied), (2f32.powi(40), 0, 0));
    let (mut first_applied, mut losses, mut grew) = (None, Vec::new(), false);
    for (i, (x, y)) in batches.iter().enumerate() {
        let before = weights(&mut m);
        losses.push(m.train_step(x, y).unwrap());
        let now = m.loss_scale().unwrap().unwrap();
        if now.skipped > state.skipped {
            assert_eq!(now.skipped, state.skipped + 1, "step {i}");
            assert_eq!(now.scale, state.scale / 2.0, "step {i}: the scale backs off");
            assert_eq!(now.applied, state.applied, "step {i}");
            assert!(weights(&mut m) == before, "step {i}: a skipped step changed the weights");
        } else {
            assert_eq!(now.applied, state.applied + 1, "step {i}");
            assert!(weights(&mut m) != before, "step {i}: an applied step left the weights");
            grew |= now.scale > state.scale;
            first_applied.get_or_insert((i, state.scale, weights(&mut m)));
        }
        state = now;
    }
    let (k, scale, after) = first_applied.expect("the scaler recovers");
    eprintln!(
        "{backend}: skipped {} of {} steps; first applied step {k} at scale {scale}; final {state:?}",
        state.skipped,
        batches.len()
    );
    assert!(k >= 8, "2^40 overflows f16 gradients for many steps, recovered at step {k}");
    assert_eq!(state.applied + state.skipped, batches.len() as u64);
    assert!(grew, "the scale grows after 3 good updates");
    assert_eq!(m.step(), batches.len() as u64, "the step count (and schedule) counts every step");
    let late: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(late < 0.8 * losses[k], "the loss falls after recovery: {} -> {late}", losses[k]);

    // a fresh model at the recovered scale, stepped once on batch k, lands on the same bits
    let mut fresh = overflowing_on(scale, backend);
    fresh.train_step(&batches[k].0, &batches[k].1).unwrap();
    assert_eq!(fresh.loss_scale().unwrap().unwrap().skipped, 0);
    assert!(weights(&mut fresh) == after, "the first applied update differs from a fresh first step");
}

/// The scale, the counts and the weights resume exactly from a checkpoint taken mid-run.
#[test]
fn loss_scaling_saves_and_resumes_exactly() {
    let dir = std::env::temp_dir().join(format!("kiln-loss-scale-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let batches = token_batches(30, 12);
    let mut m = overflowing(2f32.powi(24));
    for (x, y) in &batches[..15] {
        m.train_step(x, y).unwrap();
    }
    let state = m.loss_scale().unwrap().unwrap();
    assert!(state.skipped > 0 && state.applied > 0, "{state:?}");
    m.save(&path).unwrap();
    let mut loaded = Llama::load(&path, cpu()).unwrap();
    assert_eq!(loaded.loss_scale().unwrap().unwrap(), state, "the scaler's state is saved");
    assert_eq!(loaded.training().loss_scale, m.training().loss_scale, "the setting is saved");
    for (x, y) in &batches[15..] {
        let (a, b) = (m.train_step(x, y).unwrap(), loaded.train_step(x, y).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
    }
    assert_eq!(m.loss_scale().unwrap(), loaded.loss_scale().unwrap());
    assert!(weights(&mut m) == weights(&mut loaded), "the weights differ after resume");
    std::fs::remove_dir_all(&dir).ok();
}

/// `fit` reports the scale and the skipped steps in each epoch's record and in the JSON log;
/// bf16 and f32 train without a scaler unless asked.
#[test]
fn fit_reports_the_loss_scale() {
    let dir = std::env::temp_dir().join(format!("kiln-loss-scale-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut train, _) = digits_train_test().unwrap();
    Standardizer::fit_table(&train).unwrap().apply_table(&mut train).unwrap();
    let model = |p: Precision, scaling: LossScaling| {
        let mut m = Sequential::new(&[64]).add(Dense(48, Relu)).add(Dense(10, Softmax)).seed(7);
        let mut c = Compile::new(Optimizer::adam(3e-3), Loss::CrossEntropy, &[]);
        (c.backend, c.precision, c.loss_scale) = (BackendChoice::Cpu, p, scaling);
        m.compile_with(c).unwrap();
        m
    };
    let log = dir.join("log.jsonl");
    let opts = FitOptions {
        epochs: 4,
        batch_size: 64,
        quiet: true,
        standardize: false,
        log: Some(log.clone()),
        ..Default::default()
    };
    let mut m = model(Precision::F16, LossScaling::Dynamic(GradScaler::with_init_scale(2f32.powi(50))));
    let h = m.fit(&train, &opts).unwrap();
    let (scale, skipped) = h.epochs[0].loss_scale.expect("reported");
    eprintln!("{}", h.epochs[0].summary());
    assert!(
        skipped >= 10 && scale == 2f32.powi(50 - skipped as i32),
        "epoch 1: scale {scale}, {skipped} skipped"
    );
    assert!(h.epochs[0].summary().contains(&format!("loss scale {scale} ({skipped} skipped)")));
    assert!(h.epochs[3].loss < 0.9 * h.epochs[0].loss, "it recovers and learns");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["skipped_steps"], serde_json::json!(skipped));
    assert_eq!(lines[0]["loss_scale"].as_f64().unwrap(), scale as f64);
    assert_eq!(m.loss_scale().unwrap().unwrap().scale, h.epochs[3].loss_scale.unwrap().0);
    for p in [Precision::F32, Precision::Bf16] {
        assert_eq!(model(p, LossScaling::Auto).loss_scale().unwrap(), None, "{p}");
    }
    assert!(model(Precision::F16, LossScaling::Auto).loss_scale().unwrap().is_some());
    assert_eq!(model(Precision::F16, LossScaling::Off).loss_scale().unwrap(), None);
    std::fs::remove_dir_all(&dir).ok();
}

/// Loss scaling across data-parallel replicas: each replica seeds its backward with replica 0's
/// current scale (a replica left at its own initial 2^40 would overflow every step, and the summed
/// gradient with it). Two CPU devices recover as one device does, and skip about the same steps:
/// not exactly the same ones, since each replica differentiates the mean loss of its own half of
/// the batch, whose f16 gradients are twice as large (as in PyTorch DDP, where each rank checks
/// its local gradients); while the scalers agree, the losses do too, within f16 rounding.
#[test]
fn data_parallel_replicas_share_the_loss_scale() {
    let model = |devices: usize| {
        let mut t = llama_training(Precision::F16);
        t.schedule = Schedule::Constant;
        t.devices = devices;
        t.loss_scale = LossScaling::Dynamic(GradScaler {
            init_scale: 2f32.powi(40),
            growth_interval: 3,
            ..GradScaler::default()
        });
        let config = LlamaConfig { num_hidden_layers: 2, ..common::small_llama() };
        Llama::with_training(config, 9, 5, t, cpu()).unwrap()
    };
    let (mut two, mut one) = (model(2), model(1));
    let first_applied = |m: &mut Llama, first: &mut Option<usize>, step: usize| {
        if m.loss_scale().unwrap().unwrap().applied > 0 {
            first.get_or_insert(step);
        }
    };
    let (mut f2, mut f1) = (None, None);
    for (step, (x, y)) in token_batches(32, 14).iter().enumerate() {
        let (a, b) = (two.train_step(x, y).unwrap(), one.train_step(x, y).unwrap());
        let (sa, sb) = (two.loss_scale().unwrap().unwrap(), one.loss_scale().unwrap().unwrap());
        if sa == sb {
            assert!((a - b).abs() <= 2e-3 * b.abs(), "step {step}: loss {a} on 2 devices, {b} on 1");
        }
        first_applied(&mut two, &mut f2, step);
        first_applied(&mut one, &mut f1, step);
    }
    let (sa, sb) = (two.loss_scale().unwrap().unwrap(), one.loss_scale().unwrap().unwrap());
    eprintln!("2 devices: {sa:?}, first update at {f2:?}; 1 device: {sb:?}, first update at {f1:?}");
    let (f2, f1) = (f2.expect("2 devices recover"), f1.expect("1 device recovers"));
    assert!(f2.abs_diff(f1) <= 1, "first updates at steps {f2} and {f1}");
    assert!(sa.skipped.abs_diff(sb.skipped) <= 3 && sa.applied >= 4, "{sa:?} vs {sb:?}");
}
