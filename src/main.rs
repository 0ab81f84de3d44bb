//! The `kiln` command: train, evaluate and predict on CSV files, and report the hardware.
//! With no arguments it runs the main job: an MLP on the bundled handwritten digits.

mod cli;

use clap::Parser;

fn main() {
    // Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" when it is unset (headless machines,
    // CI); it is harmless but reads like an error of ours. Set before any thread exists.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
