//! Reading built images back: any newc cpio archive, compressed or not, and the common layout
//! of several archives one after another (an uncompressed early archive with CPU microcode,
//! then a compressed main one), as the kernel unpacks them; and disks: an EROFS file system,
//! bare or in the partitions of a GPT disk, and dm-verity hash trees, bare or in a partition
//! beside the file system they cover (which is then checked against them block by block), and
//! FAT file systems in the partitions of a GPT disk (the EFI system partition); and PE images
//! (a unified kernel image), each section an entry, the `.initrd` section's archives read too.
//!
//! The same reader serves `bake inspect`, `bake diff`, `bake verify` and the tests. It streams:
//! file data is hashed as it passes and never held, so an image of any size is read in little
//! memory, and every size a header claims is checked before anything is allocated.

use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::base::error::{Error, IoContext, Result, io_cause};
use crate::base::hash::{Digest, hex};
use crate::base::path::ImagePath;
use crate::format::compress::{self, Compression};
use crate::format::{Entry, FileType, cpio, erofs, fat, gpt, pe, verity};

/// What holds a segment's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A newc cpio archive (compressed or not).
    Cpio,
    /// An EROFS file system.
    Erofs,
    /// A dm-verity hash tree: no entries, a [`Verity`].
    Verity,
    /// A FAT file system (an EFI system partition).
    Fat,
    /// A PE image: each section an entry named after it.
    Pe,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Cpio => "cpio",
            Format::Erofs => "erofs",
            Format::Verity => "dm-verity",
            Format::Fat => "fat",
            Format::Pe => "pe",
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
    /// For a hash tree: what it says.
    pub verity: Option<Verity>,
}

/// A dm-verity hash tree as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verity {
    /// `None` only for a tree read alone over one data block, whose root hash is the block's.
    pub root_hash: Option<Digest>,
    pub data_blocks: u64,
    pub salt: Vec<u8>,
    /// The partition whose every block was checked against the tree and found to match; `None`
    /// for a tree read alone, whose root hash is read from its top block and vouches for
    /// nothing until checked against the data (on the disk, or by `veritysetup verify`).
    pub checked_against: Option<String>,
}

impl Verity {
    /// The root hash in hex, as `roothash=` takes it.
    pub fn root_hash_hex(&self) -> Option<String> {
        self.root_hash.as_ref().map(hex)
    }
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

/// Reads entries of an archive into `entries`: true at its trailer, false where the input ends
/// between two entries (a compressed frame that holds part of the archive).
fn read_entries(input: impl Read, entries: &mut Vec<Entry>) -> io::Result<bool> {
    let mut reader = cpio::Reader::new(input);
    loop {
        match reader.next_item()? {
            cpio::Item::Entry(entry) => entries.push(entry),
            cpio::Item::Trailer => return Ok(true),
            cpio::Item::End => return Ok(false),
        }
    }
}

fn cpio_segment(compression: Compression, offset: u64) -> Segment {
    Segment { format: Format::Cpio, compression, offset, partition: None, entries: Vec::new(), verity: None }
}

/// Reads every segment of the image in `input`, as the kernel does: an archive may go on from
/// one compressed stream to the next (zstd frames, gzip members, xz streams, each ending
/// between two entries), and ends at its `TRAILER!!!`; hard links do not reach across one.
pub fn read(input: impl Read) -> io::Result<Vec<Segment>> {
    let mut input = Peekable::new(input);
    let mut segments = Vec::new();
    // The archive that the next stream goes on with.
    let mut open: Option<Segment> = None;
    loop {
        if !skip_zeros(&mut input)? {
            break;
        }
        let offset = input.consumed;
        let magic = input.peek(6)?.to_vec();
        if cpio::is_magic(&magic) {
            let mut segment = open.take().unwrap_or_else(|| cpio_segment(Compression::None, offset));
            if read_entries(&mut input, &mut segment.entries)? {
                segments.push(segment);
            } else {
                open = Some(segment);
            }
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
        // One compressed stream may hold several archives, or part of one.
        let mut decoded = Peekable::new(compress::single_stream(&mut input, compression)?);
        let mut first = true;
        loop {
            if open.is_none() {
                if !skip_zeros(&mut decoded)? {
                    if first {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("the {} stream at byte {offset} holds no archive", compression.name()),
                        ));
                    }
                    break;
                }
                if !first && !cpio::is_magic(decoded.peek(6)?) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the {} stream at byte {offset} holds data after its archives", compression.name()),
                    ));
                }
                open = Some(cpio_segment(compression, offset));
            }
            first = false;
            let segment = open.as_mut().expect("an archive is open");
            if !read_entries(&mut decoded, &mut segment.entries)? {
                // The stream ends between two entries: the archive goes on in the next one.
                break;
            }
            segments.extend(open.take());
        }
    }
    if let Some(segment) = open {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the archive that starts at byte {} ends after {} entries without its TRAILER!!!: the image is cut short",
                segment.offset,
                segment.entries.len()
            ),
        ));
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
    if fat::is_fat(&head) {
        let volume = fat::read(open()?).map_err(named)?;
        let (format, compression, entries) = (Format::Fat, Compression::None, volume.entries);
        return Ok(vec![Segment { format, compression, offset: 0, partition: None, entries, verity: None }]);
    }
    if pe::is_pe(&head) {
        return read_pe(open()?).map_err(named);
    }
    if verity::is_magic(&head) {
        let file = open()?;
        let size = file.metadata().map_err(cannot)?.len();
        let (superblock, root_hash) = verity::stored(&mut std::io::BufReader::new(file), size).map_err(named)?;
        let tree =
            Verity { root_hash, data_blocks: superblock.data_blocks, salt: superblock.salt, checked_against: None };
        return Ok(vec![verity_segment(tree, 0, None)]);
    }
    read(open()?).map_err(|e| Error::input(format!("`{}` is not a readable image: {e}", path.display())))
}

