//! What every next-token language model tells the core the same way (the character GPT and the
//! Llama decoder): `[batch, T]` token inputs and shifted targets, logits scored by cross-entropy
//! at every position, named parameters, and data rows that are windows of `T + 1` ids.

use kiln_graph::{Graph, NodeId};

use super::{Heads, Param};
use crate::checkpoint::Dtype;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::layers::TrainState;

/// The heads of a language model over `tokens` and `targets` (`[batch, T]` u32 inputs) whose
/// `logits` are `[batch, T, vocab]`; `params` in `state_dict` order, each decayed by the
/// optimizer when `decay(shape)` says so.
pub(crate) fn next_token_heads(
    g: &Graph,
    (tokens, targets, logits): (NodeId, NodeId, NodeId),
    vocab: usize,
    params: Vec<NodeId>,
    decay: impl Fn(&[usize]) -> bool,
) -> Heads {
    let loss = g.softmax_cross_entropy(logits, targets);
    let params = params
        .into_iter()
        .map(|p| {
            let shape = g.shape(p).resolve(1);
            let name = g.name_of(p).unwrap_or_default();
            (p, Param { name, decay: decay(&shape), shape, buffer: false, file_dtype: Dtype::F32 })
        })
        .collect();
    Heads {
        x: tokens,
        tokens: true,
        target: targets,
        out_train: logits,
        out_eval: logits,
        loss_train: loss,
        loss_eval: loss,
        train: TrainState::default(),
        out_width: vocab,
        params,
    }
}

/// Checks that `data`'s rows are windows of `context + 1` token ids.
pub(crate) fn check_windows(model: &str, context: usize, data: &dyn Dataset) -> Result<()> {
    let want = context + 1;
    if data.feature_width() != want {
        return Err(Error::Model(format!(
            "a {model} of context {context} trains on windows of {want} token ids, the data has {} per row",
            data.feature_width()
        )));
    }
    Ok(())
}

/// Checks a `[batch, context]` batch of token ids and their next-token targets (`model` names
/// the model in the error): same lengths, a whole number of sequences, every id below `vocab`.
pub(crate) fn check_token_batch(
    model: &str,
    context: usize,
    vocab: usize,
    tokens: &[u32],
    targets: &[u32],
) -> Result<()> {
    if tokens.is_empty() || !tokens.len().is_multiple_of(context) || targets.len() != tokens.len() {
        return Err(Error::shape(
            format!("{model} batch"),
            format!("[batch, {context}] tokens and targets of the same length"),
            format!("{} tokens, {} targets", tokens.len(), targets.len()),
        ));
    }
    if let Some((i, bad)) = tokens.iter().chain(targets).enumerate().find(|(_, &id)| id as usize >= vocab) {
        return Err(Error::InvalidArgument(format!(
            "token id {bad} (at {i}) is outside the vocabulary of {vocab}"
        )));
    }
    Ok(())
}
