//! One `kiln train` per output: `<out>.lock` holds the pid of the run writing `<out>` and its
//! companions (log, curves, optimizer state), so a second run fails up front instead of
//! interleaving the log. A lock whose process is gone (killed) is taken over, and the temporary
//! files such a run left beside the output are removed. In an MPI job rank 0 alone takes it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file while held (`None` on the ranks of an MPI job besides rank 0, which write
/// nothing).
pub struct RunLock(Option<PathBuf>);

fn lock_path(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{name}.lock"))
}

/// Whether process `pid` is running (Linux: /proc; elsewhere assumed running, so a stale lock is
/// reported with its path to remove by hand).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl RunLock {
    pub fn take(out: &Path) -> Result<RunLock> {
        if !kiln_trainer::distributed::is_root() {
            return Ok(RunLock(None));
        }
        let path = lock_path(out);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).with_context(|| format!("{}", path.display()))?;
                    remove_stale_temps(out);
                    return Ok(RunLock(Some(path)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match text.trim().parse::<u32>() {
                        Ok(pid) if alive(pid) => bail!(
                            "another kiln run (pid {pid}) is writing {}; wait for it, or remove {} if \
                             it is gone",
                            out.display(),
                            path.display()
                        ),
                        // a killed run's lock (or one being written this instant: retry once)
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        bail!("cannot take the lock {} for {}", path.display(), out.display())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes `.<name>.tmp.<pid>` files (atomic writes cut short) of dead processes beside `out`, for
/// the model, its optimizer file and the log's `.part`.
fn remove_stale_temps(out: &Path) {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((head, pid)) = name.rsplit_once(".tmp.") else { continue };
        let ours = head.strip_prefix('.').is_some_and(|h| {
            Some(h) == out.file_name().and_then(|n| n.to_str())
                || [".optim.safetensors", ".log.jsonl", ".curves.svg", ".log.jsonl.part"]
                    .iter()
                    .any(|suffix| h.strip_prefix(stem.as_str()) == Some(suffix))
        });
        if ours && pid.parse::<u32>().is_ok_and(|p| !alive(p)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let part = out.with_file_name(format!("{stem}.log.jsonl.part"));
    let _ = std::fs::remove_file(part);
}
