//! The bundled UCI optical handwritten digits (8x8, 1,797 images, features `p0..p63` in 0..16,
//! label 0..9; CC BY 4.0, see `data/README.md`). Embedded in the binary, so no file is needed.

use std::path::Path;

use super::csv::read_csv_from_reader;
use super::dataset::train_val_split;
use super::table::{Table, TaskHint};
use crate::Result;

/// `data/digits.csv` (header `p0..p63,label`).
pub const DIGITS_CSV: &str = include_str!("../../../../data/digits.csv");

/// The seed of the fixed train/test split, so every run and every tool sees the same test set.
pub const DIGITS_SPLIT_SEED: u64 = 0x6469_6769_7473; // "digits"

/// Fraction of the rows held out by [`digits_train_test`].
pub const DIGITS_TEST_FRACTION: f64 = 0.2;

/// All 1,797 rows: 64 features, 10 classes named "0".."9".
pub fn load_digits() -> Result<Table> {
    read_csv_from_reader(
        Path::new("data/digits.csv"),
        DIGITS_CSV.as_bytes(),
        "label",
        TaskHint::Classification,
    )
}

/// The fixed, seeded 80/20 split: (train 1,438 rows, test 359 rows).
pub fn digits_train_test() -> Result<(Table, Table)> {
    let all = load_digits()?;
    let (train, test) = train_val_split(all.rows, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)?;
    Ok((all.subset(&train)?, all.subset(&test)?))
}
