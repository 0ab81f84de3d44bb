//! The image layers in a `Sequential` model: shapes, PyTorch state_dict names and layouts, bad
//! geometry as an error, and a small CNN that learns the bundled digits on the CPU backend.

use kiln_device::BackendChoice;
use kiln_trainer::data::{digits_train_test, Standardizer};
use kiln_trainer::prelude::*;
use kiln_trainer::Layer;

fn cnn() -> Sequential {
    Sequential::new(&[1, 8, 8])
        .add(Conv2d(6, 3).conv(1, 1, 1))
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2))
        .add(Conv2d(8, 3).conv(1, 1, 2))
        .add(LayerNorm())
        .add(AvgPool2d(2))
        .add(GlobalAvgPool2d())
        .add(Dense(10, Softmax))
        .seed(3)
}

#[test]
fn shapes_names_and_layouts() {
    let mut m = cnn();
    let shapes = m.output_shapes().unwrap();
    assert_eq!(shapes[0], vec![6, 8, 8]);
    assert_eq!(shapes[2], vec![6, 4, 4]);
    assert_eq!(shapes[5], vec![8, 2, 2]);
    assert_eq!(shapes[6], vec![8]);
    let w = m.weights().unwrap();
    let names: Vec<(&str, &[usize])> = w.iter().map(|(n, s, _)| (n.as_str(), s.as_slice())).collect();
    assert_eq!(
        names,
        vec![
            ("0.weight", &[6, 1, 3, 3][..]),
            ("0.bias", &[6][..]),
            ("3.weight", &[8, 3, 3, 3][..]),
            ("3.bias", &[8][..]),
            ("4.weight", &[4][..]), // LayerNorm over the last axis of [8, 4, 4]
            ("4.bias", &[4][..]),
            ("7.weight", &[10, 8][..]),
            ("7.bias", &[10][..]),
        ]
    );
    let s = m.summary().unwrap();
    assert!(s.contains("MaxPool2d(2, 2)") && s.contains("[B, 8, 2, 2]"), "{s}");
    let bad = Sequential::new(&[1, 3, 3]).add(Conv2d(4, 5));
    assert!(bad.output_shapes().is_err());
    let bad = Sequential::new(&[64]).add(MaxPool2d(2));
    assert!(bad.output_shapes().is_err());
}

/// The first `rows` training digits, standardized.
fn standardized_digits(rows: usize) -> kiln_trainer::data::Table {
    let (mut train, _) = digits_train_test().unwrap();
    let scaler = Standardizer::fit_table(&train).unwrap();
    scaler.apply_table(&mut train).unwrap();
    train.subset(&(0..rows).collect::<Vec<_>>()).unwrap()
}

/// Compiles `m` for the CPU (Adam 3e-3, cross-entropy), fits 6 epochs of batches of 32 and returns
/// the first and last epoch losses.
fn fit_6_epochs(m: &mut Sequential, train: &kiln_trainer::data::Table) -> (f64, f64) {
    let mut config = Compile::new(Optimizer::adam(3e-3), Loss::CrossEntropy, &[Metric::Accuracy]);
    config.backend = BackendChoice::Cpu;
    m.compile_with(config).unwrap();
    let opts = FitOptions { epochs: 6, batch_size: 32, quiet: true, ..Default::default() };
    let h = m.fit(train, &opts).unwrap();
    (h.epochs[0].loss, h.epochs.last().unwrap().loss)
}

#[test]
fn a_small_cnn_learns_digits_on_cpu() {
    let train = standardized_digits(400);
    let mut m = Sequential::new(&[1, 8, 8])
        .add(Conv2d(8, 3).conv(1, 1, 1))
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2))
        .add(Flatten())
        .add(Dense(10, Softmax))
        .seed(5);
    let (first, last) = fit_6_epochs(&mut m, &train);
    // measured: about 1.5 -> 0.15; the bound leaves room
    assert!(last < first / 4.0, "loss {first} -> {last} did not fall 4x in 6 epochs");
}

/// Dropout after a convolution (on `[C, H, W]` feature maps) and after pooling: it trains, and
/// evaluation and prediction are deterministic (no dropout outside training).
#[test]
fn dropout_between_image_layers() {
    let train = standardized_digits(300);
    let mut m = Sequential::new(&[1, 8, 8])
        .add(Conv2d(8, 3).conv(1, 1, 1))
        .add(Dropout(0.3))
        .add(Layer::Activation(Relu))
        .add(MaxPool2d(2))
        .add(Dropout(0.2))
        .add(Flatten())
        .add(Dense(10, Softmax))
        .seed(9);
    let (first, last) = fit_6_epochs(&mut m, &train);
    assert!(last < first / 2.0, "loss {first} -> {last} did not halve in 6 epochs with dropout");
    let (p1, p2) = (m.predict(&train, 64).unwrap(), m.predict(&train, 64).unwrap());
    assert_eq!(p1, p2, "prediction must not drop units");
    let e = m.evaluate(&train, 64).unwrap();
    assert!(e.loss < last, "evaluation without dropout {} vs training loss {last}", e.loss);
}
