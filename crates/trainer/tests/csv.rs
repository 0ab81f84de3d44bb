mod common;

use common::{assert_has, err, temp_dir, write};
use kiln_trainer::data::{
    check_feature_names, read_csv, read_csv_labeled, read_csv_unlabeled, Target, TaskHint,
};
use kiln_trainer::Error;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn text_target_becomes_sorted_classes() {
    let d = temp_dir("csv-text");
    let p = write(&d, "t.csv", "a,b,y\n1,2,dog\n3,4.5,cat\n-5,6e1,dog\n");
    let t = read_csv(&p, "y", TaskHint::Auto).unwrap();
    assert_eq!((t.rows, t.cols), (3, 2));
    assert_eq!(t.features, vec![1.0, 2.0, 3.0, 4.5, -5.0, 60.0]);
    assert_eq!(t.feature_names, names(&["a", "b"]));
    assert_eq!(t.target, Target::Classes { ids: vec![1, 0, 1], names: names(&["cat", "dog"]) });
}

#[test]
fn quoting_bom_crlf_whitespace_and_target_in_the_middle() {
    let d = temp_dir("csv-quoting");
    let p = write(&d, "q.csv", "\u{feff}\"x 1\",label,\"x,2\"\r\n 1.5 ,\"a, b\",2\r\n3,\"c\"\"d\",4\r\n");
    let t = read_csv(&p, "label", TaskHint::Auto).unwrap();
    assert_eq!(t.feature_names, names(&["x 1", "x,2"]));
    assert_eq!(t.features, vec![1.5, 2.0, 3.0, 4.0]);
    assert_eq!(t.target.class_names().unwrap(), &names(&["a, b", "c\"d"])[..]);
}

#[test]
fn numeric_target_auto_classes_or_regression() {
    let d = temp_dir("csv-auto");
    // Integers, few distinct: classes sorted by value, not as text ("10" after "2").
    let p = write(&d, "c.csv", "f,y\n0,10\n1,2\n2,2\n3,1\n");
    let t = read_csv(&p, "y", TaskHint::Auto).unwrap();
    assert_eq!(t.target, Target::Classes { ids: vec![2, 1, 1, 0], names: names(&["1", "2", "10"]) });
    // Same file, forced regression.
    let t = read_csv(&p, "y", TaskHint::Regression).unwrap();
    assert_eq!(t.target, Target::Regression(vec![10.0, 2.0, 2.0, 1.0]));
    // A fraction: regression under Auto, classes named by value when forced.
    let p = write(&d, "r.csv", "f,y\n0,2.5\n1,1\n");
    let t = read_csv(&p, "y", TaskHint::Auto).unwrap();
    assert_eq!(t.target, Target::Regression(vec![2.5, 1.0]));
    let t = read_csv(&p, "y", TaskHint::Classification).unwrap();
    assert_eq!(t.target, Target::Classes { ids: vec![1, 0], names: names(&["1", "2.5"]) });
}

#[test]
fn auto_class_limit_is_twenty_distinct_integers() {
    let d = temp_dir("csv-limit");
    let rows = |k: usize| {
        let mut s = String::from("f,y\n");
        for i in 0..k {
            s += &format!("{i},{i}\n");
        }
        s
    };
    let t = read_csv(write(&d, "20.csv", rows(20)), "y", TaskHint::Auto).unwrap();
    assert_eq!(t.target.class_names().map(|n| n.len()), Some(20));
    let t = read_csv(write(&d, "21.csv", rows(21)), "y", TaskHint::Auto).unwrap();
    assert!(matches!(t.target, Target::Regression(ref v) if v.len() == 21));
}

#[test]
fn missing_file_names_the_path() {
    let d = temp_dir("csv-missing");
    let p = d.join("nope.csv");
    let e = read_csv(&p, "y", TaskHint::Auto).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_has(&e.to_string(), &["nope.csv"]);
}

#[test]
fn empty_and_header_only_files() {
    let d = temp_dir("csv-empty");
    let m = err(read_csv(write(&d, "e.csv", ""), "y", TaskHint::Auto));
    assert_has(&m, &["e.csv", "empty"]);
    let m = err(read_csv(write(&d, "h.csv", "a,b,y\n"), "y", TaskHint::Auto));
    assert_has(&m, &["h.csv", "header but no data rows"]);
    let m = err(read_csv_unlabeled(write(&d, "h2.csv", "a,b")));
    assert_has(&m, &["h2.csv", "header but no data rows"]);
}

#[test]
fn ragged_row_names_line_and_counts() {
    let d = temp_dir("csv-ragged");
    let p = write(&d, "r.csv", "a,b,y\n1,2,x\n3,4\n");
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["r.csv:3:", "expected 3 fields", "found 2"]);
    let p = write(&d, "r2.csv", "a,b,y\n1,2,x\n3,4,x,9\n");
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["r2.csv:3:", "found 4"]);
}

#[test]
fn non_numeric_feature_names_line_and_column() {
    let d = temp_dir("csv-nonnum");
    let p = write(&d, "n.csv", "a,b,y\n1,2,x\n3,4,x\n5,abc,y\n");
    assert_has(
        &err(read_csv(&p, "y", TaskHint::Auto)),
        &["n.csv:4:", "column 'b' (#2)", "'abc' is not a number"],
    );
    // Line numbers count physical lines: a quoted newline in line 2 pushes the next record to line 4.
    let p = write(&d, "m.csv", "a,y,b\n1,\"two\nlines\",2\n3,z,oops\n");
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["m.csv:4:", "column 'b' (#3)", "'oops'"]);
}

