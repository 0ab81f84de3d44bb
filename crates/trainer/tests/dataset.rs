mod common;

use common::{assert_has, err};
use kiln_trainer::data::{
    batches, digits_train_test, epoch_order, load_digits, train_val_split, Dataset, SplitMix64, Standardizer,
    Table, Target, TargetBuf,
};

#[test]
fn splitmix64_matches_the_reference_sequence() {
    // Reference values of SplitMix64 (Vigna's splitmix64.c) for seed 0.
    let mut r = SplitMix64::new(0);
    assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
    assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    // below(n) stays in range and is roughly uniform.
    let mut counts = [0u32; 3];
    for _ in 0..30_000 {
        counts[r.below(3) as usize] += 1;
    }
    assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
    assert_eq!(r.below(0), 0);
}

fn is_permutation(order: &[usize], n: usize) -> bool {
    let mut s = order.to_vec();
    s.sort_unstable();
    s == (0..n).collect::<Vec<_>>()
}

#[test]
fn shuffling_is_reproducible_by_seed_and_differs_across_epochs() {
    let a0 = epoch_order(100, 42, 0);
    assert!(is_permutation(&a0, 100));
    assert_eq!(a0, epoch_order(100, 42, 0), "same seed and epoch, same order");
    let a1 = epoch_order(100, 42, 1);
    assert!(is_permutation(&a1, 100));
    assert_ne!(a0, a1, "epochs differ");
    assert_ne!(a0, epoch_order(100, 43, 0), "seeds differ");
    assert_ne!(a0, (0..100).collect::<Vec<_>>(), "actually shuffled");
    assert!(epoch_order(0, 1, 0).is_empty());
}

#[test]
fn batching_keeps_the_last_partial_batch() {
    let order: Vec<usize> = (0..10).collect();
    let b: Vec<&[usize]> = batches(&order, 4).unwrap().collect();
    assert_eq!(b, vec![&[0, 1, 2, 3][..], &[4, 5, 6, 7], &[8, 9]]);
    assert_eq!(batches(&order, 10).unwrap().count(), 1);
    assert_eq!(batches(&order, 11).unwrap().next().unwrap().len(), 10);
    assert_has(&err(batches(&order, 0).map(|_| ())), &["batch size"]);
}

#[test]
fn train_val_split_is_seeded_disjoint_and_complete() {
    let (train, val) = train_val_split(10, 0.3, 7).unwrap();
    assert_eq!((train.len(), val.len()), (7, 3));
    let mut all = [train.clone(), val.clone()].concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert_eq!((train.clone(), val.clone()), train_val_split(10, 0.3, 7).unwrap());
    let other: Vec<_> = (0..20u64).map(|s| train_val_split(10, 0.3, s).unwrap().1).collect();
    assert!(other.iter().any(|v| *v != val), "seed changes the split");
    assert_eq!(train_val_split(5, 0.0, 1).unwrap().1.len(), 0);
    assert_has(&err(train_val_split(10, 1.0, 1)), &["[0, 1)", "1"]);
    assert_has(&err(train_val_split(10, f64::NAN, 1)), &["NaN"]);
    assert_has(&err(train_val_split(1, 0.6, 1)), &["no training rows"]);
}

fn small_table() -> Table {
    Table::new(
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        3,
        2,
        vec!["a".into(), "b".into()],
        Target::Classes { ids: vec![0, 1, 1], names: vec!["x".into(), "y".into()] },
    )
    .unwrap()
}

#[test]
fn fetch_gathers_rows_into_caller_buffers() {
    let t = small_table();
    assert_eq!((t.len(), t.feature_width()), (3, 2));
    let mut x = [0.0; 4];
    let mut y = [9u32; 2];
    t.fetch(&[2, 0], &mut x, TargetBuf::Classes(&mut y)).unwrap();
    assert_eq!((x, y), ([5.0, 6.0, 1.0, 2.0], [1, 0]));
    t.fetch(&[1, 1], &mut x, TargetBuf::None).unwrap();
    assert_eq!(x, [3.0, 4.0, 3.0, 4.0]);

    assert_has(&err(t.fetch(&[0], &mut x, TargetBuf::None)), &["features buffer", "2", "4"]);
    assert_has(&err(t.fetch(&[0, 3], &mut x, TargetBuf::None)), &["row index 3 out of range", "3 rows"]);
    assert_has(&err(t.fetch(&[0, 1], &mut x, TargetBuf::Classes(&mut [0u32; 3]))), &["targets buffer"]);
    assert_has(
        &err(t.fetch(&[0, 1], &mut x, TargetBuf::Values(&mut [0.0; 2]))),
        &["regression values", "class ids"],
    );
}

