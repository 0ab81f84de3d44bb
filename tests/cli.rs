//! End-to-end tests of the `kiln` binary: train, evaluate and predict on small generated CSV files,
//! every kind of bad input (a clear message naming file, line and column; no panic), outputs that a
//! failed run must leave untouched, and `--resume` reproducing an uninterrupted run bit for bit.
//! Every test runs on the CPU backend in a temporary directory of its own.

use std::path::PathBuf;
use std::process::Output;

use kiln_trainer::checkpoint::Checkpoint;
use serde_json::Value;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("kiln-cli-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
    /// Writes `text` to `file` and returns its path as a string for the command line.
    fn write(&self, file: &str, text: &str) -> String {
        std::fs::write(self.path(file), text).unwrap();
        self.arg(file)
    }
    fn arg(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kiln(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_BACKEND", "cpu")
        .output()
        .expect("the kiln binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "kiln failed: {}\nstdout: {}", stderr(&o), stdout(&o));
    o
}

/// The command failed cleanly (non-zero, no panic) with every one of `needles` in its message.
fn fails_with(o: Output, needles: &[&str]) {
    let err = stderr(&o);
    assert!(!o.status.success(), "expected a failure, got success; stdout: {}", stdout(&o));
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}': {err}");
    }
}

/// A deterministic generator (a 64-bit LCG's top bits), uniform in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `rows` rows `x1,x2,label`, label `yes`/`no` (or the given names) by the side of x1 + x2 = 0, with
/// a margin of 0.2 so the classes are separable.
fn classes_csv(rows: usize, seed: u64, names: [&str; 2]) -> String {
    let mut rng = Lcg(seed);
    let mut s = String::from("x1,x2,label\n");
    let mut n = 0;
    while n < rows {
        let (a, b) = (rng.next(), rng.next());
        if (a + b).abs() < 0.2 {
            continue;
        }
        s.push_str(&format!("{a},{b},{}\n", names[(a + b > 0.0) as usize]));
        n += 1;
    }
    s
}

/// `rows` rows `x1,x2,label` with label = 2 x1 - x2 + 0.5.
fn regression_csv(rows: usize, seed: u64) -> String {
    let mut rng = Lcg(seed);
    let mut s = String::from("x1,x2,label\n");
    for _ in 0..rows {
        let (a, b) = (rng.next(), rng.next());
        s.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 0.5));
    }
    s
}

fn json(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Trains a classifier on `names` labels and checks evaluate, predict, the log and the curves.
fn classify_end_to_end(tag: &str, names: [&str; 2]) {
    let d = TempDir::new(tag);
    let train = d.write("train.csv", &classes_csv(200, 1, names));
    let test = d.write("test.csv", &classes_csv(100, 2, names));
    let model = d.arg("m.safetensors");
    let flags = ["--target", "label", "--epochs", "30", "--batch-size", "20", "--quiet", "--backend", "cpu"];
    ok(kiln(&[&["train", "--data", &train, "--out", &model][..], &flags].concat()));

    let e = json(&ok(kiln(&["evaluate", "--model", &model, "--data", &test, "--target", "label", "--json"])));
    assert!(e["loss"].as_f64().is_some_and(f64::is_finite), "{e}");
    let accuracy = e["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy > 0.9, "test accuracy {accuracy} <= 0.9 on separable data: {e}");
    assert_eq!(e["rows"], 100);

    // predict on the feature columns only (see predict_ignores_a_text_target_column)
    let features: String = std::fs::read_to_string(&test)
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.rsplit_once(',').unwrap().0))
        .collect();
    let features = d.write("features.csv", &features);
    let preds = d.arg("p.csv");
    ok(kiln(&["predict", "--model", &model, "--data", &features, "--out", &preds]));
    let text = std::fs::read_to_string(&preds).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("prediction,"), "{text}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 100, "one prediction per input row");
    for r in &rows {
        let class = r.split(',').next().unwrap();
        assert!(names.contains(&class), "'{class}' is not a class name: {r}");
    }

    let log = std::fs::read_to_string(d.path("m.log.jsonl")).expect("the training log exists");
    let epochs: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).expect("a JSON object per line")).collect();
    assert!(!epochs.is_empty() && epochs.len() <= 30, "{} log lines", epochs.len());
    assert!(epochs.iter().all(|e| e.is_object() && e["loss"].is_number()), "{log}");
    let svg = std::fs::read_to_string(d.path("m.curves.svg")).expect("the curves exist");
    assert!(svg.contains("<svg"), "not an SVG");
}

#[test]
fn classify_text_labels_train_evaluate_predict() {
    classify_end_to_end("text", ["no", "yes"]);
}

#[test]
fn classify_numeric_labels_train_evaluate_predict() {
    classify_end_to_end("numeric", ["0", "1"]);
}

/// A target column in the CSV to predict on is ignored, text labels included.
#[test]
fn predict_ignores_a_text_target_column() {
    let d = TempDir::new("predict-target");
    let train = d.write("train.csv", &classes_csv(60, 7, ["no", "yes"]));
    let model = d.arg("m.safetensors");
    ok(kiln(&["train", "--data", &train, "--target", "label", "--out", &model, "--epochs", "2", "--quiet"]));
    let out = stdout(&ok(kiln(&["predict", "--model", &model, "--data", &train])));
    assert_eq!(out.lines().count(), 61, "{out}");
}

#[test]
fn regression_evaluate_reports_mse_and_mae() {
    let d = TempDir::new("regression");
    let train = d.write("train.csv", &regression_csv(300, 3));
    let test = d.write("test.csv", &regression_csv(100, 4));
    let model = d.arg("r.safetensors");
    ok(kiln(&[
        "train",
        "--data",
        &train,
        "--target",
        "label",
        "--out",
        &model,
        "--epochs",
        "60",
        "--batch-size",
        "20",
        "--lr",
        "0.01",
        "--quiet",
        "--backend",
        "cpu",
    ]));
    let e = json(&ok(kiln(&["evaluate", "--model", &model, "--data", &test, "--json"])));
    let (mse, mae) = (e["mse"].as_f64().expect("mse"), e["mae"].as_f64().expect("mae"));
    // the target's variance is about 5/3 * 1/3 = 0.56; a linear target is learned far better
    assert!(mse < 0.05 && mae < 0.2, "mse {mse}, mae {mae}: {e}");
    let out = stdout(&ok(kiln(&["predict", "--model", &model, "--data", &test])));
    assert_eq!(out.lines().count(), 101, "header + one row per input: {out}");
}

