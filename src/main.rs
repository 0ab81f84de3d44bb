//! The `kiln` command.

use anyhow::Result;
use kiln_device::{gpu, open, BackendChoice};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("info") => info(),
        Some(other) => anyhow::bail!("unknown command '{other}'; try `kiln info`"),
        None => info(),
    }
}

/// Adapters found, the backend `auto` picks, its limits and features.
fn info() -> Result<()> {
    let adapters = gpu::describe_all();
    if adapters.is_empty() {
        println!("wgpu adapters: none found (Vulkan, Metal, DX12)");
    } else {
        println!("wgpu adapters:");
        for a in &adapters {
            println!("  {a}");
        }
    }
    let choice = BackendChoice::from_env()?;
    let backend = open(choice)?;
    let info = backend.info();
    println!("backend '{choice}' picks: {info}");
    for (name, value) in &info.limits {
        println!("  {name} = {value}");
    }
    if !info.features.is_empty() {
        println!("  features: {}", info.features.join(", "));
    }
    Ok(())
}
