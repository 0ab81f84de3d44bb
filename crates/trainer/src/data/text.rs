//! Character-level text data for language models: the vocabulary (every distinct character of the
//! text, sorted), the text as token ids, a held-out tail for validation, and random
//! `(context, next-character)` batches.

use std::path::Path;

use super::dataset::{Dataset, TargetBuf};
use super::rng::SplitMix64;
use crate::error::{Error, Result};

/// A text as character ids over its own sorted vocabulary.
#[derive(Clone, Debug)]
pub struct CharCorpus {
    vocab: Vec<char>,
    ids: Vec<u32>,
}

impl CharCorpus {
    /// Every distinct character of `text` becomes one token. Errors on an empty text.
    pub fn from_text(text: &str) -> Result<Self> {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        if vocab.is_empty() {
            return Err(Error::InvalidArgument("the text is empty: nothing to learn from".into()));
        }
        let ids = text.chars().map(|c| vocab.binary_search(&c).unwrap_or(0) as u32).collect();
        Ok(CharCorpus { vocab, ids })
    }

    /// Reads a UTF-8 text file (errors name the file and, for bad UTF-8, the byte offset).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::format(path, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
        })?;
        if text.is_empty() {
            return Err(Error::format(path, "the file is empty: nothing to learn from"));
        }
        Self::from_text(&text)
    }

    /// A corpus over a vocabulary saved with a model (`vocab` as one string, sorted), so that ids
    /// mean the same characters as when the model was trained. Characters of `text` outside the
    /// vocabulary are an error naming the first one and its position.
    pub fn with_vocab(text: &str, vocab: &str) -> Result<Self> {
        let vocab: Vec<char> = vocab.chars().collect();
        if vocab.is_empty() || vocab.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidArgument("a vocabulary must be non-empty, sorted and distinct".into()));
        }
        let c = CharCorpus { vocab, ids: Vec::new() };
        let ids = c.encode(text)?;
        Ok(CharCorpus { ids, ..c })
    }

    /// The vocabulary, sorted: the character of each id.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// The vocabulary as one string (what a checkpoint stores).
    pub fn vocab_string(&self) -> String {
        self.vocab.iter().collect()
    }

    /// Number of distinct characters (ids are `0..vocab_size()`).
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The whole text as ids.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// `text` as ids of this vocabulary.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.vocab.binary_search(&c).map(|k| k as u32).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "character {c:?} at position {i} is not in the model's vocabulary"
                    ))
                })
            })
            .collect()
    }

    /// Ids back to text (out-of-range ids become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.vocab.get(i as usize).copied().unwrap_or('\u{FFFD}')).collect()
    }

    /// Splits the ids into a training head and a validation tail of `fraction` of the text (as
    /// nanoGPT does: contiguous, so no validation window overlaps the training text).
    pub fn split(&self, fraction: f64) -> Result<(&[u32], &[u32])> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::InvalidArgument(format!("validation fraction {fraction} is not in [0, 1)")));
        }
        let cut = self.ids.len() - (self.ids.len() as f64 * fraction) as usize;
        Ok(self.ids.split_at(cut))
    }
}

/// `batch` random windows of `ids`: inputs `[batch, context]` and targets shifted by one
/// character. Errors when `ids` is not longer than the context.
pub fn char_batch(
    ids: &[u32],
    context: usize,
    batch: usize,
    rng: &mut SplitMix64,
) -> Result<(Vec<u32>, Vec<u32>)> {
    if ids.len() <= context + 1 || context == 0 {
        return Err(Error::InvalidArgument(format!(
            "a text of {} characters is too short for a context of {context}",
            ids.len()
        )));
    }
    let (mut xs, mut ys) = (Vec::with_capacity(batch * context), Vec::with_capacity(batch * context));
    for _ in 0..batch {
        let o = rng.below((ids.len() - context) as u64) as usize;
        xs.extend_from_slice(&ids[o..o + context]);
        ys.extend_from_slice(&ids[o + 1..o + context + 1]);
    }
    Ok((xs, ys))
}

/// A data set of token windows for a language model: each row is `context + 1` consecutive ids
/// of a text (as integer-valued f32 features), the model's input being the first `context` and
/// its targets the last `context`, shifted by one. `fit` shuffles and batches them like any
/// other rows.
#[derive(Clone, Debug)]
pub struct TokenWindows {
    ids: Vec<u32>,
    context: usize,
    starts: Vec<usize>,
}

