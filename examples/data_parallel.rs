//! Step time on 1 vs N data-parallel replicas (`Compile::devices`), split into broadcast (replica
//! 0's weights to the others), compute (forward + backward on every replica in parallel, gradients
//! read back), all-reduce (what is left of the row-weighted host sum once every replica is done,
//! and the write into replica 0's gradient buffers; the part hidden behind the backward pass is
//! printed apart) and update, for the benches' mlp-large (784-1024-1024-10, batch 256) and a tiny
//! Llama (`LlamaConfig::tiny()`, context 64, batch 8), with each `--bucket-mb` (0: no overlap).
//! One device runs the ordinary pipelined step.
//!
//! `MATMUL_NUM_THREADS=1 cargo run --example data_parallel -- --devices 2 --backend cpu --bucket-mb 0,25`
//! (matmul's own threads are set per process; each replica gets `rayon threads / N` threads.)

use std::time::Instant;

use clap::Parser;
use kiln::data::{Array, SplitMix64, Table};
use kiln::device::BackendChoice;
use kiln::prelude::*;
use kiln::trainer::zoo::{Llama, LlamaConfig};
use kiln::trainer::StepTimes;

#[derive(Parser)]
struct Args {
    /// Replicas of the data-parallel run (compared with one device).
    #[arg(long, default_value_t = 2)]
    devices: usize,
    /// auto, gpu or cpu.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Timed steps per model (after 2 warmup steps).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Gradient bucket sizes to compare on N replicas (MiB; 0: no overlap).
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 25.0])]
    bucket_mb: Vec<f64>,
}

fn report(model: &str, devices: usize, mb: f64, wall: f64, steps: usize, t: Option<StepTimes>) {
    let ms = |s: f64| 1e3 * s / steps as f64;
    match t {
        None => println!("{model:10} {devices} device : {:8.1} ms/step", ms(wall)),
        Some(t) => println!(
            "{model:10} {devices} devices, buckets {mb} MiB: {:8.1} ms/step = broadcast {:.1} + compute {:.1} \
             + all-reduce {:.1} (hidden {:.1}) + update {:.1} (exposed all-reduce {:.1}% of the step)",
            ms(wall),
            ms(t.broadcast_s),
            ms(t.compute_s),
            ms(t.all_reduce_s),
            ms(t.hidden_s),
            ms(t.update_s),
            100.0 * t.all_reduce_s / t.total_s().max(1e-12)
        ),
    }
}

/// Times `steps` steps after 2 warmup steps; the data-parallel times cover the timed steps only.
fn time(
    steps: usize,
    step: &mut dyn FnMut() -> kiln::Result<Option<StepTimes>>,
) -> kiln::Result<(f64, Option<StepTimes>)> {
    step()?;
    let before = step()?.unwrap_or_default();
    let start = Instant::now();
    let mut last = None;
    for _ in 0..steps {
        last = step()?;
    }
    Ok((start.elapsed().as_secs_f64(), last.map(|t| t.since(&before))))
}

fn mlp(devices: usize, mb: f64, backend: BackendChoice, steps: usize) -> kiln::Result<()> {
    let (batch, rows) = (256, 256 * steps);
    let mut rng = SplitMix64::new(1);
    let x: Vec<f32> = (0..rows * 784).map(|_| rng.below(2000) as f32 / 1000.0 - 1.0).collect();
    let y: Vec<u32> = (0..rows).map(|_| rng.below(10) as u32).collect();
    let data = Table::from_arrays(
        Array { shape: vec![rows, 784], data: x },
        Some(Array { shape: vec![rows], data: y }),
    )?;
    let mut m = Sequential::new(&[784]).add(Dense(1024, Relu)).add(Dense(1024, Relu)).add(Dense(10, Softmax));
    let mut c = Compile::new(Optimizer::adam(1e-3), Loss::CrossEntropy, &[]);
    (c.backend, c.devices, c.bucket_mb) = (backend, devices, mb);
    m.compile_with(c)?;
    // epoch 1 warms up (plans compiled), epoch 2 is timed
    let opts = |epochs| FitOptions { epochs, batch_size: batch, quiet: true, ..Default::default() };
    m.fit(&data, &opts(1))?;
    let before = m.step_times();
    let h = m.fit(&data, &opts(2))?;
    let t = m.step_times().zip(before).map(|(t, b)| t.since(&b));
    report("mlp-large", devices, mb, h.epochs[0].seconds, steps, t);
    Ok(())
}

fn llama(devices: usize, mb: f64, backend: BackendChoice, steps: usize) -> kiln::Result<()> {
    let (batch, context) = (8, 64);
    let mut training = Llama::default_training();
    (training.backend, training.devices, training.bucket_mb) = (backend, devices, mb);
    let mut m =
        Llama::with_training(LlamaConfig::tiny(), context, 1, training, kiln::device::open(backend)?)?;
    let mut rng = SplitMix64::new(2);
    let x: Vec<u32> = (0..batch * context).map(|_| rng.below(256) as u32).collect();
    let y: Vec<u32> = (0..batch * context).map(|_| rng.below(256) as u32).collect();
    let (wall, t) = time(steps, &mut || {
        m.train_step(&x, &y)?;
        Ok(m.step_times())
    })?;
    report("tiny-llama", devices, mb, wall, steps, t);
    Ok(())
}

fn main() -> kiln::Result<()> {
    let a = Args::parse();
    let backend: BackendChoice = a.backend.parse()?;
    let n = a.devices.max(2);
    mlp(1, 0.0, backend, a.steps)?;
    for &mb in &a.bucket_mb {
        mlp(n, mb, backend, a.steps)?;
    }
    llama(1, 0.0, backend, a.steps)?;
    for &mb in &a.bucket_mb {
        llama(n, mb, backend, a.steps)?;
    }
    Ok(())
}
