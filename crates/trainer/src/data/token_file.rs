//! Token files: a flat binary file of little-endian token ids, u16 (as nanoGPT's `prepare.py`
//! writes `train.bin`) or u32, read through a memory map so that a corpus larger than memory is
//! never copied; a view of it can be sliced by position (train/validation split) for free.

use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};

/// How many bytes one token id takes in a token file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenWidth {
    /// 2 bytes, ids `0..=65535` (vocabularies up to 65,536 tokens: GPT-2's 50,257, SmolLM2's 49,152).
    U16,
    /// 4 bytes, any `u32` id.
    U32,
}

impl TokenWidth {
    /// Bytes per id.
    pub fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }

    /// The largest id this width holds.
    pub fn max_id(self) -> u32 {
        match self {
            TokenWidth::U16 => u16::MAX as u32,
            TokenWidth::U32 => u32::MAX,
        }
    }

    /// The narrowest width for ids `0..vocab_size`: u16 when they fit, else u32.
    pub fn for_vocab(vocab_size: usize) -> TokenWidth {
        if vocab_size <= 1 << 16 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    /// `"u16"` or `"u32"`.
    pub fn name(self) -> &'static str {
        match self {
            TokenWidth::U16 => "u16",
            TokenWidth::U32 => "u32",
        }
    }
}

/// A memory-mapped token file, or a contiguous view of one ([`TokenFile::slice`]). Cloning shares
/// the map. The file must not be modified or truncated while it is open (the map would change
/// under the reader); [`write_token_file`] replaces a file by renaming, which is safe.
#[derive(Clone)]
pub struct TokenFile {
    map: Arc<Mmap>,
    path: Arc<PathBuf>,
    width: TokenWidth,
    /// First token of the view, in tokens from the start of the file.
    start: usize,
    len: usize,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .field("width", &self.width)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl TokenFile {
    /// Maps `path` as ids of `width`. Errors name the file: missing or unreadable, empty, or a
    /// length that is not a multiple of the width (a truncated or differently typed file).
    pub fn open(path: impl AsRef<Path>, width: TokenWidth) -> Result<TokenFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::format(path, "not a regular file"));
        }
        let bytes = meta.len();
        if bytes == 0 {
            return Err(Error::format(path, "the token file is empty"));
        }
        if bytes % width.bytes() as u64 != 0 {
            return Err(Error::format(
                path,
                format!(
                    "{bytes} bytes is not a whole number of {} token ids ({} bytes each): truncated, or not a {} file",
                    width.name(),
                    width.bytes(),
                    width.name()
                ),
            ));
        }
        // SAFETY: the map is read-only; as documented on `TokenFile`, the file must not be
        // modified while open (the writers of this crate replace files by renaming).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let len = map.len() / width.bytes();
        Ok(TokenFile { map: Arc::new(map), path: Arc::new(path.to_path_buf()), width, start: 0, len })
    }

    /// The file this view maps.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The width of its ids.
    pub fn width(&self) -> TokenWidth {
        self.width
    }

    /// Number of tokens in this view.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view holds no token (an empty slice; an opened file never is).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where this view starts, in tokens from the start of the file.
    pub fn offset(&self) -> usize {
        self.start
    }

    /// Token `i` of this view, `None` past its end.
    pub fn get(&self, i: usize) -> Option<u32> {
        (i < self.len).then(|| self.at(i))
    }

    /// Token `i` of the view; `i < len` is the caller's to check.
    fn at(&self, i: usize) -> u32 {
        let b = (self.start + i) * self.width.bytes();
        match self.width {
            TokenWidth::U16 => u16::from_le_bytes([self.map[b], self.map[b + 1]]) as u32,
            TokenWidth::U32 => {
                u32::from_le_bytes([self.map[b], self.map[b + 1], self.map[b + 2], self.map[b + 3]])
            }
        }
    }

    /// Tokens `start..start + out.len()` of the view into `out` as f32 (exact below 2^24).
    pub(crate) fn read_f32(&self, start: usize, out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.at(start + k) as f32;
        }
    }

    /// Tokens `range` of the view, copied (for decoding a sample, say). Errors past the end.
    pub fn to_vec(&self, range: impl RangeBounds<usize>) -> Result<Vec<u32>> {
        let s = self.slice(range)?;
        Ok((0..s.len).map(|i| s.at(i)).collect())
    }

    /// The largest id in the view (one pass over it), `None` when it is empty.
    pub fn max_id(&self) -> Option<u32> {
        (0..self.len).map(|i| self.at(i)).max()
    }

    /// Checks every id is below `vocab_size`; the error names the file, the first offending id
    /// and its index (in the view, and in the file when the view does not start at 0).
    pub fn check_vocab(&self, vocab_size: usize) -> Result<()> {
        let Some(i) = (0..self.len).find(|&i| self.at(i) as usize >= vocab_size) else {
            return Ok(());
        };
        let place = if self.start == 0 {
            format!("index {i}")
        } else {
            format!("index {i} of the view (token {} of the file)", self.start + i)
        };
        Err(Error::format(
            &*self.path,
            format!("token id {} at {place} is not below the vocabulary size {vocab_size}", self.at(i)),
        ))
    }

    /// The tokens `range` of this view, sharing the map (nothing is copied). Errors when the
    /// range is reversed or goes past the end.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<TokenFile> {
        let lo = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        if lo > hi || hi > self.len {
            return Err(Error::InvalidArgument(format!(
                "{}: tokens {lo}..{hi} are not within the {} tokens of the view",
                self.path.display(),
                self.len
            )));
        }
        Ok(TokenFile { start: self.start + lo, len: hi - lo, ..self.clone() })
    }

    /// Splits the view by position into a training head and a validation tail of
    /// `val_fraction` of the tokens (as nanoGPT's `prepare.py`: first 90% / last 10%).
    pub fn split(&self, val_fraction: f64) -> Result<(TokenFile, TokenFile)> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::InvalidArgument(format!(
                "validation fraction {val_fraction} is not in [0, 1)"
            )));
        }
        let cut = self.len - (self.len as f64 * val_fraction) as usize;
        Ok((self.slice(..cut)?, self.slice(cut..)?))
    }
}

/// Writes `ids` to `path` as a token file of `width` (little-endian), atomically: a temporary
/// file in the same folder, then a rename, so readers never see a half-written file. Every id is
/// checked first; the error names the first that does not fit the width and its index. No ids
/// is an error too (an empty token file does not open).
pub fn write_token_file(path: impl AsRef<Path>, ids: &[u32], width: TokenWidth) -> Result<()> {
    let path = path.as_ref();
    if ids.is_empty() {
        return Err(Error::format(path, "no token ids to write"));
    }
    if let Some(i) = ids.iter().position(|&id| id > width.max_id()) {
        return Err(Error::format(
            path,
            format!(
                "token id {} at index {i} does not fit in {} (at most {})",
                ids[i],
                width.name(),
                width.max_id()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(ids.len() * width.bytes());
    for &id in ids {
        match width {
            TokenWidth::U16 => bytes.extend_from_slice(&(id as u16).to_le_bytes()),
            TokenWidth::U32 => bytes.extend_from_slice(&id.to_le_bytes()),
        }
    }
    write_atomic(path, &bytes)
}
