//! Matmul throughput through the `Backend` trait, as users get it: one plan compiled once, then
//! submit + wait repeatedly. Prints one line per size:
//! `bench=matmul backend=cpu n=1024 gflops=123.4` (median of repeats, 2 n^3 / time).
//!
//! Run: `cargo bench --bench matmul`. The NumPy peer prints the same format:
//! `python3 benches/peers/matmul_numpy.py`. Both take sizes as arguments to run just those
//! (`cargo bench --bench matmul -- 1024`), so runs can be interleaved on a shared machine.
//!
//! `--backend cpu|gpu|auto` runs one backend only (`gpu` takes any wgpu adapter, software ones
//! included; `benches/gpu/run.sh` uses `--backend gpu 1024 2048 4096 8192`). Without it: the CPU,
//! then the GPU when `auto` finds a hardware one. `--peak-gflops P` adds `pct_peak=` to each line.
//!
//! On a GPU each size runs on both WGSL entry points of the matmul family, one line each with
//! `variant=small` (`matmul`, 64x64 tiles) or `variant=blocked` (`matmul_blocked`, 128x128 tiles,
//! 8x8 per invocation), and `rule=` naming the one the lowering picks for that shape
//! (`MatmulTile::for_shape`). `--variant small|blocked|rule` runs only that one. The CPU twin
//! ignores the variant: CPU lines have no `variant=`.
//!
//! `--dtype f16|bf16` reads both operands in that half type (f32 accumulation and output; the CPU
//! twin widens them to f32 copies first); its lines carry `dtype=`. The default is f32.

use std::time::{Duration, Instant};

use kiln_device::cpu::CpuBackend;
use kiln_device::half::{bf16, f16};
use kiln_device::{
    open, Backend, BackendChoice, BufferId, DType, HostData, Kernel, Launch, Matmul, MatmulTile,
};

const SIZES: [usize; 4] = [256, 512, 1024, 2048];
/// Each size repeats for about this long (at least `MIN_REPS` times).
const BUDGET: Duration = Duration::from_millis(1500);
const MIN_REPS: usize = 5;

/// A buffer holding `data` as `dtype` (f32, f16 or bf16).
fn upload_as(be: &mut dyn Backend, dtype: DType, data: &[f32]) -> anyhow::Result<BufferId> {
    Ok(match dtype {
        DType::F16 => {
            be.upload(HostData::F16(&data.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>()))?
        }
        DType::BF16 => {
            be.upload(HostData::BF16(&data.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>()))?
        }
        _ => be.upload(HostData::F32(data))?,
    })
}

