//! Token files: memory-mapped u16/u32 ids, their windows as data sets, atomic writing, and the
//! tokenize-once cache.

mod common;

use std::time::{Duration, SystemTime};

use common::{assert_has, err, temp_dir, write};
use kiln_trainer::data::{
    ensure_tokenized, tokenized_meta_path, write_token_file, ByteTokenizer, Dataset, SplitMix64, TargetBuf,
    TokenFile, TokenFileWindows, TokenWidth, Tokenizer,
};

fn random_ids(n: usize, below: u64, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.below(below) as u32).collect()
}

/// Every row of `w`, as ids.
fn rows(w: &TokenFileWindows) -> Vec<Vec<u32>> {
    let width = w.feature_width();
    let mut f = vec![0.0f32; w.len() * width];
    w.fetch(&(0..w.len()).collect::<Vec<_>>(), &mut f, TargetBuf::None).unwrap();
    f.chunks(width).map(|r| r.iter().map(|&v| v as u32).collect()).collect()
}

#[test]
fn u16_and_u32_files_read_back_exactly() {
    let dir = temp_dir("token-file-widths");
    let ids = random_ids(1001, 65536, 7);
    for (width, name) in [(TokenWidth::U16, "a.bin"), (TokenWidth::U32, "b.bin")] {
        let path = dir.join(name);
        write_token_file(&path, &ids, width).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1001 * width.bytes() as u64);
        let f = TokenFile::open(&path, width).unwrap();
        assert_eq!((f.len(), f.width(), f.path()), (1001, width, path.as_path()));
        assert_eq!((0..1001).map(|i| f.get(i).unwrap()).collect::<Vec<_>>(), ids);
        assert_eq!(f.get(1001), None);
        assert_eq!(f.max_id(), ids.iter().copied().max());
        assert_eq!(f.to_vec(..).unwrap(), ids);
    }
    // the raw bytes are little-endian
    let path = dir.join("le.bin");
    write_token_file(&path, &[0x0102, 0xA0B0], TokenWidth::U16).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), [0x02, 0x01, 0xB0, 0xA0]);
    write_token_file(&path, &[0x0102_0304, 7], TokenWidth::U32).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), [4, 3, 2, 1, 7, 0, 0, 0]);
    // u32 ids beyond u16 and beyond 2^24 are kept exactly by get (f32 rows are exact below 2^24)
    write_token_file(&path, &[70_000, 1 << 24, u32::MAX], TokenWidth::U32).unwrap();
    let f = TokenFile::open(&path, TokenWidth::U32).unwrap();
    assert_eq!(f.to_vec(..).unwrap(), [70_000, 1 << 24, u32::MAX]);
}

#[test]
fn bad_files_are_errors_naming_the_path() {
    let dir = temp_dir("token-file-errors");
    let missing = dir.join("missing.bin");
    assert_has(&err(TokenFile::open(&missing, TokenWidth::U16)), &["missing.bin"]);
    let empty = write(&dir, "empty.bin", b"");
    assert_has(&err(TokenFile::open(&empty, TokenWidth::U16)), &["empty.bin", "empty"]);
    let odd = write(&dir, "odd.bin", [1u8, 0, 2, 0, 3]);
    assert_has(&err(TokenFile::open(&odd, TokenWidth::U16)), &["odd.bin", "5 bytes", "u16"]);
    let six = write(&dir, "six.bin", [0u8; 6]);
    assert_eq!(TokenFile::open(&six, TokenWidth::U16).unwrap().len(), 3);
    assert_has(&err(TokenFile::open(&six, TokenWidth::U32)), &["six.bin", "6 bytes", "u32"]);
    assert_has(&err(TokenFile::open(&dir, TokenWidth::U16)), &["token-file-errors"]);
}

#[test]
fn vocab_check_names_the_first_offending_id_and_index() {
    let dir = temp_dir("token-file-vocab");
    let path = dir.join("v.bin");
    let mut ids = random_ids(333, 50, 3);
    ids[211] = 77;
    ids[300] = 90;
    write_token_file(&path, &ids, TokenWidth::U16).unwrap();
    let f = TokenFile::open(&path, TokenWidth::U16).unwrap();
    f.check_vocab(91).unwrap();
    assert_has(&err(f.check_vocab(50)), &["v.bin", "token id 77 at index 211", "vocabulary size 50"]);
    let tail = f.slice(250..).unwrap();
    assert_has(&err(tail.check_vocab(50)), &["token id 90 at index 50 of the view (token 300 of the file)"]);
    assert_eq!(f.max_id(), Some(90));
}

