//! SIGINT during training: the first Ctrl-C asks `fit` to stop at the end of the step in progress
//! (the model is then saved atomically, resumable from that step, and the run exits non-zero
//! saying how to resume); a second one exits at once (status 130).

#[cfg(unix)]
extern "C" fn on_sigint(_: libc::c_int) {
    if kiln_trainer::interrupt::request_stop() {
        // SAFETY: _exit is async-signal-safe
        unsafe { libc::_exit(130) };
    }
    let msg = b"\nkiln: stopping after this step and saving (Ctrl-C again to quit at once)\n";
    // SAFETY: write(2) is async-signal-safe; the buffer is valid for its length
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Installs the handler (unix; elsewhere Ctrl-C keeps its default). Not in a job of several
/// processes: a stop must be taken by every rank at the same step, so there Ctrl-C (which
/// `mpirun` forwards) ends the job, and `--resume` continues from the last checkpoint.
pub fn install() {
    if kiln_trainer::distributed::size() > 1 {
        return;
    }
    #[cfg(unix)]
    // SAFETY: the handler only does async-signal-safe work (an atomic swap, write, _exit)
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}
