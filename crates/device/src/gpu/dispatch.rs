//! Workgroup counts per kernel. 1-D kernels run 256 invocations per workgroup; counts past the
//! 65,535-per-dimension limit spill into y (the shaders rebuild the linear index from both).

use crate::kernel::Kernel;

const MAX_DIM: usize = 65_535;

/// Splits `groups` workgroups over x and y.
fn spread(groups: usize) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= MAX_DIM {
        [groups as u32, 1, 1]
    } else {
        [MAX_DIM as u32, groups.div_ceil(MAX_DIM) as u32, 1]
    }
}

fn per_element(len: usize) -> [u32; 3] {
    spread(len.div_ceil(256))
}

pub(crate) fn workgroups(k: &Kernel) -> [u32; 3] {
    match *k {
        Kernel::Matmul(mm) => [mm.n.div_ceil(64) as u32, mm.m.div_ceil(64) as u32, mm.batch as u32],
        Kernel::Unary { len, .. } | Kernel::UnaryGrad { len, .. } => per_element(len),
        Kernel::BiasAct { rows, cols, .. } => per_element(rows * cols),
        Kernel::Binary { bc, .. } => per_element(bc.len()),
        // one 64-wide workgroup per output element / row
        Kernel::Reduce { outer, inner, .. } => spread(outer * inner),
        Kernel::Softmax { rows, .. } | Kernel::SoftmaxGrad { rows, .. } => spread(rows),
        Kernel::LayerNorm { rows, .. } | Kernel::LayerNormGrad { rows, .. } => spread(rows),
        Kernel::SoftmaxCeGrad { rows, .. } => spread(rows),
        // one workgroup walks everything
        Kernel::MseLoss { .. } | Kernel::BceLogitsLoss { .. } | Kernel::SoftmaxCeLoss { .. } => [1, 1, 1],
        Kernel::MseGrad { n } | Kernel::BceLogitsGrad { n } => per_element(n),
        Kernel::Sgd { len } | Kernel::Adam { len, .. } | Kernel::Rmsprop { len } => per_element(len),
        Kernel::Gather { outer, inner, n_idx, .. } => per_element(outer * n_idx * inner),
        Kernel::ScatterAdd { outer, axis_len, inner, .. } => per_element(outer * axis_len * inner),
        Kernel::Fill { len, .. } | Kernel::Copy { len } => per_element(len),
        Kernel::Im2col { win, .. } => per_element(win.cols_len()),
        Kernel::Col2im { win } => per_element(win.image_len()),
        Kernel::Permute(pm) => per_element(pm.len()),
        Kernel::Window { outer, out_len, inner, .. } => per_element(outer * out_len * inner),
        Kernel::RunningUpdate { len, .. } => per_element(len),
    }
}

/// Checks the counts against the device limit (matmul's y and z cannot spill).
pub(crate) fn check(k: &Kernel) -> crate::Result<()> {
    let g = workgroups(k);
    if g.iter().any(|&d| d as usize > MAX_DIM) {
        return Err(crate::Error::shape(
            k.name(),
            format!("needs {g:?} workgroups; at most {MAX_DIM} per dimension"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_dispatches_spill_into_y() {
        let g = per_element(256 * 70_000 + 1);
        assert_eq!(g, [65_535, 2, 1]);
        assert!(g[0] as usize * g[1] as usize * 256 > 256 * 70_000);
        assert_eq!(per_element(1), [1, 1, 1]);
    }
}
