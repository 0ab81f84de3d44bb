//! Loading a Hugging Face `tokenizer.json` (a file, or a model folder holding one) as a
//! [`Tokenizer`]: the `bpe` feature's `BpeTokenizer`, or an error saying how to rebuild.

use std::path::Path;

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

/// Loads a Hugging Face tokenizer from a `tokenizer.json` file or a folder holding one (a model
/// folder as SmolLM2 ships). Needs the `bpe` feature; without it the error says how to rebuild.
pub fn load_tokenizer(path_or_folder: impl AsRef<Path>) -> Result<Box<dyn Tokenizer>> {
    let path = path_or_folder.as_ref();
    let file = if path.is_dir() { path.join("tokenizer.json") } else { path.to_path_buf() };
    if !file.is_file() {
        return Err(Error::io(
            &file,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such tokenizer file"),
        ));
    }
    load_file(&file)
}

#[cfg(feature = "bpe")]
fn load_file(file: &Path) -> Result<Box<dyn Tokenizer>> {
    Ok(Box::new(super::bpe::BpeTokenizer::from_file(file)?))
}

#[cfg(not(feature = "bpe"))]
fn load_file(file: &Path) -> Result<Box<dyn Tokenizer>> {
    Err(Error::format(
        file,
        "this kiln was built without the `bpe` feature: rebuild with --features bpe to load tokenizer.json files",
    ))
}