#[test]
fn writing_checks_the_width_and_leaves_no_temp_file() {
    let dir = temp_dir("token-file-write");
    let path = dir.join("w.bin");
    let msg = err(write_token_file(&path, &[1, 65535, 65536, 70000], TokenWidth::U16));
    assert_has(&msg, &["w.bin", "token id 65536 at index 2", "u16"]);
    assert!(!path.exists(), "nothing is written when an id does not fit");
    assert_has(&err(write_token_file(&path, &[], TokenWidth::U16)), &["w.bin", "no token ids"]);
    write_token_file(&path, &random_ids(17, 9, 1), TokenWidth::U16).unwrap();
    // overwriting replaces the file whole
    let ids = random_ids(5, 1 << 20, 2);
    write_token_file(&path, &ids, TokenWidth::U32).unwrap();
    assert_eq!(TokenFile::open(&path, TokenWidth::U32).unwrap().to_vec(..).unwrap(), ids);
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["w.bin"], "only the token file is left in the folder");
}

#[test]
fn consecutive_windows_cover_exactly_the_stated_tokens() {
    let dir = temp_dir("token-file-consecutive");
    let path = dir.join("c.bin");
    let ids = random_ids(1003, 50_257, 11);
    write_token_file(&path, &ids, TokenWidth::U16).unwrap();
    let f = TokenFile::open(&path, TokenWidth::U16).unwrap();
    for t in [1, 7, 64, 1001, 1002] {
        let w = f.consecutive_windows(t).unwrap();
        let n = 1002 / t;
        assert_eq!((w.len(), w.feature_width(), w.context()), (n, t + 1, t));
        let rows = rows(&w);
        for (k, row) in rows.iter().enumerate() {
            assert_eq!(row[..], ids[k * t..=k * t + t], "window {k} of context {t}");
        }
        // the targets (each row's last t ids) are tokens 1..=n*t, each once, in order
        let targets: Vec<u32> = rows.iter().flat_map(|r| r[1..].to_vec()).collect();
        assert_eq!(targets, ids[1..n * t + 1]);
    }
    assert_has(&err(f.consecutive_windows(1003)), &["c.bin", "1003 tokens", "context of 1003"]);
    assert!(f.consecutive_windows(0).is_err());
    let mut out = vec![0.0; 3];
    assert!(f.consecutive_windows(2).unwrap().fetch(&[501], &mut out, TargetBuf::None).is_err());
}

#[test]
fn random_windows_are_in_bounds_and_deterministic_per_seed() {
    let dir = temp_dir("token-file-random");
    let path = dir.join("r.bin");
    let ids = random_ids(517, 1 << 24, 5);
    write_token_file(&path, &ids, TokenWidth::U32).unwrap();
    let f = TokenFile::open(&path, TokenWidth::U32).unwrap();
    let t = 13;
    let w = f.random_windows(t, 301, 42).unwrap();
    assert_eq!((w.len(), w.feature_width()), (301, 14));
    let starts: Vec<usize> = (0..301).map(|i| w.start(i).unwrap()).collect();
    assert_eq!(w.start(301), None);
    assert!(starts.iter().all(|&s| s + t < 517), "every window ends inside the file");
    for (row, &s) in rows(&w).iter().zip(&starts) {
        assert_eq!(row[..], ids[s..=s + t]);
    }
    // same seed, same windows; another seed, others
    assert_eq!(rows(&f.random_windows(t, 301, 42).unwrap()), rows(&w));
    let other: Vec<usize> = {
        let w2 = f.random_windows(t, 301, 43).unwrap();
        (0..301).map(|i| w2.start(i).unwrap()).collect()
    };
    assert_ne!(other, starts);
    // the starts spread over the whole range (0..=503), not one corner of it
    assert!(starts.iter().any(|&s| s < 100) && starts.iter().any(|&s| s > 400));
    // a window as long as the file has exactly one start
    let whole = f.random_windows(516, 5, 9).unwrap();
    assert!((0..5).all(|i| whole.start(i) == Some(0)));
    assert_has(&err(f.random_windows(517, 5, 9)), &["r.bin", "517 tokens are too few"]);
    // fetch checks its buffer
    let mut short = vec![0.0; 13];
    assert!(w.fetch(&[0], &mut short, TargetBuf::None).is_err());
}

