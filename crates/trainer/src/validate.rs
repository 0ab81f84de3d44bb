//! Checks that keep a model file honest: on load, the metadata must agree with the tensors (class
//! labels vs outputs, feature names vs inputs, a usable standardizer, finite weights, a known
//! format, an architecture not edited since it was saved); the optimizer file must be the one
//! saved with the model (the model records its digest and is written last, so a save cut short
//! leaves a pair that is detected as mismatched); and data given to `fit` and `evaluate` must
//! number its classes as the model does.

use std::path::Path;

use crate::checkpoint::{Checkpoint, ARCHITECTURE, OPTIMIZER};
use crate::data::Dataset;
use crate::{DataInfo, Error, Result, Sequential};

/// Metadata key: digest of the architecture JSON as saved.
pub const ARCHITECTURE_DIGEST: &str = "kiln.architecture_digest";
/// Metadata key: digest of the optimizer file's bytes saved with this model.
pub const OPTIMIZER_DIGEST: &str = "kiln.optimizer_digest";
/// The model file format this Kiln writes and reads.
pub const FORMAT: u32 = 1;

/// A 64-bit FNV-1a digest, in hex (integrity against edits and mixed-up files, not an attacker).
pub fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Records the digest of the architecture entry in `ck`'s metadata (call after setting it).
pub(crate) fn seal_architecture(ck: &mut Checkpoint) {
    if let Some(a) = ck.metadata.get(ARCHITECTURE) {
        let d = digest(a.as_bytes());
        ck.metadata.insert(ARCHITECTURE_DIGEST.into(), d);
    }
}

/// Writes the optimizer state file atomically and records its digest in the model's metadata
/// `ck`, which the caller writes afterwards (the model file is the manifest of the pair).
pub(crate) fn write_optimizer(state: &Checkpoint, path: &Path, ck: &mut Checkpoint) -> Result<()> {
    let bytes = state.to_bytes()?;
    crate::checkpoint::write_atomic(path, &bytes)?;
    ck.metadata.insert(OPTIMIZER_DIGEST.into(), digest(&bytes));
    Ok(())
}

/// Reads the optimizer file beside a model, checking it belongs to the model `ck` read from
/// `model_path` (by digest; files from before digests are checked by the caller's epoch count).
pub(crate) fn read_optimizer(ck: &Checkpoint, opt_path: &Path, model_path: &Path) -> Result<Checkpoint> {
    let bytes = crate::checkpoint::read_file(opt_path)?;
    if let Some(want) = ck.metadata.get(OPTIMIZER_DIGEST) {
        if *want != digest(&bytes) {
            return Err(Error::Metadata {
                key: OPTIMIZER_DIGEST.into(),
                message: format!(
                    "{} does not belong to {} (another run's, or a save cut short): restore the \
                     pair, or delete the optimizer file to start the optimizer afresh",
                    opt_path.display(),
                    model_path.display()
                ),
            });
        }
    }
    Checkpoint::from_bytes(opt_path, &bytes)
}

/// For resuming: a model saved with training state must have its optimizer file beside it
/// (otherwise Adam's moments would silently start from zero).
pub fn require_optimizer_file(model_path: &Path) -> Result<()> {
    let ck = Checkpoint::read(model_path)?;
    let opt = crate::optimizer_path(model_path);
    if (ck.metadata.contains_key(OPTIMIZER_DIGEST) || ck.metadata.contains_key(OPTIMIZER)) && !opt.exists() {
        return Err(Error::Metadata {
            key: OPTIMIZER_DIGEST.into(),
            message: format!(
                "the optimizer state {} saved with {} is missing; resuming without it would restart \
                 the optimizer",
                opt.display(),
                model_path.display()
            ),
        });
    }
    Ok(())
}

