//! Step time of data-parallel training across MPI processes: run it under `mpirun -np N` (N = 1
//! for the baseline, one process with the ordinary pipelined step). Each rank trains one replica
//! on its CPU backend with one thread; rank 0 prints the step time split into compute (forward +
//! backward on its rows, gradients read back), all-reduce (exposed: what is left of the host
//! sums and the `MPI_Allreduce` of the gradient buckets once the backward pass is done, and the
//! write into the update's gradient buffers), the reduction hidden behind the backward pass, the
//! time in MPI (hidden or not) and update, for the benches' mlp-large (784-1024-1024-10, global
//! batch 256) and the tiny Llama (context 64, global batch 8), for each bucket size in
//! `BUCKET_MB` (MiB, comma-separated; default `0,25`: no overlap, then the default buckets).
//!
//! `cargo build --release --features mpi --example mpi_data_parallel`, then
//! `RAYON_NUM_THREADS=1 MATMUL_NUM_THREADS=1 mpirun -np 2 target/release/examples/mpi_data_parallel`

use std::time::Instant;

use kiln::data::{Array, SplitMix64, Table};
use kiln::device::BackendChoice;
use kiln::prelude::*;
use kiln::trainer::distributed::Mpi;
use kiln::trainer::zoo::{Llama, LlamaConfig};
use kiln::trainer::StepTimes;

fn report(model: &str, ranks: usize, mb: f64, wall: f64, steps: usize, t: Option<StepTimes>) {
    if !kiln::trainer::distributed::is_root() {
        return;
    }
    let ms = |s: f64| 1e3 * s / steps as f64;
    match t {
        None => println!("{model:10} {ranks} rank : {:8.1} ms/step", ms(wall)),
        Some(t) => println!(
            "{model:10} {ranks} ranks, buckets {mb} MiB: {:8.1} ms/step = compute {:.1} + all-reduce {:.1} \
             (hidden {:.1}, MPI {:.1}) + update {:.1}",
            ms(wall),
            ms(t.compute_s),
            ms(t.all_reduce_s),
            ms(t.hidden_s),
            ms(t.process_s),
            ms(t.update_s),
        ),
    }
}

fn mlp(ranks: usize, mb: f64, steps: usize) -> kiln::Result<()> {
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
    (c.backend, c.bucket_mb) = (BackendChoice::Cpu, mb);
    m.compile_with(c)?;
    // epoch 1 warms up, epoch 2 is timed
    let opts = |epochs| FitOptions { epochs, batch_size: batch, quiet: true, ..Default::default() };
    m.fit(&data, &opts(1))?;
    let before = m.step_times();
    let h = m.fit(&data, &opts(2))?;
    let t = m.step_times().zip(before).map(|(t, b)| t.since(&b));
    report("mlp-large", ranks, mb, h.epochs[0].seconds, steps, t);
    Ok(())
}

fn llama(ranks: usize, mb: f64, steps: usize) -> kiln::Result<()> {
    let (batch, context) = (8, 64);
    let mut training = Llama::default_training();
    (training.backend, training.bucket_mb) = (BackendChoice::Cpu, mb);
    let mut m = Llama::with_training(
        LlamaConfig::tiny(),
        context,
        1,
        training,
        kiln::device::open(BackendChoice::Cpu)?,
    )?;
    let mut rng = SplitMix64::new(2);
    let x: Vec<u32> = (0..batch * context).map(|_| rng.below(256) as u32).collect();
    let y: Vec<u32> = (0..batch * context).map(|_| rng.below(256) as u32).collect();
    for _ in 0..2 {
        m.train_step(&x, &y)?;
    }
    let before = m.step_times();
    let start = Instant::now();
    for _ in 0..steps {
        m.train_step(&x, &y)?;
    }
    let wall = start.elapsed().as_secs_f64();
    let t = m.step_times().zip(before).map(|(t, b)| t.since(&b));
    report("tiny-llama", ranks, mb, wall, steps, t);
    Ok(())
}

fn main() -> kiln::Result<()> {
    let mpi = Mpi::init()?;
    let steps = std::env::var("STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let buckets = std::env::var("BUCKET_MB").unwrap_or_else(|_| "0,25".into());
    let buckets: Vec<f64> = buckets
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| kiln::Error::InvalidArgument(format!("BUCKET_MB: {s:?}"))))
        .collect::<kiln::Result<_>>()?;
    // one rank has no data-parallel binding: the bucket size does not apply
    let buckets = if mpi.size() == 1 { &buckets[..1] } else { &buckets[..] };
    for &mb in buckets {
        mlp(mpi.size(), mb, steps)?;
    }
    for &mb in buckets {
        llama(mpi.size(), mb, steps)?;
    }
    Ok(())
}
