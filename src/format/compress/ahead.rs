//! Decompression on a thread of its own, a little ahead of the reader: while one thread
//! decompresses an input, the one reading it parses, hashes and spools what came before, so
//! the two costs overlap instead of adding up (on two cores, 0.1 s of a cold module
//! initramfs's 1.7 s; the kernel package's `data.tar.xz` is also read two blocks at a time,
//! `xz_blocks`, for 0.2 s more).
//! At most [`CHUNKS_AHEAD`] chunks of [`CHUNK`] bytes wait between the two threads, so memory
//! stays what one decompressor needs.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;

use super::xz_blocks::{At, Blocks};
use super::{Compression, decoder};
use crate::format::pass_on;

/// Bytes handed over at a time.
const CHUNK: usize = 256 << 10;
/// Chunks decompressed and not yet read, at most.
const CHUNKS_AHEAD: usize = 4;

/// The decompressed bytes of `input`, in whatever compression [`decoder`] recognises,
/// decompressed on a thread of `scope`. An input the decoder refuses is refused here, before
/// any thread reads on; a stream that goes bad later fails the read that reaches the bad part.
pub fn decoder_ahead<'scope>(
    scope: &'scope Scope<'scope, '_>,
    input: impl Read + Send + 'scope,
) -> io::Result<(Compression, Ahead)> {
    let (started_send, started) = sync_channel::<io::Result<Compression>>(1);
    let (send, chunks) = sync_channel::<io::Result<Vec<u8>>>(CHUNKS_AHEAD);
    scope.spawn(move || {
        let mut reader = match decoder(input) {
            Ok((compression, reader)) => {
                let _ = started_send.send(Ok(compression));
                reader
            }
            Err(e) => {
                let _ = started_send.send(Err(e));
                return;
            }
        };
        let mut chunk = vec![0; CHUNK];
        while pass_on(&mut reader, &mut chunk, &mut |piece| hand_over(&send, piece)) {}
    });
    let compression = started.recv().map_err(|_| io::Error::other("the decompressing thread stopped"))??;
    Ok((compression, Ahead { chunks, chunk: Vec::new(), pos: 0, failed: false }))
}

/// [`decoder_ahead`] for `file[start..start + len]`: an xz stream of several blocks is
/// decompressed two blocks at a time (one streamed, the next into memory on a second thread),
/// anything else as by [`decoder_ahead`].
pub fn decoder_ahead_at<'scope>(
    scope: &'scope Scope<'scope, '_>,
    file: &'scope File,
    start: u64,
    len: u64,
) -> io::Result<(Compression, Ahead)> {
    let Some(blocks) = Blocks::read(file, start, len).filter(|blocks| blocks.len() > 1) else {
        return decoder_ahead(scope, At::new(file, start, len));
    };
    let (send, chunks) = sync_channel::<io::Result<Vec<u8>>>(CHUNKS_AHEAD);
    scope.spawn(move || blocks.decompress(|piece| hand_over(&send, piece)));
    Ok((Compression::Xz, Ahead { chunks, chunk: Vec::new(), pos: 0, failed: false }))
}

/// Sends `piece` to the reader; `false` once it is an error or the reader stopped reading (it
/// failed, or needed no more).
fn hand_over(send: &SyncSender<io::Result<Vec<u8>>>, piece: io::Result<&[u8]>) -> bool {
    match piece {
        Ok(bytes) => send.send(Ok(bytes.to_vec())).is_ok(),
        Err(e) => {
            let _ = send.send(Err(e));
            false
        }
    }
}

/// The reading end of [`decoder_ahead`].
pub struct Ahead {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl Read for Ahead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("the input could not be decompressed"));
        }
        while self.pos == self.chunk.len() {
            match self.chunks.recv() {
                Ok(Ok(chunk)) => (self.chunk, self.pos) = (chunk, 0),
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                // The thread ended after the last chunk: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