#[test]
fn table_new_and_subset_check_shapes() {
    let t = small_table();
    let s = t.subset(&[2, 0]).unwrap();
    assert_eq!(s.features, vec![5.0, 6.0, 1.0, 2.0]);
    assert_eq!(s.target.class_names().unwrap().len(), 2);
    assert!(matches!(s.target, Target::Classes { ref ids, .. } if *ids == [1, 0]));
    assert_has(&err(t.subset(&[3])), &["row index 3"]);
    let bad = Table::new(vec![1.0; 5], 3, 2, vec!["a".into(), "b".into()], Target::None);
    assert_has(&err(bad), &["shape mismatch", "3 x 2 = 6", "5 values"]);
    let bad = Table::new(vec![1.0; 2], 1, 2, vec!["a".into(), "b".into()], Target::Regression(vec![]));
    assert_has(&err(bad), &["Table target", "1 rows", "0 rows"]);
}

#[test]
fn standardizer_matches_hand_computed_values() {
    // Column a: 1, 2, 3, 4 -> mean 2.5, population variance 1.25, std sqrt(1.25) = 1.118034.
    // Column b: constant 5 -> mean 5, std 1 (maps to 0, no division by zero).
    // Column c: -2, 2, -2, 2 -> mean 0, std 2.
    let x = [1.0, 5.0, -2.0, 2.0, 5.0, 2.0, 3.0, 5.0, -2.0, 4.0, 5.0, 2.0];
    let s = Standardizer::fit(&x, 3).unwrap();
    assert_eq!(s.mean, vec![2.5, 5.0, 0.0]);
    assert!((s.std[0] - 1.118_034).abs() < 1e-6, "{}", s.std[0]);
    assert_eq!(&s.std[1..], &[1.0, 2.0]);

    let mut y = [1.0, 5.0, -2.0, 5.0, 7.0, 4.0];
    s.apply(&mut y).unwrap();
    let want = [-1.341_640_8, 0.0, -1.0, 2.236_068, 2.0, 2.0];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{y:?} vs {want:?}");
    }

    // It travels with the model as JSON.
    let back = Standardizer::from_json(&s.to_json()).unwrap();
    assert_eq!(back, s);
    assert_has(&err(Standardizer::from_json("{\"mean\":[1],\"std\":[0]}")), &["std of column 0"]);
    assert_has(&err(Standardizer::from_json("{\"mean\":[1,2],\"std\":[1]}")), &["2 means but 1"]);
    assert_has(&err(Standardizer::from_json("nope")), &["standardizer"]);
    assert_has(&err(s.apply(&mut [1.0; 4])), &["multiple of 3", "4 values"]);
    assert_has(&err(Standardizer::fit(&[], 3)), &["Standardizer::fit"]);
}

#[test]
fn digits_shape_labels_and_split() {
    let t = load_digits().unwrap();
    assert_eq!((t.rows, t.cols), (1797, 64));
    assert_eq!(t.feature_names[0], "p0");
    assert_eq!(t.feature_names[63], "p63");
    assert!(t.features.iter().all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
    let Target::Classes { ids, names } = &t.target else { panic!("digits must be classes") };
    assert_eq!(*names, (0..10).map(|c| c.to_string()).collect::<Vec<_>>());
    // Class counts of the UCI test set, as in scikit-learn's load_digits.
    let mut counts = [0; 10];
    ids.iter().for_each(|&c| counts[c as usize] += 1);
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // The first image is a 0 whose first row is 0 0 5 13 9 1 0 0.
    assert_eq!(ids[0], 0);
    assert_eq!(&t.row(0)[..8], &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);

    let (train, test) = digits_train_test().unwrap();
    assert_eq!((train.rows, test.rows), (1438, 359));
    assert_eq!(train.cols, 64);
    let (train2, test2) = digits_train_test().unwrap();
    assert_eq!((train2, test2.clone()), (train, test));
    assert_eq!(test2.target.class_names().unwrap().len(), 10);
}
