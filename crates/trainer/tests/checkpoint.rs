mod common;

use std::path::Path;

use common::{assert_has, err, f32_bytes, golden, safetensors_bytes, temp_dir};
use kiln_trainer::checkpoint::{Checkpoint, Dtype, LABELS, STANDARDIZER, STEP};
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
    // A dtype Kiln does not read (F16 and others are read, see below).
    let b = patched("\"0.bias\":{\"dtype\":\"F32\"", "\"0.bias\":{\"dtype\":\"I16\"");
    assert_has(&read_err(&b), &["tensor '0.bias'", "dtype I16 is not supported", "I64"]);
    // A dtype whose element size does not match the byte length: [2] of F16 is 4 bytes, not 8.
    let b = patched("\"0.bias\":{\"dtype\":\"F32\"", "\"0.bias\":{\"dtype\":\"F16\"");
    assert_has(&read_err(&b), &["tensor '0.bias'", "hold 8 bytes", "of F16 needs 4"]);
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

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn reads_int_and_other_float_dtypes_as_f32() {
    let f16 = |bits: &[u16]| bits.iter().flat_map(|b| b.to_le_bytes()).collect::<Vec<u8>>();
    let bytes = safetensors_bytes(&[
        ("1.num_batches_tracked", "I64", vec![], i64_bytes(&[7])),
        ("w", "F32", vec![2], f32_bytes(&[0.5, -1.25])),
        ("count32", "I32", vec![3], [-5i32, 0, 1 << 24].iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("f64", "F64", vec![2], [0.1f64, -3.5].iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("half", "F16", vec![2], f16(&[0x3E00, 0xC000])), // 1.5, -2.0
        ("brain", "BF16", vec![2], f16(&[0x3F80, 0xBF00])), // 1.0, -0.5
        ("ints", "I64", vec![2, 2], i64_bytes(&[-(1 << 24), 3, 1 << 40, 0])),
    ]);
    let ck = Checkpoint::from_bytes(Path::new("torch.safetensors"), &bytes).unwrap();
    let get = |n: &str| ck.get(n).unwrap();
    assert_eq!(get("1.num_batches_tracked").data, vec![7.0]);
    assert_eq!(get("1.num_batches_tracked").shape, Vec::<usize>::new());
    assert_eq!(get("1.num_batches_tracked").dtype, Dtype::I64);
    assert_eq!(get("w").dtype, Dtype::F32);
    assert_eq!(get("count32").data, vec![-5.0, 0.0, 16_777_216.0]);
    assert_eq!(get("f64").data, vec![0.1f64 as f32, -3.5]);
    assert_eq!(get("half").data, vec![1.5, -2.0]);
    assert_eq!(get("brain").data, vec![1.0, -0.5]);
    assert_eq!(get("ints").data, vec![-16_777_216.0, 3.0, (1u64 << 40) as f32, 0.0]);
    let names: Vec<&str> = ck.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["1.num_batches_tracked", "w", "count32", "f64", "half", "brain", "ints"]);

    // written back in the same dtypes, and read back equal
    let again = ck.to_bytes().unwrap();
    let back = Checkpoint::from_bytes(Path::new("again.safetensors"), &again).unwrap();
    assert_eq!(back, ck);
    assert_eq!(again.len(), bytes.len(), "same dtypes, same sizes");
}

#[test]
fn values_f32_cannot_hold_are_errors_naming_the_tensor() {
    let read = |dtype: &str, data: Vec<u8>, n: usize| {
        read_err(&safetensors_bytes(&[
            ("ok", "F32", vec![1], f32_bytes(&[1.0])),
            ("big", dtype, vec![n], data),
        ]))
    };
    // 2^24 + 1 is the first integer f32 rounds
    let e = read("I64", i64_bytes(&[1, (1 << 24) + 1]), 2);
    assert_has(&e, &["bad.safetensors", "tensor 'big'", "I64 element 1", "16777217", "exactly"]);
    let e = read("I32", ((1i32 << 24) + 1).to_le_bytes().to_vec(), 1);
    assert_has(&e, &["tensor 'big'", "I32 element 0", "16777217"]);
    // i64::MAX rounds to 2^63 in f32, which is not i64::MAX (a saturating check would miss it)
    let e = read("I64", i64_bytes(&[i64::MAX]), 1);
    assert_has(&e, &["tensor 'big'", "9223372036854775807"]);
    let e = read("F64", 1e300f64.to_le_bytes().to_vec(), 1);
    assert_has(&e, &["tensor 'big'", "F64 element 0", "outside f32's range"]);
    // a wrong byte length for the dtype: 1 element of I64 is 8 bytes
    let e = read("I64", vec![0; 4], 1);
    assert_has(&e, &["tensor 'big'", "of I64 needs 8"]);

    // writing: an integer dtype takes whole numbers in range only
    for bad in [1.5, f32::NAN, 2f32.powi(63), 2f32.powi(31)] {
        let dtype = if bad == 2f32.powi(31) { Dtype::I32 } else { Dtype::I64 };
        let mut ck = Checkpoint::new();
        ck.push_as("count", &[2], vec![3.0, bad], dtype).unwrap();
        let d = temp_dir("ck-int-write");
        let e = err(ck.write(d.join("m.safetensors")));
        assert_has(&e, &["tensor 'count'", "element 1", "not a whole number"]);
    }
    let mut ck = Checkpoint::new();
    ck.push_as("count", &[3], vec![-(2f32.powi(63)), 0.0, 2f32.powi(62)], Dtype::I64).unwrap();
    // the ends of i64's range that f32 holds exactly round-trip
    let back = Checkpoint::from_bytes(Path::new("x"), &ck.to_bytes().unwrap()).unwrap();
    assert_eq!(back, ck);
}

/// `Checkpoint::read` reads each tensor by its offset (the file is never held whole); it must
/// give what parsing the whole file's bytes gives, values and errors alike.
#[test]
fn reading_by_offset_matches_parsing_the_whole_file() {
    let d = temp_dir("by-offset");
    let path = d.join("m.safetensors");
    let g = golden_bytes();
    std::fs::write(&path, &g).unwrap();
    assert_eq!(Checkpoint::read(&path).unwrap(), Checkpoint::from_bytes(&path, &g).unwrap());
    // A file of several dtypes: each tensor decoded from its own span.
    let mut ck = Checkpoint::new();
    ck.push_as("a", &[3], vec![1.5, -2.0, 7.0], Dtype::F16).unwrap();
    ck.push_as("b", &[2, 2], vec![0.25, 1.0, -3.0, 9.0], Dtype::F32).unwrap();
    ck.push_as("c", &[1], vec![41.0], Dtype::I64).unwrap();
    ck.write(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let back = Checkpoint::read(&path).unwrap();
    assert_eq!(back, Checkpoint::from_bytes(&path, &bytes).unwrap());
    assert_eq!(back.get("a").unwrap().data, vec![1.5, -2.0, 7.0]);
    assert_eq!(back.get("c").unwrap().data, vec![41.0]);
    for (from, to) in [
        ("\"0.bias\":{\"dtype\":\"F32\"", "\"0.bias\":{\"dtype\":\"I16\""),
        ("\"shape\":[2],", "\"shape\":[3],"),
        ("\"shape\":[2],", "\"shope\":[2],"),
        ("\"kiln.step\":\"7\"", "\"kiln.step\": 7 "),
    ] {
        let b = patched(from, to);
        std::fs::write(&path, &b).unwrap();
        assert_eq!(err(Checkpoint::read(&path)), err(Checkpoint::from_bytes(&path, &b)), "{to}");
    }
    let mut b = g.clone();
    b.extend_from_slice(&[0; 4]);
    std::fs::write(&path, &b).unwrap();
    assert_has(&err(Checkpoint::read(&path)), &["m.safetensors", "4 bytes after the last tensor"]);
    std::fs::write(&path, &g[..g.len() - 2]).unwrap();
    assert_has(&err(Checkpoint::read(&path)), &["m.safetensors", "truncated"]);
    std::fs::remove_dir_all(&d).ok();
}
