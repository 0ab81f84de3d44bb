//! `kiln info`: the adapters Kiln finds, each with the limits and features it depends on, what
//! `auto` (or `KILN_BACKEND`) picks, the element types buffers can hold, and the CPU backend
//! (threads, CPU features).

use anyhow::Result;
use kiln_device::{gpu, open, BackendChoice, DType, DeviceInfo};

/// The optional wgpu features Kiln asks for, by wgpu's name and by the name `kiln info` shows.
const FEATURES: [(&str, &str); 4] = [
    ("SHADER_F16", "shader-f16"),
    ("SUBGROUP", "subgroups"),
    ("TIMESTAMP_QUERY", "timestamps"),
    ("TIMESTAMP_QUERY_INSIDE_PASSES", "timestamps-inside-passes"),
];

pub fn run() -> Result<()> {
    let adapters = gpu::describe_all();
    if adapters.is_empty() {
        println!("wgpu adapters: none found (Vulkan, Metal, DX12)");
    } else {
        println!("wgpu adapters: {} found", adapters.len());
        for (i, a) in adapters.iter().enumerate() {
            print_adapter(i, a);
        }
    }
    let dtypes: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
    println!(
        "element types: {} (f16 and bf16 on every adapter: two per 32-bit word, converted with integer \
         bit operations, no shader-f16 needed)",
        dtypes.join(", ")
    );
    let choice = BackendChoice::from_env()?;
    let backend = open(choice)?;
    println!("backend '{choice}' picks: {}", backend.info());

    let cpu = open(BackendChoice::Cpu)?;
    println!("CPU backend: {}", cpu.info().name);
    println!("  threads: {}", threads(&cpu.info().name));
    println!("  CPU features: {}", cpu_features());
    Ok(())
}

fn print_adapter(i: usize, a: &DeviceInfo) {
    println!("  [{i}] {}", a.name);
    println!("      kind: {:?}, backend API: {}", a.kind, a.api);
    if !a.driver.is_empty() {
        println!("      driver: {}", a.driver);
    }
    println!("      limits:");
    for (name, value) in &a.limits {
        println!("        {name:<38} {}", with_unit(name, *value));
    }
    let features: Vec<String> = FEATURES
        .iter()
        .map(|(wgpu, shown)| {
            format!("{shown} {}", if a.features.iter().any(|f| f == wgpu) { "yes" } else { "no" })
        })
        .collect();
    println!("      features: {}", features.join(", "));
}

/// Byte sizes with a binary unit beside them (`268435456 (256 MiB)`); counts as they are.
fn with_unit(name: &str, value: u64) -> String {
    if !name.ends_with("_size") {
        return value.to_string();
    }
    let units = [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    match units.iter().find(|(_, u)| value >= *u) {
        Some((unit, u)) if value.is_multiple_of(*u) => format!("{value} ({} {unit})", value / u),
        Some((unit, u)) => format!("{value} ({:.1} {unit})", value as f64 / *u as f64),
        None => format!("{value} bytes"),
    }
}

/// The thread count from the CPU backend's name ("native CPU (8 threads)").
fn threads(name: &str) -> String {
    name.split('(')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_else(|| "unknown".into())
}

/// The SIMD features of this CPU, the vector level the native kernels run at (`KILN_SIMD` caps
/// it) and the GEMM library that level picks.
fn cpu_features() -> String {
    use kiln_device::kernels::simd::{level, Level};
    use kiln_device::kernels::Gemm;
    let run = match level() {
        Level::Avx512 => "kernels at AVX-512",
        Level::Avx2 => "kernels at AVX2",
        Level::Base => "kernels at the baseline",
    };
    format!("{}; {run}, GEMM: {}", cpu_feature_flags(), Gemm::current().name())
}

/// The SIMD features this CPU has.
fn cpu_feature_flags() -> String {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "avx2 {}, avx512f {}, fma {}",
            yes(std::arch::is_x86_feature_detected!("avx2")),
            yes(std::arch::is_x86_feature_detected!("avx512f")),
            yes(std::arch::is_x86_feature_detected!("fma"))
        )
    }
    #[cfg(target_arch = "aarch64")]
    {
        let neon = std::arch::is_aarch64_feature_detected!("neon");
        format!("neon {}", if neon { "yes" } else { "no" })
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "none checked on this architecture".to_string()
    }
}