/// Every EROFS file system in the partitions of a GPT disk, and every dm-verity hash tree, each
/// checked against the file system it covers.
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
    let mut trees = Vec::new();
    for partition in &table.partitions {
        let label = partition_label(partition);
        let cannot = |e: io::Error| Error::input(format!("cannot read {label}: {}", io_cause(&e)));
        let mut window = Window::new(&mut file, partition.offset, partition.size).map_err(cannot)?;
        let mut head = Vec::with_capacity(2048);
        (&mut window).take(2048).read_to_end(&mut head).map_err(cannot)?;
        if verity::is_magic(&head) {
            trees.push(partition);
            continue;
        }
        if partition.type_guid == gpt::ESP {
            window.seek(SeekFrom::Start(0)).map_err(cannot)?;
            let volume = fat::read(window).map_err(|e| e.context(&label))?;
            let (format, compression, entries) = (Format::Fat, Compression::None, volume.entries);
            segments.push(Segment {
                format,
                compression,
                offset: partition.offset,
                partition: Some(label),
                entries,
                verity: None,
            });
            continue;
        }
        if !erofs::is_magic(&head) {
            continue;
        }
        window.seek(SeekFrom::Start(0)).map_err(cannot)?;
        let entries = erofs::read(window).map_err(|e| e.context(&label))?;
        segments.push(erofs_segment(entries, partition.offset, Some(label)));
    }
    let file_systems: Vec<&gpt::Partition> =
        table.partitions.iter().filter(|p| segments.iter().any(|s| s.offset == p.offset)).collect();
    for tree in trees {
        let checked = check_pair(&file, tree, &file_systems)?;
        segments.push(verity_segment(checked, tree.offset, Some(partition_label(tree))));
    }
    if segments.iter().all(|s| s.format != Format::Erofs && s.format != Format::Fat) {
        return Err(Error::input(format!(
            "a GPT disk with {} partition(s), none holding an EROFS or FAT file system",
            table.partitions.len()
        )));
    }
    Ok(segments)
}

/// A PE image: its sections as entries (read-only files named after them, in table order), then
/// the archives of its `.initrd` section, if it holds any, as further segments.
fn read_pe(mut file: std::fs::File) -> Result<Vec<Segment>> {
    let image = pe::read(&mut file)?;
    let entries = image
        .sections
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            name: s.name.clone().into_bytes(),
            mode: FileType::File.bits() | 0o444,
            uid: 0,
            gid: 0,
            nlink: 1,
            ino: i as u64 + 1,
            mtime: 0,
            size: s.size,
            dev: (0, 0),
            rdev: (0, 0),
            sha256: Some(s.sha256),
            target: None,
        })
        .collect();
    let mut segments = vec![Segment {
        format: Format::Pe,
        compression: Compression::None,
        offset: 0,
        partition: None,
        entries,
        verity: None,
    }];
    if let Some(initrd) = image.sections.iter().find(|s| s.name == ".initrd") {
        let cannot = |e: io::Error| Error::input(format!("cannot read section `.initrd`: {}", io_cause(&e)));
        let window = Window::new(&mut file, u64::from(initrd.file_offset), initrd.size).map_err(cannot)?;
        // An `.initrd` that is not archives bake can read is listed as a section, no more.
        if let Ok(archives) = read(io::BufReader::new(window)) {
            for mut archive in archives {
                archive.offset += u64::from(initrd.file_offset);
                archive.partition = Some("PE section `.initrd`".to_string());
                segments.push(archive);
            }
        }
    }
    Ok(segments)
}

