//! `kiln lm`: train a tiny model on a text (tokenized on first use), resume it, write a Hugging
//! Face folder, sample from both, evaluate a token file (checked against the library's logits),
//! report a configuration's size; and clear errors.

use std::path::{Path, PathBuf};
use std::process::Output;

use kiln::data::{write_token_file, TokenWidth};
use kiln::trainer::zoo::{Llama, Weights};
use kiln::trainer::Precision::{Bf16, F32};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("kiln-lm-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn arg(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
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

fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "kiln failed: {}\nstdout: {out}", String::from_utf8_lossy(&o.stderr));
    out
}

fn err(o: Output) -> String {
    assert!(!o.status.success(), "kiln should have failed: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn shakespeare(dir: &TempDir) -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tinyshakespeare.txt")).unwrap();
    let path = dir.arg("play.txt");
    std::fs::write(&path, &text[..30_000]).unwrap();
    path
}

/// `kiln lm train` of the tiny model on `data` into `out`: `steps` steps of 2 x 16 tokens, a
/// validation every 3 steps on 4 windows, then `extra`.
fn lm_train(data: &str, out: &str, steps: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "lm",
        "train",
        "--config",
        "tiny",
        "--data",
        data,
        "--steps",
        steps,
        "--eval-every",
        "3",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--eval-windows",
        "4",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    kiln(&args)
}

#[test]
fn train_resume_export_generate_and_evaluate() {
    let dir = TempDir::new("flow");
    let data = shakespeare(&dir);
    let out = dir.arg("lm.safetensors");
    let hf = dir.arg("hf");
    let train = |extra: &[&str]| {
        let mut args = vec!["--sample", "20"];
        args.extend_from_slice(extra);
        lm_train(&data, &out, "6", &args)
    };
    let first = ok(train(&["--hf-out", &hf]));
    assert!(first.contains("820352 parameters"), "{first}");
    assert!(first.contains("trained 6 steps") && first.contains("sample:"), "{first}");
    // tokenized once, beside the output, and reused
    assert!(Path::new(&dir.arg("play.byte.tokens")).exists());
    // a new run does not replace a trained model unless asked to
    let again = err(train(&[]));
    assert!(again.contains("--resume") && again.contains("--overwrite"), "{again}");
    let resumed = ok(lm_train(&data, &out, "9", &["--sample", "0", "--resume", "--recompute"]));
    assert!(resumed.contains("trained 3 steps"), "{resumed}");
    assert!(resumed.contains("workspace") && resumed.contains("blocks recomputed"), "{resumed}");

    // the checkpoint and the Hugging Face folder hold the same weights (the folder the first
    // run's, the checkpoint the resumed run's: compare the folder against a fresh export)
    let w = Weights::read(&hf).unwrap();
    assert_eq!(w.config.vocab_size, 256);
    let gen = |model: &str, seed: &str| {
        ok(kiln(&[
            "lm", "generate", "--model", model, "--prompt", "ROMEO:", "--tokens", "30", "--seed", seed,
        ]))
    };
    let a = gen(&out, "3");
    assert!(a.starts_with("ROMEO:") && a.len() > 30, "{a:?}");
    assert_eq!(a, gen(&out, "3"), "the same seed draws the same text");
    let from_hf = gen(&hf, "3");
    assert!(from_hf.starts_with("ROMEO:"), "{from_hf:?}");

    // eval: consecutive windows of T = 16 over 101 tokens: 6 windows, 96 predictions, 97 tokens
    let ids: Vec<u32> = std::fs::read(&data).unwrap()[..101].iter().map(|&b| b as u32).collect();
    let toks = dir.arg("eval.bin");
    write_token_file(&toks, &ids, TokenWidth::U16).unwrap();
    let json = ok(kiln(&["lm", "eval", "--model", &out, "--data", &toks, "--context", "16", "--json"]));
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (v["windows"].as_u64(), v["tokens_predicted"].as_u64(), v["tokens_covered"].as_u64()),
        (Some(6), Some(96), Some(97))
    );
    // the same number from the library's logits, cross-entropy in f64 on the host
    let w = Weights::read(&out).unwrap();
    let cpu = kiln::device::open(kiln::device::BackendChoice::Cpu).unwrap();
    let mut m = Llama::from_weights(w.config, 16, &w.tensors, Llama::default_training(), cpu).unwrap();
    let x: Vec<u32> = (0..6).flat_map(|k| ids[k * 16..k * 16 + 16].to_vec()).collect();
    let logits = m.logits(&x).unwrap();
    let mut total = 0.0f64;
    for k in 0..6 {
        for t in 0..16 {
            let row = &logits[(k * 16 + t) * 256..][..256];
            let max = row.iter().cloned().fold(f32::MIN, f32::max) as f64;
            let lse = max + row.iter().map(|&z| (z as f64 - max).exp()).sum::<f64>().ln();
            total += lse - row[ids[k * 16 + t + 1] as usize] as f64;
        }
    }
    let want = total / 96.0;
    let got = v["loss"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-5 * want, "kiln lm eval {got}, from the logits {want}");
    let text = ok(kiln(&["lm", "eval", "--model", &out, "--data", &toks, "--context", "16"]));
    assert!(text.contains("over 6 windows of 16 tokens (96 predictions)"), "{text}");
}