#[test]
fn empty_cells_are_errors() {
    let d = temp_dir("csv-emptycell");
    let p = write(&d, "f.csv", "a,b,y\n1,,x\n");
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["f.csv:2:", "column 'b' (#2)", "empty cell"]);
    let p = write(&d, "t.csv", "a,y\n1,x\n2,\n");
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["t.csv:3:", "column 'y' (#2)", "empty cell"]);
}

#[test]
fn missing_target_column_lists_the_columns() {
    let d = temp_dir("csv-notarget");
    let p = write(&d, "m.csv", "a,b,y\n1,2,3\n");
    assert_has(&err(read_csv(&p, "label", TaskHint::Auto)), &["m.csv", "no column named 'label'", "a, b, y"]);
}

#[test]
fn nan_and_infinity_are_errors() {
    let d = temp_dir("csv-nan");
    let p = write(&d, "f.csv", "a,b,y\n1,2,3\nNaN,2,3\n");
    assert_has(
        &err(read_csv(&p, "y", TaskHint::Auto)),
        &["f.csv:3:", "column 'a' (#1)", "'NaN'", "not finite"],
    );
    let p = write(&d, "g.csv", "a,b,y\n1,inf,3\n");
    assert_has(
        &err(read_csv(&p, "y", TaskHint::Auto)),
        &["g.csv:2:", "column 'b' (#2)", "'inf'", "not finite"],
    );
    let p = write(&d, "t.csv", "a,y\n1,0.5\n2,-inf\n");
    for task in [TaskHint::Auto, TaskHint::Regression, TaskHint::Classification] {
        assert_has(&err(read_csv(&p, "y", task)), &["t.csv:3:", "column 'y' (#2)", "'-inf'", "not finite"]);
    }
}

#[test]
fn regression_target_must_be_numeric() {
    let d = temp_dir("csv-regtext");
    let p = write(&d, "r.csv", "a,price\n1,3.5\n2,cheap\n");
    assert_has(
        &err(read_csv(&p, "price", TaskHint::Regression)),
        &["r.csv:3:", "column 'price' (#2)", "'cheap' is not a number"],
    );
}

#[test]
fn duplicate_column_names_are_errors() {
    let d = temp_dir("csv-dup");
    let p = write(&d, "d.csv", "a,b,a,y\n1,2,3,4\n");
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["d.csv:1:", "'a' appears twice (#1 and #3)"]);
}

#[test]
fn invalid_utf8_names_the_line() {
    let d = temp_dir("csv-utf8");
    let p = write(&d, "u.csv", b"a,y\n1,x\n2,\xff\xfe\n".as_slice());
    assert_has(&err(read_csv(&p, "y", TaskHint::Auto)), &["u.csv:3:", "UTF-8"]);
}

#[test]
fn unlabeled_reads_every_column_as_a_feature() {
    let d = temp_dir("csv-unlabeled");
    let p = write(&d, "p.csv", "a,b\n1,2\n3,4\n");
    let t = read_csv_unlabeled(&p).unwrap();
    assert_eq!((t.rows, t.cols), (2, 2));
    assert_eq!(t.features, vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(t.target, Target::None);
}

#[test]
fn labeled_uses_the_saved_class_names() {
    let d = temp_dir("csv-labeled");
    // The saved model knows three classes; this file has only two of them, one written "2.0".
    let known = names(&["0", "1", "2"]);
    let p = write(&d, "l.csv", "a,y\n1,2.0\n2,0\n");
    let t = read_csv_labeled(&p, "y", &known).unwrap();
    assert_eq!(t.target, Target::Classes { ids: vec![2, 0], names: known.clone() });
    let p = write(&d, "u.csv", "a,y\n1,2\n2,7\n");
    assert_has(
        &err(read_csv_labeled(&p, "y", &known)),
        &["u.csv:3:", "column 'y' (#2)", "unknown class '7'", "0, 1, 2"],
    );
}

#[test]
fn feature_names_check_names_the_difference() {
    let p = std::path::Path::new("new.csv");
    let model = names(&["a", "b", "c"]);
    assert!(check_feature_names(p, &model, &model).is_ok());
    let m = err(check_feature_names(p, &names(&["a", "c", "d"]), &model));
    assert_has(&m, &["new.csv", "missing 'b'", "unexpected 'd'"]);
    let m = err(check_feature_names(p, &names(&["a", "c", "b"]), &model));
    assert_has(&m, &["different order", "feature #2 is 'c'", "expects 'b'"]);
}

/// An I/O error names the file and its OS cause in its message, and does not return that cause
/// again as its `source()`: an error chain printed with `{:#}` or `Caused by:` shows it once.
#[test]
fn io_errors_carry_their_cause_once() {
    use std::error::Error as _;
    let e =
        kiln_trainer::data::read_csv("/nonexistent/kiln.csv", "label", kiln_trainer::data::TaskHint::Auto)
            .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("/nonexistent/kiln.csv") && text.contains("os error 2"), "{text}");
    assert!(e.source().is_none(), "the cause is in the message already: {:?}", e.source());
}
