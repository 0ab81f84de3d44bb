//! Sharded evaluation across the ranks of a process group (an MPI job): the batches of an
//! evaluation (validation in `fit`, `evaluate`) are numbered in order, rank `r` runs its
//! contiguous block of them (`split_rows(batches, ranks)[r]`) and keeps each batch's loss (and,
//! when a metric scores them, its outputs and targets); every rank then gathers every rank's
//! results and adds them to its tally batch by batch in the global order. The batches are those
//! one process would run (the same rows in the same order, the same batch size), so the loss and
//! metrics are bit for bit those of one process evaluating the whole set on the same backend.

use super::data_parallel::split_rows;
use super::fit::Tally;
use crate::distributed::{open_group, rank, size};
use crate::stream::StepBatch;
use crate::Result;

/// This rank's share of an evaluation and what it has computed so far.
pub(crate) struct EvalShard {
    batch_size: usize,
    /// Rows of the whole evaluation.
    rows: usize,
    /// Each rank's block of batches.
    blocks: Vec<(usize, usize)>,
    /// Whether outputs and targets are kept (a metric scores them).
    metrics: bool,
    losses: Vec<f32>,
    preds: Vec<f32>,
    /// Class ids (as f32: exact below 2^24, as every class id and token id is) and target values
    /// of the kept batches.
    labels: Vec<f32>,
    values: Vec<f32>,
}

impl EvalShard {
    /// The shard of this rank for an evaluation of `rows` rows in batches of `batch_size`;
    /// `None` in a group of one process.
    pub fn new(rows: usize, batch_size: usize, metrics: bool) -> Option<EvalShard> {
        let procs = size();
        if procs == 1 {
            return None;
        }
        let batch_size = batch_size.max(1);
        let mut blocks = split_rows(rows.div_ceil(batch_size), procs);
        let end = blocks.last().map_or(0, |b| b.1);
        blocks.resize(procs, (end, end));
        let empty = Vec::new;
        Some(EvalShard {
            batch_size,
            rows,
            blocks,
            metrics,
            losses: empty(),
            preds: empty(),
            labels: empty(),
            values: empty(),
        })
    }

    /// The rows this rank evaluates, out of the evaluation's `order`.
    pub fn mine<'a>(&self, order: &'a [usize]) -> &'a [usize] {
        let (lo, hi) = self.blocks[rank()];
        &order[(lo * self.batch_size).min(order.len())..(hi * self.batch_size).min(order.len())]
    }

    /// Keeps one of this rank's batches: its loss, and its outputs and targets for the metrics.
    pub fn keep(&mut self, batch: &StepBatch, loss: f32, pred: &[f32]) {
        self.losses.push(loss);
        if self.metrics {
            self.preds.extend_from_slice(pred);
            self.labels.extend(batch.labels.iter().map(|&l| l as f32));
            self.values.extend_from_slice(&batch.values);
        }
    }

    /// Gathers every rank's batches and adds them to `tally` in the global batch order.
    pub fn replay(self, tally: &mut Tally, width: usize, logit_output: bool) -> Result<()> {
        let mut group = open_group();
        let per_rank: Vec<usize> = self.blocks.iter().map(|(a, b)| b - a).collect();
        let losses = group.all_gather(&self.losses, &per_rank)?;
        let rows_of = |i: usize| self.batch_size.min(self.rows - i * self.batch_size);
        let (mut preds, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
        if self.metrics {
            // the lengths each rank sends (24-bit pieces: exact in f32), then the values (the
            // per-row widths follow from them)
            let lens: Vec<f32> = [self.preds.len(), self.labels.len(), self.values.len()]
                .iter()
                .flat_map(|&n| [(n >> 24) as f32, (n & 0xFF_FFFF) as f32])
                .collect();
            let all = group.all_gather(&lens, &vec![6; per_rank.len()])?;
            let counts = |k: usize| {
                all.chunks(6).map(|c| ((c[2 * k] as usize) << 24) + c[2 * k + 1] as usize).collect::<Vec<_>>()
            };
            preds = group.all_gather(&self.preds, &counts(0))?;
            labels = group.all_gather(&self.labels, &counts(1))?;
            values = group.all_gather(&self.values, &counts(2))?;
        }
        let width_of = |v: &[f32]| v.len() / self.rows.max(1);
        let (pw, lw, vw) = (width_of(&preds), width_of(&labels), width_of(&values));
        let mut at = 0;
        for (i, &loss) in losses.iter().enumerate() {
            let rows = rows_of(i);
            let batch = StepBatch {
                rows,
                labels: labels
                    .get(at * lw..(at + rows) * lw)
                    .unwrap_or(&[])
                    .iter()
                    .map(|&l| l as u32)
                    .collect(),
                values: values.get(at * vw..(at + rows) * vw).unwrap_or(&[]).to_vec(),
                ..StepBatch::default()
            };
            tally.add(&batch, loss, preds.get(at * pw..(at + rows) * pw).unwrap_or(&[]), width, logit_output);
            at += rows;
        }
        Ok(())
    }
}
