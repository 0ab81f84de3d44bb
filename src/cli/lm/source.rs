//! Where `kiln lm` gets its tokens and tokenizers: a text file (tokenized once, cached beside
//! the output) or a token file of raw little-endian ids; the built-in byte tokenizer or a
//! Hugging Face `tokenizer.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_trainer::data::{ensure_tokenized, load_tokenizer, ByteTokenizer, TokenFile, TokenWidth, Tokenizer};

/// `byte`, or a `tokenizer.json` file / a folder holding one.
pub fn tokenizer(name: &str) -> Result<Box<dyn Tokenizer>> {
    if name == "byte" {
        return Ok(Box::new(ByteTokenizer));
    }
    load_tokenizer(name).with_context(|| format!("loading the tokenizer {name}"))
}

/// Whether `path` holds token ids (`.bin`, `.u16`, `.u32`, `.tokens`) rather than text.
fn is_token_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("bin" | "u16" | "u32" | "tokens"))
}

/// The width of a token file: `u32` for `.u32` files or when asked, else `u16` (nanoGPT's).
pub fn width(path: &Path, asked: Option<&str>) -> Result<TokenWidth> {
    Ok(match asked {
        Some("u16") => TokenWidth::U16,
        Some("u32") => TokenWidth::U32,
        Some(w) => bail!("--token-width {w}: expected u16 or u32"),
        None if path.extension().is_some_and(|e| e == "u32") => TokenWidth::U32,
        None => TokenWidth::U16,
    })
}

/// Opens `data` as tokens: a token file as is, a text file tokenized on first use into
/// `cache_dir` (reused while the text and the tokenizer are unchanged).
pub fn tokens(
    data: &Path,
    tok: &dyn Tokenizer,
    width_flag: Option<&str>,
    cache_dir: &Path,
) -> Result<TokenFile> {
    if is_token_file(data) {
        return TokenFile::open(data, width(data, width_flag)?).map_err(Into::into);
    }
    let stem = data.file_stem().and_then(|s| s.to_str()).unwrap_or("text");
    std::fs::create_dir_all(cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    let out: PathBuf = cache_dir.join(format!("{stem}.{}.tokens", tok.fingerprint()));
    let file = ensure_tokenized(data, tok, &out)?;
    Ok(file)
}
