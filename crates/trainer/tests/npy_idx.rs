mod common;

use common::{assert_has, err, golden, temp_dir, write};
use kiln_trainer::data::{read_idx_f32, read_idx_u32, read_npy_f32, read_npy_u32, Table, Target};

/// An NPY file as np.save writes it: version 1 (u16 header length) or 2 (u32).
fn npy(version: u8, descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let prefix = if version == 1 { 10 } else { 12 };
    while (prefix + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY".to_vec();
    b.extend_from_slice(&[version, 0]);
    if version == 1 {
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn le<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

#[test]
fn npy_golden_files_written_by_numpy() {
    let x = read_npy_f32(golden("features_f8.npy")).unwrap();
    assert_eq!(x.shape, vec![2, 3]);
    assert_eq!(x.data, vec![0.5, -1.0, 2.25, 3.0, 0.0, -0.125]);
    let y = read_npy_u32(golden("labels_i8.npy")).unwrap();
    assert_eq!((y.shape.clone(), y.data.clone()), (vec![2], vec![1, 0]));
    let t = Table::from_arrays(x, Some(y)).unwrap();
    assert_eq!((t.rows, t.cols), (2, 3));
    assert_eq!(t.target.class_names().unwrap().len(), 2);
}

#[test]
fn npy_every_dtype_v1_and_v2() {
    let d = temp_dir("npy-dtypes");
    let f4 = le(&[1.5f32, -2.0, 0.25, 8.0], f32::to_le_bytes);
    let p = write(&d, "f4.npy", npy(1, "<f4", "(2, 2)", false, &f4));
    let a = read_npy_f32(&p).unwrap();
    assert_eq!((a.shape, a.data), (vec![2, 2], vec![1.5, -2.0, 0.25, 8.0]));

    let f8 = le(&[1.25f64, -3.0, 1e3], f64::to_le_bytes);
    let p = write(&d, "f8.npy", npy(2, "<f8", "(3,)", false, &f8));
    assert_eq!(read_npy_f32(&p).unwrap().data, vec![1.25, -3.0, 1000.0]);

    let p = write(&d, "u1.npy", npy(1, "|u1", "(1, 3)", false, &[0, 7, 255]));
    assert_eq!(read_npy_f32(&p).unwrap().data, vec![0.0, 7.0, 255.0]);
    assert_eq!(read_npy_u32(&p).unwrap().data, vec![0, 7, 255]);

    let p = write(&d, "i1.npy", npy(1, "|i1", "(2,)", false, &[0xff, 5]));
    assert_eq!(read_npy_f32(&p).unwrap().data, vec![-1.0, 5.0]);

    let i4 = le(&[3i32, -70000], i32::to_le_bytes);
    let p = write(&d, "i4.npy", npy(1, "<i4", "(2,)", false, &i4));
    assert_eq!(read_npy_f32(&p).unwrap().data, vec![3.0, -70000.0]);

    let i8 = le(&[9i64, 4_000_000_000], i64::to_le_bytes);
    let p = write(&d, "i8.npy", npy(2, "<i8", "(2,)", false, &i8));
    assert_eq!(read_npy_u32(&p).unwrap().data, vec![9, 4_000_000_000]);

    // A 0-d array and an empty one.
    let p = write(&d, "s.npy", npy(1, "<f4", "()", false, &f4[..4]));
    let a = read_npy_f32(&p).unwrap();
    assert_eq!((a.shape, a.data), (vec![], vec![1.5]));
    let p = write(&d, "z.npy", npy(1, "<f4", "(0, 3)", false, &[]));
    assert_eq!(read_npy_f32(&p).unwrap().shape, vec![0, 3]);
}

#[test]
fn npy_bad_files() {
    let d = temp_dir("npy-bad");
    let f4 = le(&[1.0f32, 2.0, 3.0, 4.0], f32::to_le_bytes);
    let p = write(&d, "trunc.npy", npy(1, "<f4", "(2, 2)", false, &f4[..13]));
    assert_has(&err(read_npy_f32(&p)), &["trunc.npy", "truncated", "needs 16 data bytes", "has 13"]);
    let full = npy(1, "<f4", "(2, 2)", false, &f4);
    let p = write(&d, "hdr.npy", &full[..40]);
    assert_has(&err(read_npy_f32(&p)), &["hdr.npy", "truncated header"]);
    let p = write(&d, "magic.npy", b"PK\x03\x04 this is a zip");
    assert_has(&err(read_npy_f32(&p)), &["magic.npy", "magic"]);
    let p = write(&d, "fortran.npy", npy(1, "<f4", "(2, 2)", true, &f4));
    assert_has(&err(read_npy_f32(&p)), &["fortran.npy", "Fortran"]);
    let p = write(&d, "be.npy", npy(1, ">f4", "(2, 2)", false, &f4));
    assert_has(&err(read_npy_f32(&p)), &["be.npy", "unsupported NPY dtype '>f4'"]);
    let p = write(&d, "c8.npy", npy(1, "<c8", "(2,)", false, &f4));
    assert_has(&err(read_npy_f32(&p)), &["c8.npy", "'<c8'"]);
    let p = write(&d, "float-labels.npy", npy(1, "<f4", "(4,)", false, &f4));
    assert_has(&err(read_npy_u32(&p)), &["float-labels.npy", "not an integer type"]);
    let neg = le(&[1i32, -1], i32::to_le_bytes);
    let p = write(&d, "neg.npy", npy(1, "<i4", "(2,)", false, &neg));
    assert_has(&err(read_npy_u32(&p)), &["neg.npy", "element #1 = -1"]);
    let nan = le(&[1.0f32, f32::NAN], f32::to_le_bytes);
    let p = write(&d, "nan.npy", npy(1, "<f4", "(2,)", false, &nan));
    assert_has(&err(read_npy_f32(&p)), &["nan.npy", "element #1", "not finite"]);
    let big = le(&[1e300f64], f64::to_le_bytes);
    let p = write(&d, "big.npy", npy(1, "<f8", "(1,)", false, &big));
    assert_has(&err(read_npy_f32(&p)), &["big.npy", "element #0", "not finite"]);
    assert_has(&err(read_npy_f32(d.join("absent.npy"))), &["absent.npy"]);
}

/// An IDX file: magic, big-endian u32 dims, data.
fn idx(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

#[test]
fn idx_images_and_labels() {
    let d = temp_dir("idx-ok");
    let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
    let images = write(&d, "images-idx3-ubyte", idx(0x08, &[2, 2, 3], &pixels));
    let labels = write(&d, "labels-idx1-ubyte", idx(0x08, &[2], &[7, 3]));
    let x = read_idx_f32(&images).unwrap();
    assert_eq!(x.shape, vec![2, 2, 3]);
    assert_eq!(x.data[11], 220.0);
    let y = read_idx_u32(&labels).unwrap();
    assert_eq!(y.data, vec![7, 3]);
    let t = Table::from_arrays(x, Some(y)).unwrap();
    assert_eq!((t.rows, t.cols), (2, 6));
    assert_eq!(t.row(1), &[120.0, 140.0, 160.0, 180.0, 200.0, 220.0]);
    assert_eq!(t.target, Target::Classes { ids: vec![7, 3], names: (0..8).map(|c| c.to_string()).collect() });

    let f = le(&[0.5f32, -1.5], f32::to_be_bytes);
    let p = write(&d, "f32.idx", idx(0x0D, &[2], &f));
    assert_eq!(read_idx_f32(&p).unwrap().data, vec![0.5, -1.5]);
    let i = le(&[-2i32, 100_000], i32::to_be_bytes);
    let p = write(&d, "i32.idx", idx(0x0C, &[2], &i));
    assert_eq!(read_idx_f32(&p).unwrap().data, vec![-2.0, 100_000.0]);
}

#[test]
fn idx_bad_files() {
    let d = temp_dir("idx-bad");
    let p = write(&d, "trunc.idx", idx(0x08, &[2, 2, 3], &[1; 11]));
    assert_has(&err(read_idx_f32(&p)), &["trunc.idx", "truncated", "needs 12 data bytes", "has 11"]);
    let p = write(&d, "hdr.idx", &idx(0x08, &[2, 2, 3], &[])[..9]);
    assert_has(&err(read_idx_f32(&p)), &["hdr.idx", "truncated IDX header"]);
    let p = write(&d, "gz.idx", [0x1f, 0x8b, 8, 0, 0, 0]);
    assert_has(&err(read_idx_f32(&p)), &["gz.idx", "gzip"]);
    let p = write(&d, "magic.idx", [1, 2, 3, 4, 5]);
    assert_has(&err(read_idx_f32(&p)), &["magic.idx", "bad magic"]);
    let p = write(&d, "type.idx", idx(0x07, &[1], &[1]));
    assert_has(&err(read_idx_f32(&p)), &["type.idx", "unknown element type 0x07"]);
    let p = write(&d, "float.idx", idx(0x0D, &[1], &[0, 0, 0, 0]));
    assert_has(&err(read_idx_u32(&p)), &["float.idx", "not an integer type"]);
}

#[test]
fn from_arrays_checks_row_counts() {
    let d = temp_dir("idx-shape");
    let x = read_idx_f32(write(&d, "x", idx(0x08, &[3, 2], &[0; 6]))).unwrap();
    let y = read_idx_u32(write(&d, "y", idx(0x08, &[2], &[0, 1]))).unwrap();
    assert_has(&err(Table::from_arrays(x, Some(y))), &["shape mismatch", "labels", "[3]", "[2]"]);
}

#[test]
fn mnist_directory_loads_as_two_tables() {
    use kiln_trainer::data::{load_mnist, MNIST_FILES};
    let d = temp_dir("mnist");
    // 3 training images of 4 x 5 pixels, 2 test images, odd values
    let train_px: Vec<u8> = (0..60).map(|i| (i * 37 % 256) as u8).collect();
    let test_px: Vec<u8> = (0..40).map(|i| (i * 11 + 3) as u8).collect();
    write(&d, MNIST_FILES[0], idx(0x08, &[3, 4, 5], &train_px));
    write(&d, MNIST_FILES[1], idx(0x08, &[3], &[9, 0, 4]));
    write(&d, MNIST_FILES[2], idx(0x08, &[2, 4, 5], &test_px));
    write(&d, MNIST_FILES[3], idx(0x08, &[2], &[1, 7]));
    let (train, test) = load_mnist(&d).unwrap();
    assert_eq!((train.rows, train.cols, test.rows, test.cols), (3, 20, 2, 20));
    assert_eq!(train.row(2)[19], train_px[59] as f32 / 255.0);
    assert_eq!(test.row(1)[0], test_px[20] as f32 / 255.0);
    let ten: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    assert_eq!(train.target, Target::Classes { ids: vec![9, 0, 4], names: ten.clone() });
    assert_eq!(test.target, Target::Classes { ids: vec![1, 7], names: ten });

    // labels that disagree with the images, a label out of range, a missing (gzipped) file
    write(&d, MNIST_FILES[3], idx(0x08, &[3], &[1, 7, 2]));
    assert_has(&err(load_mnist(&d)), &[MNIST_FILES[3], "[3] labels for 2 images"]);
    write(&d, MNIST_FILES[3], idx(0x08, &[2], &[1, 10]));
    assert_has(&err(load_mnist(&d)), &[MNIST_FILES[3], "label #1 is 10"]);
    std::fs::rename(d.join(MNIST_FILES[0]), d.join(format!("{}.gz", MNIST_FILES[0]))).unwrap();
    assert_has(&err(load_mnist(&d)), &[MNIST_FILES[0], "gunzip"]);
}
