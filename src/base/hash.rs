//! SHA-256 digests of inputs, entries and outputs, and I/O adapters that compute them on the fly.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use crate::base::error::{IoContext, Result};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(digest: &Digest) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Parses 64 hex digits (either case).
pub fn parse_hex(text: &str) -> Option<Digest> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A name-based UUID from a SHA-256 digest: its first 16 bytes with the version set to 8 and
/// the variant to RFC 9562's (its appendix B.2 describes exactly this use of SHA-256). The same
/// content always gives the same UUID, so file systems and disks stay reproducible.
pub fn uuid_v8(digest: &[u8]) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

pub fn digest_bytes(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Digest and length of everything `reader` yields.
pub fn digest_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    thread_local! {
        // One buffer per thread: a fresh one per file would clear 256 KiB for every small file.
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 256 * 1024]);
    }
    BUFFER.with_borrow_mut(|buf| {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            crate::base::interrupt::check()?;
            let n = match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((hasher.finalize().into(), size))
    })
}

/// [`digest_file`] for many files at once, on up to `threads` threads; the results come back
/// in the order of `paths`.
pub fn digest_files(paths: &[&Path], threads: usize) -> Vec<Result<(Digest, u64)>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.clamp(1, paths.len().max(1));
    let mut results: Vec<(usize, Result<(Digest, u64)>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = paths.get(index) else { return done };
                        done.push((index, digest_file(path)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Digest and length of a host file (an input: errors are input errors naming it).
pub fn digest_file(path: &Path) -> Result<(Digest, u64)> {
    let file = std::fs::File::open(path).reading(path)?;
    digest_reader(file).reading(path)
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: Sha256::new() }
    }

    /// Reads what is left, and returns the digest of everything read.
    pub fn finish(mut self) -> io::Result<Digest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.hasher.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it, and writes it to `W`, on a thread
/// of its own: the hashing and the write calls overlap the work that produces the bytes.
/// Bytes travel in 1 MiB buffers, at most four queued, so memory stays bounded.
pub struct HashingWriter<W: Write + Send + 'static> {
    buffer: Vec<u8>,
    queue: Option<mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<io::Result<(W, Digest, u64)>>>,
}

const HASHING_BUFFER: usize = 1 << 20;

impl<W: Write + Send + 'static> HashingWriter<W> {
    pub fn new(mut inner: W) -> HashingWriter<W> {
        let (queue, buffers) = mpsc::sync_channel::<Vec<u8>>(4);
        let worker = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            let mut written = 0u64;
            for buffer in buffers {
                hasher.update(&buffer);
                inner.write_all(&buffer)?;
                written += buffer.len() as u64;
            }
            inner.flush()?;
            Ok((inner, hasher.finalize().into(), written))
        });
        HashingWriter { buffer: Vec::with_capacity(HASHING_BUFFER), queue: Some(queue), worker: Some(worker) }
    }

    /// Writes what is buffered, then returns the inner writer, the digest and the number of
    /// bytes written.
    pub fn finish(mut self) -> io::Result<(W, Digest, u64)> {
        self.send()?;
        self.queue = None;
        self.join()
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(HASHING_BUFFER));
        let sent = self.queue.as_ref().is_some_and(|queue| queue.send(full).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped early: a write failed. Its error is the one to report.
        self.queue = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(io::Error::other("the output thread stopped")),
        }
    }

    fn join(&mut self) -> io::Result<(W, Digest, u64)> {
        let worker = self.worker.take().ok_or_else(|| io::Error::other("the output thread already stopped"))?;
        worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl<W: Write + Send + 'static> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Compressors call this from inside their long final loops too: stop them there.
        crate::base::interrupt::check()?;
        if self.buffer.len() == HASHING_BUFFER {
            self.send()?;
        }
        let n = (HASHING_BUFFER - self.buffer.len()).min(buf.len());
        self.buffer.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Bytes leave in whole buffers; [`HashingWriter::finish`] sends the last one.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for HashingWriter<W> {
    /// An abandoned writer (a failed build) still waits for its thread, so nothing writes to
    /// the output after the build has returned.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_matches_sha256sum() {
        let digest = digest_bytes(b"hello\n");
        let text = hex(&digest);
        assert_eq!(text, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        assert_eq!(parse_hex(&text), Some(digest));
        assert_eq!(parse_hex(&text.to_uppercase()), Some(digest));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn hashing_writer_sees_every_byte() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hel").unwrap();
        writer.write_all(b"lo\n").unwrap();
        let (inner, digest, written) = writer.finish().unwrap();
        assert_eq!(inner, b"hello\n");
        assert_eq!(written, 6);
        assert_eq!(digest, digest_bytes(b"hello\n"));
    }

    /// Several buffers' worth, in writes of odd sizes.
    #[test]
    fn hashing_writer_keeps_the_order_of_many_buffers() {
        let data: Vec<u8> = (0..5 * HASHING_BUFFER + 77).map(|i| (i * 7 % 251) as u8).collect();
        let mut writer = HashingWriter::new(Vec::new());
        for piece in data.chunks(300_001) {
            writer.write_all(piece).unwrap();
        }
        let (inner, digest, written) = writer.finish().unwrap();
        assert!(inner == data);
        assert_eq!((digest, written), (digest_bytes(&data), data.len() as u64));
    }

    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn hashing_writer_reports_the_inner_writers_error() {
        let mut writer = HashingWriter::new(Full);
        let mut result = Ok(());
        for _ in 0..20 {
            result = writer.write_all(&[0; HASHING_BUFFER]);
            if result.is_err() {
                break;
            }
        }
        let error = result.and_then(|_| writer.finish().map(|_| ())).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
    }
}
