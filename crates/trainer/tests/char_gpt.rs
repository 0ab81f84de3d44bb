//! `zoo::CharGpt` trains through the trainable core: `fit` on token windows with a warm-up +
//! cosine schedule, clipping, validation, a JSON-lines log and best checkpoints; a saved model
//! resumes `fit` exactly; and files of the earlier single-file format still load.

mod common;

use kiln_device::{open, BackendChoice};
use kiln_trainer::checkpoint::{Checkpoint, STEP};
use kiln_trainer::data::{CharCorpus, SplitMix64, TokenWindows};
use kiln_trainer::zoo::{CharGpt, CharGptConfig};
use kiln_trainer::{optimizer_path, FitOptions, Schedule, Validation};

const TEXT: &str = "to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer \
the slings and arrows of outrageous fortune, or to take arms against a sea of troubles";

fn config(vocab: usize) -> CharGptConfig {
    CharGptConfig { vocab, dim: 16, layers: 1, heads: 2, context: 8, lr: 3e-3, weight_decay: 0.01, seed: 5 }
}

fn model(vocab: usize) -> CharGpt {
    let cfg = config(vocab);
    let mut training = CharGpt::default_training(&cfg);
    training.schedule =
        Schedule::Warmup { steps: 4, then: Box::new(Schedule::Cosine { total: 40, min_lr: 1e-4 }) };
    training.clip_norm = Some(1.0);
    CharGpt::with_training(cfg, training, open(BackendChoice::Cpu).unwrap()).unwrap()
}

#[test]
fn fit_on_token_windows_uses_schedules_validation_logs_and_resumes_exactly() {
    let corpus = CharCorpus::from_text(TEXT).unwrap();
    let (train, val) = corpus.split(0.2).unwrap();
    let windows = TokenWindows::random(train, 8, 40, &mut SplitMix64::new(1)).unwrap();
    let val = TokenWindows::random(val, 8, 16, &mut SplitMix64::new(2)).unwrap();
    let dir = common::temp_dir("char-gpt-fit");
    let (log, best) = (dir.join("log.jsonl"), dir.join("best.safetensors"));
    let mut m = model(corpus.vocab_size());
    m.set_vocab(&corpus.vocab_string());
    let opts = |epochs| FitOptions {
        epochs,
        batch_size: 8,
        validation: Validation::Data(&val),
        log: Some(log.clone()),
        checkpoint_best: Some(best.clone()),
        quiet: true,
        ..Default::default()
    };
    let h = m.fit(&windows, &opts(4)).unwrap();
    assert_eq!((h.epochs.len(), m.step(), m.epochs_done()), (4, 20, 4));
    let (first, last) = (&h.epochs[0], &h.epochs[3]);
    assert!(last.loss < first.loss, "training loss {} -> {}", first.loss, last.loss);
    assert!(last.val_loss.is_some_and(f64::is_finite));
    // the rate of the last step (step 19: 15 steps into the cosine)
    let want = m.training().schedule.lr(3e-3, 19);
    assert!((last.lr - want).abs() < 1e-9, "lr {} vs the schedule's {want}", last.lr);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 4);
    assert!(best.exists() && optimizer_path(&best).exists());

    // save, load, continue: the same epochs as continuing in place
    let path = dir.join("gpt.safetensors");
    m.save(&path, &corpus.vocab_string()).unwrap();
    let (mut resumed, vocab) = CharGpt::load(&path, open(BackendChoice::Cpu).unwrap()).unwrap();
    assert_eq!(vocab, corpus.vocab_string());
    assert_eq!((resumed.step(), resumed.epochs_done()), (20, 4));
    assert_eq!(resumed.training().schedule, m.training().schedule);
    let no_files = |epochs| FitOptions {
        epochs,
        batch_size: 8,
        validation: Validation::Data(&val),
        quiet: true,
        ..Default::default()
    };
    let a = m.fit(&windows, &no_files(6)).unwrap();
    let b = resumed.fit(&windows, &no_files(6)).unwrap();
    for (x, y) in a.epochs.iter().zip(&b.epochs) {
        assert_eq!(x.loss.to_bits(), y.loss.to_bits(), "resumed fit diverged");
        assert_eq!(x.val_loss.map(f64::to_bits), y.val_loss.map(f64::to_bits));
    }
    assert_eq!(b.epochs.len(), 2);
    let e = m.fit(&TokenWindows::all(train, 4).unwrap(), &no_files(7)).unwrap_err().to_string();
    assert!(e.contains("windows of 9 token ids"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn earlier_single_file_checkpoints_still_load() {
    let corpus = CharCorpus::from_text(TEXT).unwrap();
    let dir = common::temp_dir("char-gpt-old");
    let mut m = model(corpus.vocab_size());
    let (x, y): (Vec<u32>, Vec<u32>) = (corpus.ids()[..16].to_vec(), corpus.ids()[1..17].to_vec());
    for _ in 0..3 {
        m.train_step(&x, &y).unwrap();
    }
    let path = dir.join("new.safetensors");
    m.save(&path, &corpus.vocab_string()).unwrap();
    // the earlier format: optimizer state in the same file, shaped as its parameter, and the
    // step as a bare number
    let mut old = Checkpoint::read(&path).unwrap();
    let state = Checkpoint::read(optimizer_path(&path)).unwrap();
    for t in state.tensors {
        let owner = old
            .tensors
            .iter()
            .filter(|p| t.name.starts_with(&format!("{}.", p.name)))
            .max_by_key(|p| p.name.len());
        let shape = owner.map(|p| p.shape.clone()).unwrap_or_else(|| t.shape.clone());
        old.push(&t.name, &shape, t.data).unwrap();
    }
    old.set_json(STEP, &3u64).unwrap();
    old.metadata.remove(kiln_trainer::checkpoint::OPTIMIZER);
    let old_path = dir.join("old.safetensors");
    old.write(&old_path).unwrap();
    let (mut loaded, _) = CharGpt::load(&old_path, open(BackendChoice::Cpu).unwrap()).unwrap();
    assert_eq!(loaded.step(), 3);
    assert_eq!(loaded.eval_loss(&x, &y).unwrap().to_bits(), m.eval_loss(&x, &y).unwrap().to_bits());
    let (a, b) = (m.train_step(&x, &y).unwrap(), loaded.train_step(&x, &y).unwrap());
    assert_eq!(a.to_bits(), b.to_bits(), "an old checkpoint resumed differently");
    std::fs::remove_dir_all(&dir).ok();
}