#[test]
fn toml_config_trains_the_same_model_as_flags() {
    let d = TempDir::new("toml");
    let train = d.write("train.csv", &classes_csv(120, 5, ["no", "yes"]));
    let by_flags = d.arg("flags.safetensors");
    ok(kiln(&[
        "train",
        "--data",
        &train,
        "--target",
        "label",
        "--out",
        &by_flags,
        "--epochs",
        "5",
        "--hidden",
        "8,4",
        "--lr",
        "0.01",
        "--batch-size",
        "16",
        "--seed",
        "9",
        "--quiet",
        "--backend",
        "cpu",
    ]));
    let config = d.write(
        "config.toml",
        "data = \"train.csv\"\ntarget = \"label\"\nout = \"toml.safetensors\"\nepochs = 5\nhidden = [8, 4]\n\
         lr = 0.01\nbatch-size = 16\nseed = 9\nquiet = true\nbackend = \"cpu\"\n",
    );
    ok(kiln(&["train", &config]));
    let a = Checkpoint::read(d.path("flags.safetensors")).unwrap();
    let b = Checkpoint::read(d.path("toml.safetensors")).unwrap();
    assert_eq!(a.tensors, b.tensors, "the config file and the flags give different weights");
}

/// Each bad CSV: its contents and what the message must name.
const BAD_CSV: &[(&str, &str, &[&str])] = &[
    ("empty.csv", "", &["empty.csv", "empty"]),
    ("header.csv", "x1,x2,label\n", &["header.csv", "no data rows"]),
    ("ragged.csv", "x1,x2,label\n1,2,1\n3,0\n", &["ragged.csv:3", "expected 3 fields", "found 2"]),
    ("text.csv", "x1,x2,label\n1,2,1\n3,abc,0\n", &["text.csv:3", "'x2'", "#2", "'abc'", "not a number"]),
    ("nan.csv", "x1,x2,label\n1,2,1\nNaN,4,0\n", &["nan.csv:3", "'x1'", "#1", "not finite"]),
    ("inf.csv", "x1,x2,label\n1,2,1\n3,4,0\n5,inf,1\n", &["inf.csv:4", "'x2'", "#2", "not finite"]),
    ("-inf.csv", "x1,x2,label\n1,-inf,1\n3,4,0\n", &["-inf.csv:2", "'x2'", "not finite"]),
];

#[test]
fn bad_training_data_fails_with_file_line_and_column() {
    let d = TempDir::new("bad-train");
    let out = d.arg("m.safetensors");
    let missing = d.arg("missing.csv");
    fails_with(kiln(&["train", "--data", &missing, "--target", "label", "--out", &out]), &["missing.csv"]);
    for (file, text, needles) in BAD_CSV {
        let data = d.write(file, text);
        fails_with(kiln(&["train", "--data", &data, "--target", "label", "--out", &out, "--quiet"]), needles);
    }
    let data = d.write("no-target.csv", "x1,x2,y\n1,2,yes\n3,4,no\n");
    fails_with(
        kiln(&["train", "--data", &data, "--target", "label", "--out", &out, "--quiet"]),
        &["no-target.csv", "no column named 'label'", "x1, x2, y"],
    );
    assert!(!d.path("m.safetensors").exists(), "a failed train wrote a model");
}

/// A small trained classifier in `d` (`m.safetensors`) and its training CSV (`train.csv`).
fn trained(d: &TempDir) -> String {
    let train = d.write("train.csv", &classes_csv(60, 7, ["0", "1"]));
    let model = d.arg("m.safetensors");
    ok(kiln(&[
        "train",
        "--data",
        &train,
        "--target",
        "label",
        "--out",
        &model,
        "--epochs",
        "3",
        "--hidden",
        "4",
        "--quiet",
        "--backend",
        "cpu",
    ]));
    model
}

#[test]
fn bad_data_for_evaluate_and_predict_fails_cleanly() {
    let d = TempDir::new("bad-eval");
    let model = trained(&d);
    for (file, text, needles) in BAD_CSV {
        let data = d.write(file, text);
        fails_with(kiln(&["evaluate", "--model", &model, "--data", &data]), needles);
        fails_with(kiln(&["predict", "--model", &model, "--data", &data]), needles);
    }
    let other = d.write("other.csv", "x1,x3,label\n1,2,1\n3,4,0\n");
    let needles = ["other.csv", "feature columns do not match", "'x2'", "'x3'"];
    fails_with(kiln(&["evaluate", "--model", &model, "--data", &other]), &needles);
    fails_with(kiln(&["predict", "--model", &model, "--data", &other]), &needles);
    let unknown = d.write("unknown.csv", "x1,x2,label\n1,2,1\n3,4,7\n");
    fails_with(
        kiln(&["evaluate", "--model", &model, "--data", &unknown]),
        &["unknown.csv:3", "'label'", "unknown class '7'"],
    );
    let missing = d.arg("missing.csv");
    fails_with(kiln(&["predict", "--model", &model, "--data", &missing]), &["missing.csv"]);
}

