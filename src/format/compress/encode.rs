//! The encoders: one `Write` per format, each giving the same bytes for the same input
//! whatever the number of worker threads and however the input is handed to it.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};

use super::{Compression, LZ4_LEGACY_CHUNK, LZ4_LEGACY_MAGIC};

/// A `Write` that compresses into `W`; [`Encoder::finish`] ends the stream and returns `W`.
pub enum Encoder<W: Write> {
    /// zstd, gzip and xz as one unit on the calling thread (see `Unit`); and gzip always.
    Unit(Unit<W>),
    /// zstd as one frame on worker threads.
    Zstd(Zstd<W>),
    /// xz as one stream on worker threads.
    Xz(Xz<W>),
    /// LZ4: cut into fixed-size blocks compressed on worker threads.
    Lz4(Chunked<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    /// One unit (a zstd frame, a gzip member, an xz stream; see `Unit`) for `compression` at
    /// `level` (the format's default when `None`), on the calling thread. `size` is the exact
    /// number of bytes that will be written, when known: zstd records it in the frame and fits
    /// its parameters (window, tables) to it. LZ4 and `none` are written as by [`Encoder::stream`]
    /// with one worker.
    pub fn unit(out: W, compression: Compression, level: Option<i64>, size: Option<u64>) -> io::Result<Encoder<W>> {
        let level = compression.level_or_default(level);
        Ok(match compression {
            Compression::Zstd | Compression::Gzip | Compression::Xz => {
                Encoder::Unit(Unit::new(out, compression, level, size)?)
            }
            Compression::Lz4 => Encoder::Lz4(Chunked::new(out, 1)?),
            Compression::None => Encoder::None(out),
        })
    }

    /// One stream compressed on `workers` threads: zstd's and liblzma's multi-threaded
    /// encoders, LZ4's independent blocks; gzip is one member on the calling thread. No
    /// format's bytes depend on `workers`.
    pub fn stream(out: W, compression: Compression, level: Option<i64>, workers: u32) -> io::Result<Encoder<W>> {
        let level = compression.level_or_default(level);
        let workers = workers.max(1);
        Ok(match compression {
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level as i32)?;
                // zstd's single-threaded mode and its multi-threaded mode give different bytes,
                // but the multi-threaded mode gives the same bytes for any number of workers
                // (the input is cut into jobs by size, not by thread). So always use at least one
                // worker: the output is then the same on a 2-core builder and a 64-core one.
                encoder.multithread(workers)?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(Zstd(Some(encoder)))
            }
            // liblzma's multi-threaded encoder cuts the stream into blocks of a size set by the
            // preset alone (three times the dictionary), whatever the number of threads, and
            // is used even for one thread so the bytes never change with it. The kernel's XZ
            // decoder reads streams of several blocks, and knows only the CRC32 and no-check
            // kinds of integrity check.
            Compression::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(workers)
                    .preset(level as u32)
                    .check(liblzma::stream::Check::Crc32)
                    .timeout_ms(XZ_TIMEOUT_MS)
                    .encoder()
                    .map_err(io::Error::other)?;
                Encoder::Xz(Xz { out, stream, buffer: Vec::with_capacity(256 << 10) })
            }
            Compression::Gzip => Encoder::Unit(Unit::new(out, compression, level, None)?),
            Compression::Lz4 => Encoder::Lz4(Chunked::new(out, workers)?),
            Compression::None => Encoder::None(out),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Unit(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Lz4(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Unit(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Unit(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

/// zstd's multi-threaded encoder. Dropping it waits for every job in flight, which at level 19
/// can take many seconds; when the build is being stopped by a signal it is leaked instead, so
/// Ctrl-C stays prompt. Its threads only compress into their own buffers, and the process is
/// about to exit.
pub struct Zstd<W: Write>(Option<zstd::stream::write::Encoder<'static, W>>);

impl<W: Write> Zstd<W> {
    fn inner(&mut self) -> &mut zstd::stream::write::Encoder<'static, W> {
        self.0.as_mut().expect("present until finished or dropped")
    }

    fn finish(mut self) -> io::Result<W> {
        self.0.take().expect("present until finished or dropped").finish()
    }
}

impl<W: Write> Write for Zstd<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }
}

impl<W: Write> Drop for Zstd<W> {
    fn drop(&mut self) {
        if let Some(encoder) = self.0.take()
            && crate::base::interrupt::requested()
        {
            std::mem::forget(encoder);
        }
    }
}

/// How long liblzma's multi-threaded encoder may block before handing control back. Its
/// workers keep going meanwhile; the pause only lets a Ctrl-C be noticed within this time
/// rather than after the last blocks are done (many seconds at high levels). It never changes
/// the bytes.
const XZ_TIMEOUT_MS: u32 = 100;

/// liblzma's multi-threaded encoder, driven here rather than through `liblzma::write`, whose
/// loops wait for the encoder without ever looking at the interrupt flag.
pub struct Xz<W: Write> {
    out: W,
    stream: liblzma::stream::Stream,
    buffer: Vec<u8>,
}

impl<W: Write> Xz<W> {
    /// Runs the encoder once (at most [`XZ_TIMEOUT_MS`]) and writes what it produced; returns
    /// how much input it took and whether the stream ended.
    fn step(&mut self, input: &[u8], action: liblzma::stream::Action) -> io::Result<(usize, bool)> {
        crate::base::interrupt::check()?;
        let before = self.stream.total_in();
        self.buffer.clear();
        let status = self.stream.process_vec(input, &mut self.buffer, action).map_err(io::Error::other)?;
        self.out.write_all(&self.buffer)?;
        Ok(((self.stream.total_in() - before) as usize, status == liblzma::stream::Status::StreamEnd))
    }

    fn finish(mut self) -> io::Result<W> {
        while !self.step(&[], liblzma::stream::Action::Finish)?.1 {}
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Xz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let (taken, _) = self.step(buf, liblzma::stream::Action::Run)?;
            if taken > 0 {
                return Ok(taken);
            }
        }
    }

    /// Only the inner writer is flushed: a flushed xz block would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Input reaches a unit's compressor in blocks of exactly this many bytes (the last one
/// shorter), so its output cannot depend on how the caller's writes happened to be cut.
const UNIT_BLOCK: usize = 128 << 10;

/// One self-contained compressed unit: a zstd frame (with its content size when known, and a
/// checksum), a gzip member, or an xz stream (CRC32 check). Concatenated units are one valid
/// stream to every decompressor of the format, and the kernel unpacks an initramfs made of
/// them as long as each ends between two cpio entries.
pub struct Unit<W: Write> {
    codec: UnitCodec<W>,
    block: Vec<u8>,
}

enum UnitCodec<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// Raw deflate from zlib-rs inside a member framed here: flate2's `GzEncoder` would choose
    /// the header's bytes itself.
    Gzip {
        deflate: flate2::write::DeflateEncoder<W>,
        crc: crc32fast::Hasher,
        total: u64,
    },
    /// The kernel's XZ decoder knows only the CRC32 and no-check kinds of integrity check.
    Xz(liblzma::write::XzEncoder<W>),
}

impl<W: Write> Unit<W> {
    fn new(mut out: W, compression: Compression, level: i64, size: Option<u64>) -> io::Result<Unit<W>> {
        let codec = match compression {
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level as i32)?;
                encoder.include_checksum(true)?;
                if let Some(size) = size {
                    encoder.include_contentsize(true)?;
                    encoder.set_pledged_src_size(Some(size))?;
                }
                UnitCodec::Zstd(encoder)
            }
            Compression::Gzip => {
                // No time, no name, and the OS byte "unknown", whatever the host. XFL says
                // "slowest" for level 9 and "fastest" for level 1, as gzip does.
                let xfl = match level {
                    9 => 2,
                    1 => 4,
                    _ => 0,
                };
                out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
                let deflate = flate2::write::DeflateEncoder::new(out, flate2::Compression::new(level as u32));
                UnitCodec::Gzip { deflate, crc: crc32fast::Hasher::new(), total: 0 }
            }
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_easy_encoder(level as u32, liblzma::stream::Check::Crc32)
                    .map_err(io::Error::other)?;
                UnitCodec::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
            }
            Compression::Lz4 | Compression::None => unreachable!("not a unit format"),
        };
        Ok(Unit { codec, block: Vec::with_capacity(UNIT_BLOCK) })
    }

