//! The decoders: a stream's format told by its first bytes, one stream or all of them read.

use std::io::{self, BufRead, BufReader, Read};

use super::{Compression, LZ4_LEGACY_CHUNK, LZ4_LEGACY_MAGIC};
use crate::format::read_full;

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
