//! Data loading: CSV tables, NPY and IDX arrays, the bundled digits, and the dataset utilities
//! (seeded shuffling, batching, train/validation split, standardization).

mod array;
pub mod csv;
pub mod dataset;
pub mod digits;
mod elem;
pub mod idx;
pub(crate) mod lines;
pub mod mnist;
pub mod npy;
pub mod rng;
pub mod standardize;
mod table;
pub mod text;

pub use self::array::Array;
pub use self::csv::{
    check_feature_names, read_csv, read_csv_features, read_csv_from_reader, read_csv_labeled,
    read_csv_unlabeled,
};
pub use self::dataset::{batches, epoch_order, train_val_split, Dataset, TargetBuf};
pub use self::digits::{digits_train_test, load_digits};
pub use self::idx::{read_idx_f32, read_idx_u32};
pub use self::mnist::{load_mnist, MNIST_FILES};
pub use self::npy::{read_npy_f32, read_npy_u32};
pub use self::rng::SplitMix64;
pub use self::standardize::Standardizer;
pub use self::table::{Table, Target, TaskHint, MAX_AUTO_CLASSES};
pub use self::text::{char_batch, CharCorpus, TokenWindows};
