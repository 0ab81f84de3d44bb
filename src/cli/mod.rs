//! Command-line definitions and dispatch.

mod evaluate;
mod info;
mod interrupt;
mod lm;
mod output;
mod plan;
mod predict;
mod run_lock;
mod settings;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use settings::TrainSettings;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Train neural networks on the GPU you already own, or the CPU.")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train an MLP on a CSV file (or on settings from a TOML file) and save it as safetensors.
    Train {
        /// A TOML file with the same settings as the flags (flags given here override it).
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: TrainSettings,
    },
    /// Loss and metrics of a saved model on a labelled CSV file.
    Evaluate(evaluate::Args),
    /// Predictions of a saved model for every row of a CSV file.
    Predict(predict::Args),
    /// Adapters found, the backend `auto` would pick, its limits and features.
    Info,
    /// Language models (Llama, SmolLM2): train, generate, eval, info.
    Lm {
        #[command(subcommand)]
        command: lm::LmCommand,
    },
    /// Train on the bundled digits and print the test accuracy (what `kiln` alone does).
    Digits {
        #[command(flatten)]
        settings: TrainSettings,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train::digits(TrainSettings::default()),
        Some(Command::Digits { settings }) => train::digits(settings),
        Some(Command::Train { config, settings }) => {
            let file = match config {
                Some(path) => TrainSettings::from_toml(&path)?,
                None => TrainSettings::default(),
            };
            train::train_csv(settings.or(file))
        }
        Some(Command::Evaluate(args)) => evaluate::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Info) => info::run(),
        Some(Command::Lm { command }) => lm::run(command),
    }
}
