//! A LeNet-style CNN on the bundled 8x8 handwritten digits (UCI, 1,797 images), each example seen
//! as a 1-channel image `[1, 8, 8]`: conv-relu-pool twice, then two dense layers.
//!
//! `cargo run --release --example cnn_digits [-- --epochs N]`

use std::time::Instant;

use clap::Parser;
use kiln::data::digits_train_test;
use kiln::prelude::*;
use kiln::trainer::zoo::lenet_digits;

/// A LeNet-style CNN on the bundled 8x8 handwritten digits.
#[derive(Parser)]
#[command(name = "cnn_digits", after_help = "Writes no files.")]
struct Args {
    /// Epochs to train.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
}

fn main() -> anyhow::Result<()> {
    let epochs = Args::parse().epochs;
    // raw pixels: `fit` standardizes them (statistics of `train`), `evaluate` applies the same
    let (train, test) = digits_train_test()?;

    let mut model = lenet_digits(7);
    model.compile(Optimizer::adam(2e-3), Loss::CrossEntropy, &[Metric::Accuracy])?;
    print!("{}", model.summary()?);
    println!("device: {}", model.device().unwrap_or_default());

    let opts = FitOptions { epochs, batch_size: 32, quiet: true, ..Default::default() };
    let start = Instant::now();
    let history = model.fit(&train, &opts)?;
    let secs = start.elapsed().as_secs_f64();
    let steps = history.epochs.len() * train.rows.div_ceil(opts.batch_size);
    let eval = model.evaluate(&test, 256)?;
    println!(
        "trained {} epochs in {secs:.1}s ({:.0} steps/s); test loss {:.4}, test accuracy {:.2}%",
        history.epochs.len(),
        steps as f64 / secs,
        eval.loss,
        100.0 * eval.get("accuracy").unwrap_or(f64::NAN)
    );
    Ok(())
}
