//! Reading built images back: any newc cpio archive, compressed or not, and the common layout
//! of several archives one after another (an uncompressed early archive with CPU microcode,
//! then a compressed main one), as the kernel unpacks them; and disks: an EROFS file system,
//! bare or in the partitions of a GPT disk.
//!
//! The same reader serves `bake inspect`, `bake diff`, `bake verify` and the tests. It streams:
//! file data is hashed as it passes and never held, so an image of any size is read in little
//! memory, and every size a header claims is checked before anything is allocated.

use std::io::{self, BufRead, Read, Seek, SeekFrom};
use std::path::Path;

use crate::base::error::{Error, Result, io_cause};
use crate::format::compress::{self, Compression};
use crate::format::{Entry, cpio, erofs, gpt};

/// What holds a segment's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A newc cpio archive (compressed or not).
    Cpio,
    /// An EROFS file system.
    Erofs,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Cpio => "cpio",
            Format::Erofs => "erofs",
        }
    }
}

/// One archive (or file system) of an image.
#[derive(Debug, Clone)]
pub struct Segment {
    pub format: Format,
    /// How this archive was compressed.
    pub compression: Compression,
    /// Where its (compressed) bytes start in the image file.
    pub offset: u64,
    /// For a file system in a partition: which, as `GPT partition N (`name`)`.
    pub partition: Option<String>,
    pub entries: Vec<Entry>,
}

/// A reader that can look ahead any number of bytes without losing them, and lends itself to
/// the decompressors as a `BufRead` so they take exactly the bytes of their own stream.
struct Peekable<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    consumed: u64,
}

impl<R: Read> Peekable<R> {
    fn new(inner: R) -> Peekable<R> {
        Peekable { inner, buf: Vec::new(), pos: 0, consumed: 0 }
    }

    /// Up to `n` bytes from the current position, fewer only at the end of the input.
    fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        while self.buf.len() - self.pos < n {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let have = self.buf.len();
            self.buf.resize(have + 64 * 1024, 0);
            let got = self.inner.read(&mut self.buf[have..])?;
            self.buf.truncate(have + got);
            if got == 0 {
                break;
            }
        }
        let end = (self.pos + n).min(self.buf.len());
        Ok(&self.buf[self.pos..end])
    }
}

impl<R: Read> Read for Peekable<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Peekable<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.buf.resize(64 * 1024, 0);
            let got = self.inner.read(&mut self.buf)?;
            self.buf.truncate(got);
        }
        Ok(&self.buf[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.consumed += n as u64;
    }
}

/// Skips zero bytes (the padding between concatenated archives); false at the end of input.
fn skip_zeros(input: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        let zeros = buf.iter().take_while(|&&b| b == 0).count();
        let more = zeros < buf.len();
        input.consume(zeros);
        if more {
            return Ok(true);
        }
    }
}

/// Reads one archive up to its trailer.
fn read_archive(input: impl Read, entries: &mut Vec<Entry>) -> io::Result<()> {
    let mut reader = cpio::Reader::new(input);
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    Ok(())
}

/// Reads every segment of the image in `input`.
pub fn read(input: impl Read) -> io::Result<Vec<Segment>> {
    let mut input = Peekable::new(input);
    let mut segments = Vec::new();
    loop {
        if !skip_zeros(&mut input)? {
            break;
        }
        let offset = input.consumed;
        let magic = input.peek(6)?.to_vec();
        if cpio::is_magic(&magic) {
            // Each archive is its own segment, as the kernel treats it: hard links do not reach
            // across a `TRAILER!!!`.
            let mut entries = Vec::new();
            read_archive(&mut input, &mut entries)?;
            segments.push(Segment {
                format: Format::Cpio,
                compression: Compression::None,
                offset,
                partition: None,
                entries,
            });
            continue;
        }
        let compression = Compression::detect(&magic);
        if compression == Compression::None {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unrecognised data at byte {offset} (starts {:02x?}): not a cpio archive nor a zstd, gzip, xz or \
                     lz4 stream",
                    &magic
                ),
            ));
        }
        // One compressed stream may hold several archives.
        let mut decoded = Peekable::new(compress::single_stream(&mut input, compression)?);
        loop {
            let mut entries = Vec::new();
            read_archive(&mut decoded, &mut entries)?;
            segments.push(Segment { format: Format::Cpio, compression, offset, partition: None, entries });
            if !skip_zeros(&mut decoded)? {
                break;
            }
            if !cpio::is_magic(decoded.peek(6)?) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the {} stream at byte {offset} holds data after its archives", compression.name()),
                ));
            }
        }
    }
    if segments.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "the image is empty"));
    }
    Ok(segments)
}

