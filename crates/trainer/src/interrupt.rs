//! A cooperative stop: a front end (the CLI's SIGINT handler) calls [`request_stop`], and `fit`
//! ends after the epoch in progress, keeping that epoch's weights (not the best ones restored by
//! early stopping), so the model it saves resumes where it stopped.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the running `fit` to stop after the current epoch. Async-signal-safe (one atomic store);
/// returns whether a stop had already been asked for.
pub fn request_stop() -> bool {
    STOP.swap(true, Ordering::SeqCst)
}

/// Whether a stop has been asked for.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
