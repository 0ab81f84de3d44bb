//! Physical line numbers for CSV records, as editors and compilers count them: a line ends at
//! `\n`, `\r\n` or a lone `\r`, and the header is line 1. The `csv` crate counts `\n` only and skips
//! blank lines in its own way, so its line numbers drift; a record's byte offset is exact, and this
//! reader wrapper turns byte offsets into physical lines.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::rc::Rc;

/// Byte offsets of the line breaks read so far that no record has passed yet.
#[derive(Default)]
struct Breaks {
    pending: VecDeque<u64>,
    /// Line breaks before the last offset asked about.
    passed: u64,
}

/// Asks for the physical line of a byte offset; offsets must be asked in ascending order (records
/// are read in order), so memory holds only the breaks read ahead of the parser.
#[derive(Clone, Default)]
pub(crate) struct LineIndex(Rc<RefCell<Breaks>>);

impl LineIndex {
    /// The 1-based physical line holding byte `offset`.
    pub(crate) fn line_of(&self, offset: u64) -> u64 {
        let mut b = self.0.borrow_mut();
        while b.pending.front().is_some_and(|&p| p < offset) {
            b.pending.pop_front();
            b.passed += 1;
        }
        b.passed + 1
    }
}

/// A reader that notes where its line breaks are.
pub(crate) struct Counting<R> {
    inner: R,
    pos: u64,
    after_cr: bool,
    index: LineIndex,
}

impl<R: Read> Counting<R> {
    pub(crate) fn new(inner: R) -> (Counting<R>, LineIndex) {
        let index = LineIndex::default();
        (Counting { inner, pos: 0, after_cr: false, index: index.clone() }, index)
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut b = self.index.0.borrow_mut();
        for (i, &c) in buf[..n].iter().enumerate() {
            match c {
                b'\n' if self.after_cr => self.after_cr = false, // the \n of a \r\n
                b'\n' => b.pending.push_back(self.pos + i as u64),
                b'\r' => {
                    b.pending.push_back(self.pos + i as u64);
                    self.after_cr = true;
                }
                _ => self.after_cr = false,
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// `s` as it may appear in an error message: at most 64 characters, then how long it really is.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_string();
    }
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}... ({} bytes in all)", &s[..end], s.len()),
        None => s.to_string(),
    }
}

/// A list of names for an error message: the first few, then how many more.
pub(crate) fn shorten_list<S: AsRef<str>>(names: &[S]) -> String {
    const MAX: usize = 20;
    let shown: Vec<String> = names.iter().take(MAX).map(|n| shorten(n.as_ref())).collect();
    let more = names.len().saturating_sub(MAX);
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{}, ... and {more} more", shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &[u8], offsets: &[u64]) -> Vec<u64> {
        let (mut r, index) = Counting::new(text);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        offsets.iter().map(|&o| index.line_of(o)).collect()
    }

    #[test]
    fn lf_crlf_and_cr_count_the_same() {
        assert_eq!(lines_of(b"a\nb\n\nc\n", &[0, 2, 5]), [1, 2, 4]);
        assert_eq!(lines_of(b"a\r\nb\r\n\r\nc\r\n", &[0, 3, 8]), [1, 2, 4]);
        assert_eq!(lines_of(b"a\rb\r\rc\r", &[0, 2, 5]), [1, 2, 4]);
    }

    #[test]
    fn shorten_keeps_short_text_and_cuts_long_text() {
        assert_eq!(shorten("abc"), "abc");
        let long = "x".repeat(10_000_000);
        let s = shorten(&long);
        assert!(s.len() < 100 && s.contains("10000000 bytes"), "{s}");
    }
}
