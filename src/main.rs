//! The `kiln` command: train, evaluate and predict on CSV files, and report the hardware.
//! With no arguments it runs the main job: an MLP on the bundled handwritten digits.
//!
//! Built with the `mpi` feature, it initializes MPI once at start: under `mpirun -np N` each
//! process is one rank of a data-parallel job (see `kiln_trainer::distributed`), and a rank that
//! fails prints its error and ends the whole job (`MPI_Abort`) instead of leaving the others
//! waiting for it.

mod cli;

use clap::Parser;

fn main() {
    #[cfg(feature = "mpi")]
    let mpi = match kiln_trainer::distributed::Mpi::init() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: cannot initialize MPI: {e}");
            std::process::exit(1);
        }
    };
    let args = cli::Cli::parse();
    if let Err(e) = cli::run(args) {
        #[cfg(feature = "mpi")]
        if mpi.size() > 1 {
            eprintln!("error (rank {} of {}): {e:#}", mpi.rank(), mpi.size());
            mpi.abort(1);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
