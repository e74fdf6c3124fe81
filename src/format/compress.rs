//! Compressors for images and decompressors for inputs, and telling formats apart by their
//! first bytes.
//!
//! Every encoder here gives the same bytes for the same input on every machine: the libraries
//! are built from the sources pinned in `Cargo.lock`, never taken from the host, and no setting
//! depends on the host (thread count, clock, file name).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex, mpsc};

use crate::recipe::Compression;

/// `lz4 -l` writes and the kernel reads frames of this many uncompressed bytes.
const LZ4_LEGACY_CHUNK: usize = 8 << 20;
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// gzip is written as one member whose deflate stream is cut every this many input bytes, so
/// the pieces can be compressed at once on several threads (as pigz does). The size is fixed:
/// the bytes depend on it, never on the number of threads.
const GZIP_CHUNK: usize = 1 << 20;

/// Each gzip piece starts with the previous piece's last 32 KiB as its dictionary (deflate's
/// whole window), so cutting the stream costs almost nothing in size.
const DEFLATE_WINDOW: usize = 32 << 10;

impl Compression {
    /// The file name suffix, including the dot (empty for `none`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Lz4 => ".lz4",
            Compression::None => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }

    /// The levels a recipe may ask for, and the default; `None` when the format has no levels.
    ///
    /// zstd stops at 19: the "ultra" levels above it need windows of up to 128 MiB, more than
    /// the kernel's initramfs decompressor is built to take on small machines.
    pub fn levels(self) -> Option<(i64, i64, i64)> {
        match self {
            Compression::Zstd => Some((1, 19, 19)),
            Compression::Gzip => Some((1, 9, 9)),
            Compression::Xz => Some((0, 9, 6)),
            Compression::Lz4 | Compression::None => None,
        }
    }

    /// Recognises a compressed stream by its magic bytes; anything else is `None` (uncompressed).
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if prefix.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if prefix.starts_with(&LZ4_LEGACY_MAGIC) {
            Compression::Lz4
        } else {
            Compression::None
        }
    }
}

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

/// Reads an LZ4 legacy stream (for inputs and for reading images back). The format has no end
/// marker: the stream ends at the end of the input, or where the next four bytes are no
/// plausible block size (zero padding, or the next archive's header), which are left unread.
struct Lz4LegacyReader<R: BufRead> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    block: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Lz4LegacyReader<R> {
    /// `inner` is positioned after the magic number.
    fn new(inner: R) -> Lz4LegacyReader<R> {
        Lz4LegacyReader { inner, out: Vec::new(), pos: 0, block: Vec::new(), done: false }
    }

    /// The next block's size, or `None` where the stream ends.
    fn next_size(&mut self) -> io::Result<Option<usize>> {
        let head = self.inner.fill_buf()?;
        if head.len() < 4 {
            // A short buffer may still hold the start of a size: gather four bytes carefully.
            let mut size = [0u8; 4];
            let mut have = 0;
            while have < 4 {
                let buf = self.inner.fill_buf()?;
                if buf.is_empty() {
                    return if have == 0 {
                        Ok(None)
                    } else {
                        Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated lz4 block size"))
                    };
                }
                let n = buf.len().min(4 - have);
                size[have..have + n].copy_from_slice(&buf[..n]);
                self.inner.consume(n);
                have += n;
            }
            return self.plausible(size, true);
        }
        let size: [u8; 4] = head[..4].try_into().expect("four bytes");
        self.plausible(size, false)
    }

    fn plausible(&mut self, size: [u8; 4], consumed: bool) -> io::Result<Option<usize>> {
        if size == LZ4_LEGACY_MAGIC {
            if !consumed {
                self.inner.consume(4);
            }
            return self.next_size();
        }
        let value = u32::from_le_bytes(size) as usize;
        if value == 0 || value > lz4_flex::block::get_maximum_output_size(LZ4_LEGACY_CHUNK) {
            if consumed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad lz4 block size"));
            }
            return Ok(None);
        }
        if !consumed {
            self.inner.consume(4);
        }
        Ok(Some(value))
    }
}

