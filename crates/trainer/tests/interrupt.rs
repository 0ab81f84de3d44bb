//! An interrupt ([`kiln_trainer::interrupt::request_stop`], what the CLI's SIGINT handler calls)
//! stops `fit` at the end of the step in flight, mid-epoch; the model saved then resumes from that
//! step exactly: the interrupted epoch's record and everything after equal an uninterrupted fit's.
//! One test in this binary: the stop request is process-wide.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::temp_dir;
use kiln_device::BackendChoice;
use kiln_trainer::data::{Array, Dataset, SplitMix64, Table, TargetBuf};
use kiln_trainer::prelude::*;

/// A data set that asks for a stop when its `at`-th batch is fetched.
struct StopAt<'a> {
    inner: &'a Table,
    at: usize,
    fetches: AtomicUsize,
}

impl Dataset for StopAt<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn feature_width(&self) -> usize {
        self.inner.feature_width()
    }
    fn num_classes(&self) -> Option<usize> {
        self.inner.num_classes()
    }
    fn has_target(&self) -> bool {
        self.inner.has_target()
    }
    fn class_names(&self) -> Option<&[String]> {
        self.inner.class_names()
    }
    fn feature_names(&self) -> Option<&[String]> {
        self.inner.feature_names()
    }
    fn fetch(
        &self,
        indices: &[usize],
        features: &mut [f32],
        targets: TargetBuf<'_>,
    ) -> kiln_trainer::Result<()> {
        if self.fetches.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            kiln_trainer::interrupt::request_stop();
        }
        self.inner.fetch(indices, features, targets)
    }
}

fn model() -> Sequential {
    let mut m = Sequential::new(&[3]).add(Dense(16, Tanh)).add(Dropout(0.25)).add(Dense(2, Softmax)).seed(3);
    let mut c = Compile::new(Optimizer::adam(0.01), Loss::CrossEntropy, &[Metric::Accuracy]);
    c.backend = BackendChoice::Cpu;
    m.compile_with(c).unwrap();
    m
}

#[test]
fn an_interrupt_stops_at_the_step_and_resuming_from_it_is_exact() {
    let mut rng = SplitMix64::new(9);
    let rows = 200;
    let x: Vec<f32> = (0..rows * 3).map(|_| rng.below(1000) as f32 / 500.0 - 1.0).collect();
    let y: Vec<u32> = x.chunks(3).map(|r| (r[0] * r[1] + r[2] > 0.0) as u32).collect();
    let data = Table::from_arrays(
        Array { shape: vec![rows, 3], data: x },
        Some(Array { shape: vec![rows], data: y }),
    )
    .unwrap();
    let opts = |epochs| FitOptions {
        epochs,
        batch_size: 8,
        quiet: true,
        validation: Validation::Split(0.2),
        early_stopping: Some(EarlyStopping::new("val_loss", 1000)),
        ..Default::default()
    };
    let mut straight = model();
    let h = straight.fit(&data, &opts(4)).unwrap();

    // 20 training batches and 5 validation batches per epoch: fetch 32 is in epoch 2's training
    let d = temp_dir("interrupt");
    let stopping = StopAt { inner: &data, at: 32, fetches: AtomicUsize::new(0) };
    let mut first = model();
    let h1 = first.fit(&stopping, &opts(4)).unwrap();
    let at = h1.stopped_at.expect("stopped inside an epoch");
    assert_eq!((at.epoch, at.steps, h1.epochs.len(), first.epochs_done()), (2, 20, 1, 1), "{at:?}");
    assert!((1..20).contains(&at.step), "{at:?}");
    assert_eq!(h1.restored_epoch, None, "an interrupted fit keeps its last weights");
    let path = d.join("m.safetensors");
    first.save(&path).unwrap();
    kiln_trainer::interrupt::reset();

    // the refused fit kept the state: the same model resumes with the right batch size
    let mut resumed = Sequential::load(&path).unwrap();
    let mut cfg = resumed.saved_config().unwrap().clone();
    cfg.backend = BackendChoice::Cpu;
    resumed.compile_with(cfg).unwrap();
    // another batch size cannot continue the epoch
    let wrong = FitOptions { batch_size: 16, ..opts(4) };
    let e = resumed.fit(&data, &wrong).expect_err("a different batch size mid-epoch");
    common::assert_has(&e.to_string(), &["batch size 8", "given 16"]);
    // the refused fit kept the state: the same model resumes with the right batch size
    let h2 = resumed.fit(&data, &opts(4)).unwrap();
    let key = |r: &kiln_trainer::EpochRecord| {
        (r.epoch, r.loss.to_bits(), r.val_loss.map(f64::to_bits), r.metrics[0].1.to_bits(), r.steps)
    };
    let mut both: Vec<_> = h1.epochs.iter().map(key).collect();
    both.extend(h2.epochs.iter().map(key));
    assert_eq!(both, h.epochs.iter().map(key).collect::<Vec<_>>());
    assert_eq!(h2.restored_epoch, h.restored_epoch);
    let w = |m: &mut Sequential| -> Vec<Vec<u32>> {
        m.weights().unwrap().into_iter().map(|t| t.2.iter().map(|v| v.to_bits()).collect()).collect()
    };
    assert_eq!(w(&mut resumed), w(&mut straight));
    std::fs::remove_dir_all(&d).ok();
}
