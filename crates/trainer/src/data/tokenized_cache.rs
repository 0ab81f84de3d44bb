//! [`ensure_tokenized`]: a text corpus (the bundled `data/tinyshakespeare.txt`, say) tokenized
//! once into a token file, and that file reused on later runs while it is still valid.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::token_file::{write_token_file, TokenFile, TokenWidth};
use super::tokenizer::Tokenizer;
use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};

/// The largest text tokenized in one piece (the whole text and its ids are held in memory).
const MAX_TEXT_BYTES: u64 = 1 << 30;

/// What a token file was made from, kept beside it as `<token file>.meta.json`.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Meta {
    /// [`Tokenizer::fingerprint`] of the tokenizer that made it.
    tokenizer: String,
    /// `"u16"` or `"u32"`.
    width: String,
    /// Number of ids in the file.
    tokens: u64,
}

/// The sidecar that records how `out_path` was made: `<out_path>.meta.json`.
pub fn tokenized_meta_path(out_path: &Path) -> PathBuf {
    let mut name = out_path.as_os_str().to_owned();
    name.push(".meta.json");
    PathBuf::from(name)
}

/// The token file of `text_path` under `tokenizer`, written to `out_path` the first time and
/// reused afterwards. It is (re)written, atomically, when it is missing, older than the text,
/// made by another tokenizer ([`Tokenizer::fingerprint`]) or not the length recorded in its
/// sidecar ([`tokenized_meta_path`]). Ids are u16 when the vocabulary fits, else u32. Errors
/// name the file: missing text, not UTF-8, empty, or a text that encodes to no token.
pub fn ensure_tokenized(
    text_path: impl AsRef<Path>,
    tokenizer: &dyn Tokenizer,
    out_path: impl AsRef<Path>,
) -> Result<TokenFile> {
    let (text_path, out_path) = (text_path.as_ref(), out_path.as_ref());
    let width = TokenWidth::for_vocab(tokenizer.vocab_size());
    let text_time = modified(text_path)?;
    let meta_path = tokenized_meta_path(out_path);
    if is_current(out_path, &meta_path, text_time, tokenizer, width) {
        return TokenFile::open(out_path, width);
    }
    let size = std::fs::metadata(text_path).map_err(|e| Error::io(text_path, e))?.len();
    if size > MAX_TEXT_BYTES {
        return Err(Error::format(
            text_path,
            format!("{size} bytes is too large to tokenize in memory (at most {MAX_TEXT_BYTES})"),
        ));
    }
    let bytes = std::fs::read(text_path).map_err(|e| Error::io(text_path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::format(text_path, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
    })?;
    if text.is_empty() {
        return Err(Error::format(text_path, "the file is empty: nothing to tokenize"));
    }
    let ids = tokenizer.encode(&text)?;
    if ids.is_empty() {
        return Err(Error::format(text_path, "the text encodes to no token"));
    }
    write_token_file(out_path, &ids, width)?;
    let meta =
        Meta { tokenizer: tokenizer.fingerprint(), width: width.name().into(), tokens: ids.len() as u64 };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::format(&meta_path, e.to_string()))?;
    write_atomic(&meta_path, &json)?;
    TokenFile::open(out_path, width)
}

fn modified(path: &Path) -> Result<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| Error::io(path, e))
}

/// Whether `out` exists, is not older than the text and matches its sidecar and the tokenizer.
fn is_current(
    out: &Path,
    meta_path: &Path,
    text_time: SystemTime,
    tok: &dyn Tokenizer,
    width: TokenWidth,
) -> bool {
    let Ok(out_meta) = std::fs::metadata(out) else { return false };
    let Ok(out_time) = out_meta.modified() else { return false };
    // a sidecar is a few dozen bytes: anything larger is not one of ours
    let small = std::fs::metadata(meta_path).is_ok_and(|m| m.len() < 4096);
    let Some(meta) = small
        .then(|| std::fs::read(meta_path).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
    else {
        return false;
    };
    out_time >= text_time
        && meta.tokenizer == tok.fingerprint()
        && meta.width == width.name()
        && meta.tokens > 0
        && out_meta.len() == meta.tokens * width.bytes() as u64
}
