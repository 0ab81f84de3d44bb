//! [`BpeTokenizer`]: a Hugging Face `tokenizer.json` (byte-level BPE as GPT-2 and SmolLM2 use,
//! or any model the `tokenizers` crate reads), behind the `bpe` feature.

use std::path::Path;

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};

/// The largest `tokenizer.json` read (SmolLM2's is about 2 MB, Llama 3's about 9 MB).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// A tokenizer loaded from a Hugging Face `tokenizer.json`.
pub struct BpeTokenizer {
    inner: tokenizers::Tokenizer,
    fingerprint: String,
}

impl std::fmt::Debug for BpeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpeTokenizer").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl BpeTokenizer {
    /// Reads `tokenizer.json`; errors name the file (missing, too large, not a tokenizer).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
        if size > MAX_FILE_BYTES {
            return Err(Error::format(
                path,
                format!("{size} bytes is too large for a tokenizer.json (at most {MAX_FILE_BYTES})"),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::format(path, format!("not a Hugging Face tokenizer.json: {e}")))?;
        Ok(BpeTokenizer { inner, fingerprint: format!("bpe-{:016x}", fnv1a(&bytes)) })
    }
}

/// FNV-1a, 64 bits: a stable hash of the file for [`Tokenizer::fingerprint`] (not cryptographic).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl Tokenizer for BpeTokenizer {
    /// No special tokens (BOS/EOS) are added: a corpus is tokenized as plain text.
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::InvalidArgument(format!("the BPE tokenizer failed to encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Special tokens are kept; if the tokenizer cannot decode the ids (one out of its
    /// vocabulary), each id is decoded on its own and the failing ones become U+FFFD.
    fn decode(&self, ids: &[u32]) -> String {
        if let Ok(s) = self.inner.decode(ids, false) {
            return s;
        }
        ids.iter()
            .map(|&id| match self.inner.id_to_token(id) {
                Some(_) => self.inner.decode(&[id], false).unwrap_or_else(|_| "\u{FFFD}".into()),
                None => "\u{FFFD}".into(),
            })
            .collect()
    }

    /// The model's vocabulary with the added (special) tokens.
    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
}
