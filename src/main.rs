//! The `kiln` command: train, evaluate and predict on CSV files, and report the hardware.
//! With no arguments it runs the main job: an MLP on the bundled handwritten digits.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {}", message(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by ": " (what `{:#}` prints), leaving out a cause whose text
/// the message already ends with: `kiln_trainer::Error::Io` shows its OS error and also returns it
/// as its source, which would print "No such file or directory (os error 2)" twice.
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}