#[test]
fn corrupt_and_truncated_models_fail_cleanly() {
    let d = TempDir::new("bad-model");
    let model = trained(&d);
    let data = d.arg("train.csv");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(d.path("half.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(d.path("garbage.safetensors"), garbage).unwrap();
    std::fs::write(d.path("tiny.safetensors"), b"abc").unwrap();
    for file in ["half.safetensors", "garbage.safetensors", "tiny.safetensors", "absent.safetensors"] {
        let m = d.arg(file);
        fails_with(kiln(&["evaluate", "--model", &m, "--data", &data]), &[file]);
        fails_with(kiln(&["predict", "--model", &m, "--data", &data]), &[file]);
    }
}

#[test]
fn failed_runs_leave_existing_outputs_untouched() {
    let d = TempDir::new("atomic");
    let model = trained(&d);
    let bad = d.write("bad.csv", "x1,x2,label\n1,2,1\n3,abc,0\n");

    let keep = b"known bytes, not a model".to_vec();
    std::fs::write(d.path("out.safetensors"), &keep).unwrap();
    let out = d.arg("out.safetensors");
    fails_with(
        kiln(&["train", "--data", &bad, "--target", "label", "--out", &out, "--quiet"]),
        &["bad.csv:3"],
    );
    assert_eq!(std::fs::read(&out).unwrap(), keep, "a failed train changed --out");

    let model_bytes = std::fs::read(&model).unwrap();
    fails_with(
        kiln(&["train", "--data", &bad, "--target", "label", "--out", &model, "--quiet"]),
        &["bad.csv:3"],
    );
    assert_eq!(std::fs::read(&model).unwrap(), model_bytes, "a failed train changed a real model");

    std::fs::write(d.path("p.csv"), &keep).unwrap();
    let preds = d.arg("p.csv");
    fails_with(kiln(&["predict", "--model", &model, "--data", &bad, "--out", &preds]), &["bad.csv:3"]);
    assert_eq!(std::fs::read(&preds).unwrap(), keep, "a failed predict changed --out");
    let garbage = d.write("garbage.safetensors", "not a model");
    let train = d.arg("train.csv");
    fails_with(
        kiln(&["predict", "--model", &garbage, "--data", &train, "--out", &preds]),
        &["garbage.safetensors"],
    );
    assert_eq!(std::fs::read(&preds).unwrap(), keep, "a failed predict changed --out");
}

#[test]
fn resume_reproduces_an_uninterrupted_run_bit_for_bit() {
    let d = TempDir::new("resume");
    let train = d.write("train.csv", &classes_csv(150, 11, ["no", "yes"]));
    let run = |out: &str, epochs: &str, resume: bool| {
        let out = d.arg(out);
        let mut args = vec![
            "train",
            "--data",
            &train,
            "--target",
            "label",
            "--out",
            &out,
            "--epochs",
            epochs,
            "--hidden",
            "16",
            "--batch-size",
            "16",
            "--lr",
            "0.01",
            "--seed",
            "5",
            "--patience",
            "1000",
            "--quiet",
            "--backend",
            "cpu",
        ];
        if resume {
            args.push("--resume");
        }
        ok(kiln(&args));
    };
    run("a.safetensors", "4", false);
    run("b.safetensors", "2", false);
    run("b.safetensors", "4", true);
    let a = Checkpoint::read(d.path("a.safetensors")).unwrap();
    let b = Checkpoint::read(d.path("b.safetensors")).unwrap();
    assert!(!a.tensors.is_empty());
    for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(ta.name, tb.name);
        let (ba, bb): (Vec<u32>, Vec<u32>) =
            (ta.data.iter().map(|v| v.to_bits()).collect(), tb.data.iter().map(|v| v.to_bits()).collect());
        assert_eq!(ba, bb, "tensor '{}' differs between the uninterrupted and the resumed run", ta.name);
    }
    assert_eq!(a.tensors.len(), b.tensors.len());
    let log = std::fs::read_to_string(d.path("b.log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4, "the resumed log continues the first one: {log}");
}

/// Asserts that two model files hold the same tensors, bit for bit.
fn assert_same_tensors(a: &std::path::Path, b: &std::path::Path, what: &str) {
    let (a, b) = (Checkpoint::read(a).unwrap(), Checkpoint::read(b).unwrap());
    assert!(!a.tensors.is_empty());
    assert_eq!(a.tensors.len(), b.tensors.len(), "{what}");
    for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(ta.name, tb.name, "{what}");
        let (ba, bb): (Vec<u32>, Vec<u32>) =
            (ta.data.iter().map(|v| v.to_bits()).collect(), tb.data.iter().map(|v| v.to_bits()).collect());
        assert_eq!(
            ba, bb,
            "{what}: tensor '{}' differs between the uninterrupted and the resumed run",
            ta.name
        );
    }
}

/// A training log's lines without their timings (epoch, losses, metrics, lr, steps).
fn log_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("steps_per_s");
            v
        })
        .collect()
}

/// `--epochs N` then `--resume --epochs M` equals one run of `--epochs M` in every mode the CLI
/// has: no validation, a validation split, a validation file (all with early stopping's restore
/// of the best weights at the end), and early stopping that stops the run.
#[test]
fn resume_is_exact_with_validation_and_early_stopping() {
    let d = TempDir::new("resume-modes");
    let train = d.write("train.csv", &classes_csv(120, 13, ["no", "yes"]));
    let val = d.write("val.csv", &classes_csv(50, 17, ["no", "yes"]));
    let base = ["--hidden", "12", "--batch-size", "16", "--lr", "0.05", "--seed", "3", "--quiet"];
    let cases: [(&str, Vec<&str>, &str, usize); 4] = [
        ("plain", vec!["--patience", "1000"], "loss", 12),
        ("split", vec!["--patience", "1000", "--validation-split", "0.3"], "val_loss", 12),
        ("data", vec!["--patience", "1000", "--validation", &val], "val_loss", 12),
        ("early", vec!["--patience", "2", "--validation-split", "0.3"], "val_loss", 300),
    ];
    for (name, flags, monitor, epochs) in cases {
        let flags = [&base[..], &flags[..]].concat();
        let (a, b) = (d.arg(&format!("{name}-a.safetensors")), d.arg(&format!("{name}-b.safetensors")));
        let total = epochs.to_string();
        ok(train_run(&train, &a, &[&flags[..], &["--epochs", &total]].concat()));
        let log_a = log_records(&d.path(&format!("{name}-a.log.jsonl")));
        // stop the first part at an epoch that did not improve on an earlier best (by the CLI's
        // min_delta 1e-4), so that it ends restoring best weights and must resume from the last
        let mut best = f64::INFINITY;
        let waiting: Vec<usize> = log_a
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let v = r[monitor].as_f64().unwrap();
                let improved = v < best - 1e-4;
                best = if improved { v } else { best };
                (!improved && i > 0).then_some(i + 1)
            })
            .collect();
        let first = if name == "early" {
            assert!(
                log_a.len() >= 4 && log_a.len() < epochs,
                "{name}: early stopping must stop: {}",
                log_a.len()
            );
            log_a.len() - 1
        } else {
            *waiting.first().unwrap_or_else(|| panic!("{name}: the {monitor} never stopped improving"))
        };
        assert!(waiting.contains(&first), "{name}: epoch {first} improved");
        ok(train_run(&train, &b, &[&flags[..], &["--epochs", &first.to_string()]].concat()));
        ok(train_run(&train, &b, &[&flags[..], &["--epochs", &total, "--resume"]].concat()));
        assert_same_tensors(
            &d.path(&format!("{name}-a.safetensors")),
            &d.path(&format!("{name}-b.safetensors")),
            name,
        );
        assert_eq!(log_records(&d.path(&format!("{name}-b.log.jsonl"))), log_a, "{name}: the logs differ");
    }
}

