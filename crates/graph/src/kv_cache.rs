//! Key/value caches for generation: persistent tensors a decode step writes its keys and values
//! into, in place on the device, and attention over them masked by query position.
//!
//! Layout: one cache per layer for keys and one for values, each `[KVH, Tmax, D]` (key/value
//! heads, positions, head dimension). Attention reads it with no copy as the right operand of a
//! batched matmul over the KVH key/value heads: with grouped queries (query head
//! `h = kvh * G + g` shares key/value head `kvh`), this step's queries `[KVH, G * Tq, D]` (a
//! reshape of `[H, Tq, D]` = `[KVH, G, Tq, D]`) give scores `q @ cache^T : [KVH, G * Tq, Tmax]`,
//! [`Graph::scaled_softmax_upto`] keeps the keys at or before each query's position, and
//! `probs @ value_cache` is `[KVH, G * Tq, D]`, the output heads in order.
//!
//! A decode graph (B = 1, T = 1) per step:
//! `k_all = cache_write(k_cache, k_rows [KVH, 1, D], pos)`, the same for values,
//! `scores = matmul_t(q, k_all, false, true)`,
//! `out = matmul(scaled_softmax_upto(scores, 1 / sqrt(D), pos), v_all)`, with `pos` a u32 input
//! holding this step's position; [`crate::Session::zero_state`] clears a cache between prompts.

use kiln_device::DType;

use crate::error::Error;
use crate::graph::{Graph, NodeId, Op};
use crate::shape::Shape;

impl Graph {
    /// A persistent f32 tensor of `shape` that plans write in place (a key/value cache for
    /// [`Graph::cache_write`]): zeros at first, kept across steps, never trained. It is a state
    /// node: the session reads, sets and clears it by name (`get_state`, `set_state`,
    /// `zero_state`).
    pub fn cache(&self, name: &str, shape: &[usize]) -> NodeId {
        self.state(name, Shape::fixed(shape))
    }

    /// Writes `rows` into `cache` in place at `positions` along the cache's second-to-last axis:
    /// `cache[.., positions[j], :] = rows[.., j, :]`, every other row unchanged. `cache` is a
    /// [`Graph::cache`] (or an earlier `cache_write` of one) of shape `[.., Tmax, D]`; `rows` has
    /// its shape with `Tmax` replaced by the number of positions (u32, e.g. `[B]` with B = 1 for
    /// one token per step). Positions should be distinct.
    ///
    /// Returns the cache after the write: the same buffer, no copy. Every plan that needs the
    /// returned node runs the write first (`Session::run` as well as `Session::train`); nodes
    /// built after it that read `cache` itself also see the written rows, since both are one
    /// buffer. A position `>= Tmax` fails the step on the CPU backend and is skipped on the GPU
    /// (that row is not written). There is no gradient through a cache write.
    pub fn cache_write(&self, cache: NodeId, rows: NodeId, positions: NodeId) -> NodeId {
        self.build(Op::CacheWrite, &[cache, rows, positions], |n| {
            let (sc, sr, sp) = (&n[0].shape, &n[1].shape, &n[2].shape);
            let err = |why: &str| Err(Error::shape("cache_write", format!("cache {sc}, rows {sr}: {why}")));
            if !matches!(n[0].op, Op::State { .. } | Op::CacheWrite) {
                return err(&format!("the cache must be a Graph::cache node, got a {} node", n[0].op.name()));
            }
            if n[0].dtype != DType::F32 || n[1].dtype != DType::F32 || n[2].dtype != DType::U32 {
                return err("cache and rows must be f32, positions u32");
            }
            let r = sc.rank();
            if r < 2 || sr.rank() != r {
                return err("rows must have the cache's rank (at least 2)");
            }
            let axis = r - 2;
            if (0..r).any(|k| k != axis && sr.0[k] != sc.0[k]) {
                return err("rows must match the cache except along its positions axis");
            }
            if Shape(vec![sr.0[axis]]).symbolic_numel() != sp.symbolic_numel() {
                return err(&format!("rows along the positions axis do not match positions {sp}"));
            }
            Ok((sc.clone(), DType::F32))
        })
    }
}
