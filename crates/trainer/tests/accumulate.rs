//! Gradient accumulation (`Compile::accumulate`): batches of 6 accumulated 3 per update train as
//! batches of 18 do, from the same weights — the same losses, weights and step counts within f32
//! tolerance — for a Sequential MLP (with a short last batch, with momentum, with clipping that
//! must see the summed gradient), on the CPU and on a GPU adapter (lavapipe), and for a tiny
//! Llama through `train_step` and `fit`.

use kiln_device::BackendChoice;
use kiln_trainer::data::{Array, SplitMix64, Table};
use kiln_trainer::prelude::*;
use kiln_trainer::zoo::{Llama, LlamaConfig};
use kiln_trainer::{GradScaler, LossScaling};

fn close(what: &str, a: &[f32], b: &[f32], rtol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= rtol * (1.0 + y.abs()), "{what}[{i}]: {x} vs {y}");
    }
}

fn table(rows: usize, seed: u64) -> Table {
    let mut rng = SplitMix64::new(seed);
    let x: Vec<f32> =
        (0..rows * 5).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(3) as u32).collect();
    Table::from_arrays(
        Array { shape: vec![rows, 5], data: x },
        Some(Array { shape: vec![rows], data: labels }),
    )
    .unwrap()
}

/// What a fit of the MLP ends with.
struct Run {
    losses: Vec<f64>,
    /// Optimizer updates per epoch.
    steps: Vec<usize>,
    weights: Vec<(String, Vec<f32>)>,
}

/// Trains a 5 -> 7 -> 3 MLP for 3 epochs.
fn mlp(
    backend: BackendChoice,
    data: &Table,
    batch: usize,
    accumulate: usize,
    opt: Optimizer,
    clip: Option<f32>,
) -> Run {
    let mut m = Sequential::new(&[5]).add(Dense(7, Tanh)).add(Dense(3, Softmax)).seed(11);
    let mut c = Compile::new(opt, Loss::CrossEntropy, &[]);
    c.backend = backend;
    c.clip_norm = clip;
    c.accumulate = accumulate;
    m.compile_with(c).unwrap();
    let opts =
        FitOptions { epochs: 3, batch_size: batch, quiet: true, standardize: false, ..Default::default() };
    let h = m.fit(data, &opts).unwrap();
    Run {
        losses: h.epochs.iter().map(|e| e.loss).collect(),
        steps: h.epochs.iter().map(|e| e.steps).collect(),
        weights: m.weights().unwrap().into_iter().map(|(n, _, v)| (n, v)).collect(),
    }
}

fn mlp_case(backend: BackendChoice, rows: usize, opt: Optimizer, clip: Option<f32>, rtol: f32) {
    let data = table(rows, rows as u64);
    let one = mlp(backend, &data, 18, 1, opt, clip);
    let acc = mlp(backend, &data, 6, 3, opt, clip);
    assert_eq!(one.steps, vec![rows.div_ceil(18); 3], "updates per epoch");
    assert_eq!(acc.steps, one.steps, "an accumulated epoch counts updates");
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    close("losses", &f32s(&acc.losses), &f32s(&one.losses), rtol);
    for ((n, a), (_, b)) in acc.weights.iter().zip(&one.weights) {
        close(n, a, b, rtol);
    }
    // and the updates did move the weights (else equal weights prove nothing)
    let still = mlp(backend, &data, 18, 1, Optimizer::sgd(0.0), None);
    assert!(still.weights[0].1.iter().zip(&one.weights[0].1).any(|(a, b)| (a - b).abs() > 1e-3));
}

fn momentum() -> Optimizer {
    Optimizer::Sgd { lr: 0.2, momentum: 0.9, weight_decay: 0.0, nesterov: false }
}

#[test]
fn mlp_accumulated_equals_one_larger_batch_on_the_cpu() {
    // 50 rows: batches of 18, 18 and 14; windows of 6+6+6, 6+6+6, 6+6+2 (weighted by rows)
    mlp_case(BackendChoice::Cpu, 50, momentum(), None, 1e-5);
    // clipping binds and sees the summed gradient, not each micro-batch's
    mlp_case(BackendChoice::Cpu, 54, Optimizer::sgd(0.5), Some(0.05), 1e-5);
    mlp_case(BackendChoice::Cpu, 41, Optimizer::adam(0.02), Some(0.3), 1e-5);
}

#[test]
fn mlp_accumulated_equals_one_larger_batch_on_a_gpu() {
    if kiln_device::testing::gpu_or_skip("gradient accumulation").is_none() {
        return;
    }
    mlp_case(BackendChoice::Gpu, 50, momentum(), None, 1e-5);
    mlp_case(BackendChoice::Gpu, 54, Optimizer::sgd(0.5), Some(0.05), 1e-5);
}

fn tiny() -> LlamaConfig {
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

const CONTEXT: usize = 7;

fn llama(accumulate: usize) -> Llama {
    let mut t = Llama::default_training();
    t.clip_norm = Some(0.5);
    t.accumulate = accumulate;
    t.schedule = Schedule::Warmup { steps: 2, then: Box::new(Schedule::Constant) };
    let cpu = kiln_device::open(BackendChoice::Cpu).unwrap();
    Llama::with_training(tiny(), CONTEXT, 5, t, cpu).unwrap()
}

fn ids(rng: &mut SplitMix64, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(41) as u32).collect()
}

