//! Kiln inside another program: train a tiny model, save it, load it back, predict.
//!
//! `cargo run --release --example embed`

use clap::Parser;
use kiln::data::{Table, Target};
use kiln::prelude::*;

/// Kiln inside another program: train a tiny model, save it, load it back, predict.
#[derive(Parser)]
#[command(
    name = "embed",
    after_help = "Writes the model as xor.safetensors into --out DIR, or without --out in a directory \
                  of its own under the system's temporary directory that it removes at the end."
)]
struct Args {
    /// Keep the saved model: write xor.safetensors into DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // XOR-ish data: the label is 1 when exactly one input is above 0.5.
    let points: Vec<[f32; 2]> = (0..400).map(|i| [(i % 20) as f32 / 19.0, (i / 20) as f32 / 19.0]).collect();
    let labels: Vec<u32> = points.iter().map(|p| ((p[0] > 0.5) != (p[1] > 0.5)) as u32).collect();
    let features: Vec<f32> = points.iter().flatten().copied().collect();
    let target = Target::Classes { ids: labels, names: vec!["0".into(), "1".into()] };
    let data = Table::new(features, points.len(), 2, vec!["a".into(), "b".into()], target)?;

    // Train.
    let mut model = Sequential::new(&[2]).add(Dense(16, Tanh)).add(Dense(1, Sigmoid)).seed(1);
    model.compile(Optimizer::adam(0.03), Loss::BinaryCrossEntropy, &[Metric::Accuracy])?;
    model.fit(&data, &FitOptions { epochs: 60, batch_size: 32, quiet: true, ..Default::default() })?;
    let eval = model.evaluate(&data, 256)?;
    println!(
        "trained: loss {:.4}, accuracy {:.1}%",
        eval.loss,
        100.0 * eval.get("accuracy").unwrap_or(f64::NAN)
    );

    // Save (atomically) and load into a fresh model.
    let keep = args.out.is_some();
    let dir =
        args.out.unwrap_or_else(|| std::env::temp_dir().join(format!("kiln-embed-{}", std::process::id())));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("xor.safetensors");
    model.save(&path)?;
    let mut loaded = Sequential::load(&path)?;
    let config = loaded.saved_config().cloned().expect("a compiled model saves its configuration");
    loaded.compile_with(config)?;

    // Predict.
    let rows = [0.1f32, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9];
    let p = loaded.predict_features(&rows)?;
    let again = model.predict_features(&rows)?;
    for (i, (row, p)) in rows.chunks(2).zip(&p).enumerate() {
        println!("  ({}, {}) -> p(1) = {p:.3}  (before saving: {:.3})", row[0], row[1], again[i]);
    }
    println!("saved to {} ({} bytes)", path.display(), std::fs::metadata(&path)?.len());
    if !keep {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
