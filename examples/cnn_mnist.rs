//! The LeNet-style CNN of `cnn_digits` on the real MNIST (or Fashion-MNIST) files, for users who
//! have them: 60,000 training and 10,000 test images of 28x28 pixels.
//!
//! `cargo run --release --example cnn_mnist -- DIR [--epochs N]`, where DIR holds the four
//! decompressed IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`; `gunzip *.gz` first). They are not bundled.
//! Uses the GPU when one is present (`KILN_BACKEND=cpu|gpu` to choose).

use std::time::Instant;

use clap::Parser;
use kiln::data::load_mnist;
use kiln::prelude::*;
use kiln::trainer::zoo::lenet;

/// The LeNet-style CNN of cnn_digits on the real MNIST (or Fashion-MNIST) IDX files.
#[derive(Parser)]
#[command(name = "cnn_mnist", after_help = "Writes no files. KILN_BACKEND=cpu|gpu|auto picks the backend.")]
struct Args {
    /// A directory with the four decompressed IDX files (train-images-idx3-ubyte,
    /// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte).
    dir: std::path::PathBuf,
    /// Epochs to train.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { dir, epochs } = Args::parse();
    let (train, test) = load_mnist(&dir)?;
    let side = (train.cols as f64).sqrt() as usize;
    anyhow::ensure!(
        side * side == train.cols && side.is_multiple_of(4),
        "images must be square with a side divisible by 4"
    );
    println!("{} training, {} test images of {side}x{side}", train.rows, test.rows);

    let mut model = lenet(&[1, side, side], 128, 7);
    model.compile(Optimizer::adam(1e-3), Loss::CrossEntropy, &[Metric::Accuracy])?;
    print!("{}", model.summary()?);
    println!("device: {}", model.device().unwrap_or_default());
    let start = Instant::now();
    model.fit(&train, &FitOptions { epochs, batch_size: 64, ..Default::default() })?;
    let eval = model.evaluate(&test, 512)?;
    println!(
        "{epochs} epochs in {:.1}s; test loss {:.4}, test accuracy {:.2}%",
        start.elapsed().as_secs_f64(),
        eval.loss,
        100.0 * eval.get("accuracy").unwrap_or(f64::NAN)
    );
    Ok(())
}
