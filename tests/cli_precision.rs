//! `--precision f32|bf16|f16` on `kiln train` and `kiln lm train`: a half run trains and saves
//! its setting, which `--resume` keeps; another value is refused by name.

use std::path::PathBuf;
use std::process::Output;

use kiln::trainer::{Precision, Sequential};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-cli-precision-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kiln(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("the kiln binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn kiln_train_in_bf16_saves_the_setting_and_refuses_f64() {
    let d = dir("train");
    let data = d.join("train.csv");
    let mut csv = String::from("x1,x2,x3,label\n");
    for i in 0..41u32 {
        let (a, b, c) = ((i * 7 % 11) as f32 / 5.0 - 1.0, (i * 5 % 13) as f32 / 6.0 - 1.0, (i % 3) as f32);
        csv.push_str(&format!("{a},{b},{c},{}\n", if a > b { "yes" } else { "no" }));
    }
    std::fs::write(&data, csv).unwrap();
    let out = d.join("m.safetensors");
    let (data, out_s) = (data.display().to_string(), out.display().to_string());
    let base =
        ["train", "--data", &data, "--target", "label", "--out", &out_s, "--backend", "cpu", "--quiet"];
    let o = kiln(&[&base[..], &["--precision", "f64"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("precision \"f64\"") && text(&o).contains("bf16"), "{}", text(&o));
    let o = kiln(&[&base[..], &["--precision", "bf16", "--epochs", "3"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let saved = |p: &PathBuf| Sequential::load(p).unwrap().saved_config().unwrap().precision;
    assert_eq!(saved(&out), Precision::Bf16);
    let o = kiln(&[&base[..], &["--resume", "--epochs", "5"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(saved(&out), Precision::Bf16, "--resume keeps the saved precision");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn kiln_lm_train_in_f16_says_so_and_resume_keeps_it() {
    let d = dir("lm");
    let data = d.join("text.txt");
    std::fs::write(&data, "to be or not to be, that is the question\n".repeat(20)).unwrap();
    let out = d.join("lm.safetensors");
    let (data, out) = (data.display().to_string(), out.display().to_string());
    let args = [
        "lm",
        "train",
        "--data",
        &data,
        "--out",
        &out,
        "--backend",
        "cpu",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--eval-every",
        "2",
        "--eval-windows",
        "2",
        "--sample",
        "0",
    ];
    let o = kiln(&[&args[..], &["--steps", "2", "--precision", "f16"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("matmuls in f16"), "{}", text(&o));
    let o = kiln(&[&args[..], &["--resume", "--steps", "3", "--precision", "bf16"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--precision f16, not bf16"), "{}", text(&o));
    let o = kiln(&[&args[..], &["--resume", "--steps", "3"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("matmuls in f16"), "{}", text(&o));
    std::fs::remove_dir_all(&d).ok();
}
