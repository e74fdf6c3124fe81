//! An xz stream of several blocks, decompressed two blocks at a time: while one thread streams
//! a block to the reader, a second decompresses the next block into memory. xz's blocks are
//! independent (each starts with an empty dictionary), and the stream's index, at its end,
//! says where each block is and how large it is. `xz -T`'s packages (Debian's kernel package
//! is 25 MiB of xz in five blocks of 24 MiB, which one thread takes 0.8 s to decompress) go
//! a third faster on two cores, for one more block held in memory at a time, at most
//! [`MAX_AHEAD`] bytes.
//!
//! Written here because liblzma's own multi-threaded decoder holds every block it decodes,
//! input and output, until it is read: on that package, 90 MB more memory than one thread.
//! Each block is handed to liblzma's ordinary decoder as a stream of its own, the original
//! stream header before it and an index of that one block and a footer after it, so liblzma
//! still checks everything: the block's own check, its sizes against the index, and every
//! CRC32.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use crate::format::pass_on;

const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
const FOOTER_MAGIC: [u8; 2] = *b"YZ";
/// The stream header and footer are this long.
const EDGE: u64 = 12;
/// A block is decompressed ahead into memory only when it is at most this large.
const MAX_AHEAD: u64 = 32 << 20;
/// An index larger than this is not believed (a byte per block is already generous).
const MAX_INDEX: u64 = 16 << 20;

/// A range of a file read with `pread`, so that several threads read one file at once.
pub struct At<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl<'f> At<'f> {
    pub fn new(file: &'f File, start: u64, len: u64) -> At<'f> {
        At { file, pos: start, end: start.saturating_add(len) }
    }
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// One block: where it starts in the file, and its sizes as the index gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    offset: u64,
    /// Its header, compressed data and check, without the padding.
    unpadded: u64,
    uncompressed: u64,
}

/// The blocks of one xz stream in a file.
pub struct Blocks<'f> {
    file: &'f File,
    header: [u8; EDGE as usize],
    blocks: Vec<Block>,
}

fn le32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("four bytes"))
}

