//! `evaluate` and `predict`: the inference chain (no dropout, no updates), batch by batch, with
//! the next batch submitted before the previous one's results are read.

use kiln_graph::Pending;

use super::eval_shard::EvalShard;
use super::fit::{collect, feeds, Tally};
use super::{Bound, Core, Trainable};
use crate::data::{Dataset, TargetBuf};
use crate::stream::{stream, MaskPlan, Prep, StepBatch};
use crate::{Error, Result};

/// Loss and metrics over a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss over the rows.
    pub loss: f64,
    /// (name, value) per compiled metric.
    pub metrics: Vec<(String, f64)>,
}

impl Evaluation {
    /// The value of `"loss"` or a metric name (`"accuracy"`), if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        if name == "loss" {
            return Some(self.loss);
        }
        self.metrics.iter().find(|(n, _)| n == name).map(|x| x.1)
    }
}

/// Raw features as a data set without targets: `[rows, width]`, row-major.
pub struct Features<'a> {
    /// `[rows, width]` features, row-major.
    pub data: &'a [f32],
    /// Features per row.
    pub width: usize,
}

impl Dataset for Features<'_> {
    fn len(&self) -> usize {
        self.data.len() / self.width.max(1)
    }
    fn feature_width(&self) -> usize {
        self.width
    }
    fn num_classes(&self) -> Option<usize> {
        None
    }
    fn has_target(&self) -> bool {
        false
    }
    fn fetch(&self, indices: &[usize], features: &mut [f32], _: TargetBuf<'_>) -> Result<()> {
        for (dst, &i) in features.chunks_exact_mut(self.width).zip(indices) {
            dst.copy_from_slice(&self.data[i * self.width..(i + 1) * self.width]);
        }
        Ok(())
    }
}

impl Core {
    /// Loss and compiled metrics over `rows` of `data` (all rows when `None`).
    pub(crate) fn evaluate_rows(
        &mut self,
        net: &dyn Trainable,
        data: &(dyn Dataset + Sync),
        rows: Option<&[usize]>,
        batch_size: usize,
    ) -> Result<Evaluation> {
        let config = self.bound_mut()?.config.clone();
        let prep = net.prep(data, config.loss)?;
        let mut tally = Tally::new(&config.metrics).scaled(net.target_scale(), config.loss);
        let logit_output = config.loss.output_is_logit();
        let vocab = net.token_vocab();
        let c = self.bound_mut()?;
        let fetch = [c.heads.loss_eval, c.heads.out_eval];
        // the outputs are read back only when a metric scores them
        let fetch = if config.metrics.is_empty() { &fetch[..1] } else { &fetch[..] };
        let all: Vec<usize>;
        let order = match rows {
            Some(r) => r,
            None => {
                all = (0..data.len()).collect();
                &all
            }
        };
        // in an MPI job each rank evaluates its block of the batches (`eval_shard.rs`)
        let mut shard = EvalShard::new(order.len(), batch_size, !config.metrics.is_empty());
        let mine = shard.as_ref().map_or(order, |s| s.mine(order));
        let width = c.heads.out_width;
        let mut add = |b: &StepBatch, (loss, pred): (f32, Vec<f32>)| match &mut shard {
            Some(s) => s.keep(b, loss, &pred),
            None => tally.add(b, loss, &pred, width, logit_output),
        };
        let no_masks = MaskPlan { layers: Vec::new(), seed: 0, first_step: 0, tokens: vocab };
        let mut in_flight: Option<(Pending, StepBatch)> = None;
        if !mine.is_empty() {
            stream(data, mine, batch_size, prep, &no_masks, |batch| {
                let pending = c.session.run(&feeds(&c.heads, &batch, prep, false), fetch)?;
                if let Some((p, b)) = in_flight.replace((pending, batch)) {
                    add(&b, collect(&mut c.session, p)?);
                }
                Ok(())
            })?;
        }
        if let Some((p, b)) = in_flight.take() {
            add(&b, collect(&mut c.session, p)?);
        }
        if let Some(s) = shard {
            s.replay(&mut tally, width, logit_output)?;
        }
        if tally.steps == 0 {
            return Err(Error::InvalidArgument("evaluate: the data set is empty".into()));
        }
        Ok(Evaluation { loss: tally.loss(), metrics: tally.metric_values() })
    }

    /// The model's outputs for every row of `data`: `[rows, output_width]`, row-major.
    pub fn predict(
        &mut self,
        net: &dyn Trainable,
        data: &(dyn Dataset + Sync),
        batch_size: usize,
    ) -> Result<Vec<f32>> {
        net.check_features(data)?;
        let vocab = net.token_vocab();
        let c = self.bound_mut()?;
        let fetch = [c.heads.out_eval];
        let order: Vec<usize> = (0..data.len()).collect();
        let no_masks = MaskPlan { layers: Vec::new(), seed: 0, first_step: 0, tokens: vocab };
        let mut out = Vec::with_capacity(order.len() * c.heads.out_width);
        let mut in_flight: Option<Pending> = None;
        let take = |c: &mut Bound, p: Pending, out: &mut Vec<f32>| -> Result<()> {
            let v =
                c.session.wait(p)?.into_iter().next().map(|v| v.into_f32()).transpose()?.unwrap_or_default();
            out.extend(v);
            Ok(())
        };
        stream(data, &order, batch_size, Prep::None, &no_masks, |batch| {
            let pending = c.session.run(&feeds(&c.heads, &batch, Prep::None, false), &fetch)?;
            if let Some(p) = in_flight.replace(pending) {
                take(c, p, &mut out)?;
            }
            Ok(())
        })?;
        if let Some(p) = in_flight.take() {
            take(c, p, &mut out)?;
        }
        Ok(out)
    }
}
