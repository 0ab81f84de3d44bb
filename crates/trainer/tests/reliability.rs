//! Issue 11 at the library level: class ids always from the model's labels, -0 as 0, a numeric
//! target with typos, physical line numbers, bounded reads of model files, the optimizer pair.

mod common;

use common::{assert_has, err, temp_dir, write};
use kiln_trainer::checkpoint::Checkpoint;
use kiln_trainer::data::{read_csv_from_reader, Target, TaskHint};
use kiln_trainer::prelude::*;

fn csv(text: &str) -> kiln_trainer::data::Table {
    read_csv_from_reader("t.csv".as_ref(), text.as_bytes(), "y", TaskHint::Auto).unwrap()
}

#[test]
fn negative_zero_is_the_class_zero() {
    let t = csv("x,y\n1,0\n2,-0\n3,1\n4,-1\n5,0.0\n");
    assert_eq!(
        t.target,
        Target::Classes { ids: vec![1, 1, 2, 0, 1], names: vec!["-1".into(), "0".into(), "1".into()] }
    );
}

#[test]
fn a_numeric_target_with_a_few_typos_names_them() {
    let mut text = String::from("x,y\n");
    for i in 0..50 {
        text.push_str(&format!("{i},{}.5\n", i * 3));
    }
    text.push_str("1,oops\n");
    let e = err(read_csv_from_reader("t.csv".as_ref(), text.as_bytes(), "y", TaskHint::Auto));
    assert_has(&e, &["t.csv:52", "line 52 'oops'", "1 of 51 cells"]);
    // asked for classes, every value is a class name
    let t = read_csv_from_reader("t.csv".as_ref(), text.as_bytes(), "y", TaskHint::Classification).unwrap();
    assert_eq!(t.target.class_names().unwrap().len(), 51);
}

#[test]
fn csv_lines_are_physical_for_lf_crlf_and_cr() {
    let text = "x,y\n1,a\n\n\"2\n\",b\n3,zz\n";
    for eol in ["\n", "\r\n", "\r"] {
        let t = text.replace('\n', eol).replace("3,zz", "zz,a");
        let e = err(read_csv_from_reader("t.csv".as_ref(), t.as_bytes(), "y", TaskHint::Auto));
        assert_has(&e, &["t.csv:6:", "'zz'"]);
    }
}

fn fitted(classes: &[&str], seed: u64) -> Sequential {
    let mut text = String::from("x,y\n");
    for (i, c) in classes.iter().cycle().take(30).enumerate() {
        text.push_str(&format!("{},{c}\n", i % classes.len()));
    }
    let t = csv(&text);
    let mut m = Sequential::new(&[1]).seed(seed).add(Dense(4, Relu)).add(Dense(classes.len(), Softmax));
    m.compile(Optimizer::adam(1e-2), Loss::CrossEntropy, &[Metric::Accuracy]).unwrap();
    m.fit(&t, &FitOptions { epochs: 2, batch_size: 10, quiet: true, ..Default::default() }).unwrap();
    m
}

#[test]
fn evaluate_refuses_data_whose_class_ids_are_not_the_models() {
    let mut m = fitted(&["a", "b", "c"], 0);
    assert_eq!(m.data.labels.as_deref(), Some(&["a".to_string(), "b".into(), "c".into()][..]));
    // a test set without class "b" numbers "c" as 1
    let test = csv("x,y\n0,a\n2,c\n");
    assert_has(&err(m.evaluate(&test, 8)), &["numbers its classes [a, c]", "the model's are [a, b, c]"]);
    let same = csv("x,y\n0,a\n1,b\n2,c\n");
    assert!(m.evaluate(&same, 8).is_ok());
    let labels = m.data.labels.clone().unwrap();
    let relabeled = test.relabel(&labels).unwrap();
    assert_eq!(relabeled.target, Target::Classes { ids: vec![0, 2], names: labels.clone() });
    assert!(m.evaluate(&relabeled, 8).is_ok());
    assert_has(&err(csv("x,y\n0,a\n1,z\n").relabel(&labels)), &["class 'z'"]);
}

#[test]
fn model_files_are_read_within_their_real_size() {
    let d = temp_dir("rel-read");
    let e = err(Checkpoint::read("/dev/zero"));
    assert_has(&e, &["/dev/zero", "not a regular file"]);
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}      ");
    let p = write(&d, "claims.safetensors", &bytes);
    assert_has(&err(Checkpoint::read(&p)), &["implausible"]);
    let mut bytes = 96u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let p = write(&d, "short.safetensors", &bytes);
    assert_has(&err(Checkpoint::read(&p)), &["truncated", "needs 96 bytes"]);
}

#[test]
fn a_save_records_its_optimizer_file_and_load_detects_another() {
    let d = temp_dir("rel-pair");
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    let mut m = fitted(&["a", "b"], 0);
    m.save(&a).unwrap();
    let mut n = fitted(&["a", "b"], 1);
    n.save(&b).unwrap();
    assert!(Sequential::load(&a).is_ok());
    std::fs::copy(d.join("b.optim.safetensors"), d.join("a.optim.safetensors")).unwrap();
    assert_has(&err(Sequential::load(&a).map(|_| ())), &["a.optim.safetensors", "does not belong to"]);
    std::fs::remove_file(d.join("a.optim.safetensors")).unwrap();
    assert!(Sequential::load(&a).is_ok(), "the model alone loads (to predict)");
    assert_has(&err(kiln_trainer::validate::require_optimizer_file(&a)), &["a.optim.safetensors", "missing"]);
}