#[test]
fn info_reports_the_auto_choice() {
    // without KILN_BACKEND, so `auto` is what it reports
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("info")
        .env_remove("KILN_BACKEND")
        .output()
        .expect("the kiln binary runs");
    let o = ok(o);
    assert!(stdout(&o).contains("backend 'auto' picks"), "{}", stdout(&o));
}

// ---- issue 11: reliability ----

/// Trains with `extra` flags on `data` (target `label`) into `out`; returns the output.
fn train_run(data: &str, out: &str, extra: &[&str]) -> Output {
    let base = ["train", "--data", data, "--target", "label", "--out", out, "--backend", "cpu"];
    kiln(&[&base[..], extra].concat())
}

/// The class labels a model file holds.
fn model_labels(path: &std::path::Path) -> Option<Vec<String>> {
    let ck = Checkpoint::read(path).unwrap();
    let data: Value = serde_json::from_str(&ck.metadata["kiln.data"]).unwrap();
    data["labels"].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
}

#[test]
fn negative_zero_labels_are_the_class_zero() {
    let d = TempDir::new("neg-zero");
    let mut csv = String::from("x1,label\n");
    for i in 0..60 {
        let label = ["-1", "0", "-0", "1"][i % 4];
        let x = match label {
            "-1" => -1.0,
            "1" => 1.0,
            _ => 0.0,
        } + (i as f32) * 1e-3;
        csv.push_str(&format!("{x},{label}\n"));
    }
    let data = d.write("z.csv", &csv);
    let out = d.arg("m.safetensors");
    ok(train_run(&data, &out, &["--epochs", "2", "--hidden", "4", "--quiet"]));
    assert_eq!(model_labels(&d.path("m.safetensors")).unwrap(), ["-1", "0", "1"]);
    // -0 and 0 rows evaluate as the same class
    let e = json(&ok(kiln(&["evaluate", "--model", &out, "--data", &data, "--json"])));
    assert_eq!(e["rows"], 60, "{e}");
}

/// A model's metadata entry `key` rewritten by `edit`, saved as `file` in `d`.
fn edited_model(d: &TempDir, model: &str, file: &str, edit: impl Fn(&mut Checkpoint)) -> String {
    let mut ck = Checkpoint::read(model).unwrap();
    edit(&mut ck);
    ck.write(d.path(file)).unwrap();
    d.arg(file)
}

fn edit_json(ck: &mut Checkpoint, key: &str, edit: impl Fn(&mut Value)) {
    let mut v: Value = serde_json::from_str(&ck.metadata[key]).unwrap();
    edit(&mut v);
    ck.metadata.insert(key.into(), v.to_string());
}

#[test]
fn model_metadata_that_disagrees_with_its_tensors_is_refused_on_load() {
    let d = TempDir::new("validate-load");
    let model = trained(&d);
    let data = d.arg("train.csv");
    let cases: Vec<(String, &[&str])> = vec![
        (
            edited_model(&d, &model, "labels.safetensors", |ck| {
                edit_json(ck, "kiln.data", |v| v["labels"] = serde_json::json!(["0", "1", "2"]))
            }),
            &["labels.safetensors", "3 class labels for a model with 1 outputs"],
        ),
        (
            edited_model(&d, &model, "std0.safetensors", |ck| {
                edit_json(ck, "kiln.data", |v| v["standardizer"]["std"][1] = serde_json::json!(0.0))
            }),
            &["std0.safetensors", "std of column 2 is 0"],
        ),
        (
            edited_model(&d, &model, "nan.safetensors", |ck| ck.tensors[0].data[0] = f32::NAN),
            &["nan.safetensors", "element 0 is NaN"],
        ),
        (
            edited_model(&d, &model, "inf.safetensors", |ck| ck.tensors[1].data[0] = f32::INFINITY),
            &["inf.safetensors", "element 0 is inf"],
        ),
        (
            edited_model(&d, &model, "format.safetensors", |ck| {
                edit_json(ck, "kiln.architecture", |v| v["format"] = serde_json::json!(7))
            }),
            &["format.safetensors", "format 7"],
        ),
        (
            edited_model(&d, &model, "layers.safetensors", |ck| {
                edit_json(ck, "kiln.architecture", |v| {
                    let text = v.to_string().replacen("\"Relu\"", "\"Tanh\"", 1);
                    *v = serde_json::from_str(&text).unwrap();
                })
            }),
            &["layers.safetensors", "edited"],
        ),
    ];
    for (m, needles) in &cases {
        fails_with(kiln(&["predict", "--model", m, "--data", &data]), needles);
        fails_with(kiln(&["evaluate", "--model", m, "--data", &data]), needles);
    }
}

#[test]
fn a_model_file_written_before_the_reliability_changes_still_loads_and_resumes() {
    let d = TempDir::new("fixture");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for f in ["v1_model.safetensors", "v1_model.optim.safetensors", "v1_train.csv"] {
        std::fs::copy(fixtures.join(f), d.path(f)).unwrap();
    }
    let (model, data) = (d.arg("v1_model.safetensors"), d.arg("v1_train.csv"));
    let p = ok(kiln(&["predict", "--model", &model, "--data", &data]));
    assert_eq!(stdout(&p).lines().count(), 41, "{}", stdout(&p));
    ok(kiln(&["evaluate", "--model", &model, "--data", &data]));
    ok(train_run(&data, &model, &["--epochs", "5", "--resume", "--quiet"]));
}

#[test]
fn predict_quotes_labels_with_commas_quotes_and_newlines() {
    let d = TempDir::new("quote");
    let mut csv = String::from("x1,x2,label\n");
    let mut rng = Lcg(3);
    for i in 0..60 {
        let (a, b) = (rng.next(), rng.next());
        let label = ["\"a,b\"", "\"say \"\"hi\"\"\"", "\"two\nlines\""][i % 3];
        csv.push_str(&format!("{a},{b},{label}\n"));
    }
    let data = d.write("q.csv", &csv);
    let out = d.arg("m.safetensors");
    ok(train_run(&data, &out, &["--epochs", "2", "--hidden", "4", "--quiet"]));
    let preds = d.arg("p.csv");
    ok(kiln(&["predict", "--model", &out, "--data", &data, "--out", &preds]));
    let t = kiln_trainer::data::read_csv(&preds, "prediction", kiln_trainer::data::TaskHint::Classification)
        .unwrap_or_else(|e| panic!("predict wrote malformed CSV: {e}"));
    assert_eq!(t.rows, 60);
    let known = ["a,b", "say \"hi\"", "two\nlines"];
    for n in t.target.class_names().unwrap() {
        assert!(known.contains(&n.as_str()), "prediction '{n}' is not a label");
    }
    let header = std::fs::read_to_string(&preds).unwrap();
    assert!(header.starts_with("prediction,\"p_a,b\","), "{header}");
}

