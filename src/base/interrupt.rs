//! Ctrl-C and SIGTERM: a build stops soon after, removes its temporary files (they are dropped
//! on the way out) and leaves the previous outputs as they were, because nothing was renamed.
//!
//! The signal handler only sets a flag; the loops that can run long (reading and hashing
//! inputs, spooling archive members, writing the image) look at it between chunks.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that arrived, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNAL.store(signal, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() {
    let handler: extern "C" fn(libc::c_int) = record;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// An error when a signal asked bake to stop.
pub fn check() -> io::Result<()> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => Ok(()),
        // Not `ErrorKind::Interrupted`: read loops retry on that.
        signal => Err(io::Error::other(format!(
            "interrupted by {}: stopped, temporary files removed, previous outputs kept",
            if signal == libc::SIGINT { "Ctrl-C (SIGINT)" } else { "SIGTERM" }
        ))),
    }
}

/// Whether a signal asked bake to stop.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::Relaxed) != 0
}

/// A point where a long loop may stop: an error (a build failure) when a signal asked bake to.
pub fn stop_point() -> crate::base::error::Result<()> {
    check().map_err(|e| crate::base::error::Error::failure(e.to_string()))
}
