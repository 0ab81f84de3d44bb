//! Batches for the training loop, prepared on another thread: while the device runs step k, this
//! thread gathers rows, converts targets and draws dropout masks for step k+1.

use std::sync::mpsc::sync_channel;

use crate::data::{Dataset, TargetBuf};
use crate::layers::draw_masks;
use crate::losses::{Loss, TargetKind};
use crate::{Error, Result};

/// How a data set's targets become the loss's target input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prep {
    /// No targets (prediction).
    None,
    /// Regression values, one per row.
    Values,
    /// Class ids as u32 labels.
    Labels,
    /// Class ids as one f32 per row (binary 0/1 targets).
    ClassAsValue,
    /// Class ids as one-hot rows of this width.
    OneHot(usize),
    /// Token windows of `context + 1` ids, no target column: the first `context` ids are the
    /// input and the last `context` (shifted by one) the labels, as u32 (language models).
    NextToken,
}

impl Prep {
    /// Checks that the data's targets fit the loss and the model's output width.
    pub fn new(data: &dyn Dataset, loss: Loss, out_width: usize) -> Result<Prep> {
        if !data.has_target() {
            return Err(Error::Model("the data has no target column to train or evaluate on".into()));
        }
        let classes = data.num_classes();
        let too_many = |k: usize| {
            Error::Model(format!(
                "the data has {k} classes but the model outputs {out_width} values per example"
            ))
        };
        Ok(match (loss.target_kind(), classes) {
            (TargetKind::Labels, Some(k)) if k <= out_width => Prep::Labels,
            (TargetKind::OneHot, Some(k)) if k <= out_width => Prep::OneHot(out_width),
            (TargetKind::Labels | TargetKind::OneHot, Some(k)) => return Err(too_many(k)),
            (TargetKind::Labels | TargetKind::OneHot, None) => {
                return Err(Error::Model(format!(
                    "{} needs class labels, but the target is numeric",
                    loss.name()
                )))
            }
            (TargetKind::Values, None) if out_width == 1 => Prep::Values,
            (TargetKind::Values, None) => {
                return Err(Error::Model(format!(
                    "one target value per row, but the model outputs {out_width}"
                )))
            }
            (TargetKind::Values, Some(k)) if out_width == 1 && k <= 2 => Prep::ClassAsValue,
            (TargetKind::Values, Some(k)) if out_width > 1 && k <= out_width => Prep::OneHot(out_width),
            (TargetKind::Values, Some(k)) => return Err(too_many(k)),
        })
    }
}

/// One batch, ready to feed.
#[derive(Default)]
pub(crate) struct StepBatch {
    pub rows: usize,
    pub features: Vec<f32>,
    /// Targets as the loss wants them (f32 values / one-hot), or empty.
    pub values: Vec<f32>,
    /// Class ids (for `Prep::Labels`, and for accuracy), or empty.
    pub labels: Vec<u32>,
    /// One mask per dropout layer.
    pub masks: Vec<Vec<f32>>,
    /// The features as token ids, when the model's input is tokens (else empty).
    pub tokens: Vec<u32>,
}

/// Dropout masks to draw for each batch: (rate, elements per example).
pub(crate) struct MaskPlan {
    pub layers: Vec<(f32, usize)>,
    pub seed: u64,
    /// Global step of the first batch (masks depend on (seed, step), so a resumed run draws the same).
    pub first_step: u64,
    /// The vocabulary size when the model's input is token ids: each batch's features are then
    /// checked to be integers in `0..vocab` and converted to `StepBatch::tokens`.
    pub tokens: Option<usize>,
}

/// Feature values as token ids; an error names the first data-set row and column that is not an
/// integer in `0..vocab`.
fn to_tokens(features: &[f32], idx: &[usize], width: usize, vocab: usize) -> Result<Vec<u32>> {
    features
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v >= 0.0 && (v as f64) < vocab as f64 {
                Ok(v as u32)
            } else {
                Err(Error::InvalidArgument(format!(
                    "row {} column {}: {v} is not a token id (an integer in 0..{vocab})",
                    idx[i / width.max(1)],
                    i % width.max(1)
                )))
            }
        })
        .collect()
}

fn make_batch(
    data: &dyn Dataset,
    idx: &[usize],
    prep: Prep,
    masks: &MaskPlan,
    step: u64,
) -> Result<StepBatch> {
    let rows = idx.len();
    let mut features = vec![0.0; rows * data.feature_width()];
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    match prep {
        Prep::None | Prep::NextToken => data.fetch(idx, &mut features, TargetBuf::None)?,
        Prep::Values => {
            values = vec![0.0; rows];
            data.fetch(idx, &mut features, TargetBuf::Values(&mut values))?;
        }
        Prep::Labels | Prep::ClassAsValue | Prep::OneHot(_) => {
            labels = vec![0; rows];
            data.fetch(idx, &mut features, TargetBuf::Classes(&mut labels))?;
            match prep {
                Prep::ClassAsValue => values = labels.iter().map(|&c| c as f32).collect(),
                Prep::OneHot(w) => {
                    values = vec![0.0; rows * w];
                    for (r, &c) in labels.iter().enumerate() {
                        values[r * w + c as usize] = 1.0;
                    }
                }
                _ => {}
            }
        }
    }
    let drawn = draw_masks(&masks.layers, masks.seed, step, rows);
    let mut tokens = match masks.tokens {
        Some(vocab) => to_tokens(&features, idx, data.feature_width(), vocab)?,
        None => Vec::new(),
    };
    if prep == Prep::NextToken {
        let width = data.feature_width();
        let context = width.saturating_sub(1);
        let (mut x, mut y) = (Vec::with_capacity(rows * context), Vec::with_capacity(rows * context));
        for w in tokens.chunks_exact(width.max(1)) {
            x.extend_from_slice(&w[..context]);
            y.extend_from_slice(&w[1..]);
        }
        (tokens, labels) = (x, y);
    }
    Ok(StepBatch { rows, features, values, labels, masks: drawn, tokens })
}

/// Calls `consume` with each batch of `order` (chunks of `batch_size`), prepared one ahead on a
/// helper thread.
pub(crate) fn stream(
    data: &(dyn Dataset + Sync),
    order: &[usize],
    batch_size: usize,
    prep: Prep,
    masks: &MaskPlan,
    mut consume: impl FnMut(StepBatch) -> Result<()>,
) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument("batch size must be at least 1".into()));
    }
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Result<StepBatch>>(2);
        s.spawn(move || {
            for (k, idx) in order.chunks(batch_size).enumerate() {
                let batch = make_batch(data, idx, prep, masks, masks.first_step + k as u64);
                if tx.send(batch).is_err() {
                    break; // the consumer stopped (an error): stop preparing
                }
            }
        });
        for batch in rx.iter() {
            consume(batch?)?;
        }
        Ok(())
    })
}
