//! The `kiln` command: train, evaluate and predict on CSV files, and report the hardware.
//! With no arguments it runs the main job: an MLP on the bundled handwritten digits.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
