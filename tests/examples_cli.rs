//! The example programs' command lines (issue 12): every example answers `--help` (saying where it
//! writes), refuses an unknown flag, and `char_transformer` writes nothing unless told and counts
//! `--steps` in total on `--resume`.
//!
//! The examples' binaries are the ones cargo built beside this test (`target/<profile>/examples/`):
//! `cargo test --workspace` builds every example before it runs a test. Run alone
//! (`cargo test --test examples_cli`), build them first with `cargo build --examples`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLES: [&str; 12] = [
    "binary_classification",
    "bn_step_time",
    "char_transformer",
    "cnn_digits",
    "cnn_mnist",
    "cold_start",
    "custom_graph",
    "digits",
    "embed",
    "quickstart",
    "regression",
    "worked_example",
];

/// The built example `name`, checked to be newer than its source.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/examples_cli-HASH -> target/<profile>/examples/NAME
    let dir = exe.parent().and_then(Path::parent).unwrap().join("examples");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is not built: run `cargo build --examples` (or `cargo test --workspace`)",
        bin.display()
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(format!("{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap();
    assert!(
        modified(&bin) >= modified(&source),
        "{} is older than {}: run `cargo build --examples`",
        bin.display(),
        source.display()
    );
    bin
}

fn run(name: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(example(name))
        .args(args)
        .current_dir(cwd)
        .env("KILN_BACKEND", "cpu")
        .output()
        .expect("the example runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("kiln-examples-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    /// The names of the files in the directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_example_has_help_that_says_where_it_writes_and_writes_nothing_for_it() {
    let d = TempDir::new("help");
    for name in EXAMPLES {
        let o = run(name, &["--help"], &d.0);
        let out = text(&o);
        assert!(o.status.success(), "{name} --help failed: {out}");
        assert!(out.contains("Usage:"), "{name} --help prints no usage: {out}");
        assert!(out.contains("Writes"), "{name} --help does not say where it writes: {out}");
        assert!(!out.contains("device:"), "{name} --help started a run: {out}");
    }
    assert_eq!(d.files(), Vec::<String>::new(), "--help wrote files");
}

#[test]
fn every_example_refuses_an_unknown_flag() {
    let d = TempDir::new("unknown");
    for name in EXAMPLES {
        let o = run(name, &["--stpes", "5"], &d.0);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(2), "{name} --stpes 5 did not fail as a usage error: {out}");
        assert!(out.contains("unexpected argument '--stpes'"), "{name}: {out}");
    }
    assert_eq!(d.files(), Vec::<String>::new(), "a refused command wrote files");
}

/// A tiny model on a tiny text: a few steps take well under a second.
const TINY: [&str; 14] = [
    "--text",
    "t.txt",
    "--dim",
    "16",
    "--layers",
    "1",
    "--heads",
    "2",
    "--context",
    "8",
    "--batch",
    "2",
    "--sample-every",
    "2",
];

fn char_transformer(d: &TempDir, extra: &[&str]) -> Output {
    let tiny: &[&str] = if extra.contains(&"--resume") { &TINY[..2] } else { &TINY };
    run("char_transformer", &[tiny, extra].concat(), &d.0)
}

#[test]
fn char_transformer_writes_only_what_it_is_told_and_counts_steps_in_total() {
    let d = TempDir::new("gpt");
    std::fs::write(d.0.join("t.txt"), "to be or not to be, that is the question. ".repeat(40)).unwrap();

    // no --checkpoint, no --log: nothing is written
    let o = char_transformer(&d, &["--steps", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("step     2"), "{}", text(&o));
    assert_eq!(d.files(), ["t.txt"], "a run without --checkpoint or --log wrote files");

    // 4 steps into a checkpoint, then --resume --steps 6 trains 2 more (a total, as in `fit`)
    let o = char_transformer(&d, &["--steps", "4", "--checkpoint", "c.safetensors"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(d.files(), ["c.optim.safetensors", "c.safetensors", "t.txt"]);
    let o = char_transformer(&d, &["--resume", "--checkpoint", "c.safetensors", "--steps", "6"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("at step 4, training to step 6"), "{out}");
    assert!(out.contains("step     6"), "{out}");
    assert!(!out.contains("step     8"), "--resume --steps 6 ran past 6 steps in total: {out}");

    // nothing left to train: a clear error, and the checkpoint is kept
    let o = char_transformer(&d, &["--resume", "--checkpoint", "c.safetensors", "--steps", "6"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("is at step 6") && out.contains("--steps counts in total"), "{out}");

    // --resume needs the checkpoint, and takes the model's shape from it
    let o = char_transformer(&d, &["--resume", "--steps", "8"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--checkpoint"), "{}", text(&o));
    let o = char_transformer(&d, &["--resume", "--checkpoint", "c.safetensors", "--dim", "32"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot be used with"), "{}", text(&o));
    assert_eq!(d.files(), ["c.optim.safetensors", "c.safetensors", "t.txt"]);
}