#[test]
fn bad_learning_rates_and_zero_epochs_are_refused_and_split_zero_means_no_validation() {
    let d = TempDir::new("flags");
    let data = d.write("train.csv", &classes_csv(40, 3, ["no", "yes"]));
    let out = d.arg("m.safetensors");
    for lr in ["0", "-1", "nan", "inf"] {
        let flag = format!("--lr={lr}");
        fails_with(train_run(&data, &out, &[&flag, "--quiet"]), &["--lr", "positive"]);
    }
    fails_with(train_run(&data, &out, &["--epochs", "0", "--quiet"]), &["--epochs 0"]);
    fails_with(train_run(&data, &out, &["--validation-split", "1.5", "--quiet"]), &["--validation-split"]);
    assert!(!d.path("m.safetensors").exists());
    let o = ok(train_run(&data, &out, &["--validation-split", "0", "--epochs", "2"]));
    assert!(!stderr(&o).contains("validating on"), "{}", stderr(&o));
    let log = std::fs::read_to_string(d.path("m.log.jsonl")).unwrap();
    assert!(!log.contains("val_loss"), "{log}");
}

#[test]
fn the_summary_says_which_task_and_why_and_a_numeric_target_with_typos_is_an_error() {
    let d = TempDir::new("task");
    let data = d.write("c.csv", &classes_csv(40, 3, ["no", "yes"]));
    let o = ok(train_run(&data, &d.arg("c.safetensors"), &["--epochs", "1"]));
    assert!(
        stderr(&o).contains("task: binary classification (the target holds text labels (2 classes))"),
        "{}",
        stderr(&o)
    );
    let data = d.write("r.csv", &regression_csv(40, 3));
    let o = ok(train_run(&data, &d.arg("r.safetensors"), &["--epochs", "1"]));
    assert!(stderr(&o).contains("task: regression (the target holds non-integer numbers)"), "{}", stderr(&o));

    let mut typo = regression_csv(300, 4);
    typo.push_str("0.5,0.5,12..5\n");
    let data = d.write("typo.csv", &typo);
    fails_with(
        train_run(&data, &d.arg("t.safetensors"), &["--quiet"]),
        &[
            "typo.csv:302",
            "'label'",
            "numbers except in 1 of 301 cells",
            "line 302 '12..5'",
            "--task multiclass",
        ],
    );
    assert!(!d.path("t.safetensors").exists());
}

#[test]
fn errors_give_the_physical_line_for_lf_crlf_and_cr_files() {
    let d = TempDir::new("lines");
    let out = d.arg("m.safetensors");
    // line 3 is blank, line 5-6 a quoted cell with a line break; the bad cell is on line 8
    let text = "x1,x2,label\n1,2,a\n\n3,4,b\n\"5\n\",6,a\n7,8,b\n9,zz,a\n";
    for (name, eol) in [("lf.csv", "\n"), ("crlf.csv", "\r\n"), ("cr.csv", "\r")] {
        let data = d.write(name, &text.replace('\n', eol));
        fails_with(train_run(&data, &out, &["--quiet"]), &[&format!("{name}:8:"), "'zz'"]);
    }
}

#[test]
fn a_huge_header_is_checked_in_linear_time_and_huge_cells_are_shortened() {
    let d = TempDir::new("huge");
    let out = d.arg("m.safetensors");
    let mut header: Vec<String> = (0..160_000).map(|i| format!("c{i}")).collect();
    header.push("c7".into());
    let text = format!("{}\n", header.join(","));
    let data = d.write("wide.csv", &text);
    let start = std::time::Instant::now();
    fails_with(train_run(&data, &out, &["--quiet"]), &["wide.csv:1", "'c7' appears twice (#8 and #160001)"]);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());

    let cell = "9".repeat(5_000_000) + "x";
    let data = d.write("cell.csv", &format!("x1,label\n1,a\n{cell},b\n"));
    let o = train_run(&data, &out, &["--quiet"]);
    let err = stderr(&o);
    fails_with(o, &["cell.csv:3", "bytes in all"]);
    assert!(err.len() < 2_000, "{} bytes of error", err.len());
}

fn mkfifo(path: &std::path::Path) {
    let s = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(s.success());
}

