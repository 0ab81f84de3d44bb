//! Cold start: from process start to the end of the first mlp-small training step (build the
//! graph, open the backend, compile, one step, loss on the host). `benches/peers/compare.py` times
//! the whole process from outside; this prints the part it can see from inside:
//! `bench=cold-start backend=cpu seconds=...` (from `main`, so the dynamic loader is not counted).
//!
//! ```text
//! cargo run --release --example cold_start -- --backend cpu|gpu|auto
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use clap::Parser;
use kiln_device::{BackendChoice, HostData};

/// Cold start: from process start to the end of the first mlp-small training step.
#[derive(Parser)]
#[command(name = "cold_start", after_help = "Writes no files.")]
struct Args {
    /// The backend to open: cpu, gpu or auto.
    #[arg(long, default_value = "cpu")]
    backend: BackendChoice,
}

fn main() -> anyhow::Result<()> {
    let t0 = Instant::now();
    let backend = Args::parse().backend;
    let spec = common::MLP_SMALL;
    let (g, m) = common::mlp(spec.sizes)?;
    let (x, y) = common::batches(1, spec.batch, spec.sizes[0], 10).remove(0);
    let mut s = kiln_graph::Session::new(g, kiln_device::open(backend)?)?;
    let loss = s.train_sync(&[(m.x, HostData::F32(&x)), (m.y, HostData::U32(&y))], &[m.loss])?[0][0];
    let secs = t0.elapsed().as_secs_f64();
    anyhow::ensure!(loss.is_finite(), "loss is {loss}");
    eprintln!("# {} loss={loss:.4}", s.backend().info());
    println!("bench=cold-start backend={} seconds={secs:.4}", common::label(&s));
    Ok(())
}
