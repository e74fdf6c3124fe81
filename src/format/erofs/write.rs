//! Writing an EROFS image from [`Node`]s (see the module documentation of [`super`] for the
//! layout).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use super::*;
use crate::base::error::{Error, Result, io_cause};
use crate::base::progress::{Counted, Event, Reporter};
use crate::format::FileType;
use crate::format::limits::check_device_numbers;

/// One entry to write, as the file system records it. Entries come in path order, every
/// directory before what it holds; the names of one hard-linked file share `ino`, and the first
/// of them carries the data (the writer stores it once).
pub struct Node<'a, D> {
    /// The path, without a leading `/`.
    pub path: &'a [u8],
    pub file_type: FileType,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The inode number.
    pub ino: u32,
    /// The link count: names of a file; for a directory 2 plus its subdirectories.
    pub nlink: u32,
    /// A regular file's length and where its bytes come from.
    pub file: Option<(u64, &'a D)>,
    /// A symlink's target.
    pub target: &'a [u8],
    /// A device's number (major, minor).
    pub rdev: (u32, u32),
}

/// What the image records beyond its entries.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The superblock's build time, which is also every inode's mtime.
    pub epoch: u64,
    /// The volume UUID.
    pub uuid: [u8; 16],
}

/// Opens the bytes of a regular file for the writer.
pub type Open<'a, D> = dyn Fn(&'a D) -> Result<Box<dyn Read + 'a>> + 'a;

