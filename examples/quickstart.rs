//! The README's "In Rust, Keras-style" snippet, as a program (`tests/readme.rs` checks the README
//! shows exactly this code and runs it): read a CSV, split it, fit with validation and early
//! stopping, evaluate, predict classes, save, load and predict again. Writes only to the system's
//! temporary directory.
//!
//! `cargo run --release --example quickstart`

use clap::Parser;
use kiln::data::{read_csv, train_val_split, TaskHint};
use kiln::prelude::*;

/// The snippet; returns the test accuracy and whether the loaded model predicts the same.
pub fn run() -> kiln::Result<(f64, bool)> {
    // README:begin
    let data = read_csv("data/digits.csv", "label", TaskHint::Auto)?; // 64 pixel columns, 10 classes
    let (rest, held_out) = train_val_split(data.rows, 0.2, 42)?; // row indices, seeded
    let (train, test) = (data.subset(&rest)?, data.subset(&held_out)?);

    let mut model = Sequential::new(&[train.cols]).add(Dense(64, Relu)).add(Dense(10, Softmax));
    model.compile(Optimizer::adam(1e-3), Loss::CrossEntropy, &[Metric::Accuracy])?;
    let opts = FitOptions {
        epochs: 50, // in total: a second fit continues to this epoch
        batch_size: 32,
        validation: Validation::Split(0.1), // or Validation::Data(&val)
        early_stopping: Some(EarlyStopping::new("val_loss", 5)),
        curves: Some(std::env::temp_dir().join("digits.curves.svg")),
        ..Default::default() // standardizes the features (and a regression target)
    };
    let history = model.fit(&train, &opts)?; // prints progress, and how it stopped
    let eval = model.evaluate(&test, 256)?; // loss and metrics; the model standardizes `test`
    let probs = model.predict(&test, 256)?; // probs.shape() == [test.rows, 10]
    let classes = model.predict_classes(&test, 256)?; // ["0", "7", ...] from the CSV's labels
    let path = std::env::temp_dir().join("digits.safetensors");
    model.save(&path)?; // PyTorch state_dict names; labels, scaler inside
    let mut loaded = Sequential::load(&path)?; // ready to evaluate and predict
    assert_eq!(loaded.predict(&test, 256)?, probs);
    // README:end
    println!("{} epochs; {:?}; first test rows: {:?}", history.epochs.len(), eval, &classes[..5]);
    Ok((eval.get("accuracy").unwrap_or(0.0), loaded.predict_classes(&test, 256)? == classes))
}

/// The README's Keras-style snippet: read a CSV, split, fit, evaluate, predict, save, load.
#[derive(Parser)]
#[command(
    name = "quickstart",
    after_help = "Writes digits.curves.svg and digits.safetensors to the system's temporary directory only (as the README's snippet shows)."
)]
#[allow(dead_code)] // `tests/readme.rs` includes this file for `run`
struct Args {}

#[allow(dead_code)] // `tests/readme.rs` includes this file for `run`
fn main() -> kiln::Result<()> {
    Args::parse();
    let (accuracy, same) = run()?;
    println!("test accuracy {:.2}%, loaded model predicts the same classes: {same}", 100.0 * accuracy);
    Ok(())
}
