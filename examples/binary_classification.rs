//! Binary classification, the Keras classic: `Dense(2, relu) -> Dense(1, sigmoid)`, Adam, binary
//! cross-entropy, accuracy, on two seeded Gaussian blobs.
//!
//! `cargo run --release --example binary_classification`

use clap::Parser;
use kiln::data::{SplitMix64, Table, Target};
use kiln::prelude::*;

/// Standard normal from two uniforms (Box-Muller).
fn gaussian(rng: &mut SplitMix64) -> f32 {
    let u = |rng: &mut SplitMix64| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let (u1, u2) = (u(rng).max(1e-300), u(rng));
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `rows` points: class "a" around (-1, -1), class "b" around (1, 1), standard deviation 0.7.
fn blobs(rows: usize, seed: u64) -> kiln::Result<Table> {
    let mut rng = SplitMix64::new(seed);
    let mut features = Vec::with_capacity(rows * 2);
    let mut ids = Vec::with_capacity(rows);
    for i in 0..rows {
        let class = (i % 2) as u32;
        let centre = if class == 0 { -1.0 } else { 1.0 };
        features.push(centre + 0.7 * gaussian(&mut rng));
        features.push(centre + 0.7 * gaussian(&mut rng));
        ids.push(class);
    }
    let names = vec!["x1".to_string(), "x2".to_string()];
    Table::new(features, rows, 2, names, Target::Classes { ids, names: vec!["a".into(), "b".into()] })
}

/// Binary classification of two Gaussian blobs with Dense(2, relu) -> Dense(1, sigmoid).
#[derive(Parser)]
#[command(name = "binary_classification", after_help = "Writes no files.")]
struct Args {}

fn main() -> anyhow::Result<()> {
    Args::parse();
    let train = blobs(1000, 1)?;
    let val = blobs(200, 2)?;
    let test = blobs(400, 3)?;

    let mut model = Sequential::new(&[2]).add(Dense(2, Relu)).add(Dense(1, Sigmoid)).seed(0);
    model.compile(Optimizer::adam(0.05), Loss::BinaryCrossEntropy, &[Metric::Accuracy])?;
    print!("{}", model.summary()?);
    println!("device: {}", model.device().unwrap_or_default());

    let opts =
        FitOptions { epochs: 10, batch_size: 32, validation: Validation::Data(&val), ..Default::default() };
    let history = model.fit(&train, &opts)?;
    let last = history.last().expect("10 epochs ran");
    println!("after {} epochs: {}", last.epoch, last.summary());

    let eval = model.evaluate(&test, 256)?;
    let accuracy = eval.get("accuracy").unwrap_or(f64::NAN);
    println!("test: loss {:.4}, accuracy {:.2}% on {} points", eval.loss, 100.0 * accuracy, test.rows);

    // Probabilities of class "b" for two points, one deep in each blob.
    let p = model.predict_features(&[-1.5, -1.2, 1.3, 1.6])?;
    println!("p(b | (-1.5, -1.2)) = {:.3}, p(b | (1.3, 1.6)) = {:.3}", p[0], p[1]);
    Ok(())
}
