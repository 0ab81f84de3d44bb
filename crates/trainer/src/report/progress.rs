//! The per-epoch progress bar (on a terminal) and the one-line epoch summary (always, unless quiet).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    prefix: String,
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
        Progress { bar, prefix, start: now, last_draw: now }
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
        let rate = done as f64 / now.duration_since(self.start).as_secs_f64().max(1e-9);
        bar.set_message(format!("{} - {rate:.0} steps/s", summary()));
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
