//! Gradient checks of the architecture ops (convolution, pooling, normalization, layout ops,
//! attention, the transformer block): analytic VJP vs an f64 central difference along a random
//! direction, then loss and gradients through a compiled CPU plan in f32 (see `common::check`).

mod common;

use common::{check, Case};
use kiln_graph::shape::Fixed;
use kiln_graph::{Attention, Conv2dOpts, Patches, Prim, TransformerBlock};

#[test]
fn im2col_and_col2im_primitives() {
    let p = Patches { kernel: [3, 2], stride: [2, 1], padding: [1, 1], dilation: [1, 2], pad_value: 0.0 };
    let mut c = Case::new(1000, 2);
    let x = c.input(&[2, 5, 6]);
    let w = c.param(&[2, 5, 6]);
    let y = c.g.im2col(c.g.mul(x, w), p);
    check("im2col", c, y);

    let mut c = Case::new(1001, 1);
    let x = c.param(&[1, 2, 5, 6]);
    let cols = c.g.im2col(x, p);
    let cs = c.g.shape(cols).resolve(1);
    let w = c.param(&cs);
    let image = c.g.shape(x);
    let y = c.g.col2im(c.g.mul(cols, w), p, &image);
    check("col2im", c, y);
}

#[test]
fn conv2d_stride_padding_dilation_groups_bias() {
    let cases = [
        (3, 4, 3, Conv2dOpts::default()),
        (2, 3, 3, Conv2dOpts { stride: [2, 1], padding: [1, 2], dilation: [1, 1], groups: 1 }),
        (2, 2, 2, Conv2dOpts { stride: [1, 1], padding: [2, 0], dilation: [2, 1], groups: 1 }),
        (4, 6, 3, Conv2dOpts { stride: [1, 2], padding: [1, 1], dilation: [1, 1], groups: 2 }),
    ];
    for (i, (cin, cout, k, o)) in cases.into_iter().enumerate() {
        let mut c = Case::new(1010 + i as u64, 3);
        let x = c.input(&[cin, 6, 5]);
        let w = c.param(&[cout, cin / o.groups, k, k]);
        let b = c.param(&[cout]);
        let y = c.g.conv2d(x, w, Some(b), o);
        c.g.check().unwrap();
        check(&format!("conv2d {o:?}"), c, y);
    }
}

#[test]
fn pooling() {
    for (i, (k, s, p)) in [(2, 2, 0), (3, 2, 1), (3, 1, 0)].into_iter().enumerate() {
        let mut c = Case::new(1020 + i as u64, 2);
        let x = c.input(&[3, 7, 6]);
        let w = c.param(&[3, 7, 6]);
        let h = c.g.mul(x, w);
        let y = c.g.avg_pool2d(h, k, s, p);
        check(&format!("avg_pool2d k{k} s{s} p{p}"), c, y);

        // random continuous inputs: no ties inside a window
        let mut c = Case::new(1030 + i as u64, 2);
        let x = c.param(&[2, 3, 7, 6]);
        let y = c.g.max_pool2d(x, k, s, p);
        check(&format!("max_pool2d k{k} s{s} p{p}"), c, y);
    }
    let mut c = Case::new(1040, 3);
    let x = c.input(&[4, 3, 5]);
    let w = c.param(&[4, 3, 5]);
    let y = c.g.global_avg_pool2d(c.g.mul(x, w));
    check("global_avg_pool2d", c, y);
}

#[test]
fn layer_norm_and_batch_norm() {
    let mut c = Case::new(1050, 3);
    let x = c.input(&[4, 7]);
    let w0 = c.param(&[4, 7]);
    let (w, b) = (c.param(&[7]), c.param(&[7]));
    let y = c.g.layer_norm(c.g.mul(x, w0), w, b, 1e-5);
    check("layer_norm", c, y);

    for (i, rest) in [&[5usize][..], &[3, 4, 2][..]].into_iter().enumerate() {
        let mut c = Case::new(1060 + i as u64, 4);
        let x = c.input(rest);
        let w0 = c.param(rest);
        let (w, b) = (c.param(&[rest[0]]), c.param(&[rest[0]]));
        let (y, mean, var) = c.g.batch_norm_train(c.g.mul(x, w0), w, b, 1e-5);
        // the statistics are differentiable too; fold them into the output
        let y = c.g.add(c.g.flatten(y), c.g.sum_all(c.g.mul(mean, var)));
        check(&format!("batch_norm_train {rest:?}"), c, y);

        let mut c = Case::new(1070 + i as u64, 3);
        let x = c.input(rest);
        let (w, b, m) = (c.param(&[rest[0]]), c.param(&[rest[0]]), c.param(&[rest[0]]));
        let v = c.positive_param(&[rest[0]]);
        let y = c.g.batch_norm_eval(x, w, b, m, v, 1e-5);
        check(&format!("batch_norm_eval {rest:?}"), c, y);
    }
}