#[test]
fn outputs_that_are_not_regular_files_or_are_inputs_are_refused() {
    use std::os::unix::fs::FileTypeExt;
    let d = TempDir::new("outputs");
    let model = trained(&d);
    let data = d.arg("train.csv");
    let before = std::fs::read(&data).unwrap();

    let fifo = d.path("fifo");
    mkfifo(&fifo);
    let fifo_arg = d.arg("fifo");
    fails_with(train_run(&data, &fifo_arg, &["--quiet"]), &["not a regular file"]);
    fails_with(
        kiln(&["predict", "--model", &model, "--data", &data, "--out", &fifo_arg]),
        &["not a regular file"],
    );
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    // a device node (as root, /dev/null used to be replaced by a regular file)
    fails_with(train_run(&data, "/dev/null", &["--quiet"]), &["/dev/null", "not a regular file"]);
    fails_with(
        kiln(&["predict", "--model", &model, "--data", &data, "--out", "/dev/null"]),
        &["not a regular file"],
    );
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null was replaced");

    std::fs::write(d.path("target.csv"), "keep").unwrap();
    std::os::unix::fs::symlink(d.path("target.csv"), d.path("link.csv")).unwrap();
    let link = d.arg("link.csv");
    fails_with(kiln(&["predict", "--model", &model, "--data", &data, "--out", &link]), &["symlink"]);
    assert!(std::fs::symlink_metadata(d.path("link.csv")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(d.path("target.csv")).unwrap(), "keep");

    // the same file under another name (a hard link)
    std::fs::hard_link(&data, d.path("alias.csv")).unwrap();
    let alias = d.arg("alias.csv");
    fails_with(train_run(&data, &alias, &["--quiet"]), &["same file as --data"]);
    fails_with(
        kiln(&["predict", "--model", &model, "--data", &data, "--out", &model]),
        &["same file as --model"],
    );
    fails_with(
        kiln(&["predict", "--model", &model, "--data", &data, "--out", &data]),
        &["same file as --data"],
    );
    assert_eq!(std::fs::read(&data).unwrap(), before, "an input was overwritten");
    ok(kiln(&["predict", "--model", &model, "--data", &data]));
}

#[test]
fn non_regular_and_oversized_inputs_are_refused_without_reading_them() {
    let d = TempDir::new("inputs");
    let model = trained(&d);
    let data = d.arg("train.csv");
    fails_with(
        kiln(&["predict", "--model", "/dev/zero", "--data", &data]),
        &["/dev/zero", "not a regular file"],
    );
    fails_with(
        train_run("/dev/zero", &d.arg("z.safetensors"), &["--quiet"]),
        &["/dev/zero", "not a regular file"],
    );
    fails_with(kiln(&["train", "/dev/zero"]), &["/dev/zero", "not a regular file"]);
    // a sparse 3 GB file whose header claims 2^62 data bytes is refused from its header
    let header = br#"{"0.weight":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,4611686018427387904]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    std::fs::write(d.path("sparse.safetensors"), &bytes).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.path("sparse.safetensors"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let start = std::time::Instant::now();
    fails_with(
        kiln(&["predict", "--model", &d.arg("sparse.safetensors"), "--data", &data]),
        &["sparse.safetensors", "truncated"],
    );
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
    let _ = model;
}

#[test]
fn a_mismatched_or_missing_optimizer_file_and_changed_flags_are_errors_on_resume() {
    let d = TempDir::new("pair");
    let data = d.write("train.csv", &classes_csv(60, 7, ["0", "1"]));
    let flags = ["--epochs", "2", "--hidden", "4", "--quiet", "--patience", "100"];
    let (a, b) = (d.arg("a.safetensors"), d.arg("b.safetensors"));
    ok(train_run(&data, &a, &flags));
    ok(train_run(&data, &b, &[&flags[..], &["--seed", "9"]].concat()));
    let more = ["--epochs", "4", "--resume", "--quiet"];
    fails_with(train_run(&data, &a, &[&more[..], &["--hidden", "8"]].concat()), &["--hidden", "[8]", "[4]"]);
    fails_with(
        train_run(&data, &a, &[&more[..], &["--activation", "tanh"]].concat()),
        &["--activation tanh"],
    );
    fails_with(train_run(&data, &a, &[&more[..], &["--optimizer", "sgd"]].concat()), &["--optimizer sgd"]);
    // another run's optimizer file with the same step count (a save cut short between the files)
    std::fs::copy(d.path("a.optim.safetensors"), d.path("a.optim.keep")).unwrap();
    std::fs::copy(d.path("b.optim.safetensors"), d.path("a.optim.safetensors")).unwrap();
    fails_with(train_run(&data, &a, &more), &["a.optim.safetensors", "does not belong to"]);
    std::fs::remove_file(d.path("a.optim.safetensors")).unwrap();
    fails_with(train_run(&data, &a, &more), &["a.optim.safetensors", "missing"]);
    std::fs::rename(d.path("a.optim.keep"), d.path("a.optim.safetensors")).unwrap();
    ok(train_run(&data, &a, &more));
}

#[test]
fn no_leftovers_locked_outputs_and_kept_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let d = TempDir::new("leftovers");
    let data = d.write("train.csv", &classes_csv(60, 7, ["0", "1"]));
    let out = d.arg("m.safetensors");
    // a diverging run fails; no partial log or temporary file stays
    fails_with(train_run(&data, &out, &["--lr", "1e30", "--epochs", "50", "--quiet"]), &["the loss became"]);
    // a killed run's temporary file is cleared by the next run
    std::fs::write(d.path(".m.safetensors.tmp.4000000000"), "partial").unwrap();
    let leftovers = || -> Vec<String> {
        std::fs::read_dir(&d.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp.") || n.ends_with(".part") || n.ends_with(".lock"))
            .collect()
    };
    ok(train_run(&data, &out, &["--epochs", "2", "--hidden", "4", "--quiet"]));
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    // an overwritten model keeps its mode
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(train_run(&data, &out, &["--epochs", "2", "--hidden", "4", "--quiet"]));
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    // a second run on the same --out fails up front (the lock holds a live pid: this test's)
    std::fs::write(d.path("m.safetensors.lock"), std::process::id().to_string()).unwrap();
    fails_with(
        train_run(&data, &out, &["--epochs", "2", "--quiet"]),
        &["another kiln run", "m.safetensors.lock"],
    );
    std::fs::remove_file(d.path("m.safetensors.lock")).unwrap();
}

#[test]
fn hidden_layers_too_large_for_memory_are_refused_before_allocating() {
    let d = TempDir::new("hidden");
    let data = d.write("train.csv", &classes_csv(40, 3, ["no", "yes"]));
    let out = d.arg("m.safetensors");
    for hidden in ["4294967296", "1000000,1000000", "1000000000"] {
        let o = train_run(&data, &out, &["--hidden", hidden, "--quiet"]);
        assert_eq!(o.status.code(), Some(1), "not a clean error: {}", stderr(&o));
        fails_with(o, &["--hidden", "layer", "GB"]);
    }
    assert!(!d.path("m.safetensors").exists());
}

/// On a GPU every tensor is one storage buffer: a layer whose buffer the adapter cannot bind is
/// refused before anything is allocated, naming the layer and the adapter's limit (lavapipe binds
/// 128 MiB here, most GPUs at most 2 GiB; a batch of 1000 rows of 600,000 activations is 2.4 GB).
/// A machine with little RAM refuses it for RAM first, also naming the layer.
#[test]
fn hidden_layers_past_the_adapters_buffer_limit_are_refused_before_allocating() {
    let Some(_gpu) = kiln_device::testing::gpu_or_skip("hidden layers past the adapter's limit") else {
        return;
    };
    let d = TempDir::new("hidden-gpu");
    let data = d.write("train.csv", &classes_csv(40, 3, ["no", "yes"]));
    let out = d.arg("m.safetensors");
    let base = ["train", "--data", &data, "--target", "label", "--out", &out, "--backend", "gpu"];
    let o = kiln(&[&base[..], &["--hidden", "600000", "--batch-size", "1000", "--quiet"]].concat());
    assert_eq!(o.status.code(), Some(1), "not a clean error: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("layer 1 (2 -> 600000 units)"), "{e}");
    assert!(e.contains("max_storage_buffer_binding_size") || e.contains("available"), "{e}");
    assert!(!d.path("m.safetensors").exists());
}

#[test]
fn sigint_stops_at_the_step_saves_a_resumable_model_and_resuming_is_exact() {
    let d = TempDir::new("sigint");
    let data = d.write("train.csv", &classes_csv(2000, 5, ["no", "yes"]));
    let out = d.arg("m.safetensors");
    let flags = ["--patience", "100000", "--batch-size", "8", "--validation-split", "0.1", "--quiet"];
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["train", "--data", &data, "--target", "label", "--out", &out, "--backend", "cpu"])
        .args(["--epochs", "100000"])
        .args(flags)
        .env("KILN_BACKEND", "cpu")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let part = d.path("m.log.jsonl.part");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&part).map_or(true, |t| t.lines().count() < 1) {
        assert!(start.elapsed().as_secs() < 60, "no epoch finished in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // mid-epoch: 225 steps of 8 rows per epoch
    std::thread::sleep(std::time::Duration::from_millis(30));
    let s = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(s.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    // almost always inside an epoch ("at step k of 225 in epoch e"); at its last step, after it
    assert!(err.contains("at step") || err.contains("after epoch"), "{err}");
    fails_with(o, &["interrupted", "m.safetensors", "m.optim.safetensors", "--resume"]);
    let ck = Checkpoint::read(d.path("m.safetensors")).expect("a model was saved");
    let step: Value = serde_json::from_str(&ck.metadata["kiln.step"]).unwrap();
    let done = step["epochs"].as_u64().unwrap();
    assert!((1..100000).contains(&done), "{step}");
    // resuming finishes the interrupted epoch (and one more) as an uninterrupted run would
    let more = (done + 2).to_string();
    ok(train_run(&data, &out, &[&flags[..], &["--epochs", &more, "--resume"]].concat()));
    let straight = d.arg("s.safetensors");
    ok(train_run(&data, &straight, &[&flags[..], &["--epochs", &more]].concat()));
    assert_same_tensors(&d.path("s.safetensors"), &d.path("m.safetensors"), "after SIGINT");
    let log = log_records(&d.path("m.log.jsonl"));
    assert_eq!(log.len() as u64, done + 2, "the log continues: {log:?}");
    assert_eq!(
        log,
        log_records(&d.path("s.log.jsonl")),
        "the resumed log differs from the uninterrupted one"
    );
}

/// A second SIGINT exits at once (status 130), while the first waits for a long step to end.
#[test]
fn a_second_sigint_exits_at_once() {
    let d = TempDir::new("sigint2");
    let mut csv = String::from("a,b,c,d,label\n");
    let mut rng = Lcg(8);
    for i in 0..2000 {
        csv.push_str(&format!("{},{},{},{},{}\n", rng.next(), rng.next(), rng.next(), rng.next(), i % 2));
    }
    let data = d.write("train.csv", &csv);
    let out = d.arg("m.safetensors");
    // steps of 2000 rows through two 2048-unit layers: each takes about a second on the CPU
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["train", "--data", &data, "--target", "label", "--out", &out, "--backend", "cpu"])
        .args(["--epochs", "1000", "--hidden", "2048,2048", "--batch-size", "2000"])
        .env("KILN_BACKEND", "cpu")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the summary's last line comes just before the first step
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    while !text.contains("training on") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(n > 0, "the run ended before training: {text}");
        text.push_str(&line);
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    let int = || {
        let s = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
        assert!(s.success());
    };
    int();
    std::thread::sleep(std::time::Duration::from_millis(100));
    int();
    let t = std::time::Instant::now();
    std::io::Read::read_to_string(&mut err, &mut text).unwrap();
    let status = child.wait().unwrap();
    assert!(t.elapsed().as_secs() < 5, "the second SIGINT did not exit at once: {:?}", t.elapsed());
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(text.contains("Ctrl-C again to quit at once"), "{text}");
    assert!(!d.path("m.safetensors").exists(), "nothing is saved after the second SIGINT");
}

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" for every wgpu instance
/// when the variable is unset. The device library sets it once before its first instance (the CLI
/// no longer does it on its own), so neither a library user nor `kiln info` shows that line.
#[test]
fn no_mesa_xdg_noise_when_the_variable_is_unset() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("info")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("the kiln binary runs");
    let o = ok(o);
    assert!(!stderr(&o).contains("XDG_RUNTIME_DIR"), "{}", stderr(&o));
}

/// The README's regression command on a target with mean 500 and spread 355 (issue 12: it never
/// learned unstandardized), and the end line: the saved epoch's numbers, files by full path.
#[test]
fn readme_regression_command_learns_a_large_target_and_reports_the_saved_epoch() {
    let d = TempDir::new("price");
    let price = |rows, seed| {
        let mut rng = Lcg(seed);
        let mut s = String::from("x1,x2,price\n");
        for _ in 0..rows {
            let (a, b) = (rng.next(), rng.next());
            s.push_str(&format!("{a},{b},{}\n", 500.0 + 355.0 * (1.2 * a - 0.8 * b + a * b)));
        }
        s
    };
    let train = d.write("train.csv", &price(500, 5));
    let test = d.write("test.csv", &price(200, 6));
    let model = d.arg("price.safetensors");
    let o = ok(kiln(&[
        "train",
        "--data",
        &train,
        "--target",
        "price",
        "--task",
        "regression",
        "--hidden",
        "64,32",
        "--epochs",
        "100",
        "--validation-split",
        "0.2",
        "--optimizer",
        "adamw",
        "--lr",
        "3e-4",
        "--out",
        &model,
    ]));
    let err = stderr(&o);
    let e = json(&ok(kiln(&["evaluate", "--model", &model, "--data", &test, "--json"])));
    let mae = e["mae"].as_f64().expect("mae");
    // predicting the mean scores about 250; unstandardized, this run stayed above 300
    assert!(mae < 40.0, "test MAE {mae}: {e}\n{err}");

    // `stopped after epoch N (epoch limit): epoch N: ...`, or fit's `stopped early after epoch N
    // (...); restored the weights of epoch M: ...`
    let end = err.lines().find(|l| l.starts_with("stopped ")).expect("an end line");
    let log = std::fs::read_to_string(d.path("price.log.jsonl")).unwrap();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kept = match end.split("weights of epoch ").nth(1) {
        Some(rest) => rest.split(' ').next().unwrap().parse::<usize>().unwrap(),
        None => records.len(),
    };
    let rec = &records[kept - 1];
    let want = format!("epoch {kept}: loss {:.4}", rec["loss"].as_f64().unwrap());
    assert!(end.contains(&want), "the end line lacks '{want}': {end}");
    assert!(end.contains(&format!("val_loss {:.4}", rec["val_loss"].as_f64().unwrap())), "{end}");
    for file in ["price.safetensors", "price.log.jsonl", "price.curves.svg"] {
        let full = d.path(file).display().to_string();
        assert!(err.contains(&full), "stderr lacks the full path {full}: {err}");
    }
}

// ---- issue 12: the OS cause once, and `kiln info` in full ----

/// A missing file names the file and the OS cause once (the trainer's `Error::Io` showed its cause
/// and returned it as its source too, so `{:#}` printed both; now the cause is only in the message).
#[test]
fn a_missing_file_prints_the_os_cause_once() {
    let d = TempDir::new("missing-once");
    let (missing, out) = (d.arg("missing.csv"), d.arg("m.safetensors"));
    let runs = [
        kiln(&["train", "--data", &missing, "--target", "label", "--out", &out]),
        kiln(&["evaluate", "--model", &d.arg("missing.safetensors"), "--data", &missing]),
        kiln(&["predict", "--model", &d.arg("missing.safetensors"), "--data", &missing]),
    ];
    for o in runs {
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("missing."), "{err}");
        assert_eq!(err.matches("(os error 2)").count(), 1, "the OS cause is not printed exactly once: {err}");
    }
}

