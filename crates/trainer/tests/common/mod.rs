//! Test helpers: a fresh temp directory per test and small file writers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// An empty directory unique to this test (name + process id), removed and recreated.
pub fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-trainer-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// The error message of `r`, which must be an error.
pub fn err<T: std::fmt::Debug>(r: kiln_trainer::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Asserts that `msg` contains every part, printing the message on failure.
pub fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

/// A safetensors file built by hand (not by Kiln's writer), as another library would write it:
/// `(name, dtype, shape, little-endian bytes)` in file order, no metadata.
pub fn safetensors_bytes(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            dims.join(","),
            data.len(),
            data.len() + bytes.len()
        ));
        data.extend_from_slice(bytes);
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A 2-layer, width-64 Llama (4 query / 2 key-value heads of 16, MLP 160, byte vocabulary) that
/// learns Tiny Shakespeare in a few hundred CPU steps: the language-model tests' small model.
pub fn small_llama() -> kiln_trainer::zoo::LlamaConfig {
    kiln_trainer::zoo::LlamaConfig {
        hidden_size: 64,
        intermediate_size: 160,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: Some(16),
        ..kiln_trainer::zoo::LlamaConfig::tiny()
    }
}