/// An xz variable-length integer (7 bits a byte, least significant first, at most 9 bytes,
/// no needless trailing zero byte).
fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (i == 0 || byte != 0).then_some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl<'f> Blocks<'f> {
    /// The blocks of the xz stream that is exactly `file[start..start + len]`, when its header,
    /// footer and index check out and account for every byte; `None` otherwise (several
    /// streams, stream padding, damage), and then the stream is decompressed in one piece,
    /// which reports any damage as usual.
    pub fn read(file: &'f File, start: u64, len: u64) -> Option<Blocks<'f>> {
        if len < 2 * EDGE + 8 {
            return None;
        }
        let mut header = [0u8; EDGE as usize];
        file.read_exact_at(&mut header, start).ok()?;
        let mut footer = [0u8; EDGE as usize];
        file.read_exact_at(&mut footer, start + len - EDGE).ok()?;
        if header[..6] != HEADER_MAGIC
            || crc32fast::hash(&header[6..8]) != le32(&header[8..12])
            || footer[10..] != FOOTER_MAGIC
            || footer[8..10] != header[6..8]
            || crc32fast::hash(&footer[4..10]) != le32(&footer[..4])
        {
            return None;
        }
        let index_len = (u64::from(le32(&footer[4..8])) + 1) * 4;
        if index_len > MAX_INDEX || index_len + 2 * EDGE > len {
            return None;
        }
        let index_start = start + len - EDGE - index_len;
        let mut index = vec![0u8; index_len as usize];
        file.read_exact_at(&mut index, index_start).ok()?;
        let (body, crc) = index.split_at(index.len() - 4);
        if crc32fast::hash(body) != le32(crc) || body.first() != Some(&0) {
            return None;
        }
        let mut pos = 1;
        let count = varint(body, &mut pos)?;
        let mut blocks = Vec::new();
        let mut offset = start + EDGE;
        for _ in 0..count {
            let unpadded = varint(body, &mut pos)?;
            let uncompressed = varint(body, &mut pos)?;
            if unpadded == 0 {
                return None;
            }
            blocks.push(Block { offset, unpadded, uncompressed });
            offset = offset.checked_add(unpadded.checked_next_multiple_of(4)?)?;
        }
        let padding = body.get(pos..)?;
        if offset != index_start || padding.len() >= 4 || padding.iter().any(|&b| b != 0) {
            return None;
        }
        Some(Blocks { file, header, blocks })
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Block `i` as an xz stream of its own: the stream's header, the block, an index of that
    /// one block, and a footer.
    fn stream(&self, i: usize) -> impl Read + 'f {
        let block = self.blocks[i];
        let mut index = vec![0u8];
        put_varint(&mut index, 1);
        put_varint(&mut index, block.unpadded);
        put_varint(&mut index, block.uncompressed);
        while index.len() % 4 != 0 {
            index.push(0);
        }
        index.extend(crc32fast::hash(&index).to_le_bytes());
        let mut footer = ((index.len() / 4 - 1) as u32).to_le_bytes().to_vec();
        footer.extend(&self.header[6..8]);
        let mut tail = index;
        tail.extend(crc32fast::hash(&footer).to_le_bytes());
        tail.extend(footer);
        tail.extend(FOOTER_MAGIC);
        let body = At::new(self.file, block.offset, block.unpadded.next_multiple_of(4));
        io::Cursor::new(self.header).chain(body).chain(io::Cursor::new(tail))
    }

    /// Decompresses every block in order into `each` (which returns `false` to stop), the
    /// next block decompressed into memory on a second thread while one is streamed.
    pub fn decompress(&self, mut each: impl FnMut(io::Result<&[u8]>) -> bool) {
        let mut next = 0;
        while next < self.blocks.len() {
            let streamed = next;
            let ahead = self.blocks.get(streamed + 1).filter(|b| b.uncompressed <= MAX_AHEAD).map(|_| streamed + 1);
            let go_on = std::thread::scope(|scope| {
                let ahead = ahead.map(|i| {
                    scope.spawn(move || -> io::Result<Vec<u8>> {
                        let mut out = Vec::with_capacity(self.blocks[i].uncompressed as usize);
                        liblzma::read::XzDecoder::new(self.stream(i)).read_to_end(&mut out)?;
                        Ok(out)
                    })
                });
                let mut decoder = liblzma::read::XzDecoder::new(self.stream(streamed));
                let mut chunk = vec![0u8; 256 << 10];
                let mut stopped = false;
                while pass_on(&mut decoder, &mut chunk, &mut |piece| {
                    let failed = piece.is_err();
                    let go_on = each(piece);
                    stopped = failed || !go_on;
                    go_on
                }) {}
                if stopped {
                    return false;
                }
                match ahead.map(|thread| thread.join().expect("an xz block decompressor panicked")) {
                    None => true,
                    Some(Ok(out)) => out.chunks(256 << 10).all(|piece| each(Ok(piece))),
                    Some(Err(e)) => {
                        each(Err(e));
                        false
                    }
                }
            });
            if !go_on {
                return;
            }
            next += if ahead.is_some() { 2 } else { 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// `xz -T2 --block-size`'s output, as liblzma's multi-threaded encoder writes it.
    fn blocks_of(data: &[u8], block_size: u64) -> Vec<u8> {
        let stream = liblzma::stream::MtStreamBuilder::new()
            .threads(2)
            .block_size(block_size)
            .preset(1)
            .check(liblzma::stream::Check::Crc64)
            .encoder()
            .unwrap();
        let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn data() -> Vec<u8> {
        (0..600_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> (i % 13)).to_le_bytes()).collect()
    }

    fn file_with(prefix: &[u8], xz: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(prefix).unwrap();
        file.write_all(xz).unwrap();
        file
    }

    fn decompressed(blocks: &Blocks<'_>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut failed = None;
        blocks.decompress(|piece| match piece {
            Ok(bytes) => {
                out.extend_from_slice(bytes);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        });
        failed.map_or(Ok(out), Err)
    }

    #[test]
    fn the_blocks_decompress_to_the_whole_stream() {
        let data = data();
        for block_size in [100_000, 1 << 20, 10 << 20] {
            let xz = blocks_of(&data, block_size);
            let file = file_with(b"ar member before it", &xz);
            let blocks = Blocks::read(&file, 19, xz.len() as u64).expect("a stream whose index checks out");
            assert_eq!(blocks.len(), data.len().div_ceil(block_size as usize), "block size {block_size}");
            assert_eq!(decompressed(&blocks).unwrap(), data, "block size {block_size}");
        }
    }

    #[test]
    fn what_is_not_one_whole_stream_is_left_to_the_ordinary_decoder() {
        let xz = blocks_of(&data(), 100_000);
        let len = xz.len() as u64;
        // Cut short, two streams, stream padding, a damaged index: no blocks.
        let file = file_with(b"", &xz[..xz.len() - 1]);
        assert!(Blocks::read(&file, 0, len - 1).is_none());
        let file = file_with(b"", &[xz.clone(), xz.clone()].concat());
        assert!(Blocks::read(&file, 0, 2 * len).is_none());
        let file = file_with(b"", &[xz.clone(), vec![0; 4]].concat());
        assert!(Blocks::read(&file, 0, len + 4).is_none());
        let mut damaged = xz.clone();
        damaged[xz.len() - 20] ^= 1;
        let file = file_with(b"", &damaged);
        assert!(Blocks::read(&file, 0, len).is_none());
    }

    #[test]
    fn a_damaged_block_fails_the_read() {
        let data = data();
        let mut xz = blocks_of(&data, 100_000);
        let file = file_with(b"", &xz);
        let blocks = Blocks::read(&file, 0, xz.len() as u64).unwrap();
        let second = blocks.blocks[1];
        xz[second.offset as usize + 40] ^= 0x55;
        let file = file_with(b"", &xz);
        let blocks = Blocks::read(&file, 0, xz.len() as u64).expect("the index is intact");
        assert!(decompressed(&blocks).is_err());
    }
}