impl<R: BufRead> Read for Lz4LegacyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            let Some(size) = self.next_size()? else {
                self.done = true;
                return Ok(0);
            };
            self.block.resize(size, 0);
            self.inner.read_exact(&mut self.block)?;
            self.out.resize(LZ4_LEGACY_CHUNK, 0);
            let n = lz4_flex::block::decompress_into(&self.block, &mut self.out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.out.truncate(n);
            self.pos = 0;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decodes exactly one compressed stream (one gzip member, xz stream, zstd frame, or LZ4 legacy
/// stream) from `input`, leaving whatever follows it unread: the next archive of an image made
/// of several.
pub fn single_stream<'a>(
    input: &'a mut (impl BufRead + 'a),
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?.single_frame()),
        Compression::Gzip => Box::new(flate2::bufread::GzDecoder::new(input)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new(input)),
        Compression::Lz4 => {
            let mut magic = [0u8; 4];
            input.read_exact(&mut magic)?;
            Box::new(Lz4LegacyReader::new(input))
        }
        Compression::None => Box::new(input),
    })
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Wraps `reader` in the decompressor its first bytes call for, and says which it was.
/// Concatenated streams (several gzip members, zstd frames or xz streams) are read to the end.
pub fn decoder<'a>(mut reader: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    // One read may return fewer bytes than a magic number has (a member of an `ar` archive can
    // end a buffer early), so gather the longest magic first and put it back in front.
    let mut magic = [0u8; 6];
    let got = read_full(&mut reader, &mut magic)?;
    let mut reader = BufReader::with_capacity(256 * 1024, io::Cursor::new(magic[..got].to_vec()).chain(reader));
    let prefix = &magic[..got];
    if prefix.starts_with(b"BZh") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bzip2 compression is not supported (use gzip, xz or zstd)",
        ));
    }
    if prefix.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the LZ4 frame format is not supported (use gzip, xz or zstd, or LZ4's legacy format)",
        ));
    }
    let compression = Compression::detect(prefix);
    let decoded: Box<dyn Read + 'a> = match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
        Compression::Lz4 => {
            let mut magic = [0u8; 4];
            reader.read_exact(&mut magic)?;
            Box::new(Lz4LegacyReader::new(reader))
        }
        Compression::None => Box::new(reader),
    };
    Ok((compression, decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data that compresses somewhat, like a file system does.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 3 == 0 { (state % 7) as u8 } else { b"bake image "[i % 11] }
            })
            .collect()
    }

    fn compress(data: &[u8], compression: Compression, level: Option<i64>, workers: u32) -> Vec<u8> {
        let mut encoder = Encoder::new(Vec::new(), compression, level, workers).unwrap();
        for chunk in data.chunks(100_000) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn every_format_round_trips_and_is_detected() {
        let data = sample(9 << 20);
        for compression in [Compression::Zstd, Compression::Gzip, Compression::Xz, Compression::Lz4, Compression::None]
        {
            let level = compression.levels().map(|(low, _, _)| low);
            let packed = compress(&data, compression, level, 2);
            let (found, mut reader) = decoder(&packed[..]).unwrap();
            assert_eq!(found, compression);
            let mut unpacked = Vec::new();
            reader.read_to_end(&mut unpacked).unwrap();
            assert!(unpacked == data, "{} did not round-trip", compression.name());
        }
    }

    /// Hands out one byte per read, as a member of an `ar` archive can at a buffer's end.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Regression: the format was decided from one read, so a short read made xz look plain.
    #[test]
    fn formats_are_detected_from_short_reads() {
        let packed = compress(b"hello", Compression::Xz, None, 1);
        let (found, mut reader) = decoder(Trickle(&packed)).unwrap();
        assert_eq!(found, Compression::Xz);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        let (found, _) = decoder(Trickle(b"ab")).unwrap();
        assert_eq!(found, Compression::None);
    }

    /// The data spans several chunks of every chunked format (three 8 MiB LZ4 blocks, 18 gzip
    /// pieces, several zstd jobs and xz blocks at the levels used), so workers really run
    /// concurrently and finish out of order.
    #[test]
    fn bytes_do_not_depend_on_the_worker_count() {
        let data = sample(18 << 20);
        for (compression, level) in
            [(Compression::Zstd, 3), (Compression::Gzip, 6), (Compression::Xz, 1), (Compression::Lz4, 0)]
        {
            let level = compression.levels().map(|_| level);
            let one = compress(&data, compression, level, 1);
            for workers in [2, 8] {
                let many = compress(&data, compression, level, workers);
                assert!(one == many, "{} output changed from 1 to {workers} workers", compression.name());
            }
        }
    }

    #[test]
    fn gzip_is_one_member_that_gnu_gzip_reads() {
        let data = sample(3 * GZIP_CHUNK + 5);
        let packed = compress(&data, Compression::Gzip, Some(9), 2);
        let mut member = flate2::read::GzDecoder::new(&packed[..]);
        let mut unpacked = Vec::new();
        member.read_to_end(&mut unpacked).unwrap();
        assert!(unpacked == data, "the first member does not hold all the data");
        // Whatever gzip build the host has must agree (it checks the CRC and length too).
        let mut gzip = std::process::Command::new("gzip")
            .args(["-d", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = gzip.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&packed).unwrap());
        let output = gzip.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(output.status.success());
        assert!(output.stdout == data, "gzip -d gives other bytes");
    }

    #[test]
    fn empty_input_gives_a_valid_stream_in_every_format() {
        for compression in [Compression::Zstd, Compression::Gzip, Compression::Xz, Compression::Lz4] {
            for workers in [1, 2] {
                let packed = compress(b"", compression, None, workers);
                let (_, mut reader) = decoder(&packed[..]).unwrap();
                let mut out = Vec::new();
                reader.read_to_end(&mut out).unwrap();
                assert!(out.is_empty(), "{}", compression.name());
            }
        }
    }

    #[test]
    fn gzip_header_has_no_time_and_no_host() {
        let packed = compress(b"hello", Compression::Gzip, None, 1);
        assert_eq!(&packed[4..8], &[0, 0, 0, 0], "mtime");
        assert_eq!(packed[9], 255, "OS byte");
    }

    #[test]
    fn xz_uses_the_crc32_check_the_kernel_requires() {
        let packed = compress(b"hello", Compression::Xz, None, 1);
        // Stream flags, second byte: check type 0x01 is CRC32.
        assert_eq!(packed[7], 0x01);
    }

    #[test]
    fn lz4_legacy_frames_are_cut_every_8_mib() {
        let data = sample(LZ4_LEGACY_CHUNK + 10);
        let packed = compress(&data, Compression::Lz4, None, 1);
        assert_eq!(&packed[..4], &LZ4_LEGACY_MAGIC);
        let first = u32::from_le_bytes(packed[4..8].try_into().unwrap()) as usize;
        let second = u32::from_le_bytes(packed[8 + first..12 + first].try_into().unwrap()) as usize;
        assert_eq!(packed.len(), 12 + first + second);
    }
}

