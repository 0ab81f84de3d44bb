//! Multi-class classification on the bundled 8x8 handwritten digits (UCI, 1,797 images).
//!
//! `cargo run --release --example digits`

use clap::Parser;
use kiln::data::digits_train_test;
use kiln::prelude::*;

/// An MLP on the bundled 8x8 handwritten digits, with validation and early stopping.
#[derive(Parser)]
#[command(name = "digits", after_help = "Writes no files.")]
struct Args {}

fn main() -> anyhow::Result<()> {
    Args::parse();
    // raw pixels: `fit` standardizes them (statistics of `train`), `evaluate` applies the same
    let (train, test) = digits_train_test()?;

    let mut model = Sequential::new(&[64]).add(Dense(64, Relu)).add(Dense(10, Softmax)).seed(7);
    model.compile(Optimizer::adam(1e-3), Loss::CrossEntropy, &[Metric::Accuracy])?;
    print!("{}", model.summary()?);
    println!("device: {}", model.device().unwrap_or_default());

    let opts = FitOptions {
        epochs: 30,
        batch_size: 32,
        validation: Validation::Split(0.1),
        early_stopping: Some(EarlyStopping::new("val_loss", 5)),
        ..Default::default()
    };
    let history = model.fit(&train, &opts)?;
    let eval = model.evaluate(&test, 256)?;
    println!(
        "trained {} epochs; test loss {:.4}, test accuracy {:.2}%",
        history.epochs.len(),
        eval.loss,
        100.0 * eval.get("accuracy").unwrap_or(f64::NAN)
    );
    Ok(())
}