#[test]
fn slices_split_by_position_without_copying() {
    let dir = temp_dir("token-file-slice");
    let path = dir.join("s.bin");
    let ids = random_ids(1001, 1000, 8);
    write_token_file(&path, &ids, TokenWidth::U16).unwrap();
    let f = TokenFile::open(&path, TokenWidth::U16).unwrap();
    let (train, val) = f.split(0.1).unwrap();
    assert_eq!((train.len(), val.len(), val.offset()), (901, 100, 901));
    assert_eq!(train.to_vec(..).unwrap(), ids[..901]);
    assert_eq!(val.to_vec(..).unwrap(), ids[901..]);
    let mid = val.slice(10..=19).unwrap();
    assert_eq!((mid.offset(), mid.to_vec(..).unwrap()), (911, ids[911..921].to_vec()));
    assert_eq!(mid.get(10), None);
    // windows of a slice stay inside it
    let w = val.consecutive_windows(9).unwrap();
    assert_eq!(w.len(), 11);
    assert_eq!(rows(&w)[10], ids[991..1001]);
    let rw = train.random_windows(50, 200, 1).unwrap();
    assert!((0..200).all(|i| rw.start(i).unwrap() + 50 < 901));
    #[allow(clippy::reversed_empty_ranges)] // a reversed range is what is refused
    let reversed = f.slice(9..3);
    assert!(f.slice(5..1002).is_err() && reversed.is_err() && f.split(1.0).is_err());
    assert!(f.slice(1001..).unwrap().is_empty());
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

#[test]
fn ensure_tokenized_writes_once_and_rewrites_when_the_text_is_newer() {
    let dir = temp_dir("token-file-ensure");
    let text = "First Citizen:\nBefore we proceed any further, hear me speak — “señor”, 甘い.\n";
    let text_path = write(&dir, "input.txt", text);
    let out = dir.join("input.byte.bin");
    let t0 = SystemTime::now() - Duration::from_secs(100);
    set_mtime(&text_path, t0);
    let f = ensure_tokenized(&text_path, &ByteTokenizer, &out).unwrap();
    assert_eq!(f.width(), TokenWidth::U16);
    assert_eq!(f.to_vec(..).unwrap(), text.bytes().map(u32::from).collect::<Vec<_>>());
    assert_eq!(ByteTokenizer.decode(&f.to_vec(..).unwrap()), text);
    assert!(tokenized_meta_path(&out).exists());

    // mark the token file (same length) so a reuse is visible: the mark is returned, not rewritten
    let mut marked = f.to_vec(..).unwrap();
    marked[3] = 255;
    drop(f);
    write_token_file(&out, &marked, TokenWidth::U16).unwrap();
    set_mtime(&out, t0 + Duration::from_secs(10));
    let again = ensure_tokenized(&text_path, &ByteTokenizer, &out).unwrap();
    assert_eq!(again.get(3), Some(255), "an up-to-date token file is reused");

    // a text newer than the token file: tokenized again
    set_mtime(&text_path, t0 + Duration::from_secs(20));
    let fresh = ensure_tokenized(&text_path, &ByteTokenizer, &out).unwrap();
    assert_eq!(fresh.get(3), Some(text.as_bytes()[3] as u32));

    // another tokenizer (fingerprint) is not fooled by the file: it is rewritten with its ids
    #[derive(Debug)]
    struct Shifted;
    impl Tokenizer for Shifted {
        fn encode(&self, t: &str) -> kiln_trainer::Result<Vec<u32>> {
            Ok(t.bytes().map(|b| b as u32 + 70_000).collect())
        }
        fn decode(&self, _: &[u32]) -> String {
            String::new()
        }
        fn vocab_size(&self) -> usize {
            70_256
        }
        fn fingerprint(&self) -> String {
            "shifted".into()
        }
    }
    let s = ensure_tokenized(&text_path, &Shifted, &out).unwrap();
    assert_eq!((s.width(), s.get(0)), (TokenWidth::U32, Some(b'F' as u32 + 70_000)));
    // a missing or truncated sidecar means a rewrite too
    std::fs::write(tokenized_meta_path(&out), b"{").unwrap();
    assert_eq!(ensure_tokenized(&text_path, &ByteTokenizer, &out).unwrap().get(0), Some(b'F' as u32));

    assert_has(&err(ensure_tokenized(dir.join("nope.txt"), &ByteTokenizer, &out)), &["nope.txt"]);
    let empty = write(&dir, "empty.txt", "");
    assert_has(&err(ensure_tokenized(&empty, &ByteTokenizer, dir.join("e.bin"))), &["empty.txt", "empty"]);
    let bad = write(&dir, "bad.txt", [b'a', 0xFF, b'b']);
    assert_has(
        &err(ensure_tokenized(&bad, &ByteTokenizer, dir.join("b.bin"))),
        &["bad.txt", "UTF-8", "byte 1"],
    );
}

#[test]
fn bundled_tiny_shakespeare_tokenizes_to_its_bytes() {
    let dir = temp_dir("token-file-shakespeare");
    let text_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tinyshakespeare.txt");
    let f = ensure_tokenized(&text_path, &ByteTokenizer, dir.join("tinyshakespeare.byte.bin")).unwrap();
    assert_eq!(f.len(), 1_115_394); // ASCII: one byte per character
    assert_eq!(ByteTokenizer.decode(&f.to_vec(..14).unwrap()), "First Citizen:");
    f.check_vocab(128).unwrap();
    let (train, val) = f.split(0.1).unwrap();
    assert_eq!((train.len(), val.len()), (1_003_855, 111_539));
    assert_eq!(val.consecutive_windows(256).unwrap().len(), 111_538 / 256);
}
