//! The encoders: one `Write` per format, each giving the same bytes for any number of worker
//! threads.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};

use super::{Compression, DEFLATE_WINDOW, GZIP_CHUNK, LZ4_LEGACY_CHUNK, LZ4_LEGACY_MAGIC};

/// A `Write` that compresses into `W`; [`Encoder::finish`] ends the stream and returns `W`.
pub enum Encoder<W: Write> {
    Zstd(Zstd<W>),
    Xz(Xz<W>),
    /// gzip and LZ4: cut into fixed-size chunks compressed on worker threads.
    Chunked(Chunked<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    /// An encoder for `compression` at `level` (the format's default when `None`), using
    /// `workers` threads. Every format is written so that its bytes do not depend on `workers`.
    pub fn new(out: W, compression: Compression, level: Option<i64>, workers: u32) -> io::Result<Encoder<W>> {
        let level = level.or(compression.levels().map(|(_, _, default)| default)).unwrap_or(0);
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
            Compression::Gzip => Encoder::Chunked(Chunked::new(out, Codec::Deflate(level as u32), workers)?),
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
            Compression::Lz4 => Encoder::Chunked(Chunked::new(out, Codec::Lz4Legacy, workers)?),
            Compression::None => Encoder::None(out),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Chunked(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Chunked(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Chunked(e) => e.flush(),
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

/// How [`Chunked`] compresses each chunk.
#[derive(Clone, Copy, Debug)]
enum Codec {
    /// One gzip member at this level. flate2 writes a gzip stream only from one thread, so
    /// the member is framed here and each chunk is raw deflate from zlib-rs: all chunks but the
    /// last end with a sync flush (an empty stored block, so the next chunk starts on a byte),
    /// the last with the final block.
    Deflate(u32),
    /// The LZ4 "legacy" frame format (`lz4 -l`), written by hand because it is the only LZ4
    /// framing the kernel's initramfs unpacker reads and no crate writes it: the magic
    /// `0x184C2102`, then for each 8 MiB of input its compressed size (u32, little-endian) and
    /// the LZ4 block. The blocks are independent.
    Lz4Legacy,
}

impl Codec {
    fn chunk_size(self) -> usize {
        match self {
            Codec::Deflate(_) => GZIP_CHUNK,
            Codec::Lz4Legacy => LZ4_LEGACY_CHUNK,
        }
    }

    fn header(self) -> Vec<u8> {
        match self {
            Codec::Deflate(level) => {
                // No time, no name, and the OS byte "unknown", whatever the host. XFL says
                // "slowest" for level 9 and "fastest" for level 1, as gzip does.
                let xfl = match level {
                    9 => 2,
                    1 => 4,
                    _ => 0,
                };
                vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
            }
            Codec::Lz4Legacy => LZ4_LEGACY_MAGIC.to_vec(),
        }
    }

    /// Compresses one chunk. `dictionary` holds the input just before it; `last` is true for
    /// the final chunk (which may be empty).
    fn compress(self, chunk: &[u8], dictionary: &[u8], last: bool) -> io::Result<Vec<u8>> {
        match self {
            Codec::Deflate(level) => deflate(chunk, dictionary, level, last),
            Codec::Lz4Legacy if chunk.is_empty() => Ok(Vec::new()),
            Codec::Lz4Legacy => {
                let mut out = vec![0; 4 + lz4_flex::block::get_maximum_output_size(chunk.len())];
                let n = lz4_flex::block::compress_into(chunk, &mut out[4..]).map_err(io::Error::other)?;
                out[..4].copy_from_slice(&(n as u32).to_le_bytes());
                out.truncate(4 + n);
                Ok(out)
            }
        }
    }
}

/// Raw deflate of `chunk`, primed with `dictionary`. The whole chunk goes in at once, with
/// room for all of its output, so the bytes depend only on the chunk, the dictionary and the
/// level. zlib-rs picks SIMD code by CPU only where the result is exact (match lengths, hash
/// table sliding); its hash is the same on every CPU, and the golden test below pins the
/// bytes.
fn deflate(chunk: &[u8], dictionary: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    use flate2::{Compress, FlushCompress, Status};
    let mut z = Compress::new(flate2::Compression::new(level), false);
    if !dictionary.is_empty() {
        z.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 1000 + 1024);
    loop {
        let consumed = z.total_in() as usize;
        let status = z.compress_vec(&chunk[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = z.total_in() as usize == chunk.len();
        // A sync flush is complete when it leaves room in the output; the end when zlib says so.
        if all_in && (if last { status == Status::StreamEnd } else { out.len() < out.capacity() }) {
            return Ok(out);
        }
        out.reserve(64 << 10);
    }
}

/// A compressor that cuts its input into chunks of a fixed size, compresses them on up to
/// `workers` threads, and writes the results in order. A full chunk is held back until more
/// input arrives, so the last chunk is known to be last. At most two chunks per worker are in
/// flight, so memory stays bounded whatever the input's size.
pub struct Chunked<W: Write> {
    out: W,
    codec: Codec,
    pending: Vec<u8>,
    /// The end of the previous chunk, for the next one's dictionary.
    tail: Vec<u8>,
    /// gzip's trailer: CRC32 and length of all input.
    crc: crc32fast::Hasher,
    total: u64,
    pool: Option<Pool>,
    in_flight: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
    limit: usize,
}

impl<W: Write> Chunked<W> {
    fn new(mut out: W, codec: Codec, workers: u32) -> io::Result<Chunked<W>> {
        out.write_all(&codec.header())?;
        let pool = if workers > 1 { Some(Pool::new(workers as usize)) } else { None };
        Ok(Chunked {
            out,
            codec,
            pending: Vec::with_capacity(codec.chunk_size()),
            tail: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            pool,
            in_flight: VecDeque::new(),
            limit: 2 * workers as usize,
        })
    }

    /// Sends the pending chunk off to be compressed (or compresses it here, with one worker).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(self.codec.chunk_size()));
        let dictionary =
            std::mem::replace(&mut self.tail, chunk[chunk.len().saturating_sub(DEFLATE_WINDOW)..].to_vec());
        let codec = self.codec;
        let Some(pool) = &self.pool else {
            let packed = codec.compress(&chunk, &dictionary, last)?;
            return self.out.write_all(&packed);
        };
        let (send, receive) = mpsc::channel();
        pool.run(Box::new(move || {
            let _ = send.send(codec.compress(&chunk, &dictionary, last));
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
        self.submit(true)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        if let Codec::Deflate(_) = self.codec {
            self.out.write_all(&self.crc.finalize().to_le_bytes())?;
            self.out.write_all(&(self.total as u32).to_le_bytes())?;
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
        if self.pending.len() == self.codec.chunk_size() {
            self.submit(false)?;
        }
        let n = (self.codec.chunk_size() - self.pending.len()).min(buf.len());
        self.pending.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.total += n as u64;
        Ok(n)
    }

    /// Only the inner writer is flushed: cutting a chunk early would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
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
