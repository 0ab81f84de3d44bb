//! Each loss against a float64 reference: a model whose only layer is the identity (weights = I,
//! bias 0), so its output is the features we choose, evaluated on the CPU backend.

use kiln_device::BackendChoice;
use kiln_trainer::data::{SplitMix64, Table, Target};
use kiln_trainer::prelude::*;

const ROWS: usize = 37;

fn rng_vec(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f32> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| (lo + (hi - lo) * ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64)) as f32).collect()
}

fn labels(n: usize, k: u32, seed: u64) -> Vec<u32> {
    let mut r = SplitMix64::new(seed);
    (0..n).map(|_| r.below(k as u64) as u32).collect()
}

/// Evaluates `loss` for an identity model ending in `act` on features `x` (`width` per row).
fn loss_of(loss: Loss, act: Option<Activation>, x: &[f32], width: usize, target: Target) -> f64 {
    let mut model = Sequential::new(&[width]).add(Dense(width, act));
    let eye: Vec<f32> = (0..width * width).map(|i| if i % (width + 1) == 0 { 1.0 } else { 0.0 }).collect();
    model.set_weight("0.weight", &eye).unwrap();
    model.set_weight("0.bias", &vec![0.0; width]).unwrap();
    let mut cfg = Compile::new(Optimizer::sgd(0.1), loss, &[]);
    cfg.backend = BackendChoice::Cpu;
    model.compile_with(cfg).unwrap();
    let names = (0..width).map(|i| format!("f{i}")).collect();
    let table = Table::new(x.to_vec(), ROWS, width, names, target).unwrap();
    model.evaluate(&table, 8).unwrap().loss // several batches, the last partial
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-5 * want.abs() + 1e-6, "{what}: kiln {got}, reference {want}");
}

fn classes(ids: Vec<u32>, k: usize) -> Target {
    Target::Classes { ids, names: (0..k).map(|i| i.to_string()).collect() }
}

#[test]
fn regression_losses() {
    let p = rng_vec(ROWS, 1, -3.0, 3.0);
    let t = rng_vec(ROWS, 2, -3.0, 3.0);
    let d: Vec<f64> = p.iter().zip(&t).map(|(&a, &b)| a as f64 - b as f64).collect();
    let n = ROWS as f64;
    let mse = d.iter().map(|v| v * v).sum::<f64>() / n;
    let mae = d.iter().map(|v| v.abs()).sum::<f64>() / n;
    let huber = d.iter().map(|v| if v.abs() <= 1.0 { 0.5 * v * v } else { v.abs() - 0.5 }).sum::<f64>() / n;
    close(loss_of(Loss::Mse, None, &p, 1, Target::Regression(t.clone())), mse, "mse");
    close(loss_of(Loss::Mae, None, &p, 1, Target::Regression(t.clone())), mae, "mae");
    close(loss_of(Loss::Huber { delta: 1.0 }, None, &p, 1, Target::Regression(t)), huber, "huber");
    assert!(d.iter().any(|v| v.abs() > 1.0) && d.iter().any(|v| v.abs() < 1.0), "both huber branches");
}

#[test]
fn binary_cross_entropy_from_probabilities_logits_and_a_final_sigmoid() {
    let ids = labels(ROWS, 2, 3);
    let y: Vec<f64> = ids.iter().map(|&c| c as f64).collect();
    let probs = rng_vec(ROWS, 4, 0.02, 0.98);
    let want: f64 = probs
        .iter()
        .zip(&y)
        .map(|(&p, t)| -(t * (p as f64).ln() + (1.0 - t) * (1.0 - p as f64).ln()))
        .sum::<f64>()
        / ROWS as f64;
    close(loss_of(Loss::BinaryCrossEntropy, None, &probs, 1, classes(ids.clone(), 2)), want, "bce(p)");

    let z = rng_vec(ROWS, 5, -4.0, 4.0);
    let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
    let want: f64 = z
        .iter()
        .zip(&y)
        .map(|(&z, t)| -(t * sig(z as f64).ln() + (1.0 - t) * (1.0 - sig(z as f64)).ln()))
        .sum::<f64>()
        / ROWS as f64;
    close(
        loss_of(Loss::BinaryCrossEntropyWithLogits, None, &z, 1, classes(ids.clone(), 2)),
        want,
        "bce(logits)",
    );
    close(
        loss_of(Loss::BinaryCrossEntropy, Some(Sigmoid), &z, 1, classes(ids, 2)),
        want,
        "bce after sigmoid",
    );
}

#[test]
fn cross_entropy_with_labels_and_one_hot() {
    let k = 4;
    let ids = labels(ROWS, k as u32, 6);
    let z = rng_vec(ROWS * k, 7, -3.0, 3.0);
    let want: f64 = z
        .chunks(k)
        .zip(&ids)
        .map(|(row, &c)| {
            let lse = row.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
            lse - row[c as usize] as f64
        })
        .sum::<f64>()
        / ROWS as f64;
    close(loss_of(Loss::CrossEntropy, None, &z, k, classes(ids.clone(), k)), want, "ce(logits)");
    close(
        loss_of(Loss::CrossEntropy, Some(Softmax), &z, k, classes(ids.clone(), k)),
        want,
        "ce after softmax",
    );
    close(
        loss_of(Loss::CrossEntropyOneHot, Some(Softmax), &z, k, classes(ids.clone(), k)),
        want,
        "ce one-hot",
    );
    close(loss_of(Loss::CrossEntropyOneHot, None, &z, k, classes(ids, k)), want, "ce one-hot (logits)");
}
