mod common;

use std::path::Path;

use common::{assert_has, err, golden, temp_dir};
use kiln_trainer::checkpoint::{Checkpoint, LABELS, STANDARDIZER, STEP};
use kiln_trainer::data::Standardizer;

#[test]
fn reads_the_golden_file_written_by_python() {
    let ck = Checkpoint::read(golden("tiny.safetensors")).unwrap();
    let names: Vec<&str> = ck.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"], "file order");
    let w = ck.get("0.weight").unwrap();
    assert_eq!(w.shape, vec![2, 3]);
    assert_eq!(w.data, vec![0.1, -0.2, 0.3, 1.5, -2.25, 1e-3]);
    assert_eq!(ck.get("0.bias").unwrap().shape, vec![2]);
    assert_eq!(ck.get("0.bias").unwrap().data, vec![0.5, -0.5]);
    assert_eq!(ck.get("2.weight").unwrap().shape, vec![1, 2]);
    assert_eq!(ck.get("2.weight").unwrap().data, vec![3.0, -4.0]);
    assert_eq!(ck.get("2.bias").unwrap().data, vec![0.25]);
    assert_eq!(ck.json::<u64>(STEP).unwrap(), Some(7));
    assert_eq!(ck.json::<Vec<String>>(LABELS).unwrap(), Some(vec!["cat".to_string(), "dog".to_string()]));
    assert_eq!(ck.json::<u64>("kiln.absent").unwrap(), None);
    assert_has(&err(ck.json::<u64>(LABELS)), &["metadata 'kiln.labels'"]);
}

fn sample() -> Checkpoint {
    let mut ck = Checkpoint::new();
    ck.push("0.weight", &[3, 2], vec![1.0, -2.0, 3.5, 1e-7, -0.0, 7.25]).unwrap();
    ck.push("0.bias", &[3], vec![0.1, 0.2, 0.3]).unwrap();
    ck.push("scalar", &[], vec![42.0]).unwrap();
    ck.push("empty", &[0, 4], vec![]).unwrap();
    ck.set_json(STEP, &1234u64).unwrap();
    let st = Standardizer { mean: vec![1.5, -2.0], std: vec![0.5, 3.0] };
    ck.set_json(STANDARDIZER, &st).unwrap();
    ck
}

#[test]
fn round_trip_rust_file_rust() {
    let d = temp_dir("ck-roundtrip");
    let p = d.join("model.safetensors");
    let ck = sample();
    ck.write(&p).unwrap();
    let back = Checkpoint::read(&p).unwrap();
    assert_eq!(back, ck);
    let st: Standardizer = back.json(STANDARDIZER).unwrap().unwrap();
    assert_eq!(st.std, vec![0.5, 3.0]);
    // Header is padded to 8 bytes, so the data starts aligned.
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(n % 8, 0);
    assert_eq!(bytes.len() as u64, 8 + n + 4 * (6 + 3 + 1));
    // No temp file is left behind.
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("model.safetensors")]);
}

#[test]
fn a_failed_write_leaves_the_existing_file_alone() {
    let d = temp_dir("ck-atomic");
    let p = d.join("model.safetensors");
    sample().write(&p).unwrap();
    let before = std::fs::read(&p).unwrap();

    let mut bad = sample();
    bad.tensors[1].data.pop(); // 2 values for shape [3]
    assert_has(&err(bad.write(&p)), &["tensor '0.bias'", "[3]", "2 values"]);
    let mut dup = sample();
    dup.tensors[1].name = "0.weight".into();
    assert_has(&err(dup.write(&p)), &["'0.weight'", "used twice"]);
    assert_eq!(std::fs::read(&p).unwrap(), before);

    // Rename onto a directory fails after the temp file is written: it must be cleaned up.
    let target_dir = d.join("is-a-dir");
    std::fs::create_dir(&target_dir).unwrap();
    std::fs::write(target_dir.join("keep"), b"x").unwrap();
    assert!(sample().write(&target_dir).is_err());
    let mut left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["is-a-dir", "model.safetensors"]);

    assert_has(&err(sample().write(d.join("no/such/dir/m.safetensors"))), &["no/such/dir"]);
    assert_has(&err(Checkpoint::new().push("w", &[2, 2], vec![0.0; 3])), &["tensor 'w'", "3 values"]);
}

fn golden_bytes() -> Vec<u8> {
    std::fs::read(golden("tiny.safetensors")).unwrap()
}

/// Replaces `from` by `to` (same length) in the header of the golden file.
fn patched(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut b = golden_bytes();
    let at = b.windows(from.len()).position(|w| w == from.as_bytes()).unwrap();
    b[at..at + to.len()].copy_from_slice(to.as_bytes());
    b
}

fn read_err(bytes: &[u8]) -> String {
    err(Checkpoint::from_bytes(Path::new("bad.safetensors"), bytes))
}

#[test]
fn corrupt_files_name_the_file_and_tensor() {
    let g = golden_bytes();
    // Truncated in the data: the last tensor in the file is cut.
    assert_has(&read_err(&g[..g.len() - 2]), &["bad.safetensors", "tensor '2.bias'", "truncated"]);
    // Truncated in the header, and before the header length.
    assert_has(&read_err(&g[..50]), &["bad.safetensors", "truncated", "header needs"]);
    assert_has(&read_err(&g[..5]), &["bad.safetensors", "truncated"]);
    // Bad header: not JSON, implausible length.
    let mut b = g.clone();
    b[8] = b'[';
    assert_has(&read_err(&b), &["bad.safetensors", "header JSON"]);
    let mut b = g.clone();
    b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_has(&read_err(&b), &["bad.safetensors", "implausible"]);
    // Not F32.
    let b = patched("\"0.bias\":{\"dtype\":\"F32\"", "\"0.bias\":{\"dtype\":\"F16\"");
    assert_has(&read_err(&b), &["tensor '0.bias'", "dtype F16"]);
    // Byte length does not match the shape.
    let b = patched("\"shape\":[2],", "\"shape\":[3],");
    assert_has(&read_err(&b), &["tensor '0.bias'", "hold 8 bytes", "[3]", "needs 12"]);
    // Missing fields.
    let b = patched("\"shape\":[2],", "\"shope\":[2],");
    assert_has(&read_err(&b), &["tensor '0.bias'", "bad header entry"]);
    // Trailing garbage after the last tensor.
    let mut b = g.clone();
    b.extend_from_slice(&[0; 4]);
    assert_has(&read_err(&b), &["bad.safetensors", "4 bytes after the last tensor"]);
    // Metadata values must be strings.
    let b = patched("\"kiln.step\":\"7\"", "\"kiln.step\": 7 ");
    assert_has(&read_err(&b), &["'kiln.step' is not a string"]);
    // Missing file.
    assert_has(&err(Checkpoint::read("/nonexistent/kiln.safetensors")), &["/nonexistent/kiln.safetensors"]);
}