fn info(envs: &[(&str, &str)]) -> String {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.arg("info").env_remove("KILN_BACKEND");
    for (k, v) in envs {
        c.env(k, v);
    }
    stdout(&ok(c.output().expect("the kiln binary runs")))
}

/// The CPU section: the backend's threads and the CPU features its kernels can use.
fn assert_cpu_section(out: &str) {
    assert!(out.contains("CPU backend: native CPU"), "{out}");
    assert!(out.contains("  threads: "), "{out}");
    #[cfg(target_arch = "x86_64")]
    for f in ["avx2 ", "avx512f ", "fma "] {
        assert!(out.contains(f), "no '{f}' among the CPU features: {out}");
    }
}

/// `kiln info` lists every adapter with its kind, API, the limits Kiln depends on and the features
/// it uses. With lavapipe installed (CI) that includes a software adapter; with
/// `KILN_REQUIRE_GPU=1` an empty list is a failure.
#[test]
fn info_lists_each_adapter_with_limits_and_features_and_the_cpu() {
    let out = info(&[]);
    assert!(out.contains("backend 'auto' picks"), "{out}");
    assert_cpu_section(&out);
    if out.contains("wgpu adapters: none found") {
        assert!(
            std::env::var("KILN_REQUIRE_GPU").as_deref() != Ok("1"),
            "KILN_REQUIRE_GPU=1 but `kiln info` found no adapter: {out}"
        );
        eprintln!("SKIPPED: no wgpu adapter, only the CPU section was checked");
        return;
    }
    for needle in [
        "kind: ",
        "backend API: ",
        "max_buffer_size",
        "max_storage_buffer_binding_size",
        "max_compute_workgroup_storage_size",
        "max_compute_invocations_per_workgroup",
        "shader-f16 ",
        "subgroups ",
        "timestamps ",
    ] {
        assert!(out.contains(needle), "`kiln info` lacks '{needle}': {out}");
    }
    let software = std::path::Path::new("/usr/share/vulkan/icd.d").read_dir().is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("lvp_icd")))
    });
    if software {
        assert!(out.contains("kind: SoftwareGpu, backend API: Vulkan"), "lavapipe is installed: {out}");
    }
}

