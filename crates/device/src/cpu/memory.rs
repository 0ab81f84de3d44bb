//! Data movement: gather and scatter-add along the middle axis of `[outer, axis, inner]`.
//! (Fill and copy are one-liners in `dispatch`.)

/// `out[o, j, i] = table[o, idx[j], i]`; an index `>= axis_len` gives 0.
pub(crate) fn gather(
    outer: usize,
    axis_len: usize,
    inner: usize,
    n_idx: usize,
    out: &mut [f32],
    table: &[f32],
    idx: &[u32],
) {
    for o in 0..outer {
        for (j, &a) in idx.iter().enumerate() {
            let dst = &mut out[(o * n_idx + j) * inner..][..inner];
            match (a as usize) < axis_len {
                true => dst.copy_from_slice(&table[(o * axis_len + a as usize) * inner..][..inner]),
                false => dst.fill(0.0),
            }
        }
    }
}

/// `out[o, a, i] = sum over j with idx[j] == a of src[o, j, i]`; out is overwritten, and an index
/// `>= axis_len` contributes nothing.
pub(crate) fn scatter_add(
    outer: usize,
    axis_len: usize,
    inner: usize,
    n_idx: usize,
    out: &mut [f32],
    src: &[f32],
    idx: &[u32],
) {
    out.fill(0.0);
    for o in 0..outer {
        for (j, &a) in idx.iter().enumerate() {
            if (a as usize) < axis_len {
                let dst = &mut out[(o * axis_len + a as usize) * inner..][..inner];
                for (d, &s) in dst.iter_mut().zip(&src[(o * n_idx + j) * inner..][..inner]) {
                    *d += s;
                }
            }
        }
    }
}
