//! Child processes bake runs (QEMU, the second build of `bake verify`): their messages are read
//! on the side, so a chatty child never blocks on a full pipe while bake waits for it, and the
//! wait gives way to Ctrl-C and to the caller's own reasons to stop.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::base::error::{Error, Result};

/// Reads everything from `pipe` on another thread; join the handle for the text.
pub fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// How a [`wait`] ended.
#[derive(Debug)]
pub enum Waited<T> {
    /// The child exited.
    Exited(ExitStatus),
    /// `tick` asked to stop waiting, for this reason; the child still runs.
    Stopped(T),
    /// Ctrl-C or SIGTERM arrived; the child still runs.
    Interrupted,
}

/// Waits for `child`, looking every 50 ms whether it exited, whether a signal asked bake to
/// stop, and whether `tick` says to stop waiting. `what` names the child in messages.
pub fn wait<T>(child: &mut Child, what: &str, mut tick: impl FnMut() -> Option<T>) -> Result<Waited<T>> {
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::failure(format!("cannot wait for {what}: {e}")))? {
            return Ok(Waited::Exited(status));
        }
        if crate::base::interrupt::requested() {
            return Ok(Waited::Interrupted);
        }
        if let Some(reason) = tick() {
            return Ok(Waited::Stopped(reason));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
