//! Child processes bake runs (QEMU, the second build of `bake verify`): their messages are read
//! on the side, so a chatty child never blocks on a full pipe while bake waits for it.

use std::io::Read;
use std::thread::JoinHandle;

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