/// Reads the image file at `path`; any problem is an input error naming it.
pub fn read_file(path: &Path) -> Result<Vec<Segment>> {
    let named = |e: Error| e.context(format!("`{}`", path.display()));
    let cannot = |e: io::Error| Error::input(format!("cannot read `{}`: {}", path.display(), io_cause(&e)));
    let open = || std::fs::File::open(path).map_err(cannot);
    let mut head = Vec::with_capacity(2048);
    open()?.take(2048).read_to_end(&mut head).map_err(cannot)?;
    if erofs::is_magic(&head) {
        let entries = erofs::read(open()?).map_err(named)?;
        return Ok(vec![erofs_segment(entries, 0, None)]);
    }
    if gpt::is_gpt(&head) {
        return read_disk(open()?).map_err(named);
    }
    read(open()?).map_err(|e| Error::input(format!("`{}` is not a readable image: {e}", path.display())))
}

/// Every EROFS file system in the partitions of a GPT disk.
fn read_disk(mut file: std::fs::File) -> Result<Vec<Segment>> {
    let table = gpt::read(&mut file)?;
    // Partitions that share blocks would let a small disk make its file systems read many
    // times over.
    let mut spans: Vec<(u64, u64, u32)> = table.partitions.iter().map(|p| (p.first_lba, p.last_lba, p.index)).collect();
    spans.sort();
    if let Some(pair) = spans.windows(2).find(|w| w[1].0 <= w[0].1) {
        return Err(Error::input(format!("GPT partitions {} and {} overlap", pair[0].2, pair[1].2)));
    }
    let mut segments = Vec::new();
    for partition in &table.partitions {
        let label = format!("GPT partition {} (`{}`)", partition.index, partition.name);
        let cannot = |e: io::Error| Error::input(format!("cannot read {label}: {}", io_cause(&e)));
        let mut window = Window::new(&mut file, partition.offset, partition.size).map_err(cannot)?;
        let mut head = Vec::with_capacity(2048);
        (&mut window).take(2048).read_to_end(&mut head).map_err(cannot)?;
        if !erofs::is_magic(&head) {
            continue;
        }
        window.seek(SeekFrom::Start(0)).map_err(cannot)?;
        let entries = erofs::read(window).map_err(|e| e.context(&label))?;
        segments.push(erofs_segment(entries, partition.offset, Some(label)));
    }
    if segments.is_empty() {
        return Err(Error::input(format!(
            "a GPT disk with {} partition(s), none holding an EROFS file system",
            table.partitions.len()
        )));
    }
    Ok(segments)
}

/// An EROFS file system as a segment. The root directory is left out, as in bake's archives.
fn erofs_segment(mut entries: Vec<Entry>, offset: u64, partition: Option<String>) -> Segment {
    entries.retain(|e| !e.name.is_empty());
    Segment { format: Format::Erofs, compression: Compression::None, offset, partition, entries }
}

/// A part of a file, `len` bytes from `start`, read and sought as if it were the whole file.
struct Window<R> {
    inner: R,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R: Read + Seek> Window<R> {
    fn new(mut inner: R, start: u64, len: u64) -> io::Result<Window<R>> {
        inner.seek(SeekFrom::Start(start))?;
        Ok(Window { inner, start, len, pos: 0 })
    }
}

impl<R: Read + Seek> Read for Window<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Window<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a seek before the start"))?;
        self.inner.seek(SeekFrom::Start(self.start.saturating_add(target)))?;
        self.pos = target;
        Ok(target)
    }
}
