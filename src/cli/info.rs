//! `kiln info`: what hardware Kiln sees and what `auto` picks.

use anyhow::Result;
use kiln_device::{gpu, open, BackendChoice};

pub fn run() -> Result<()> {
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
