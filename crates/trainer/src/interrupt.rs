//! A cooperative stop: a front end (the CLI's SIGINT handler) calls [`request_stop`], and `fit`
//! ends at the end of the step in progress, keeping the last weights (not the best ones restored
//! by early stopping) and the place in the epoch, so the model it saves resumes exactly there
//! ([`crate::History::stopped_at`]).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the running `fit` to stop at the end of the current step. Async-signal-safe (one atomic store);
/// returns whether a stop had already been asked for.
pub fn request_stop() -> bool {
    STOP.swap(true, Ordering::SeqCst)
}

/// Whether a stop has been asked for.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Forgets a stop request (for a front end that handled one and trains again in the same process).
pub fn reset() {
    STOP.store(false, Ordering::SeqCst);
}
