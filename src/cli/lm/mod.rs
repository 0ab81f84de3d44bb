//! `kiln lm`: train, fine-tune, evaluate and sample Llama-style language models.

mod eval;
mod generate;
mod info;
mod memory;
mod source;
mod train;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum LmCommand {
    /// Train (or fine-tune) a Llama-style model on a text or token file, with warmup + cosine
    /// AdamW, validation every N steps, checkpoints and exact resume.
    Train(train::Args),
    /// Continue a prompt (key/value cache: n new tokens cost n one-token steps).
    Generate(generate::Args),
    /// Mean next-token cross-entropy over consecutive windows of a token file.
    Eval(eval::Args),
    /// Parameter count and planned training memory of a configuration.
    Info(info::Args),
}

pub fn run(command: LmCommand) -> Result<()> {
    match command {
        LmCommand::Train(a) => train::run(a),
        LmCommand::Generate(a) => generate::run(a),
        LmCommand::Eval(a) => eval::run(a),
        LmCommand::Info(a) => info::run(a),
    }
}

/// `1234567` -> `1.23 MB`.
pub fn bytes(n: u64) -> String {
    let (v, unit) = match n {
        n if n >= 1 << 30 => (n as f64 / (1u64 << 30) as f64, "GiB"),
        n if n >= 1 << 20 => (n as f64 / (1u64 << 20) as f64, "MiB"),
        n if n >= 1 << 10 => (n as f64 / 1024.0, "KiB"),
        n => (n as f64, "B"),
    };
    format!("{v:.2} {unit}")
}
