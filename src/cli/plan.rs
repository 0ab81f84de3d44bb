//! The memory an MLP plan needs, estimated before anything is allocated, so `--hidden 4294967296`
//! is a clear error naming the layer instead of an allocation abort (or a 22 GB surprise).

use anyhow::{bail, Result};

/// f32 copies per parameter while training: the weights, their gradient, two optimizer moments
/// (Adam's; SGD and RMSprop need fewer) and the host copy used for saving.
const COPIES_PER_PARAM: u64 = 5;

/// Memory this machine can give (Linux `MemAvailable`); `None` where it cannot be read.
pub fn available_bytes() -> Option<u64> {
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

/// Checks the dense stack against the device it will train on: on a GPU every tensor is one
/// storage buffer, so a layer's weights, or a batch of its activations, larger than the adapter's
/// `max_storage_buffer_binding_size` cannot be bound. Refused before anything is allocated, naming
/// the layer, the bytes and the limit. The CPU backend has no such limit (RAM is checked by
/// [`check_mlp_memory`]).
pub fn check_mlp_on_device(
    inputs: usize,
    hidden: &[usize],
    outputs: usize,
    batch: usize,
    info: &kiln_device::DeviceInfo,
) -> Result<()> {
    let Some(&(_, limit)) = info.limits.iter().find(|(n, _)| *n == "max_storage_buffer_binding_size") else {
        return Ok(());
    };
    let sizes: Vec<u64> =
        std::iter::once(inputs).chain(hidden.iter().copied()).chain([outputs]).map(|n| n as u64).collect();
    for (i, w) in sizes.windows(2).enumerate() {
        let weights = w[0].saturating_mul(w[1]).saturating_mul(4);
        let acts = w[1].saturating_mul(batch as u64).saturating_mul(4);
        let (what, bytes) =
            if weights >= acts { ("weights", weights) } else { ("activations of a batch", acts) };
        if bytes > limit {
            bail!(
                "--hidden: layer {} ({} -> {} units) needs a {} buffer of {} for its {what}, \
                 but {} binds at most {} per buffer (max_storage_buffer_binding_size); use smaller \
                 layers{}",
                i + 1,
                w[0],
                w[1],
                gb(bytes),
                bytes,
                info.name,
                limit,
                if what == "weights" { "" } else { " or a smaller --batch-size" }
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

    #[test]
    fn layers_past_the_adapters_binding_limit_are_refused_naming_the_layer() {
        let info = |limit: u64| kiln_device::DeviceInfo {
            name: "test adapter".into(),
            kind: kiln_device::DeviceKind::DiscreteGpu,
            api: "Vulkan".into(),
            driver: String::new(),
            limits: vec![("max_storage_buffer_binding_size", limit)],
            features: vec![],
        };
        // 30000 x 20000 f32 weights = 2.4 GB past a 2 GiB binding limit
        let e = check_mlp_on_device(8, &[30_000, 20_000], 1, 200, &info(1 << 31)).unwrap_err().to_string();
        assert!(e.contains("layer 2 (30000 -> 20000 units)") && e.contains("2147483648"), "{e}");
        // a batch of activations: 10^7 units x 200 rows x 4 bytes = 8 GB
        let e = check_mlp_on_device(8, &[10_000_000], 1, 200, &info(1 << 31)).unwrap_err().to_string();
        assert!(e.contains("activations") && e.contains("--batch-size"), "{e}");
        assert!(check_mlp_on_device(64, &[100], 10, 200, &info(1 << 27)).is_ok());
        // the CPU backend reports no binding limit
        let mut cpu = info(0);
        cpu.limits.clear();
        assert!(check_mlp_on_device(8, &[30_000, 20_000], 1, 200, &cpu).is_ok());
    }
}