#[test]
fn info_reports_the_smollm2_size_and_errors_are_clear() {
    let info = ok(kiln(&["lm", "info", "--config", "smollm2-135m"]));
    assert!(info.contains("134515008 parameters") && info.contains("optimizer state"), "{info}");
    // each setting (f32 / half, without / with recompute) planned by kind, and the largest batch that fits a budget for each
    let info = ok(kiln(&["lm", "info", "--context", "32", "--batch-size", "3", "--fit-in", "20MB"]));
    let tiny = kiln::trainer::zoo::LlamaConfig::tiny();
    for (precision, recompute) in [(F32, false), (F32, true), (Bf16, false), (Bf16, true)] {
        let mut t = Llama::default_training();
        (t.precision, t.recompute) = (precision, recompute);
        let m = Llama::plan_memory(&tiny, 32, 3, &t).unwrap();
        let kinds = format!(
            "(bytes: {} + {} + {} + {} = {})",
            m.parameter_bytes,
            m.optimizer_bytes,
            m.activation_bytes,
            m.workspace_bytes,
            m.total_bytes()
        );
        assert!(info.contains(&kinds), "recompute {recompute}: {kinds} not in {info}");
        let (batch, _) = Llama::largest_batch(&tiny, 32, &t, 20_000_000).unwrap().unwrap();
        let name = if precision == F32 { "f32" } else { "bf16 / f16" };
        let label = if recompute { format!("{name}, recompute") } else { name.to_string() };
        assert!(info.contains(&format!("{label}: batch {batch} ")), "{label}: batch {batch} not in {info}");
    }
    let e = err(kiln(&["lm", "info", "--fit-in", "8 lightyears"]));
    assert!(e.contains("unknown unit"), "{e}");
    let e = err(kiln(&["lm", "train", "--config", "gpt5", "--steps", "1"]));
    assert!(e.contains("unknown config 'gpt5'") && e.contains("smollm2-135m"), "{e}");
    let e = err(kiln(&["lm", "generate", "--model", "/nonexistent/model.safetensors"]));
    assert!(e.contains("/nonexistent/model.safetensors"), "{e}");
    let dir = TempDir::new("errors");
    let odd = dir.arg("odd.bin");
    std::fs::write(&odd, [1u8, 2, 3]).unwrap();
    let e = err(kiln(&["lm", "eval", "--model", "/nonexistent", "--data", &odd, "--context", "4"]));
    assert!(e.contains("/nonexistent"), "{e}");
}

/// `--steps` that is not a multiple of `--eval-every` trains exactly that many steps, the last
/// interval cut short (it once ran to the next multiple); resuming mid-interval is refused with a
/// way out.
#[test]
fn steps_count_exactly_when_not_a_multiple_of_the_eval_interval() {
    let dir = TempDir::new("steps");
    let data = shakespeare(&dir);
    let out = dir.arg("lm.safetensors");
    let run = |steps: &str, extra: &[&str]| {
        let mut args = vec!["--sample", "0"];
        args.extend_from_slice(extra);
        lm_train(&data, &out, steps, &args)
    };
    let first = ok(run("5", &[]));
    assert!(first.contains("trained 5 steps"), "{first}");
    let log = std::fs::read_to_string(dir.arg("lm.log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["steps"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [3, 2], "{log}");
    let e = err(run("6", &["--resume"]));
    assert!(e.contains("stopped at step 5") && e.contains("--from"), "{e}");
}
