//! Tokenizers for language models: the [`Tokenizer`] trait, the built-in [`ByteTokenizer`]
//! (UTF-8 bytes as ids); `load_tokenizer` (in `load_tokenizer.rs`) reads Hugging Face
//! `tokenizer.json` files (`BpeTokenizer`, with the `bpe` feature).

use crate::error::Result;

/// Text to token ids and back. `Send + Sync` so one tokenizer can serve several threads.
pub trait Tokenizer: std::fmt::Debug + Send + Sync {
    /// `text` as token ids (no special tokens added). Errors only when the tokenizer itself fails.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;

    /// Token ids back to text; ids that are not valid are replaced (U+FFFD), never an error.
    fn decode(&self, ids: &[u32]) -> String;

    /// Number of ids (every id is below it).
    fn vocab_size(&self) -> usize;

    /// A short name that changes whenever the ids would (e.g. `byte`, `bpe-<hash of the file>`),
    /// so token files made with one tokenizer are not reused with another.
    fn fingerprint(&self) -> String;
}

/// Ids are the UTF-8 bytes of the text: vocabulary 256, no file needed, any text round-trips.
#[derive(Clone, Copy, Debug, Default)]
pub struct ByteTokenizer;

impl Tokenizer for ByteTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }

    /// Invalid UTF-8 (a window cut inside a character) and ids above 255 decode as U+FFFD.
    fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len());
        for &id in ids {
            match u8::try_from(id) {
                Ok(b) => bytes.push(b),
                Err(_) => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn vocab_size(&self) -> usize {
        256
    }

    fn fingerprint(&self) -> String {
        "byte".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_replace_bad_ids() {
        let t = ByteTokenizer;
        let text = "Thou art ‘sweet’, 甘い — ß\n";
        let ids = t.encode(text).unwrap();
        assert_eq!(ids, text.bytes().map(u32::from).collect::<Vec<_>>());
        assert_eq!(t.decode(&ids), text);
        assert_eq!(t.decode(&[104, 300, 105]), "h\u{FFFD}i");
        // a window cut inside the three bytes of '—'
        let n = ids.len();
        assert_eq!(t.decode(&ids[n - 7..n - 5]), "\u{FFFD}");
        assert_eq!(t.decode(&ids[n - 8..n - 6]), " \u{FFFD}");
        assert_eq!((t.vocab_size(), t.fingerprint().as_str()), (256, "byte"));
    }
}
