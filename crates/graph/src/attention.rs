//! Grouped-query attention (Llama, SmolLM2): query heads share key/value heads, and the sharing
//! costs no copies. With `H = KVH * G` query heads, head `h` reads key/value head `h / G`
//! (`transformers`' `repeat_kv`). Laid out `[B, H, T, D]`, the `G` query heads of one key/value
//! head are `G * T` consecutive rows, so one batched matmul over `B * KVH` multiplies each
//! group's `[G*T, D]` queries by its own `[T, D]` keys; the scores are the usual `[B, H, T, T]`,
//! and the causal mask is applied inside the softmax kernel (no mask tensor).

use crate::error::Error;
use crate::graph::{Graph, NodeId};
use crate::nn::scale_dim;
use crate::shape::Fixed;

impl Graph {
    /// Causal grouped-query attention: `q [B, T, H, D]`, `k` and `v [B, T, KVH, D]` (rotary
    /// embeddings already applied) -> `[B, T, H * D]`, `softmax(q k^T / sqrt(D))` with position
    /// `i` attending to `j <= i`. `H` must be a multiple of `KVH` (`KVH == H` is multi-head
    /// attention).
    pub fn grouped_query_attention(&self, q: NodeId, k: NodeId, v: NodeId) -> NodeId {
        let (sq, sk) = (self.shape(q), self.shape(k));
        let fixed = |s: &crate::Shape| -> Option<Vec<usize>> {
            (s.rank() == 4)
                .then(|| s.0[1..].iter().map(|d| if let Fixed(n) = d { Some(*n) } else { None }).collect())
                .flatten()
        };
        let (Some(qd), Some(kd)) = (fixed(&sq), fixed(&sk)) else {
            return self.fail(Error::shape(
                "grouped_query_attention",
                format!("q {sq} and k {sk} must be [B, T, heads, head_dim] with fixed T, heads, head_dim"),
            ));
        };
        let (t, h, d, kvh) = (qd[0], qd[1], qd[2], kd[1]);
        if kd[0] != t || kd[2] != d || kvh == 0 || h % kvh != 0 || self.shape(v) != sk || sq.0[0] != sk.0[0] {
            return self.fail(Error::shape(
                "grouped_query_attention",
                format!(
                    "q {sq}, k {sk}, v {}: k and v must be [B, T, KVH, D] with H a multiple of KVH",
                    self.shape(v)
                ),
            ));
        }
        let (b, g) = (sq.0[0], h / kvh);
        let heads_first = |x: NodeId| self.permute(x, &[0, 2, 1, 3]); // [B, heads, T, D]
        let q = self.reshape(heads_first(q), &[scale_dim(b, kvh), Fixed(g * t), Fixed(d)]);
        let k = self.reshape(heads_first(k), &[scale_dim(b, kvh), Fixed(t), Fixed(d)]);
        let v = self.reshape(heads_first(v), &[scale_dim(b, kvh), Fixed(t), Fixed(d)]);
        // under autocast: half q, k, v and probabilities; the softmax's backward reads the same
        // half copy (see `Graph::saved_in_half`), so the f32 probabilities die in the forward
        let (q, k, v) = (self.autocast_operand(q), self.autocast_operand(k), self.autocast_operand(v));
        let scores = self.matmul_t(q, k, false, true); // [B*KVH, G*T, T]
        let scores = self.reshape(scores, &[scale_dim(b, h), Fixed(t), Fixed(t)]);
        let probs = self.autocast_operand(self.scaled_softmax(scores, 1.0 / (d as f32).sqrt(), true));
        let probs = self.reshape(probs, &[scale_dim(b, kvh), Fixed(g * t), Fixed(t)]);
        let ctx = self.matmul(probs, v); // [B*KVH, G*T, D] = [B, H, T, D]
        let ctx = self.permute(self.reshape(ctx, &[b, Fixed(h), Fixed(t), Fixed(d)]), &[0, 2, 1, 3]);
        self.reshape(ctx, &[b, Fixed(t), Fixed(h * d)])
    }
}
