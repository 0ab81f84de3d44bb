//! Windows of a [`TokenFile`] as a [`Dataset`]: random windows for training (nanoGPT's
//! `get_batch`, llm.c's loader) and consecutive, non-overlapping windows for evaluation. Rows
//! are read from the map when a batch asks for them; nothing of the file is copied up front.

use super::dataset::{Dataset, TargetBuf};
use super::rng::SplitMix64;
use super::text::fetch_windows;
use super::token_file::TokenFile;
use crate::error::{Error, Result};

/// The SplitMix64 increment: generator `seed + i * GAMMA` draws what the `i`-th draw of the
/// stream started at `seed` would, so each row's start is computed on its own, in O(1) memory.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Clone, Copy, Debug)]
enum Starts {
    /// Row `i` starts at a position drawn from `(seed, i)`.
    Random { seed: u64 },
    /// Row `k` starts at `k * context`.
    Consecutive,
}

/// A data set of windows of a token file: each row is `context + 1` consecutive ids (as
/// integer-valued f32 features, exact below 2^24); the model's inputs are the first `context`
/// and its targets the last `context`, shifted by one, as for [`TokenWindows`](super::TokenWindows).
#[derive(Clone, Debug)]
pub struct TokenFileWindows {
    file: TokenFile,
    context: usize,
    rows: usize,
    starts: Starts,
}

impl TokenFile {
    /// `n` windows of `context + 1` ids at random starts (uniform over every start that leaves
    /// a whole window), the same for the same `seed`. Errors when the view has fewer than
    /// `context + 1` tokens or `context` is 0. `fit` visits these `n` windows in a new order
    /// each epoch; for new windows, make the data set again with another seed.
    pub fn random_windows(&self, context: usize, n: usize, seed: u64) -> Result<TokenFileWindows> {
        self.check_context(context)?;
        Ok(TokenFileWindows { file: self.clone(), context, rows: n, starts: Starts::Random { seed } })
    }

    /// The evaluation windows: `floor((len - 1) / context)` windows, window `k` holding ids
    /// `k * context ..= k * context + context` (its `context` inputs and their next tokens), so
    /// together they predict every token from 1 to `floor((len - 1) / context) * context` once.
    /// Errors when the view has fewer than `context + 1` tokens or `context` is 0.
    pub fn consecutive_windows(&self, context: usize) -> Result<TokenFileWindows> {
        self.check_context(context)?;
        let rows = (self.len() - 1) / context;
        Ok(TokenFileWindows { file: self.clone(), context, rows, starts: Starts::Consecutive })
    }

    fn check_context(&self, context: usize) -> Result<()> {
        if context == 0 {
            return Err(Error::InvalidArgument("a context of 0 tokens has nothing to predict from".into()));
        }
        if self.len() < context + 1 {
            return Err(Error::format(
                self.path(),
                format!(
                    "{} tokens are too few for a context of {context} (a window is {} tokens)",
                    self.len(),
                    context + 1
                ),
            ));
        }
        Ok(())
    }
}

impl TokenFileWindows {
    /// Tokens of input per window (the model's sequence length); rows are one longer.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The view the windows are read from.
    pub fn file(&self) -> &TokenFile {
        &self.file
    }

    /// Where window `i` starts, in tokens from the start of the view; `None` past the last.
    pub fn start(&self, i: usize) -> Option<usize> {
        (i < self.rows).then(|| match self.starts {
            Starts::Random { seed } => {
                let span = (self.file.len() - self.context) as u64;
                SplitMix64::new(seed.wrapping_add((i as u64).wrapping_mul(GAMMA))).below(span) as usize
            }
            Starts::Consecutive => i * self.context,
        })
    }
}

impl Dataset for TokenFileWindows {
    fn len(&self) -> usize {
        self.rows
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
        let window = |i: usize| self.start(i);
        let read = |start: usize, dst: &mut [f32]| self.file.read_f32(start, dst);
        fetch_windows("TokenFileWindows", self.context + 1, self.rows, indices, features, window, read)
    }
}