    fn feed(&mut self) -> io::Result<()> {
        let block = &self.block[..];
        match &mut self.codec {
            UnitCodec::Zstd(e) => e.write_all(block)?,
            UnitCodec::Gzip { deflate, crc, total } => {
                crc.update(block);
                *total += block.len() as u64;
                deflate.write_all(block)?;
            }
            UnitCodec::Xz(e) => e.write_all(block)?,
        }
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.feed()?;
        let mut out = match self.codec {
            UnitCodec::Zstd(e) => e.finish()?,
            UnitCodec::Gzip { deflate, crc, total } => {
                let mut out = deflate.finish()?;
                out.write_all(&crc.finalize().to_le_bytes())?;
                out.write_all(&(total as u32).to_le_bytes())?;
                out
            }
            UnitCodec::Xz(e) => e.finish()?,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Unit<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (UNIT_BLOCK - self.block.len()).min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == UNIT_BLOCK {
            self.feed()?;
        }
        Ok(n)
    }

    /// Nothing is flushed: a flushed block would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The LZ4 "legacy" frame format (`lz4 -l`), written by hand because it is the only LZ4
/// framing the kernel's initramfs unpacker reads and no crate writes it: the magic
/// `0x184C2102`, then for each 8 MiB of input its compressed size (u32, little-endian) and the
/// LZ4 block. The blocks are independent, so they are compressed on up to `workers` threads and
/// written in order. A full block is held back until more input arrives, so the last one is
/// known to be last. At most two blocks per worker are in flight, so memory stays bounded
/// whatever the input's size.
pub struct Chunked<W: Write> {
    out: W,
    pending: Vec<u8>,
    pool: Option<Pool>,
    in_flight: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
    limit: usize,
}

impl<W: Write> Chunked<W> {
    fn new(mut out: W, workers: u32) -> io::Result<Chunked<W>> {
        out.write_all(&LZ4_LEGACY_MAGIC)?;
        let pool = if workers > 1 { Some(Pool::new(workers as usize)) } else { None };
        Ok(Chunked {
            out,
            pending: Vec::with_capacity(LZ4_LEGACY_CHUNK),
            pool,
            in_flight: VecDeque::new(),
            limit: 2 * workers as usize,
        })
    }

    /// Sends the pending chunk off to be compressed (or compresses it here, with one worker).
    fn submit(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(LZ4_LEGACY_CHUNK));
        let Some(pool) = &self.pool else {
            let packed = lz4_block(&chunk)?;
            return self.out.write_all(&packed);
        };
        let (send, receive) = mpsc::channel();
        pool.run(Box::new(move || {
            let _ = send.send(lz4_block(&chunk));
        }));
        self.in_flight.push_back(receive);
        while self.in_flight.len() >= self.limit {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(receive) = self.in_flight.pop_front() else { return Ok(()) };
        let packed = receive.recv().map_err(|_| io::Error::other("a compression thread died"))??;
        self.out.write_all(&packed)
    }

    fn finish(mut self) -> io::Result<W> {
        self.submit()?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.len() == LZ4_LEGACY_CHUNK {
            self.submit()?;
        }
        let n = (LZ4_LEGACY_CHUNK - self.pending.len()).min(buf.len());
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Only the inner writer is flushed: cutting a block early would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One LZ4 legacy block: its compressed size, then the block (nothing for empty input).
fn lz4_block(chunk: &[u8]) -> io::Result<Vec<u8>> {
    if chunk.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = vec![0; 4 + lz4_flex::block::get_maximum_output_size(chunk.len())];
    let n = lz4_flex::block::compress_into(chunk, &mut out[4..]).map_err(io::Error::other)?;
    out[..4].copy_from_slice(&(n as u32).to_le_bytes());
    out.truncate(4 + n);
    Ok(out)
}

/// Worker threads that run jobs from a shared queue; they stop when the pool is dropped.
struct Pool {
    queue: Option<mpsc::Sender<Box<dyn FnOnce() + Send>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(workers: usize) -> Pool {
        let (queue, jobs) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let jobs = Arc::new(Mutex::new(jobs));
        let threads = (0..workers)
            .map(|_| {
                let jobs = Arc::clone(&jobs);
                std::thread::spawn(move || {
                    loop {
                        // The lock is held only to take a job, never while running one.
                        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        Pool { queue: Some(queue), threads }
    }

    fn run(&self, job: Box<dyn FnOnce() + Send>) {
        if let Some(queue) = &self.queue {
            // Workers outlive the queue's sender, so sending cannot fail.
            let _ = queue.send(job);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
