//! Data parallelism across processes on MPI (`--features mpi`): `mpirun -np 2` on the built
//! `kiln` binary against one process, for `kiln train` (an MLP on the digits) and `kiln lm train`
//! (the tiny Llama), and a job where one rank fails.
//!
//! Tolerances: 2 ranks take the same steps as one process `--devices 2` (the same row split, the
//! same weighted sum `w0 g0 + w1 g1`, commutative in float32), so their weights are compared
//! bit for bit; against one process on the whole batch (a different float32 summation order in
//! the batch reduction, then Adam on it) losses agree within 1e-5 relative and weights within
//! 1e-4 absolute (measured: 6e-8 on the MLP's weights after 3 epochs, 9e-6 on the tiny Llama's
//! after 6 steps; losses within 1e-8 relative).
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::trainer::checkpoint::Checkpoint;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One thread per rank (and per in-process replica), so runs are deterministic and comparable;
/// `mpirun` may run as root in CI containers.
fn env(c: &mut Command) -> &mut Command {
    c.env("RAYON_NUM_THREADS", "1")
        .env("MATMUL_NUM_THREADS", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
}

fn kiln(args: &[&str]) -> Output {
    let o = env(&mut Command::new(env!("CARGO_BIN_EXE_kiln"))).args(args).output().unwrap();
    assert!(o.status.success(), "kiln {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `mpirun -np 2 kiln ARGS` (or an MPMD command line when `args` holds `:`).
fn mpirun(args: &[&str]) -> Output {
    let mut c = Command::new("mpirun");
    env(&mut c).args(["--oversubscribe", "-np", "2", env!("CARGO_BIN_EXE_kiln")]).args(args);
    c.output().expect("mpirun (OpenMPI: apt install openmpi-bin)")
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let ck = Checkpoint::read(path).unwrap();
    ck.tensors.into_iter().map(|t| (t.name, t.data)).collect()
}

fn losses(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect()
}

fn max_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut m = 0.0f32;
    for ((na, wa), (nb, wb)) in a.iter().zip(b) {
        assert_eq!((na, wa.len()), (nb, wb.len()));
        m = wa.iter().zip(wb).fold(m, |m, (x, y)| m.max((x - y).abs()));
    }
    m
}

fn close_losses(a: &[f64], b: &[f64], rel: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= rel * x.abs().max(1e-6), "losses {a:?} vs {b:?}");
    }
}

const MLP: &[&str] = &[
    "train",
    "--data",
    "data/digits.csv",
    "--target",
    "label",
    "--hidden",
    "64",
    "--batch-size",
    "64",
    "--backend",
    "cpu",
    "--quiet",
];