#[test]
fn permute_transpose_slice_concat() {
    for (i, perm) in [[0usize, 2, 1, 3], [3, 1, 0, 2], [1, 0, 2, 3]].into_iter().enumerate() {
        let mut c = Case::new(1080 + i as u64, 1);
        let x = c.param(&[2, 3, 4, 5]);
        let y = c.g.permute(x, &perm);
        check(&format!("permute {perm:?}"), c, y);
    }
    let mut c = Case::new(1085, 2);
    let x = c.input(&[3, 5]);
    let w = c.param(&[3, 5]);
    let y = c.g.transpose(c.g.mul(x, w), 1, 2);
    check("transpose over batch", c, y);

    let mut c = Case::new(1086, 2);
    let x = c.input(&[7, 3]);
    let w = c.param(&[7, 3]);
    let y = c.g.slice(c.g.mul(x, w), 1, 2, 4);
    check("slice", c, y);

    let mut c = Case::new(1087, 2);
    let (a, b) = (c.param(&[2, 3, 4]), c.param(&[2, 5, 4]));
    let d = c.param(&[2, 1, 4]);
    let y = c.g.concat(&[a, b, d], 1);
    assert_eq!(c.g.shape(y).resolve(1), vec![2, 9, 4]);
    check("concat", c, y);

    let mut c = Case::new(1088, 1);
    let x = c.param(&[3, 6]);
    let y = c.g.window(x, 1, -2, Fixed(9));
    check("window pad", c, y);
}

#[test]
fn layout_ops_that_move_nothing_are_views() {
    use kiln_graph::Op;
    let mut c = Case::new(1089, 1);
    let x = c.param(&[3, 1, 5, 1]);
    // size-1 axes move, the others keep their order: a reshape, no kernel
    let p = c.g.permute(x, &[1, 0, 3, 2]);
    assert_eq!(c.g.node(p).op, Op::Reshape);
    assert_eq!(c.g.shape(p).resolve(1), vec![1, 3, 1, 5]);
    assert_eq!(c.g.slice(x, 2, 0, 5), x);
    assert_eq!(c.g.concat(&[x], 0), x);
    // a real permutation still moves data
    assert!(matches!(c.g.node(c.g.permute(x, &[2, 1, 0, 3])).op, Op::Prim(Prim::Permute { .. })));
    let y = c.g.permute(c.g.mul(p, p), &[1, 0, 2, 3]); // [3, 1, 1, 5], a view again
    check("permute of size-1 axes", c, y);
}

#[test]
fn embedding_is_gather() {
    let mut c = Case::new(1090, 3);
    let table = c.param(&[11, 4]);
    let idx = c.labels(&[5], 11);
    let y = c.g.gather(table, idx, 0); // [B, 5, 4]
    check("embedding", c, y);
}

fn init(rng: &mut common::Rng) -> impl FnMut(&[usize], usize) -> Vec<f32> + '_ {
    move |shape: &[usize], fan_in: usize| {
        let s = 1.0 / (fan_in as f32).sqrt();
        rng.vec(shape.iter().product()).iter().map(|v| v * s).collect()
    }
}

#[test]
fn self_attention_causal_and_not() {
    for causal in [false, true] {
        let mut c = Case::new(1100 + causal as u64, 2);
        let x = c.input(&[5, 6]);
        let mut rng = common::Rng::new(7);
        let mut f = init(&mut rng);
        let mut p = |name: &str, s: &[usize]| {
            let n = s.iter().product();
            let data = if name.starts_with('w') { f(s, s[1]) } else { vec![0.1; n] };
            c.param_with(s, data)
        };
        let (wq, bq, wk, bk) = (p("wq", &[6, 6]), p("bq", &[6]), p("wk", &[6, 6]), p("bk", &[6]));
        let (wv, bv, wo, bo) = (p("wv", &[6, 6]), p("bv", &[6]), p("wo", &[6, 6]), p("bo", &[6]));
        let a = Attention { heads: 2, causal, wq, bq, wk, bk, wv, bv, wo, bo };
        let y = c.g.self_attention(x, &a);
        check(&format!("self_attention causal={causal}"), c, y);
    }
}

