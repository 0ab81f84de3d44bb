//! `--accumulate N` on `kiln train` and `kiln lm train`, and `kiln lm train`'s memory check: a
//! step that will not fit is refused before anything is allocated, naming the bytes, what the
//! backend offers and what to change.

use std::path::PathBuf;
use std::process::Output;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-cli-accum-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn kiln(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("the kiln binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// 37 rows of `x1,x2,label` (label: x1 > x2).
fn csv() -> String {
    let mut s = String::from("x1,x2,label\n");
    for i in 0..37u32 {
        let (a, b) = ((i * 7 % 11) as f32 / 5.0 - 1.0, (i * 5 % 13) as f32 / 6.0 - 1.0);
        s.push_str(&format!("{a},{b},{}\n", if a > b { "yes" } else { "no" }));
    }
    s
}

#[test]
fn kiln_train_accumulates_and_refuses_zero() {
    let d = dir("train");
    let data = d.join("train.csv");
    std::fs::write(&data, csv()).unwrap();
    let out = d.join("m.safetensors");
    let (data, out) = (data.display().to_string(), out.display().to_string());
    let base = ["train", "--data", &data, "--target", "label", "--out", &out, "--backend", "cpu", "--quiet"];
    let o = kiln(&[&base[..], &["--accumulate", "0"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--accumulate 0"), "{}", text(&o));
    let o = kiln(&[&base[..], &["--accumulate", "3", "--batch-size", "5", "--epochs", "4"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::path::Path::new(&out).exists());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn kiln_lm_train_refuses_a_step_past_the_ram_before_allocating() {
    let d = dir("lm-ram");
    let data = d.join("text.txt");
    std::fs::write(&data, "to be or not to be, that is the question\n".repeat(20)).unwrap();
    let out = d.join("lm.safetensors");
    let (data, out) = (data.display().to_string(), out.display().to_string());
    let args = ["lm", "train", "--data", &data, "--out", &out, "--backend", "cpu", "--steps", "2"];
    // 4000 x 4096 tokens of 256 logits alone is 16 TB
    let o = kiln(&[&args[..], &["--batch-size", "4000", "--context", "4096"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = text(&o);
    assert!(e.contains("a step of 4000 x 4096 tokens needs") && e.contains("available"), "{e}");
    assert!(e.contains("--batch-size") && e.contains("--context"), "{e}");
    assert!(!std::path::Path::new(&out).exists());
    // a step that fits prints its memory by kind and trains, accumulated
    let o = kiln(
        &[&args[..], &["--batch-size", "2", "--accumulate", "2", "--context", "8", "--eval-every", "1"]]
            .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    assert!(s.contains("memory: parameters") && s.contains("optimizer state") && s.contains("total"), "{s}");
    assert!(s.contains("2 steps of 4 x 8 tokens (2 micro-batches of 2 accumulated)"), "{s}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn kiln_lm_train_refuses_a_buffer_past_the_adapters_limit() {
    let Some(_gpu) = kiln_device::testing::gpu_or_skip("lm train past the adapter's buffer limit") else {
        return;
    };
    let d = dir("lm-gpu");
    let data = d.join("text.txt");
    std::fs::write(&data, "to be or not to be\n".repeat(20)).unwrap();
    let out = d.join("lm.safetensors");
    let (data, out) = (data.display().to_string(), out.display().to_string());
    // 512 x 2048 tokens of 256 logits: a 1 GiB buffer, past lavapipe's (and most GPUs') limit
    let args = ["lm", "train", "--data", &data, "--out", &out, "--backend", "gpu", "--steps", "2"];
    let o = kiln(&[&args[..], &["--batch-size", "512", "--context", "2048"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = text(&o);
    assert!(e.contains("needs a buffer of") && e.contains("max_buffer_size"), "{e}");
    assert!(!std::path::Path::new(&out).exists());
    std::fs::remove_dir_all(&d).ok();
}