/// With no Vulkan driver to find (the loader pointed at none), `kiln info` says so and still
/// describes the CPU backend, which `auto` then picks.
#[cfg(target_os = "linux")]
#[test]
fn info_without_any_adapter_prints_the_cpu_section() {
    let none = "/nonexistent/kiln-no-driver.json";
    let out = info(&[("VK_ICD_FILENAMES", none), ("VK_DRIVER_FILES", none)]);
    assert!(out.contains("wgpu adapters: none found"), "{out}");
    assert!(out.contains("backend 'auto' picks: native CPU"), "{out}");
    assert_cpu_section(&out);
}

/// A backend name that is none of auto, gpu, cpu is an error saying which names exist (it said
/// "no suitable adapter").
#[test]
fn an_unknown_backend_name_says_which_names_exist() {
    let d = TempDir::new("unknown-backend");
    let data = d.write("train.csv", &classes_csv(40, 3, ["no", "yes"]));
    let out = d.arg("m.safetensors");
    let o = kiln(&["train", "--data", &data, "--target", "label", "--out", &out, "--backend", "tpu"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("unknown backend 'tpu': expected auto, gpu or cpu"), "{e}");
    assert!(!e.contains("no suitable adapter"), "{e}");
    assert!(!d.path("m.safetensors").exists());
}

/// `kiln train --devices 2` (two CPU replicas, each on half of every batch; 61 rows in batches of
/// 20 split 10/10 and a last 1 row on one replica) logs the losses one device does, to float32
/// summation tolerance (the replicas' gradients are summed weighted by rows); its --resume works.
#[test]
fn train_on_two_devices_matches_one() {
    let d = TempDir::new("devices");
    let train = d.write("train.csv", &classes_csv(61, 5, ["no", "yes"]));
    let losses = |name: &str, devices: &str, epochs: &str, resume: bool| -> Vec<f64> {
        let out = d.arg(&format!("{name}.safetensors"));
        let mut args = vec!["train", "--data", &train, "--target", "label", "--out", &out, "--quiet"];
        args.extend(["--epochs", epochs, "--batch-size", "20", "--backend", "cpu", "--devices", devices]);
        if resume {
            args.push("--resume");
        }
        ok(kiln(&args));
        let log = std::fs::read_to_string(d.path(&format!("{name}.log.jsonl"))).unwrap();
        log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["loss"].as_f64().unwrap()).collect()
    };
    let one = losses("one", "1", "4", false);
    losses("two", "2", "2", false);
    let two = losses("two", "2", "4", true);
    assert_eq!(two.len(), 4, "{two:?}");
    for (a, b) in two.iter().zip(&one) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "2 devices {two:?}, 1 device {one:?}");
    }
}
