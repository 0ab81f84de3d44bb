//! Output-path safety: an output must be a regular file (or not exist yet), must not be one of
//! the inputs (the same file by device and inode, whatever the path spelling or hard links), and
//! `--out` is checked before any work so a bad path fails in a second, not after training.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The (device, inode) of an existing file, following symlinks; `None` when nothing is there.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::canonicalize(path).ok().map(|p| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            (0, h.finish())
        })
    }
}

/// Checks that `out` (the flag `flag`) can be written without harm: no directory, device, FIFO,
/// socket or symlink at it (writing replaces the path with a new regular file, which would
/// destroy a device node and cut a symlink), its folder exists, and it is none of `inputs`.
pub fn check_output(flag: &str, out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(out).map(|t| t.display().to_string()).unwrap_or_default();
            bail!(
                "{flag} {} is a symlink (to {target}); Kiln replaces outputs atomically and would cut \
                 the link: give the target path itself",
                out.display()
            );
        }
        if ft.is_dir() {
            bail!("{flag} {} is a directory; give a file name such as model.safetensors", out.display());
        }
        if !ft.is_file() {
            bail!(
                "{flag} {} is not a regular file (a device, FIFO or socket); Kiln only writes regular files",
                out.display()
            );
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        bail!("{flag} {}: the folder {} does not exist", out.display(), dir.display());
    }
    if let Some(id) = identity(out) {
        for (name, input) in inputs {
            if identity(input) == Some(id) {
                bail!(
                    "{flag} {} is the same file as {name} {}; writing it would destroy the input",
                    out.display(),
                    input.display()
                );
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (removed on failure), fsync, a
/// rename over `path`; an existing file's permissions carry over to the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp: PathBuf = path.with_file_name(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("writing {}", tmp.display()))?;
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = f.set_permissions(meta.permissions());
        }
        drop(f);
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
