//! The image and sequence layers of a `Sequential` model on the GPU backend (wgpu + WGSL; Mesa's
//! lavapipe in CI) against the CPU backend, from the same initial weights and the same batches:
//! a tiny CNN (Conv2d, BatchNorm, ReLU, MaxPool2d, Conv2d, AvgPool2d, GlobalAvgPool2d, BatchNorm1d,
//! Dense) and a tiny Embedding model. Losses, every parameter, the BatchNorm running statistics
//! and `num_batches_tracked` (updated on the device inside the step) and the evaluation outputs
//! must agree.
//!
//! Tolerance: 1e-4 relative (plus 1e-6 absolute, for values near zero such as biases that start
//! at 0). Both backends compute in f32 but sum in different orders (the GPU's matmul tiles and
//! workgroup tree reductions against the CPU's sequential loops), which differ by a few ulps
//! (~1e-7 relative) per op; after some tens of ops and a few optimizer steps that stays near
//! 1e-6. SGD keeps it there, as its update is linear in the gradient; Adam would not
//! (`m / sqrt(v)` turns a near-zero gradient's rounding noise into a full `lr`-sized step), and
//! neither would many epochs. Shapes are tiny: lavapipe runs shaders on the CPU.
//!
//! Without an adapter the tests say loudly that they were skipped; with `KILN_REQUIRE_GPU=1` a
//! missing adapter fails them.

use kiln_device::BackendChoice;
use kiln_trainer::data::{Array, SplitMix64, Table};
use kiln_trainer::prelude::*;
use kiln_trainer::{Layer, Sequential};

fn gpu_available() -> bool {
    kiln_device::testing::gpu_or_skip("the layers").is_some()
}

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-6;

/// Checks every element; returns the largest difference in units of the tolerance.
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) -> f64 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let mut worst = 0.0f64;
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let (g, c) = (g as f64, c as f64);
        let allowed = RTOL * c.abs() + ATOL;
        assert!((g - c).abs() <= allowed, "{what}[{i}]: gpu {g} vs cpu {c}");
        worst = worst.max((g - c).abs() / allowed);
    }
    worst
}

/// Trains `make(backend)` on both backends for `epochs` epochs and compares everything.
fn compare(name: &str, make: impl Fn() -> Sequential, data: &Table, batch: usize, epochs: usize) {
    let features: Vec<f32> = data.features.clone();
    let run = |backend| {
        let mut m = make();
        let mut cfg = Compile::new(
            Optimizer::Sgd { lr: 0.05, momentum: 0.9, weight_decay: 0.0, nesterov: false },
            Loss::CrossEntropy,
            &[],
        );
        cfg.backend = backend;
        m.compile_with(cfg).unwrap();
        let opts = FitOptions { epochs, batch_size: batch, quiet: true, ..Default::default() };
        let h = m.fit(data, &opts).unwrap();
        let losses: Vec<f32> = h.epochs.iter().map(|e| e.loss as f32).collect();
        let pred = m.predict_features(&features).unwrap();
        (m.device().unwrap_or_default(), losses, m.weights().unwrap(), pred)
    };
    let (cpu_dev, cpu_loss, cpu_w, cpu_pred) = run(BackendChoice::Cpu);
    let (gpu_dev, gpu_loss, gpu_w, gpu_pred) = run(BackendChoice::Gpu);
    eprintln!("{name}: cpu {cpu_dev} losses {cpu_loss:?}; gpu {gpu_dev} losses {gpu_loss:?}");
    let mut worst = assert_close(&format!("{name} epoch losses"), &gpu_loss, &cpu_loss);
    let init = make().weights().unwrap();
    assert_eq!(gpu_w.len(), cpu_w.len());
    for (((n, s, g), (m, _, c)), (_, _, i)) in gpu_w.iter().zip(&cpu_w).zip(&init) {
        assert_eq!(n, m);
        worst = worst.max(assert_close(&format!("{name} {n} {s:?}"), g, c));
        assert_ne!(c, i, "{name} {n}: training did not change it, so the comparison says nothing");
    }
    worst = worst.max(assert_close(&format!("{name} evaluation outputs"), &gpu_pred, &cpu_pred));
    eprintln!("{name}: largest gpu-cpu difference is {worst:.3} of the tolerance");
}

/// `rows` examples of `width` values in [-1, 1) and labels in `0..classes`, seeded.
fn table(rows: usize, shape: &[usize], classes: u64, seed: u64, token_vocab: Option<u64>) -> Table {
    let mut rng = SplitMix64::new(seed);
    let width: usize = shape.iter().product();
    let features: Vec<f32> = (0..rows * width)
        .map(|_| match token_vocab {
            Some(v) => rng.below(v) as f32,
            None => ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32,
        })
        .collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
    let mut fshape = vec![rows];
    fshape.extend_from_slice(shape);
    Table::from_arrays(
        Array { shape: fshape, data: features },
        Some(Array { shape: vec![rows], data: labels }),
    )
    .unwrap()
}

#[test]
fn a_tiny_cnn_with_batch_norm_trains_alike_on_gpu_and_cpu() {
    if !gpu_available() {
        return;
    }
    let make = || {
        Sequential::new(&[2, 6, 6])
            .add(Conv2d(3, 3).conv(1, 1, 1)) // [3, 6, 6]
            .add(BatchNorm())
            .add(Layer::Activation(Relu))
            .add(MaxPool2d(2)) // [3, 3, 3]
            .add(Conv2d(4, 3).conv(1, 1, 1)) // [4, 3, 3]
            .add(Layer::AvgPool2d(AvgPool2d { kernel: 2, stride: 1, padding: 0 })) // [4, 2, 2]
            .add(GlobalAvgPool2d()) // [4]
            .add(BatchNorm()) // BatchNorm1d
            .add(Dense(3, Softmax))
            .seed(21)
    };
    // 14 rows in batches of 5: 5, 5 and a short 4 (its own plan and unbiased factor)
    let data = table(14, &[2, 6, 6], 3, 5, None);
    compare("cnn", make, &data, 5, 2);
}

#[test]
fn a_tiny_embedding_model_trains_alike_on_gpu_and_cpu() {
    if !gpu_available() {
        return;
    }
    let make = || Sequential::new(&[4]).add(Embedding(9, 3)).add(Flatten()).add(Dense(2, Softmax)).seed(8);
    let data = table(12, &[4], 2, 6, Some(9));
    compare("embedding", make, &data, 5, 2);
}