fn partition_label(partition: &gpt::Partition) -> String {
    format!("GPT partition {} (`{}`)", partition.index, partition.name)
}

/// Checks the hash tree in partition `tree` against the file system it covers, one of
/// `file_systems`: the only one, or the one whose partition UUID the tree's root hash names.
/// The pair must be as systemd pairs them: the file system's partition UUID the first 128 bits
/// of the root hash, the tree's the last 128.
fn check_pair(file: &std::fs::File, tree: &gpt::Partition, file_systems: &[&gpt::Partition]) -> Result<Verity> {
    let label = partition_label(tree);
    let (_, stored) = verity::stored(&mut Span::of(file, tree), tree.size).map_err(|e| e.context(&label))?;
    let named = |guid: &[u8; 16]| stored.is_some_and(|root| *guid == pair_guids(&root).0);
    let data = match file_systems {
        [only] => *only,
        many => many.iter().copied().find(|p| named(&p.unique_guid)).ok_or_else(|| {
            Error::input(format!(
                "{label} holds a dm-verity hash tree, and no partition holding a file system has the partition UUID \
                 its root hash names"
            ))
        })?,
    };
    let data_label = partition_label(data);
    let mut data_reader = io::BufReader::with_capacity(1 << 20, Span::of(file, data));
    let mut hash = io::BufReader::new(Span::of(file, tree));
    let checked = verity::check(&mut data_reader, &mut hash, tree.size)
        .map_err(|e| e.context(format!("{label}, checked against {data_label}")))?;
    let root = checked.root_hash;
    let (want_data, want_tree) = pair_guids(&root);
    if data.unique_guid != want_data || tree.unique_guid != want_tree {
        return Err(Error::input(format!(
            "{label} holds the dm-verity hash tree of {data_label}, but their partition UUIDs ({} and {}) are not \
             the halves of its root hash {} ({} and {}): the pair was changed after it was made, and systemd would \
             not pair them",
            gpt::format_guid(&data.unique_guid),
            gpt::format_guid(&tree.unique_guid),
            hex(&root),
            gpt::format_guid(&want_data),
            gpt::format_guid(&want_tree),
        )));
    }
    let superblock = checked.superblock;
    Ok(Verity {
        root_hash: Some(root),
        data_blocks: superblock.data_blocks,
        salt: superblock.salt,
        checked_against: Some(data_label),
    })
}

/// [`verity::partition_uuids`] in GPT's on-disk byte order.
fn pair_guids(root_hash: &Digest) -> ([u8; 16], [u8; 16]) {
    let (data, tree) = verity::partition_uuids(root_hash);
    (gpt::swap_guid_fields(data), gpt::swap_guid_fields(tree))
}

/// An EROFS file system as a segment. The root directory is left out, as in bake's archives.
fn erofs_segment(mut entries: Vec<Entry>, offset: u64, partition: Option<String>) -> Segment {
    entries.retain(|e| !e.name.is_empty());
    Segment { format: Format::Erofs, compression: Compression::None, offset, partition, entries, verity: None }
}

fn verity_segment(tree: Verity, offset: u64, partition: Option<String>) -> Segment {
    let (format, compression, entries) = (Format::Verity, Compression::None, Vec::new());
    Segment { format, compression, offset, partition, entries, verity: Some(tree) }
}

/// Changes the first byte of the regular file at `path` in the EROFS file system of `image` (a
/// bare file system, or the first one on a GPT disk), in place: a disk that has been tampered
/// with, for tests that require dm-verity to refuse the file. Returns the byte's offset.
pub fn tamper(image: &Path, path: &ImagePath) -> Result<u64> {
    let cannot = |e: io::Error| Error::input(format!("cannot read `{}`: {}", image.display(), io_cause(&e)));
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(image).map_err(cannot)?;
    let mut head = Vec::with_capacity(2048);
    (&mut file).take(2048).read_to_end(&mut head).map_err(cannot)?;
    let start = if erofs::is_magic(&head) {
        0
    } else if gpt::is_gpt(&head) {
        let table = gpt::read(&mut file)?;
        let mut found = None;
        for partition in &table.partitions {
            let mut window = Window::new(&mut file, partition.offset, partition.size).map_err(cannot)?;
            let mut head = Vec::with_capacity(2048);
            (&mut window).take(2048).read_to_end(&mut head).map_err(cannot)?;
            if erofs::is_magic(&head) {
                found = Some(partition.offset);
                break;
            }
        }
        found.ok_or_else(|| Error::input(format!("`{}` has no EROFS partition", image.display())))?
    } else {
        return Err(Error::input(format!("`{}` is neither an EROFS file system nor a GPT disk", image.display())));
    };
    let len = file.metadata().map_err(cannot)?.len() - start;
    let at = start + erofs::read::locate(Window::new(&mut file, start, len).map_err(cannot)?, path.as_bytes())?;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(at)).map_err(cannot)?;
    file.read_exact(&mut byte).map_err(cannot)?;
    file.seek(SeekFrom::Start(at)).map_err(cannot)?;
    file.write_all(&[byte[0] ^ 0xff]).writing(image)?;
    Ok(at)
}

