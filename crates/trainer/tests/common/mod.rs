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
