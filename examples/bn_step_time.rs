//! Training-step time of a small CNN with BatchNorm on the bundled 8x8 digits: how much the
//! per-step BatchNorm bookkeeping (running statistics, `num_batches_tracked`) costs.
//!
//! `cargo run --release --example bn_step_time [-- --backend cpu|gpu] [--epochs N] [--batch B]`
//!
//! Prints one line per epoch after the first (warm-up: plans compile and pipelines build) and
//! the median steps/s.

use clap::Parser;
use kiln::data::{digits_train_test, Standardizer};
use kiln::device::BackendChoice;
use kiln::prelude::*;
use kiln::trainer::Layer;

/// Training-step time of a small CNN with BatchNorm on the bundled 8x8 digits.
#[derive(Parser)]
#[command(name = "bn_step_time", after_help = "Writes no files.")]
struct Args {
    /// The backend to time: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    backend: BackendChoice,
    /// Epochs (the first is warm-up and not reported).
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Rows per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { backend, epochs, batch } = Args::parse();
    let (mut train, _) = digits_train_test()?;
    Standardizer::fit_table(&train)?.apply_table(&mut train)?;

    let mut model = Sequential::new(&[1, 8, 8])
        .add(Conv2d(16, 3).conv(1, 1, 1)) // [16, 8, 8]
        .add(BatchNorm())
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2)) // [16, 4, 4]
        .add(Conv2d(32, 3).conv(1, 1, 1)) // [32, 4, 4]
        .add(BatchNorm())
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2)) // [32, 2, 2]
        .add(Flatten())
        .add(Dense(64, None))
        .add(BatchNorm())
        .add(Layer::Activation(Relu))
        .add(Dense(10, Softmax))
        .seed(7);
    let mut cfg = Compile::new(Optimizer::adam(2e-3), Loss::CrossEntropy, &[]);
    cfg.backend = backend;
    model.compile_with(cfg)?;
    println!("device: {}, batch {batch}, {} rows", model.device().unwrap_or_default(), train.rows);
    let opts = FitOptions { epochs, batch_size: batch, quiet: true, ..Default::default() };
    let history = model.fit(&train, &opts)?;
    let mut rates: Vec<f64> = history.epochs.iter().skip(1).map(|e| e.steps_per_s).collect();
    for e in history.epochs.iter().skip(1) {
        println!(
            "epoch {}: loss {:.4}, {:.1} steps/s, {:.2} ms/step",
            e.epoch,
            e.loss,
            e.steps_per_s,
            1e3 / e.steps_per_s
        );
    }
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN);
    println!("median: {median:.1} steps/s ({:.2} ms/step)", 1e3 / median);
    Ok(())
}
