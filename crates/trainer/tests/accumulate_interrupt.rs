//! An interrupt during gradient accumulation (`Compile::accumulate`) stops `fit` at the next
//! optimizer update, never between micro-batches of one (the accumulators are not saved); the
//! model saved then resumes exactly, its saved configuration bringing the accumulation back.
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
    let mut m = Sequential::new(&[3]).add(Dense(9, Tanh)).add(Dropout(0.25)).add(Dense(2, Softmax)).seed(5);
    let mut c = Compile::new(Optimizer::adam(0.01), Loss::CrossEntropy, &[Metric::Accuracy]);
    c.backend = BackendChoice::Cpu;
    c.accumulate = 3;
    c.clip_norm = Some(1.0);
    m.compile_with(c).unwrap();
    m
}

#[test]
fn an_interrupt_mid_accumulation_stops_at_the_update_and_resumes_exactly() {
    let mut rng = SplitMix64::new(4);
    let rows = 100;
    let x: Vec<f32> = (0..rows * 3).map(|_| rng.below(1000) as f32 / 500.0 - 1.0).collect();
    let y: Vec<u32> = x.chunks(3).map(|r| (r[0] - r[1] * r[2] > 0.0) as u32).collect();
    let data = Table::from_arrays(
        Array { shape: vec![rows, 3], data: x },
        Some(Array { shape: vec![rows], data: y }),
    )
    .unwrap();
    let opts = |epochs| FitOptions {
        epochs,
        batch_size: 6,
        quiet: true,
        validation: Validation::Split(0.2),
        early_stopping: Some(EarlyStopping::new("val_loss", 1000)),
        ..Default::default()
    };
    let mut straight = model();
    let h = straight.fit(&data, &opts(3)).unwrap();
    // 80 training rows: 14 batches (13 of 6 and one of 2) in 5 updates per epoch
    assert!(
        h.epochs.iter().all(|e| e.steps == 5),
        "{:?}",
        h.epochs.iter().map(|e| e.steps).collect::<Vec<_>>()
    );

    // 14 training and 4 validation fetches per epoch: fetch 23 is batch 5 of epoch 2, mid-window
    let d = temp_dir("accumulate-interrupt");
    let stopping = StopAt { inner: &data, at: 23, fetches: AtomicUsize::new(0) };
    let mut first = model();
    let h1 = first.fit(&stopping, &opts(3)).unwrap();
    let at = h1.stopped_at.expect("stopped inside an epoch");
    assert_eq!((at.epoch, at.steps, h1.epochs.len()), (2, 14, 1), "{at:?}");
    assert!(at.step > 0 && at.step < 14 && at.step.is_multiple_of(3), "stopped at an update: {at:?}");
    let path = d.join("m.safetensors");
    first.save(&path).unwrap();
    kiln_trainer::interrupt::reset();

    let load = |accumulate: Option<usize>| {
        let mut m = Sequential::load(&path).unwrap();
        let mut cfg = m.saved_config().unwrap().clone();
        assert_eq!(cfg.accumulate, 3, "saved with the training configuration");
        cfg.backend = BackendChoice::Cpu;
        cfg.accumulate = accumulate.unwrap_or(cfg.accumulate);
        m.compile_with(cfg).unwrap();
        m
    };
    let e = load(Some(2)).fit(&data, &opts(3)).expect_err("another accumulation mid-epoch");
    common::assert_has(&e.to_string(), &["accumulate 3", "and 2"]);
    let mut resumed = load(None);
    let h2 = resumed.fit(&data, &opts(3)).unwrap();
    let key = |r: &kiln_trainer::EpochRecord| {
        (r.epoch, r.loss.to_bits(), r.val_loss.map(f64::to_bits), r.metrics[0].1.to_bits(), r.steps)
    };
    let mut both: Vec<_> = h1.epochs.iter().map(key).collect();
    both.extend(h2.epochs.iter().map(key));
    assert_eq!(both, h.epochs.iter().map(key).collect::<Vec<_>>());
    let w = |m: &mut Sequential| -> Vec<Vec<u32>> {
        m.weights().unwrap().into_iter().map(|t| t.2.iter().map(|v| v.to_bits()).collect()).collect()
    };
    assert_eq!(w(&mut resumed), w(&mut straight));
    std::fs::remove_dir_all(&d).ok();
}
