//! The per-epoch progress bar (on a terminal) and the one-line epoch summary (always, unless quiet).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress bar of one epoch (on a terminal) and its summary line.
pub struct Progress {
    bar: Option<ProgressBar>,
    prefix: String,
    /// This epoch's steps, and the epochs still to run after it (for the run's ETA).
    steps: usize,
    epochs_after: usize,
    start: Instant,
    last_draw: Instant,
}

impl Progress {
    /// Starts epoch `epoch` (1-based) of `epochs`, `steps` steps long. `quiet` draws nothing.
    pub fn new(epoch: usize, epochs: usize, steps: usize, quiet: bool) -> Progress {
        let prefix = format!("epoch {epoch}/{epochs}");
        let bar = (!quiet).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr_with_hz(10));
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(prefix.clone());
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            prefix,
            steps,
            epochs_after: epochs.saturating_sub(epoch),
            start: now,
            last_draw: now,
        }
    }

    /// Reports `done` steps; `summary` (running loss and metrics, one step behind on the GPU) is
    /// only formatted when the bar redraws.
    pub fn step(&mut self, done: usize, summary: impl FnOnce() -> String) {
        let Some(bar) = &self.bar else { return };
        let now = Instant::now();
        if now.duration_since(self.last_draw) < Duration::from_millis(100) {
            return;
        }
        self.last_draw = now;
        bar.set_position(done as u64);
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        bar.set_message(format!("{} - {rate:.0} steps/s - {}", summary(), self.timing(done, elapsed)));
    }

    /// `12.3s elapsed, ETA 4.1s (run 1m05s)`: this epoch's time so far, and the time left in the
    /// epoch and in the whole run at the epoch's rate so far.
    fn timing(&self, done: usize, elapsed: f64) -> String {
        if done == 0 {
            return format!("{} elapsed", duration(elapsed));
        }
        let per_step = elapsed / done as f64;
        let epoch_left = per_step * self.steps.saturating_sub(done) as f64;
        let run_left = epoch_left + per_step * (self.steps * self.epochs_after) as f64;
        if self.epochs_after == 0 {
            format!("{} elapsed, ETA {}", duration(elapsed), duration(epoch_left))
        } else {
            format!(
                "{} elapsed, ETA {} (run {})",
                duration(elapsed),
                duration(epoch_left),
                duration(run_left)
            )
        }
    }

    /// Seconds since the epoch started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Clears the bar and, when `show`, prints the epoch's summary line.
    pub fn finish(self, summary: &str, show: bool) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
            if show {
                eprintln!("{} - {summary}", self.prefix);
            }
        }
    }
}

/// `850ms`, `12.3s`, `4m05s`, `1h02m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 1.0 {
        format!("{:.0}ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(duration(0.85), "850ms");
        assert_eq!(duration(12.34), "12.3s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }

    #[test]
    fn the_eta_covers_the_epoch_and_the_run() {
        // Epoch 2 of 5, 100 steps, 25 done in 5 s: 15 s left in the epoch, 3 more epochs at 20 s.
        let p = Progress::new(2, 5, 100, true);
        assert_eq!(p.timing(25, 5.0), "5.0s elapsed, ETA 15.0s (run 1m15s)");
        let last = Progress::new(5, 5, 100, true);
        assert_eq!(last.timing(50, 2.0), "2.0s elapsed, ETA 2.0s");
        assert_eq!(last.timing(0, 0.5), "500ms elapsed");
    }
}
