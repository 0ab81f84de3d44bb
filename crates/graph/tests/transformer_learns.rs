//! End to end on the CPU backend: a one-block causal transformer (graph API) learns to continue a
//! periodic token sequence; the loss must fall 4x in 80 AdamW steps.

use kiln_device::{open, BackendChoice, HostData};
use kiln_graph::{Graph, Optimizer, Session, TransformerBlock};

#[test]
fn a_tiny_transformer_learns_a_periodic_sequence() {
    let (v, dim, ctx, batch) = (7usize, 16usize, 8usize, 4usize);
    let g = Graph::new();
    let mut seed = 0x1234_5678u64;
    let mut init = |shape: &[usize], fan_in: usize| -> Vec<f32> {
        (0..shape.iter().product())
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 / (fan_in as f32).sqrt()
            })
            .collect()
    };
    let x = g.input_u32("tokens", &[ctx]);
    let y = g.input_u32("targets", &[ctx]);
    let wte = g.param_init("wte", &[v, dim], init(&[v, dim], 4));
    let wpe = g.param_init("wpe", &[ctx, dim], init(&[ctx, dim], 4));
    let blk = TransformerBlock::new(&g, "h.0", dim, 2, 32, true, &mut init);
    let head = g.param_init("head", &[v, dim], init(&[v, dim], dim));
    let h = g.transformer_block(g.add(g.gather(wte, x, 0), wpe), &blk);
    let loss = g.softmax_cross_entropy(g.linear(h, head, None), y);
    let mut params = vec![wte, wpe, head];
    params.extend(blk.params());
    let grads = g.gradients(loss, &params).unwrap();
    g.optimize(&params, &grads, Optimizer::adam(1e-2)).unwrap();
    let mut s = Session::new(g, open(BackendChoice::Cpu).unwrap()).unwrap();
    // the sequence 0 1 2 3 4 5 6 0 1 ...: the next token is (t + 1) mod 7
    let mut losses = Vec::new();
    for step in 0..80 {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for b in 0..batch {
            let o = (step * 3 + b * 5) % v;
            xs.extend((0..ctx).map(|i| ((o + i) % v) as u32));
            ys.extend((0..ctx).map(|i| ((o + i + 1) % v) as u32));
        }
        let out = s.train_sync(&[(x, HostData::U32(&xs)), (y, HostData::U32(&ys))], &[loss]).unwrap();
        losses.push(out[0][0]);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last.is_finite() && last < first / 4.0, "loss {first} -> {last}");
}
