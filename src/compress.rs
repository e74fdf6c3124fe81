//! Compressors for images and decompressors for inputs, and telling formats apart by their
//! first bytes.
//!
//! Every encoder here gives the same bytes for the same input on every machine: the libraries
//! are built from the sources pinned in `Cargo.lock`, never taken from the host, and no setting
//! depends on the host (thread count, clock, file name).

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::recipe::Compression;

/// `lz4 -l` writes and the kernel reads frames of this many uncompressed bytes.
const LZ4_LEGACY_CHUNK: usize = 8 << 20;
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

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
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
    Xz(liblzma::write::XzEncoder<W>),
    Lz4(Lz4Legacy<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    /// An encoder for `compression` at `level` (the format's default when `None`), using
    /// `workers` threads where the format's bytes do not depend on their number.
    pub fn new(out: W, compression: Compression, level: Option<i64>, workers: u32) -> io::Result<Encoder<W>> {
        let level = level.or(compression.levels().map(|(_, _, default)| default)).unwrap_or(0);
        Ok(match compression {
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level as i32)?;
                // zstd's single-threaded mode and its multi-threaded mode give different bytes,
                // but the multi-threaded mode gives the same bytes for any number of workers
                // (the input is cut into jobs by size, not by thread). So always use at least one
                // worker: the output is then the same on a 2-core builder and a 64-core one.
                encoder.multithread(workers.max(1))?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
            // The header's mtime is 0 and its OS byte "unknown", whatever the host.
            Compression::Gzip => {
                Encoder::Gzip(flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::new(level as u32)))
            }
            // The kernel's XZ decoder knows only the CRC32 and no-check kinds of integrity check.
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_easy_encoder(level as u32, liblzma::stream::Check::Crc32)
                    .map_err(io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
            }
            Compression::Lz4 => Encoder::Lz4(Lz4Legacy::new(out)),
            Compression::None => Encoder::None(out),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Zstd(e) => e.finish(),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Lz4(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Zstd(e) => e.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

/// The LZ4 "legacy" frame format (`lz4 -l`), written by hand because it is the only LZ4 framing
/// the kernel's initramfs unpacker reads and no crate writes it: the magic `0x184C2102`, then
/// for each 8 MiB of input its compressed size (u32, little-endian) and the LZ4 block.
pub struct Lz4Legacy<W: Write> {
    out: W,
    pending: Vec<u8>,
    block: Vec<u8>,
    started: bool,
}

impl<W: Write> Lz4Legacy<W> {
    fn new(out: W) -> Lz4Legacy<W> {
        Lz4Legacy { out, pending: Vec::with_capacity(LZ4_LEGACY_CHUNK), block: Vec::new(), started: false }
    }

    fn start(&mut self) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&LZ4_LEGACY_MAGIC)?;
            self.started = true;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        self.start()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        self.block.resize(lz4_flex::block::get_maximum_output_size(self.pending.len()), 0);
        let n = lz4_flex::block::compress_into(&self.pending, &mut self.block).map_err(io::Error::other)?;
        self.out.write_all(&(n as u32).to_le_bytes())?;
        self.out.write_all(&self.block[..n])?;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.flush_chunk()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Lz4Legacy<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = LZ4_LEGACY_CHUNK - self.pending.len();
        let n = room.min(buf.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == LZ4_LEGACY_CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    /// Only the inner writer is flushed: cutting a chunk early would change the bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
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

    #[test]
    fn zstd_bytes_do_not_depend_on_the_worker_count() {
        let data = sample(24 << 20);
        let one = compress(&data, Compression::Zstd, Some(3), 1);
        let three = compress(&data, Compression::Zstd, Some(3), 3);
        assert!(one == three, "zstd output changed with the worker count");
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
    /// flate2 to another backend through feature unification (flate2 is pinned to its pure-Rust
    /// backend). Update these only on purpose, and say so in the release notes.
    #[test]
    fn compressed_bytes_are_pinned() {
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("{i:08} bake reproducible image line {}\n", i % 97).as_bytes());
        }
        for (compression, expected) in [
            (Compression::Zstd, "e94824a596d73e3773ae7b442144d24400225d130c01d2e62d7153cc19fcb1d6"),
            (Compression::Gzip, "ed1a1abca6f60af9ca34d46b2ebbc7fc5b6df2edddc5fc39a01d29e708976079"),
            (Compression::Xz, "f586455e50996404eb6724189ee3f811fe0631d21c9cc7c6ddeb7385216a1135"),
            (Compression::Lz4, "191e33fdd7c54430d9600185c82cbeb175273da319c8349ac22d1ead3388b5c9"),
            (Compression::None, "8e944cb8effa0d60f1997ac4071b1b7544063c990893bd0e180cec0fbed31090"),
        ] {
            let mut encoder = Encoder::new(Vec::new(), compression, None, 2).unwrap();
            encoder.write_all(&data).unwrap();
            let packed = encoder.finish().unwrap();
            let digest = crate::hash::hex(&crate::hash::digest_bytes(&packed));
            assert_eq!(digest, expected, "{} output changed", compression.name());
        }
    }
}