/// `kiln train` for 3 epochs (or `--epochs` in `extra`).
fn mlp(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = MLP.iter().map(|s| s.to_string()).collect();
    if !extra.contains(&"--epochs") {
        a.extend(["--epochs".into(), "3".into()]);
    }
    a.extend(["--out".into(), out.display().to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn two_ranks_train_the_mlp_as_one_process() {
    let d = temp("mlp");
    let (one, dev2, two) = (d.join("one.safetensors"), d.join("dev2.safetensors"), d.join("two.safetensors"));
    kiln(&strs(&mlp(&one, &[])));
    kiln(&strs(&mlp(&dev2, &["--devices", "2"])));
    let o = mpirun(&strs(&mlp(&two, &[])));
    assert!(o.status.success(), "mpirun failed:\n{}", String::from_utf8_lossy(&o.stderr));

    let (w1, wd, w2) = (weights(&one), weights(&dev2), weights(&two));
    assert_eq!(w2, wd, "2 ranks and --devices 2 take the same steps");
    let diff = max_diff(&w1, &w2);
    assert!(diff < 1e-4, "2 ranks vs 1 process: weights differ by {diff}");
    let (l1, l2) = (losses(&d.join("one.log.jsonl")), losses(&d.join("two.log.jsonl")));
    eprintln!("2 ranks vs 1 process: weights within {diff:e}, losses {l1:?} vs {l2:?}");
    assert_eq!(l1.len(), 3);
    close_losses(&l1, &l2, 1e-5);
    close_losses(&losses(&d.join("dev2.log.jsonl")), &l2, 1e-6);
    // rank 0 alone wrote the files, and no lock or temporary file is left
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let two_files: Vec<&String> =
        names.iter().filter(|n| n.starts_with("two") || n.starts_with(".two")).collect();
    assert_eq!(
        two_files,
        ["two.curves.svg", "two.log.jsonl", "two.optim.safetensors", "two.safetensors"],
        "{names:?}"
    );

    // resume: 2 ranks continue the 2-rank run for 2 more epochs, as 1 process continues its own
    let o = mpirun(&strs(&mlp(&two, &["--resume", "--epochs", "5"])));
    assert!(o.status.success(), "mpirun --resume failed:\n{}", String::from_utf8_lossy(&o.stderr));
    kiln(&strs(&mlp(&dev2, &["--resume", "--epochs", "5", "--devices", "2"])));
    assert_eq!(weights(&two), weights(&dev2), "resumed: 2 ranks and --devices 2");
    assert_eq!(losses(&d.join("two.log.jsonl")).len(), 5);
}

fn lm(out: &Path, text: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "lm",
        "train",
        "--config",
        "tiny",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--context",
        "32",
        "--eval-every",
        "3",
        "--eval-windows",
        "4",
        "--backend",
        "cpu",
        "--sample",
        "0",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["--data".into(), text.display().to_string(), "--out".into(), out.display().to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn two_ranks_train_the_tiny_lm_as_one_process() {
    let d = temp("lm");
    let text = d.join("text.txt");
    let shakespeare = std::fs::read_to_string("data/tinyshakespeare.txt").unwrap();
    std::fs::write(&text, &shakespeare[..20_000]).unwrap();
    let (one, dev2, two) = (d.join("one.safetensors"), d.join("dev2.safetensors"), d.join("two.safetensors"));
    kiln(&strs(&lm(&one, &text, &[])));
    kiln(&strs(&lm(&dev2, &text, &["--devices", "2"])));
    let o = mpirun(&strs(&lm(&two, &text, &[])));
    assert!(o.status.success(), "mpirun failed:\n{}", String::from_utf8_lossy(&o.stderr));

    let (w1, wd, w2) = (weights(&one), weights(&dev2), weights(&two));
    assert_eq!(w2, wd, "2 ranks and --devices 2 take the same steps");
    let diff = max_diff(&w1, &w2);
    assert!(diff < 1e-4, "2 ranks vs 1 process: weights differ by {diff}");
    let (l1, l2) = (losses(&d.join("one.log.jsonl")), losses(&d.join("two.log.jsonl")));
    eprintln!("2 ranks vs 1 process: weights within {diff:e}, losses {l1:?} vs {l2:?}");
    assert_eq!(l1.len(), 2);
    close_losses(&l1, &l2, 1e-5);
    assert!(d.join("two.best.safetensors").exists());
}

/// Overlapping the all-reduce with the backward pass (`--bucket-mb`, several buckets reduced while
/// the next computes) changes no bit against one reduction after the whole backward
/// (`--bucket-mb 0`): the MLP in 2 KiB buckets (its 2 layers' gradients in 2 buckets), the tiny
/// Llama in 256 KiB ones (9 buckets).
#[test]
fn two_ranks_overlapping_the_all_reduce_change_no_bit() {
    let d = temp("overlap");
    let text = d.join("text.txt");
    let shakespeare = std::fs::read_to_string("data/tinyshakespeare.txt").unwrap();
    std::fs::write(&text, &shakespeare[..20_000]).unwrap();
    let run = |args: Vec<String>| {
        let o = mpirun(&strs(&args));
        assert!(o.status.success(), "mpirun {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    };
    for (name, buckets) in [("off", "0"), ("on", "0.002")] {
        run(mlp(&d.join(format!("mlp-{name}.safetensors")), &["--bucket-mb", buckets]));
    }
    for (name, buckets) in [("off", "0"), ("on", "0.25")] {
        run(lm(&d.join(format!("lm-{name}.safetensors")), &text, &["--bucket-mb", buckets]));
    }
    for model in ["mlp", "lm"] {
        let file = |name: &str| d.join(format!("{model}-{name}.safetensors"));
        let log = |name: &str| d.join(format!("{model}-{name}.log.jsonl"));
        assert_eq!(weights(&file("on")), weights(&file("off")), "{model}: weights with and without overlap");
        let bits = |l: Vec<f64>| l.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(losses(&log("on"))), bits(losses(&log("off"))), "{model}: losses");
        assert!(!losses(&log("on")).is_empty());
    }
}

/// Validation sharded across the ranks (each evaluates its block of the validation batches, the
/// results gathered and tallied in order) gives the validation loss and accuracy of one process
/// evaluating every batch (`--devices 2`: the same weights), bit for bit: 539 held-out rows in
/// 9 batches of 64, 5 on rank 0 and 4 on rank 1.
#[test]
fn two_ranks_validate_their_shares_as_one_process() {
    let d = temp("val");
    let (dev2, two) = (d.join("dev2.safetensors"), d.join("two.safetensors"));
    let split = ["--validation-split", "0.3", "--epochs", "2"];
    kiln(&strs(&mlp(&dev2, &[&split[..], &["--devices", "2"]].concat())));
    let o = mpirun(&strs(&mlp(&two, &split)));
    assert!(o.status.success(), "mpirun failed:\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(weights(&two), weights(&dev2), "the same steps");
    let val = |log: &Path| -> Vec<(u64, u64)> {
        let text = std::fs::read_to_string(log).unwrap();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let bits = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {l}")).to_bits();
                (bits("val_loss"), bits("val_accuracy"))
            })
            .collect()
    };
    let (vd, v2) = (val(&d.join("dev2.log.jsonl")), val(&d.join("two.log.jsonl")));
    assert_eq!(v2.len(), 2);
    assert_eq!(v2, vd, "validation loss and accuracy, 2 ranks vs one process");
}

#[test]
fn a_failing_rank_fails_the_job_without_partial_files() {
    let d = temp("fail");
    let bad = d.join("bad.csv");
    let mut csv = std::fs::read_to_string("data/digits.csv").unwrap();
    csv.push_str(&format!("{}not-a-number\n", "0,".repeat(64)));
    std::fs::write(&bad, csv).unwrap();
    let out = d.join("m.safetensors");
    let good = mlp(&out, &[]);
    let mut broken = good.clone();
    let at = broken.iter().position(|a| a == "data/digits.csv").unwrap();
    broken[at] = bad.display().to_string();
    // MPMD: rank 0 reads the good file (and waits for rank 1 in training), rank 1 the bad one
    let mut args = vec!["-np".to_string(), "1".into(), env!("CARGO_BIN_EXE_kiln").into()];
    args.extend(good.iter().cloned());
    args.extend([":".into(), "-np".into(), "1".into(), env!("CARGO_BIN_EXE_kiln").into()]);
    args.extend(broken);
    let mut c = Command::new("mpirun");
    let o = env(&mut c).arg("--oversubscribe").args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the job must fail:\n{err}");
    assert!(err.contains("error (rank 1 of 2)"), "{err}");
    assert!(err.contains("bad.csv"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("m.") && !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "files left: {left:?}");

    // ranks that would train differently (another epoch count on rank 1) fail together up front
    // (another --out: the killed rank 0's lock may outlive mpirun for a moment)
    let out = d.join("n.safetensors");
    let good = mlp(&out, &[]);
    let mut other = good.clone();
    let at = other.iter().position(|a| a == "3").unwrap();
    other[at] = "4".into();
    let mut args = vec!["-np".to_string(), "1".into(), env!("CARGO_BIN_EXE_kiln").into()];
    args.extend(good);
    args.extend([":".into(), "-np".into(), "1".into(), env!("CARGO_BIN_EXE_kiln").into()]);
    args.extend(other);
    let mut c = Command::new("mpirun");
    let o = env(&mut c).arg("--oversubscribe").args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the job must fail:\n{err}");
    assert!(err.contains("different number of epochs"), "{err}");
    assert!(!out.exists());
}