impl TokenWindows {
    /// Every window of `ids` (one starting at each position that leaves `context + 1` ids).
    pub fn all(ids: &[u32], context: usize) -> Result<Self> {
        Self::check(ids, context)?;
        Ok(TokenWindows { ids: ids.to_vec(), context, starts: (0..ids.len() - context).collect() })
    }

    /// `n` windows at random positions, drawn as [`char_batch`] draws them (a fixed validation
    /// sample, say).
    pub fn random(ids: &[u32], context: usize, n: usize, rng: &mut SplitMix64) -> Result<Self> {
        Self::check(ids, context)?;
        let starts = (0..n).map(|_| rng.below((ids.len() - context) as u64) as usize).collect();
        Ok(TokenWindows { ids: ids.to_vec(), context, starts })
    }

    fn check(ids: &[u32], context: usize) -> Result<()> {
        if ids.len() <= context + 1 || context == 0 {
            return Err(Error::InvalidArgument(format!(
                "a text of {} characters is too short for a context of {context}",
                ids.len()
            )));
        }
        Ok(())
    }

    /// Tokens per window (the model's sequence length).
    pub fn context(&self) -> usize {
        self.context
    }
}

impl Dataset for TokenWindows {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn feature_width(&self) -> usize {
        self.context + 1
    }

    fn num_classes(&self) -> Option<usize> {
        None
    }

    /// The targets are inside the windows, not a column of their own.
    fn has_target(&self) -> bool {
        false
    }

    fn fetch(&self, indices: &[usize], features: &mut [f32], _: TargetBuf<'_>) -> Result<()> {
        let w = self.context + 1;
        let window = |i: usize| self.starts.get(i).copied();
        fetch_windows("TokenWindows", w, self.starts.len(), indices, features, window, |start, dst| {
            for (d, &id) in dst.iter_mut().zip(&self.ids[start..start + w]) {
                *d = id as f32;
            }
        })
    }
}

/// Fills `features` with the windows of `width` ids at `indices` of a window data set of
/// `windows` rows: `start(i)` is window i's first position, `read(start, dst)` copies its ids.
pub(crate) fn fetch_windows(
    name: &str,
    width: usize,
    windows: usize,
    indices: &[usize],
    features: &mut [f32],
    start: impl Fn(usize) -> Option<usize>,
    mut read: impl FnMut(usize, &mut [f32]),
) -> Result<()> {
    if features.len() != indices.len() * width {
        return Err(Error::shape(
            format!("{name}::fetch features buffer"),
            indices.len() * width,
            features.len(),
        ));
    }
    for (dst, &i) in features.chunks_exact_mut(width).zip(indices) {
        let at = start(i).ok_or_else(|| {
            Error::InvalidArgument(format!("window {i} out of range for {windows} windows"))
        })?;
        read(at, dst);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_round_trip_and_batches() {
        let c = CharCorpus::from_text("abracadabra!").unwrap();
        assert_eq!(c.vocab_string(), "!abcdr");
        assert_eq!(c.decode(c.ids()), "abracadabra!");
        assert!(c.encode("abz").unwrap_err().to_string().contains("'z' at position 2"));
        let (x, y) = char_batch(c.ids(), 4, 3, &mut SplitMix64::new(1)).unwrap();
        assert_eq!((x.len(), y.len()), (12, 12));
        for r in 0..3 {
            // y is x shifted by one character of the same text
            assert_eq!(&x[r * 4 + 1..r * 4 + 4], &y[r * 4..r * 4 + 3]);
            let s = c.decode(&x[r * 4..r * 4 + 4]) + &c.decode(&y[r * 4 + 3..r * 4 + 4]);
            assert!("abracadabra!".contains(&s), "{s}");
        }
        assert!(char_batch(c.ids(), 11, 1, &mut SplitMix64::new(1)).is_err());
        let windows = TokenWindows::all(c.ids(), 4).unwrap();
        assert_eq!((windows.len(), windows.feature_width()), (8, 5));
        let mut f = vec![0.0; 10];
        windows.fetch(&[0, 7], &mut f, TargetBuf::None).unwrap();
        assert_eq!(c.decode(&f.iter().map(|&v| v as u32).collect::<Vec<_>>()), "abracabra!");
        assert!(TokenWindows::all(c.ids(), 11).is_err());
        let (tr, va) = c.split(0.25).unwrap();
        assert_eq!((tr.len(), va.len()), (9, 3));
        assert!(CharCorpus::with_vocab("bad", "ab").is_err());
        assert_eq!(CharCorpus::with_vocab("ab", "ab").unwrap().ids(), &[0, 1]);
    }
}