/// Median seconds of one `n x n @ n x n` product on `be`, on entry point `tile`, operands `dtype`.
fn time_matmul(be: &mut dyn Backend, n: usize, tile: MatmulTile, dtype: DType) -> anyhow::Result<f64> {
    // Deterministic, nonzero data: the speed of a GEMM does not depend on the values.
    let data: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1009) as f32 / 1009.0 - 0.5).collect();
    let a = upload_as(be, dtype, &data)?;
    let b = upload_as(be, dtype, &data)?;
    let c = be.alloc(DType::F32, n * n)?;
    let mm = Matmul::new(n, n, n).with_tile(tile).with_dtypes(dtype, dtype);
    let plan = be.prepare(&[Launch::new(Kernel::Matmul(mm), &[c, a, b])])?;
    let run = |be: &mut dyn Backend| -> anyhow::Result<f64> {
        let start = Instant::now();
        let ticket = be.submit(plan, &[])?;
        be.wait(ticket)?;
        Ok(start.elapsed().as_secs_f64())
    };
    run(be)?; // warm-up: thread pools, page faults, (GPU) pipeline caches
    let (mut times, begun) = (Vec::new(), Instant::now());
    while times.len() < MIN_REPS || begun.elapsed() < BUDGET {
        times.push(run(be)?);
    }
    be.drop_plan(plan)?;
    for id in [a, b, c] {
        be.release(id)?;
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Which entry points to time (`--variant`); `None`: all of them.
type Variants = Option<&'static str>;

fn bench(
    be: &mut dyn Backend,
    label: &str,
    sizes: &[usize],
    peak: Option<f64>,
    variants: Variants,
    dtype: DType,
) -> anyhow::Result<()> {
    let name = |t: MatmulTile| match t {
        MatmulTile::Small => "small",
        MatmulTile::Blocked => "blocked",
    };
    for &n in sizes {
        let rule = MatmulTile::for_shape(1, n, n, n);
        let tiles: Vec<Option<MatmulTile>> = if label == "cpu" {
            vec![None] // the CPU twin ignores the variant
        } else {
            match variants {
                None => MatmulTile::ALL.iter().copied().map(Some).collect(),
                Some("rule") => vec![Some(rule)],
                Some(v) => MatmulTile::ALL.iter().copied().filter(|&t| name(t) == v).map(Some).collect(),
            }
        };
        for tile in tiles {
            let secs = time_matmul(be, n, tile.unwrap_or(rule), dtype)?;
            let gflops = 2.0 * (n as f64).powi(3) / secs / 1e9;
            let pct = peak.map_or(String::new(), |p| format!(" pct_peak={:.1}", 100.0 * gflops / p));
            let var = tile.map_or(String::new(), |t| format!(" variant={} rule={}", name(t), name(rule)));
            let dt = if dtype == DType::F32 { String::new() } else { format!(" dtype={dtype}") };
            println!("bench=matmul backend={label}{var}{dt} n={n} gflops={gflops:.1}{pct}");
        }
    }
    Ok(())
}

/// The value after `name` (`--name v` or `--name=v`).
fn flag(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    at.or_else(|| args.iter().find_map(|a| a.strip_prefix(name)?.strip_prefix('=').map(String::from)))
}

/// The backend `auto` picks, if it is a hardware GPU. The GPU backend may not be built yet (its
/// placeholder panics), so a panic here means "no GPU" rather than a failed benchmark.
fn hardware_gpu() -> Option<Box<dyn Backend>> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| open(BackendChoice::Auto));
    std::panic::set_hook(hook);
    match opened {
        Ok(Ok(be)) if be.info().kind.is_hardware_gpu() => Some(be),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            eprintln!("# gpu: {e}");
            None
        }
        Err(_) => {
            eprintln!("# gpu: backend not available in this build");
            None
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let peak = flag(&args, "--peak-gflops").map(|p| p.parse::<f64>()).transpose()?;
    let backend = flag(&args, "--backend");
    let variants: Variants = match flag(&args, "--variant").as_deref() {
        None => None,
        Some("small") => Some("small"),
        Some("blocked") => Some("blocked"),
        Some("rule") => Some("rule"),
        Some(other) => anyhow::bail!("--variant {other}: expected small, blocked or rule"),
    };
    let dtype = match flag(&args, "--dtype").as_deref() {
        None | Some("f32") => DType::F32,
        Some("f16") => DType::F16,
        Some("bf16") => DType::BF16,
        Some(other) => anyhow::bail!("--dtype {other}: expected f32, f16 or bf16"),
    };
    // Sizes: the bare numbers on the command line (cargo passes `--bench` too), else SIZES.
    let mut sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            *i == 0
                || !matches!(args[i - 1].as_str(), "--peak-gflops" | "--backend" | "--variant" | "--dtype")
        })
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = SIZES.to_vec();
    }
    let choice = match backend.as_deref() {
        None => None,
        Some("cpu") => Some(BackendChoice::Cpu),
        Some("gpu") => Some(BackendChoice::Gpu),
        Some("auto") => Some(BackendChoice::Auto),
        Some(other) => anyhow::bail!("--backend {other}: expected cpu, gpu or auto"),
    };
    if let Some(choice) = choice {
        let mut be = open(choice)?;
        let label = if be.info().kind == kiln_device::DeviceKind::Cpu { "cpu" } else { "gpu" };
        eprintln!("# {}", be.info());
        return bench(be.as_mut(), label, &sizes, peak, variants, dtype);
    }
    let mut cpu = CpuBackend::new();
    eprintln!("# {}", cpu.info());
    bench(&mut cpu, "cpu", &sizes, peak, variants, dtype)?;
    // The GPU lines: printed when `auto` yields a hardware GPU.
    if let Some(mut gpu) = hardware_gpu() {
        eprintln!("# {}", gpu.info());
        bench(gpu.as_mut(), "gpu", &sizes, peak, variants, dtype)?;
    }
    Ok(())
}