/// The checks on a model just loaded from `path` (see the module docs).
pub(crate) fn check_loaded(model: &Sequential, ck: &Checkpoint, path: &Path, format: u32) -> Result<()> {
    let bad = |key: &str, message: String| Error::Metadata {
        key: key.into(),
        message: format!("{}: {message}", path.display()),
    };
    if format != FORMAT {
        return Err(bad(
            ARCHITECTURE,
            format!(
                "format {format} is not one this Kiln reads ({FORMAT}); was it written by another version?"
            ),
        ));
    }
    if let (Some(want), Some(arch)) = (ck.metadata.get(ARCHITECTURE_DIGEST), ck.metadata.get(ARCHITECTURE)) {
        if *want != digest(arch.as_bytes()) {
            return Err(bad(
                ARCHITECTURE,
                "the layer list was edited after saving (its digest does not match)".into(),
            ));
        }
    }
    for t in &ck.tensors {
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::Tensor {
                path: path.into(),
                tensor: t.name.clone(),
                message: format!("element {i} is {} (weights must be finite)", t.data[i]),
            });
        }
    }
    let data: &DataInfo = &model.data;
    let width = model.output_width()?;
    if let Some(labels) = &data.labels {
        let k = labels.len();
        if !(k == width || (width == 1 && k == 2)) || k < 2 {
            return Err(bad("kiln.data", format!("{k} class labels for a model with {width} outputs")));
        }
    }
    let inputs: usize = model.input_shape().iter().product();
    if !data.features.is_empty() && data.features.len() != inputs {
        return Err(bad(
            "kiln.data",
            format!("{} feature names for a model with {inputs} inputs", data.features.len()),
        ));
    }
    if let Some(t) = &data.target_standardizer {
        let ok = t.mean.len() == 1
            && t.std.len() == 1
            && t.mean[0].is_finite()
            && t.std[0].is_finite()
            && t.std[0] > 0.0
            && width == 1;
        if !ok {
            return Err(bad(
                "kiln.data",
                format!(
                    "the target standardizer (means {:?}, deviations {:?}) must be one finite mean and one \
                     positive deviation for a model with one output ({width} here)",
                    t.mean, t.std
                ),
            ));
        }
    }
    if let Some(sc) = &data.standardizer {
        if sc.mean.len() != sc.std.len() || sc.mean.len() != inputs {
            return Err(bad(
                "kiln.data",
                format!(
                    "the standardizer has {} means and {} deviations for {inputs} inputs",
                    sc.mean.len(),
                    sc.std.len()
                ),
            ));
        }
        if let Some(c) = sc.std.iter().position(|&v| !(v.is_finite() && v > 0.0)) {
            return Err(bad(
                "kiln.data",
                format!("standardizer std of column {} is {}, must be > 0", c + 1, sc.std[c]),
            ));
        }
        if let Some(c) = sc.mean.iter().position(|v| !v.is_finite()) {
            return Err(bad("kiln.data", format!("standardizer mean of column {} is {}", c + 1, sc.mean[c])));
        }
    }
    Ok(())
}

/// Data for `fit`: its class names become the model's when it has none (and they fit its
/// `out_width` outputs: one per class, or one for two classes); otherwise they must be the
/// model's (class ids mean the same in training, evaluation and the saved file).
pub(crate) fn note_labels(info: &mut DataInfo, data: &dyn Dataset, out_width: usize) -> Result<()> {
    if info.labels.is_none() {
        let fits = |k: usize| k >= 2 && (k == out_width || (k == 2 && out_width == 1));
        info.labels = data.class_names().filter(|n| fits(n.len())).map(<[String]>::to_vec);
        return Ok(());
    }
    check_labels(info, data)
}

/// Data for `evaluate`: class ids must be numbered by the model's labels.
pub(crate) fn check_labels(info: &DataInfo, data: &dyn Dataset) -> Result<()> {
    if let (Some(model), Some(found)) = (&info.labels, data.class_names()) {
        // a prefix numbers every id it has as the model does (e.g. a test set without the last class
        // of labels 0..k read from arrays)
        if !model.starts_with(found) {
            let show = |v: &[String]| crate::data::lines::shorten_list(v);
            return Err(Error::Model(format!(
                "the data numbers its classes [{}] but the model's are [{}]; read the data with the \
                 model's labels (read_csv_labeled, or Table::relabel)",
                show(found),
                show(model)
            )));
        }
    }
    Ok(())
}
