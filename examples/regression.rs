//! Regression with mean squared error: y = 2 sin(x) + 0.5 x + noise, a small MLP, MSE and MAE
//! before and after training.
//!
//! `cargo run --release --example regression`

use clap::Parser;
use kiln::data::{SplitMix64, Table, Target};
use kiln::prelude::*;

fn f(x: f32) -> f32 {
    2.0 * x.sin() + 0.5 * x
}

/// `rows` points with x uniform in [-3, 3] and noise uniform in [-0.1, 0.1].
fn samples(rows: usize, seed: u64) -> kiln::Result<Table> {
    let mut rng = SplitMix64::new(seed);
    let mut unit = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    let mut xs = Vec::with_capacity(rows);
    let mut ys = Vec::with_capacity(rows);
    for _ in 0..rows {
        let x = -3.0 + 6.0 * unit();
        xs.push(x);
        ys.push(f(x) + 0.2 * (unit() - 0.5));
    }
    Table::new(xs, rows, 1, vec!["x".into()], Target::Regression(ys))
}

/// Regression with MSE: a small MLP learns y = 2 sin(x) + 0.5 x.
#[derive(Parser)]
#[command(name = "regression", after_help = "Writes no files.")]
struct Args {}

fn main() -> anyhow::Result<()> {
    Args::parse();
    let train = samples(1000, 1)?;
    let test = samples(300, 2)?;

    let mut model =
        Sequential::new(&[1]).add(Dense(32, Tanh)).add(Dense(32, Tanh)).add(Dense(1, None)).seed(0);
    model.compile(Optimizer::adam(1e-2), Loss::Mse, &[Metric::Mse, Metric::Mae])?;
    print!("{}", model.summary()?);
    println!("device: {}", model.device().unwrap_or_default());

    let report = |when: &str, e: &kiln::trainer::Evaluation| {
        let get = |m| e.get(m).unwrap_or(f64::NAN);
        println!("{when:<15} test mse {:.4}  mae {:.4}", get("mse"), get("mae"));
    };
    report("before training", &model.evaluate(&test, 256)?);
    let opts = FitOptions { epochs: 60, batch_size: 32, quiet: true, ..Default::default() };
    let history = model.fit(&train, &opts)?;
    report(&format!("after {} epochs", history.epochs.len()), &model.evaluate(&test, 256)?);

    let xs = [-2.5f32, -1.0, 0.0, 1.0, 2.5];
    let ys = model.predict_features(&xs)?;
    for (x, y) in xs.iter().zip(&ys) {
        println!("  f({x:>4}) = {:>7.3}, model says {y:>7.3}", f(*x));
    }
    Ok(())
}