#[cfg(test)]
mod golden {
    use super::*;

    /// The exact bytes each compressor gives for a fixed input at its default level. A failure
    /// means users' images would change: a library was upgraded, or a dependency switched
    /// flate2 to another backend through feature unification (flate2 is pinned to zlib-rs).
    /// Update these only on purpose, and say so in the release notes. The input is longer than
    /// one gzip chunk, so the dictionary carried from chunk to chunk is pinned too.
    #[test]
    fn compressed_bytes_are_pinned() {
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("{i:08} bake reproducible image line {}\n", i % 97).as_bytes());
        }
        for (compression, expected) in [
            (Compression::Zstd, "e94824a596d73e3773ae7b442144d24400225d130c01d2e62d7153cc19fcb1d6"),
            (Compression::Gzip, "09322e535efbb2044d09c0c1b941e5f67b8a69e54f98cc47cc09ee4e74bfd116"),
            (Compression::Xz, "4c49ece1447d3b8d6e91a25448cfcd55102f72552de1097f426c4fe84001482f"),
            (Compression::Lz4, "191e33fdd7c54430d9600185c82cbeb175273da319c8349ac22d1ead3388b5c9"),
            (Compression::None, "8e944cb8effa0d60f1997ac4071b1b7544063c990893bd0e180cec0fbed31090"),
        ] {
            let mut encoder = Encoder::new(Vec::new(), compression, None, 2).unwrap();
            encoder.write_all(&data).unwrap();
            let packed = encoder.finish().unwrap();
            let digest = crate::base::hash::hex(&crate::base::hash::digest_bytes(&packed));
            assert_eq!(digest, expected, "{} output changed", compression.name());
        }
    }
}
