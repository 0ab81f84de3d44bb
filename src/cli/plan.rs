//! The memory an MLP plan needs, estimated before anything is allocated, so `--hidden 4294967296`
//! is a clear error naming the layer instead of an allocation abort (or a 22 GB surprise).

use anyhow::{bail, Result};

/// f32 copies per parameter while training: the weights, their gradient, two optimizer moments
/// (Adam's; SGD and RMSprop need fewer) and the host copy used for saving.
const COPIES_PER_PARAM: u64 = 5;

/// Memory this machine can give (Linux `MemAvailable`); `None` where it cannot be read.
fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Checks the dense stack `inputs -> hidden... -> outputs` trained in batches of `batch` rows.
pub fn check_mlp_memory(inputs: usize, hidden: &[usize], outputs: usize, batch: usize) -> Result<()> {
    check_with(inputs, hidden, outputs, batch, available_bytes())
}

fn check_with(
    inputs: usize,
    hidden: &[usize],
    outputs: usize,
    batch: usize,
    have: Option<u64>,
) -> Result<()> {
    let sizes: Vec<u64> =
        std::iter::once(inputs).chain(hidden.iter().copied()).chain([outputs]).map(|n| n as u64).collect();
    let mut total: u64 = 0;
    let mut largest = (0usize, 0u64);
    for (i, w) in sizes.windows(2).enumerate() {
        // weights + bias, their copies, and the activations (and their gradients) of a batch
        let bytes = (w[0] + 1)
            .checked_mul(w[1])
            .and_then(|p| p.checked_mul(4 * COPIES_PER_PARAM))
            .and_then(|b| b.checked_add(w[1].checked_mul(batch as u64)?.checked_mul(4 * 3)?));
        let Some(bytes) = bytes else {
            bail!(
                "--hidden: layer {} ({} -> {} units) needs more bytes than a 64-bit size can hold",
                i + 1,
                w[0],
                w[1]
            );
        };
        if bytes > largest.1 {
            largest = (i, bytes);
        }
        total = total.saturating_add(bytes);
    }
    if let Some(have) = have {
        if total > have {
            let (i, bytes) = largest;
            bail!(
                "--hidden: the model needs about {} to train ({} for layer {}: {} -> {} units), \
                 this machine has {} available; use smaller layers",
                gb(total),
                gb(bytes),
                i + 1,
                sizes[i],
                sizes[i + 1],
                gb(have)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_layers_are_refused_with_the_layer_and_the_bytes() {
        let e = check_with(2, &[100_000, 100_000], 1, 200, Some(16_000_000_000)).unwrap_err().to_string();
        assert!(e.contains("layer 2: 100000 -> 100000 units") && e.contains("16.0 GB available"), "{e}");
        let e = check_with(2, &[usize::MAX], 1, 200, None).unwrap_err().to_string();
        assert!(e.contains("layer 1"), "{e}");
        assert!(check_with(64, &[100], 10, 200, Some(1_000_000_000)).is_ok());
    }
}