/// Writes the image of `nodes` into `out`, strictly in order, and returns `out`. `open` gives
/// each regular file's bytes, which must be the length its node says.
pub fn write<'a, W: Write, D>(
    nodes: &'a [Node<'a, D>],
    options: Options,
    open: &Open<'a, D>,
    mut out: W,
    reporter: &dyn Reporter,
) -> Result<W> {
    let layout = Layout::new(nodes, options)?;
    let io =
        |what: &str, e: io::Error| Error::failure(format!("cannot write the EROFS image: {what}: {}", io_cause(&e)));
    out.write_all(&layout.superblock()).map_err(|e| io("the superblock", e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let (mut entries, mut bytes) = (0u64, 0u64);
    for meta in &layout.meta_blocks {
        let mut block = vec![0u8; BLOCK as usize];
        for inode in meta.inodes.iter().map(|&index| &layout.inodes[index]) {
            let at = inode.offset as usize;
            let header = inode.encode();
            block[at..at + header.len()].copy_from_slice(&header);
            let tail = &mut block[at + header.len()..];
            let directory;
            let mut data: Box<dyn Read> = match &inode.data {
                Data::None => Box::new(io::empty()),
                Data::File(source) => {
                    let inner = open(source)?;
                    bytes += inode.size;
                    Box::new(Counted { inner, entries, bytes: bytes - inode.size, reporter })
                }
                Data::Bytes(bytes) => Box::new(*bytes),
                Data::Dir(entries) => {
                    directory = layout.directory(entries);
                    Box::new(&directory[..])
                }
            };
            copy_data(&mut data, inode, &mut out, tail, &mut buf)
                .map_err(|e| io(&format!("`/{}`", String::from_utf8_lossy(inode.path)), e))?;
            entries += 1;
            reporter.report(Event::WriteProgress { entries, bytes });
        }
        out.write_all(&block).map_err(|e| io("an inode block", e))?;
    }
    if layout.trailing_zeros {
        out.write_all(&[0u8; BLOCK as usize]).map_err(|e| io("the last block", e))?;
    }
    out.flush().map_err(|e| io("the end", e))?;
    Ok(out)
}

/// The exact length [`write()`] will give for `nodes`, known before anything is read.
pub fn image_size<D>(nodes: &[Node<'_, D>]) -> Result<u64> {
    Ok(Layout::new(nodes, Options { epoch: 0, uuid: [0; 16] })?.blocks * BLOCK)
}

/// Copies an inode's bytes: whole blocks to `out`, then the tail into `inline` (the metadata
/// block, right after the inode) or, padded to a block, to `out`.
fn copy_data(
    data: &mut dyn Read,
    inode: &Inode<'_, impl Sized>,
    out: &mut impl Write,
    inline: &mut [u8],
    buf: &mut [u8],
) -> io::Result<()> {
    let whole = inode.size / BLOCK * BLOCK;
    let mut copied = 0u64;
    let short = |copied: u64| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("its data ended after {copied} bytes where its entry promises {}", inode.size),
        )
    };
    while copied < whole {
        crate::base::interrupt::check()?;
        let want = (whole - copied).min(buf.len() as u64) as usize;
        let n = match data.read(&mut buf[..want]) {
            Ok(0) => return Err(short(copied)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        copied += n as u64;
    }
    let tail = (inode.size - whole) as usize;
    if tail > 0 {
        let block = &mut buf[..BLOCK as usize];
        block.fill(0);
        data.read_exact(&mut block[..tail]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => short(copied),
            _ => e,
        })?;
        if inode.inline {
            inline[..tail].copy_from_slice(&block[..tail]);
        } else {
            out.write_all(block)?;
        }
    }
    Ok(())
}

/// Where an inode's bytes come from.
enum Data<'p, D> {
    None,
    File(&'p D),
    Bytes(&'p [u8]),
    /// Entries sorted by name, `.` and `..` among them.
    Dir(Vec<Dirent<'p>>),
}

struct Dirent<'p> {
    name: &'p [u8],
    /// Index into [`Layout::inodes`].
    inode: usize,
    file_type: u8,
}

/// One inode and where it goes.
struct Inode<'p, D> {
    /// Its first name, for messages (empty for the root).
    path: &'p [u8],
    data: Data<'p, D>,
    /// Type and permission bits.
    mode: u16,
    uid: u32,
    gid: u32,
    nlink: u32,
    ino: u32,
    mtime: u64,
    size: u64,
    /// Device number as the kernel's `new_encode_dev` packs it.
    rdev: u32,
    extended: bool,
    /// Whether the tail is packed after the inode (`FLAT_INLINE`).
    inline: bool,
    /// First data block, or [`NULL_ADDR`] when there is none.
    blkaddr: u32,
    nid: u64,
    /// Offset in its metadata block.
    offset: u64,
}

impl<'p, D> Inode<'p, D> {
    /// Root-owned, one link, inode number 0, not yet sized or placed.
    fn unplaced(path: &'p [u8], data: Data<'p, D>, mtime: u64) -> Inode<'p, D> {
        Inode {
            path,
            data,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            ino: 0,
            mtime,
            size: 0,
            rdev: 0,
            extended: false,
            inline: false,
            blkaddr: NULL_ADDR,
            nid: 0,
            offset: 0,
        }
    }

    fn header_size(&self) -> u64 {
        if self.extended { EXTENDED_SIZE } else { COMPACT_SIZE }
    }

    /// The last partial block's length (0 when the size is a multiple of the block size).
    fn tail(&self) -> u64 {
        self.size % BLOCK
    }

    /// Blocks of data outside the metadata: the whole ones, and the tail unless it is inline.
    fn data_blocks(&self) -> u64 {
        self.size / BLOCK + u64::from(self.tail() > 0 && !self.inline)
    }

    /// The on-disk inode (`erofs_inode_compact` or `erofs_inode_extended`).
    fn encode(&self) -> Vec<u8> {
        let layout = if self.inline { FLAT_INLINE } else { FLAT_PLAIN };
        let format = u16::from(self.extended) | (layout << 1);
        // Devices and FIFOs (no data) hold their device number here, which the kernel reads
        // for both (a FIFO's is 0).
        let i_u = if let Data::None = self.data { self.rdev } else { self.blkaddr };
        let mut out = Vec::with_capacity(EXTENDED_SIZE as usize);
        out.extend_from_slice(&format.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // no extended attributes
        out.extend_from_slice(&self.mode.to_le_bytes());
        if self.extended {
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&self.size.to_le_bytes());
            out.extend_from_slice(&i_u.to_le_bytes());
            out.extend_from_slice(&self.ino.to_le_bytes());
            out.extend_from_slice(&self.uid.to_le_bytes());
            out.extend_from_slice(&self.gid.to_le_bytes());
            out.extend_from_slice(&self.mtime.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // mtime nanoseconds
            out.extend_from_slice(&self.nlink.to_le_bytes());
            out.extend_from_slice(&[0u8; 16]);
        } else {
            // Compact inodes take their time from the superblock's build time.
            out.extend_from_slice(&(self.nlink as u16).to_le_bytes());
            out.extend_from_slice(&(self.size as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&i_u.to_le_bytes());
            out.extend_from_slice(&self.ino.to_le_bytes());
            out.extend_from_slice(&(self.uid as u16).to_le_bytes());
            out.extend_from_slice(&(self.gid as u16).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        out
    }
}

/// A metadata block: which inodes it holds (indexes into [`Layout::inodes`], in the order
/// their data is written) and where it is.
struct MetaBlock {
    inodes: Vec<usize>,
    blkaddr: u64,
}

/// Every decision about the image, made from the entries before a byte is written.
struct Layout<'p, D> {
    /// In nid order, the root first.
    inodes: Vec<Inode<'p, D>>,
    meta_blocks: Vec<MetaBlock>,
    meta_blkaddr: u64,
    /// Length of the image in blocks.
    blocks: u64,
    /// Whether a block of zeros ends the image (see [`Layout::new`]).
    trailing_zeros: bool,
    epoch: u64,
    uuid: [u8; 16],
}

impl<'p, D> Layout<'p, D> {
    fn new(nodes: &'p [Node<'p, D>], options: Options) -> Result<Layout<'p, D>> {
        let mut inodes = Self::inodes(nodes, options.epoch)?;
        let meta_blocks = Self::place(&mut inodes)?;
        let meta_blkaddr = meta_blocks[0].blkaddr;
        for meta in &meta_blocks {
            for &index in &meta.inodes {
                let inode = &mut inodes[index];
                inode.nid = ((meta.blkaddr - meta_blkaddr) * BLOCK + inode.offset) / SLOT;
            }
        }
        // erofs-utils (1.5's fsck.erofs) reads a 12-byte xattr header after every inode, even
        // one without xattrs; an inode that ends within 12 bytes of the image's end makes it
        // report corruption (the kernel does not mind). A block of zeros after such an image
        // keeps every checker content.
        let trailing_zeros = meta_blocks
            .last()
            .is_some_and(|m| m.inodes.iter().any(|&i| inodes[i].offset + inodes[i].encode().len() as u64 + 12 > BLOCK));
        let blocks = meta_blocks.last().map_or(1, |m| m.blkaddr + 1) + u64::from(trailing_zeros);
        let Options { epoch, uuid } = options;
        Ok(Layout { inodes, meta_blocks, meta_blkaddr, blocks, trailing_zeros, epoch, uuid })
    }

    /// One inode per directory, symlink, device and distinct file, with its data and size.
    fn inodes(nodes: &'p [Node<'p, D>], epoch: u64) -> Result<Vec<Inode<'p, D>>> {
        let is_top_dir = |n: &&Node<'p, D>| n.file_type == FileType::Dir && !n.path.contains(&b'/');
        let dots = vec![
            Dirent { name: b".", inode: 0, file_type: FT_DIR },
            Dirent { name: b"..", inode: 0, file_type: FT_DIR },
        ];
        let mut inodes = vec![Inode {
            mode: (FileType::Dir.bits() | 0o755) as u16,
            nlink: 2 + nodes.iter().filter(is_top_dir).count() as u32,
            ..Inode::unplaced(b"", Data::Dir(dots), epoch)
        }];
        let mut dirs: BTreeMap<&[u8], usize> = BTreeMap::from([(&b""[..], 0)]);
        let mut files: BTreeMap<u32, usize> = BTreeMap::new();
        for node in nodes {
            let path = node.path;
            let shown = || String::from_utf8_lossy(path);
            let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(at) => (&path[..at], &path[at + 1..]),
                None => (&b""[..], path),
            };
            let Some(&parent) = dirs.get(parent) else {
                return Err(Error::failure(format!("`/{}` comes before its directory", shown())));
            };
            if name.len() > NAME_MAX {
                return Err(Error::input(format!(
                    "`/{}`: a name of {} bytes is longer than the {NAME_MAX} EROFS allows",
                    shown(),
                    name.len()
                )));
            }
            let file_type = dirent_type(node.file_type).ok_or_else(|| {
                Error::input(format!("`/{}`: EROFS images hold no {}", shown(), node.file_type.noun()))
            })?;
            // A further name of a hard-linked file is only a directory entry.
            let index = match files.get(&node.ino).filter(|_| node.file_type == FileType::File) {
                Some(&shared) => shared,
                None => {
                    let index = inodes.len();
                    match node.file_type {
                        FileType::Dir => dirs.insert(path, index),
                        FileType::File => files.insert(node.ino, index),
                        _ => None,
                    };
                    inodes.push(Self::inode(node, index, parent, epoch)?);
                    index
                }
            };
            push_dirent(&mut inodes[parent], Dirent { name, inode: index, file_type });
        }
        for inode in &mut inodes {
            if let Data::Dir(entries) = &mut inode.data {
                entries.sort_by(|a, b| a.name.cmp(b.name));
                inode.size = directory_size(entries);
            }
            // Every entry has the epoch as its mtime, the superblock's build time, so only
            // these make an inode extended.
            inode.extended =
                inode.uid > 0xffff || inode.gid > 0xffff || inode.nlink > 0xffff || inode.size > u64::from(u32::MAX);
        }
        Ok(inodes)
    }

    /// The inode of `node`, which will be `index` among the inodes, in the directory inode
    /// `parent`; a directory's size is known only once it has all its entries.
    fn inode(node: &'p Node<'p, D>, index: usize, parent: usize, epoch: u64) -> Result<Inode<'p, D>> {
        let shown = || String::from_utf8_lossy(node.path);
        let (data, size, rdev) = match node.file_type {
            FileType::Dir => {
                let dots = vec![
                    Dirent { name: b".", inode: index, file_type: FT_DIR },
                    Dirent { name: b"..", inode: parent, file_type: FT_DIR },
                ];
                (Data::Dir(dots), 0, 0)
            }
            FileType::File => {
                let (size, source) =
                    node.file.ok_or_else(|| Error::failure(format!("`/{}` is a file without data", shown())))?;
                (Data::File(source), size, 0)
            }
            FileType::Symlink => (Data::Bytes(node.target), node.target.len() as u64, 0),
            FileType::Char | FileType::Block => {
                let (major, minor) = node.rdev;
                check_device_numbers(major, minor).map_err(|e| e.context(format!("`/{}`", shown())))?;
                (Data::None, 0, encode_dev(major, minor))
            }
            FileType::Fifo | FileType::Socket => (Data::None, 0, 0),
        };
        Ok(Inode {
            mode: (node.file_type.bits() | (node.mode & 0o7777)) as u16,
            uid: node.uid,
            gid: node.gid,
            nlink: node.nlink,
            ino: node.ino,
            size,
            rdev,
            ..Inode::unplaced(node.path, data, epoch)
        })
    }

    /// Packs the inodes (and their inline tails) into metadata blocks, and gives each metadata
    /// block and each inode's data their block addresses: block 0 holds the superblock, then
    /// every metadata block follows the data of the inodes it holds.
    fn place(inodes: &mut [Inode<'_, D>]) -> Result<Vec<MetaBlock>> {
        let mut blocks: Vec<(Vec<usize>, u64)> = Vec::new();
        // Room left in each metadata block, as (bytes, block): the first at or above a size is
        // the best fit, and of equals the earliest block.
        let mut room: BTreeSet<(u64, usize)> = BTreeSet::new();
        for (index, inode) in inodes.iter_mut().enumerate() {
            let tail = inode.tail();
            // FLAT_INLINE: the tail must lie in the same block as the end of its inode.
            inode.inline = tail > 0 && inode.header_size() + tail <= BLOCK;
            let need = (inode.header_size() + if inode.inline { tail } else { 0 }).div_ceil(SLOT) * SLOT;
            let block = match room.range((need, 0)..).next().copied() {
                Some(fit) => {
                    room.remove(&fit);
                    fit.1
                }
                None => {
                    blocks.push((Vec::new(), 0));
                    blocks.len() - 1
                }
            };
            let (members, used) = &mut blocks[block];
            inode.offset = *used;
            *used += need;
            members.push(index);
            if *used + SLOT <= BLOCK {
                room.insert((BLOCK - *used, block));
            }
        }

        let mut next = 1u64;
        let mut placed = Vec::with_capacity(blocks.len());
        for (members, _) in blocks {
            for &index in &members {
                let inode = &mut inodes[index];
                let count = inode.data_blocks();
                if count > 0 {
                    inode.blkaddr = u32::try_from(next).ok().filter(|&a| a != NULL_ADDR).ok_or_else(too_large)?;
                }
                next += count;
            }
            placed.push(MetaBlock { inodes: members, blkaddr: next });
            next += 1;
        }
        if next > u64::from(u32::MAX) {
            return Err(too_large());
        }
        Ok(placed)
    }

    /// Block 0: zeros, and the superblock at byte 1024 with its checksum.
    fn superblock(&self) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK as usize];
        let sb = &mut block[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE];
        sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        sb[8..12].copy_from_slice(&COMPAT_SB_CHKSUM.to_le_bytes());
        sb[12] = BLOCK_BITS;
        sb[14..16].copy_from_slice(&(self.inodes[0].nid as u16).to_le_bytes());
        sb[16..24].copy_from_slice(&(self.inodes.len() as u64).to_le_bytes());
        sb[24..32].copy_from_slice(&self.epoch.to_le_bytes());
        // build_time_nsec (32..36) stays 0.
        sb[36..40].copy_from_slice(&(self.blocks as u32).to_le_bytes());
        sb[40..44].copy_from_slice(&(self.meta_blkaddr as u32).to_le_bytes());
        // xattr_blkaddr (44..48): no shared extended attributes.
        sb[48..64].copy_from_slice(&self.uuid);
        // volume_name (64..80) empty; no incompatible features; the rest reserved.
        let checksum = crc32c(!0, &block[SUPER_OFFSET..]);
        block[SUPER_OFFSET + 4..SUPER_OFFSET + 8].copy_from_slice(&checksum.to_le_bytes());
        block
    }

    /// The bytes of a directory: blocks of 12-byte entries followed by their names, each block
    /// but the last padded with zeros.
    fn directory(&self, entries: &[Dirent<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in directory_blocks(entries) {
            out.resize(out.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
            let mut nameoff = block.len() * DIRENT_SIZE;
            for entry in block {
                out.extend_from_slice(&self.inodes[entry.inode].nid.to_le_bytes());
                out.extend_from_slice(&(nameoff as u16).to_le_bytes());
                out.push(entry.file_type);
                out.push(0);
                nameoff += entry.name.len();
            }
            for entry in block {
                out.extend_from_slice(entry.name);
            }
        }
        out
    }
}

/// The directory entry's file type (the kernel's generic `FT_*` values).
fn dirent_type(file_type: FileType) -> Option<u8> {
    Some(match file_type {
        FileType::File => FT_REG_FILE,
        FileType::Dir => FT_DIR,
        FileType::Char => FT_CHRDEV,
        FileType::Block => FT_BLKDEV,
        FileType::Fifo => FT_FIFO,
        FileType::Symlink => FT_SYMLINK,
        FileType::Socket => return None,
    })
}

/// A device number as the kernel's `new_encode_dev` packs it: minor's low byte, 12 bits of
/// major, the rest of minor.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

fn too_large() -> Error {
    Error::input("the image would be larger than the 16 TiB EROFS can address with 4 KiB blocks")
}

fn push_dirent<'p, D>(dir: &mut Inode<'p, D>, entry: Dirent<'p>) {
    if let Data::Dir(entries) = &mut dir.data {
        entries.push(entry);
    }
}