#[test]
fn causal_attention_does_not_look_ahead() {
    // Changing the last position's input leaves every earlier output unchanged.
    let g = kiln_graph::Graph::new();
    let x = g.param_init("x", &[1, 4, 4], (0..16).map(|i| (i as f32 * 0.37).sin()).collect());
    let mut rng = common::Rng::new(3);
    let mut f = init(&mut rng);
    let blk = TransformerBlock::new(&g, "h.0", 4, 2, 8, true, &mut f);
    let y = g.transformer_block(x, &blk);
    let mut vals = kiln_graph::reference::Values::new();
    let base = kiln_graph::reference::evaluate(&g, 1, &vals).unwrap()[y.index()].clone();
    let mut xs: Vec<f64> = (0..16).map(|i| (i as f32 * 0.37).sin() as f64).collect();
    xs[12..].iter_mut().for_each(|v| *v += 1.0);
    vals.insert(x, xs);
    let moved = kiln_graph::reference::evaluate(&g, 1, &vals).unwrap()[y.index()].clone();
    assert_eq!(base[..12], moved[..12], "earlier positions saw the future");
    assert_ne!(base[12..], moved[12..]);
}

#[test]
fn transformer_block() {
    let mut c = Case::new(1110, 2);
    let x = c.input(&[5, 8]);
    let mut rng = common::Rng::new(11);
    let mut f = init(&mut rng);
    let blk = TransformerBlock::new(&c.g, "h.0", 8, 2, 12, true, &mut f);
    c.params.extend(blk.params());
    let y = c.g.transformer_block(x, &blk);
    check("transformer block", c, y);
}

#[test]
fn fused_layer_norm_on_odd_rows() {
    // One column normalizes to 0 (its gradient is 0); 3 and 17 columns, over a batch.
    for (i, cols) in [1usize, 3, 17].into_iter().enumerate() {
        let mut c = Case::new(1120 + i as u64, 3);
        let x = c.input(&[5, cols]);
        let w0 = c.param(&[5, cols]);
        let y = c.g.layer_norm_no_affine(c.g.mul(x, w0), 1e-5);
        check(&format!("layer_norm_no_affine cols={cols}"), c, y);
    }
    // Straight from a parameter, a large eps, and the full LayerNorm with its affine.
    let mut c = Case::new(1125, 1);
    let x = c.param(&[4, 9]);
    let y = c.g.layer_norm_no_affine(x, 0.5);
    check("layer_norm_no_affine eps 0.5", c, y);
    let mut c = Case::new(1126, 2);
    let x = c.input(&[3, 13]);
    let w0 = c.param(&[3, 13]);
    let (w, b) = (c.param(&[13]), c.param(&[13]));
    let y = c.g.layer_norm(c.g.mul(x, w0), w, b, 1e-5);
    check("layer_norm [B, 3, 13]", c, y);
}

#[test]
fn scaled_and_causal_softmax() {
    // T = 1 (a single unmasked entry), odd T, a negative scale, and an unmasked scaled one.
    for (i, (t, scale, causal)) in
        [(1usize, 0.5f32, true), (5, 0.37, true), (7, -1.3, true), (4, 2.0, false)].into_iter().enumerate()
    {
        let mut c = Case::new(1130 + i as u64, 2);
        let x = c.input(&[3, t, t]);
        let w = c.param(&[3, t, t]);
        let y = c.g.scaled_softmax(c.g.mul(x, w), scale, causal);
        check(&format!("scaled_softmax T={t} scale={scale} causal={causal}"), c, y);
    }
}

#[test]
fn causal_softmax_masks_exactly_and_checks_its_shape() {
    let g = kiln_graph::Graph::new();
    let x = g.param_init("x", &[2, 3, 3], (0..18).map(|i| (i as f32 * 0.7).cos() * 50.0).collect());
    let y = g.scaled_softmax(x, 0.3, true);
    let vals = kiln_graph::reference::evaluate(&g, 1, &kiln_graph::reference::Values::new()).unwrap();
    for (r, row) in vals[y.index()].chunks(3).enumerate() {
        let i = r % 3;
        assert!(row[i + 1..].iter().all(|&v| v == 0.0), "row {r}: {row:?}");
        assert!((row[..=i].iter().sum::<f64>() - 1.0).abs() < 1e-12, "row {r}: {row:?}");
    }
    let g = kiln_graph::Graph::new();
    let x = g.param("x", &[3, 4]);
    g.scaled_softmax(x, 1.0, true);
    let err = g.check().unwrap_err().to_string();
    assert!(err.contains("[.., T, T]"), "{err}");
}