/// A partition of a disk file read by position, so that two can be read in turn through one
/// open file.
struct Span<'a> {
    file: &'a std::fs::File,
    pos: u64,
    end: u64,
}

impl<'a> Span<'a> {
    fn of(file: &'a std::fs::File, partition: &gpt::Partition) -> Span<'a> {
        Span { file, pos: partition.offset, end: partition.offset.saturating_add(partition.size) }
    }
}

impl Read for Span<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf.len().min(usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::compress::Encoder;
    use crate::format::cpio::Header;

    fn file(name: &[u8], size: u32) -> Header<'_> {
        Header { name, ino: 1, mode: 0o100644, uid: 0, gid: 0, nlink: 1, mtime: 0, size, rdev_major: 0, rdev_minor: 0 }
    }

    /// One archive of `names` (each a file of 3 bytes), cut into frames after the entries
    /// `cuts` gives, each frame compressed on its own; the trailer ends the last.
    fn framed(names: &[&[u8]], cuts: &[usize], compression: Compression) -> Vec<u8> {
        let mut image = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([names.len()]) {
            let encoder = Encoder::unit(Vec::new(), compression, Some(1), None).unwrap();
            let mut archive = cpio::Writer::new(encoder);
            for name in &names[start..end] {
                archive.append(&file(name, 3), &mut &b"abc"[..]).unwrap();
            }
            let encoder = if end == names.len() { archive.finish().unwrap() } else { archive.into_inner() };
            image.extend(encoder.finish().unwrap());
            start = end;
        }
        image
    }

    #[test]
    fn an_archive_goes_on_from_one_frame_to_the_next() {
        let names: [&[u8]; 5] = [b"a", b"bb", b"ccc", b"dddd", b"e"];
        for compression in [Compression::Zstd, Compression::Gzip, Compression::Xz] {
            let image = framed(&names, &[1, 3], compression);
            let segments = read(&image[..]).unwrap();
            assert_eq!(segments.len(), 1, "{}", compression.name());
            let read_names: Vec<&[u8]> = segments[0].entries.iter().map(|e| &e.name[..]).collect();
            assert_eq!(read_names, names, "{}", compression.name());
            assert_eq!((segments[0].offset, segments[0].compression), (0, compression));
        }
    }

    /// An image cut where a frame ends still holds whole entries: without the trailer it is
    /// refused, not read as a smaller image.
    #[test]
    fn an_image_cut_between_frames_is_refused() {
        let names: [&[u8]; 3] = [b"a", b"b", b"c"];
        let whole = framed(&names, &[1, 2], Compression::Zstd);
        // The last frame (`c` and the trailer) is the same as an archive of `c` alone.
        let cut = &whole[..whole.len() - framed(&names[2..], &[], Compression::Zstd).len()];
        let error = read(cut).unwrap_err().to_string();
        assert!(error.contains("without its TRAILER!!!") && error.contains("after 2 entries"), "{error}");
        // A frame that ends inside an entry is refused as the kernel refuses it.
        let mut inner = Vec::new();
        let mut archive = cpio::Writer::new(&mut inner);
        archive.append(&file(b"a", 3), &mut &b"abc"[..]).unwrap();
        let partial = &inner[..inner.len() - 2];
        let mut encoder = Encoder::unit(Vec::new(), Compression::Gzip, None, None).unwrap();
        encoder.write_all(partial).unwrap();
        let error = read(&encoder.finish().unwrap()[..]).unwrap_err().to_string();
        assert!(error.contains("ends inside the data of `a`"), "{error}");
    }

    #[test]
    fn an_empty_compressed_stream_is_refused() {
        let empty = Encoder::unit(Vec::new(), Compression::Gzip, None, None).unwrap().finish().unwrap();
        let error = read(&empty[..]).unwrap_err().to_string();
        assert!(error.contains("the gzip stream at byte 0 holds no archive"), "{error}");
    }
}
