//! Tokenizers: `load_tokenizer` with and without the `bpe` feature, and a tiny hand-written
//! GPT-2-style byte-level BPE `tokenizer.json` (`tests/data/tiny_bpe_tokenizer.json`: the 256
//! byte tokens as ids 0..255, merges `h e`, `Ġ t`, `Ġt he`, `t he`, `o u` as 256..260 and the
//! special `<|endoftext|>` as 261).

mod common;

use std::path::{Path, PathBuf};

use common::{assert_has, err, temp_dir};
use kiln_trainer::data::load_tokenizer;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_bpe_tokenizer.json")
}

#[test]
fn a_missing_tokenizer_file_is_named() {
    let dir = temp_dir("tokenizer-missing");
    assert_has(&err(load_tokenizer(dir.join("nope.json"))), &["nope.json"]);
    // a folder without tokenizer.json
    assert_has(&err(load_tokenizer(&dir)), &["tokenizer-missing", "tokenizer.json"]);
}

#[cfg(not(feature = "bpe"))]
#[test]
fn without_the_feature_the_error_says_how_to_rebuild() {
    assert_has(&err(load_tokenizer(tiny())), &["tiny_bpe_tokenizer.json", "`bpe` feature", "--features bpe"]);
}

#[cfg(feature = "bpe")]
mod bpe {
    use super::*;
    use kiln_trainer::data::BpeTokenizer;

    #[test]
    fn byte_level_bpe_encodes_to_exact_ids_and_round_trips() {
        let t = load_tokenizer(tiny()).unwrap();
        assert_eq!(t.vocab_size(), 262);
        // "the" -> t,he -> the; " thou" -> Ġt,h,ou; " ü" -> Ġ, Ã (0xC3), ¼ (0xBC)
        let text = "the thou ü";
        let ids = t.encode(text).unwrap();
        assert_eq!(ids, [259, 257, 104, 260, 32, 0xC3, 0xBC]);
        assert_eq!(t.decode(&ids), text);
        // " the" merges through Ġt + he; the special token is matched, not split into bytes
        assert_eq!(t.encode(" the<|endoftext|>x").unwrap(), [258, 261, b'x' as u32]);
        let text = "Whence thou art, “sweet” 甘い — he?\n";
        let ids = t.encode(text).unwrap();
        assert!(ids.iter().all(|&i| i < 262));
        assert_eq!(t.decode(&ids), text);
        // a folder holding tokenizer.json loads the same tokenizer (same fingerprint)
        let dir = temp_dir("tokenizer-folder");
        std::fs::copy(tiny(), dir.join("tokenizer.json")).unwrap();
        let f = load_tokenizer(&dir).unwrap();
        assert_eq!(f.fingerprint(), t.fingerprint());
        assert!(t.fingerprint().starts_with("bpe-"));
        assert_eq!(f.encode("the").unwrap(), [259]);
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_named() {
        let dir = temp_dir("tokenizer-bad");
        let p = common::write(&dir, "tokenizer.json", "{\"model\": 3}");
        assert_has(
            &err(BpeTokenizer::from_file(&p)),
            &["tokenizer.json", "not a Hugging Face tokenizer.json"],
        );
    }
}