#[test]
fn llama_train_step_accumulated_equals_one_larger_batch() {
    let (mut big, mut acc) = (llama(1), llama(3));
    let mut rng = SplitMix64::new(3);
    for update in 0..3 {
        let (tokens, targets) = (ids(&mut rng, 6 * CONTEXT), ids(&mut rng, 6 * CONTEXT));
        let whole = big.train_step(&tokens, &targets).unwrap();
        let mut sum = 0.0;
        for k in 0..3 {
            let r = k * 2 * CONTEXT..(k + 1) * 2 * CONTEXT;
            sum += acc.train_step(&tokens[r.clone()], &targets[r]).unwrap();
            let want = if k == 2 { update + 1 } else { update };
            assert_eq!(acc.step(), want as u64, "updates, not micro-batches, are counted");
        }
        close("loss", &[sum / 3.0], &[whole], 1e-5);
    }
    assert_eq!((big.step(), acc.step()), (3, 3));
    for ((n, _, a), (_, _, b)) in acc.state_dict().unwrap().iter().zip(&big.state_dict().unwrap()) {
        close(n, a, b, 1e-5);
    }
    // mid-accumulation there is nothing consistent to save
    let (tokens, targets) = (ids(&mut rng, 2 * CONTEXT), ids(&mut rng, 2 * CONTEXT));
    acc.train_step(&tokens, &targets).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-accum-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = acc.save(dir.join("m.safetensors")).unwrap_err().to_string();
    assert!(e.contains("1 of 3 micro-batches"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn llama_fit_accumulated_equals_one_larger_batch() {
    let mut rng = SplitMix64::new(8);
    let rows = 40; // batches of 18, 18, 4; micro-batches 6 x 6 + 4
    let windows: Vec<f32> = ids(&mut rng, rows * (CONTEXT + 1)).into_iter().map(|v| v as f32).collect();
    let data = Table::from_arrays(Array { shape: vec![rows, CONTEXT + 1], data: windows }, None).unwrap();
    let fit = |batch: usize, accumulate: usize| {
        let mut m = llama(accumulate);
        let opts = FitOptions {
            epochs: 2,
            batch_size: batch,
            quiet: true,
            standardize: false,
            standardize_target: false,
            ..Default::default()
        };
        let h = m.fit(&data, &opts).unwrap();
        let losses: Vec<f32> = h.epochs.iter().map(|e| e.loss as f32).collect();
        (losses, h.epochs.iter().map(|e| e.steps).collect::<Vec<_>>(), m.step(), m.state_dict().unwrap())
    };
    let (l1, s1, t1, w1) = fit(18, 1);
    let (l3, s3, t3, w3) = fit(6, 3);
    assert_eq!((s1.clone(), t1), (vec![3, 3], 6));
    assert_eq!((s3, t3), (s1, t1));
    close("losses", &l3, &l1, 1e-5);
    for ((n, _, a), (_, _, b)) in w3.iter().zip(&w1) {
        close(n, a, b, 1e-5);
    }
}

/// Loss scaling with accumulation: the scaled micro-batch gradients are summed, then unscaled once
/// per update, and the scaler steps once per update. A power-of-two scale is exact in f32 (every
/// backward rule is linear in the incoming gradient), so with SGD (no Adam bias correction, which
/// the scaler computes on the device) a scaled run trains the same bits as an unscaled one.
#[test]
fn loss_scaling_steps_once_per_accumulated_update_and_changes_no_bit() {
    let model = |scaling: LossScaling| {
        let mut t = Llama::default_training();
        t.optimizer = Optimizer::Sgd { lr: 0.1, momentum: 0.9, weight_decay: 0.0, nesterov: false };
        (t.accumulate, t.clip_norm, t.loss_scale) = (3, Some(0.5), scaling);
        let cpu = kiln_device::open(BackendChoice::Cpu).unwrap();
        Llama::with_training(tiny(), CONTEXT, 5, t, cpu).unwrap()
    };
    let mut scaled = model(LossScaling::Dynamic(GradScaler::with_init_scale(1024.0)));
    let mut plain = model(LossScaling::Off);
    let mut rng = SplitMix64::new(9);
    for _ in 0..3 * 3 {
        let (tokens, targets) = (ids(&mut rng, 2 * CONTEXT), ids(&mut rng, 2 * CONTEXT));
        let (a, b) =
            (scaled.train_step(&tokens, &targets).unwrap(), plain.train_step(&tokens, &targets).unwrap());
        assert_eq!(a.to_bits(), b.to_bits(), "loss {a} scaled, {b} not");
    }
    let s = scaled.loss_scale().unwrap().expect("a scaler");
    assert_eq!((s.applied, s.skipped, s.good, s.scale), (3, 0, 3, 1024.0), "{s:?}");
    assert_eq!(plain.loss_scale().unwrap(), None);
    for ((n, _, a), (_, _, b)) in scaled.state_dict().unwrap().iter().zip(&plain.state_dict().unwrap()) {
        assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{n} differs");
    }
}