/// Sorted directory entries cut into blocks: as many as fit in each, so none crosses a block.
fn directory_blocks<'a, 'p>(mut entries: &'a [Dirent<'p>]) -> impl Iterator<Item = &'a [Dirent<'p>]> {
    std::iter::from_fn(move || {
        if entries.is_empty() {
            return None;
        }
        let mut used = 0;
        let count = entries
            .iter()
            .take_while(|entry| {
                used += DIRENT_SIZE + entry.name.len();
                used <= BLOCK as usize
            })
            .count();
        let (block, rest) = entries.split_at(count);
        entries = rest;
        Some(block)
    })
}

/// A directory's size: its whole blocks and the bytes used in the last.
fn directory_size(entries: &[Dirent<'_>]) -> u64 {
    directory_blocks(entries).fold(0, |size, block| {
        let used: usize = block.iter().map(|e| DIRENT_SIZE + e.name.len()).sum();
        size.div_ceil(BLOCK) * BLOCK + used as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_and_tails_go_into_the_fullest_block_that_holds_them() {
        let place = |sizes: &[(u64, bool)]| {
            let mut inodes: Vec<Inode<'_, ()>> = sizes
                .iter()
                .map(|&(size, extended)| Inode { size, extended, ..Inode::unplaced(b"", Data::None, 0) })
                .collect();
            let meta = Layout::place(&mut inodes).unwrap();
            let blocks = meta.iter().map(|m| (m.inodes.clone(), m.blkaddr)).collect::<Vec<_>>();
            (inodes.iter().map(|i| (i.inline, i.offset, i.blkaddr)).collect::<Vec<_>>(), blocks)
        };
        // 4000 + 32 bytes do not fit after the first inode (160 bytes): a second block.
        let (inodes, blocks) = place(&[(100, false), (4000, false)]);
        assert_eq!(inodes, [(true, 0, NULL_ADDR), (true, 0, NULL_ADDR)]);
        assert_eq!(blocks, [(vec![0], 1), (vec![1], 2)]);
        // The third inode (96 bytes with its tail) fits only in the second block, the fourth
        // (64) in both and goes to the fuller first. Whole blocks precede their inode's block.
        let (inodes, blocks) = place(&[(4000, false), (3000 + 2 * BLOCK, false), (50, false), (20, false)]);
        assert_eq!(inodes, [(true, 0, NULL_ADDR), (true, 0, 2), (true, 3040, NULL_ADDR), (true, 4032, NULL_ADDR)]);
        assert_eq!(blocks, [(vec![0, 3], 1), (vec![1, 2], 4)]);
        // Whole blocks and empty files have no tail; a tail that cannot share a block with its
        // (extended) inode is padded to a data block, one that just can is inline.
        let (inodes, _) = place(&[(0, false), (BLOCK, false), (4033, true)]);
        assert_eq!(inodes, [(false, 0, NULL_ADDR), (false, 32, 1), (false, 64, 2)]);
        assert_eq!(place(&[(4032, true)]), (vec![(true, 0, NULL_ADDR)], vec![(vec![0], 1)]));
    }
}
