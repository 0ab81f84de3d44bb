//! Data loading: CSV tables, NPY and IDX arrays, the bundled digits, and the dataset utilities
//! (seeded shuffling, batching, train/validation split, standardization), and for language
//! models: character corpora, memory-mapped token files and their windows, tokenizers.

mod array;
#[cfg(feature = "bpe")]
pub mod bpe;
pub mod csv;
pub mod dataset;
pub mod digits;
mod elem;
pub mod idx;
pub(crate) mod lines;
pub mod load_tokenizer;
pub mod mnist;
pub mod npy;
pub mod rng;
pub mod standardize;
mod table;
pub mod text;
pub mod token_file;
pub mod token_file_windows;
pub mod tokenized_cache;
pub mod tokenizer;

pub use self::array::Array;
#[cfg(feature = "bpe")]
pub use self::bpe::BpeTokenizer;
pub use self::csv::{
    check_feature_names, read_csv, read_csv_features, read_csv_from_reader, read_csv_labeled,
    read_csv_unlabeled,
};
pub use self::dataset::{batches, epoch_order, train_val_split, Dataset, TargetBuf};
pub use self::digits::{digits_train_test, load_digits};
pub use self::idx::{read_idx_f32, read_idx_u32};
pub use self::load_tokenizer::load_tokenizer;
pub use self::mnist::{load_mnist, MNIST_FILES};
pub use self::npy::{read_npy_f32, read_npy_u32};
pub use self::rng::SplitMix64;
pub use self::standardize::Standardizer;
pub use self::table::{Table, Target, TaskHint, MAX_AUTO_CLASSES};
pub use self::text::{char_batch, CharCorpus, TokenWindows};
pub use self::token_file::{write_token_file, TokenFile, TokenWidth};
pub use self::token_file_windows::TokenFileWindows;
pub use self::tokenized_cache::{ensure_tokenized, tokenized_meta_path};
pub use self::tokenizer::{ByteTokenizer, Tokenizer};
