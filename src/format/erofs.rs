//! EROFS, the kernel's read-only file system, written by hand from a [`Plan`], and read back.
//!
//! Nobody else's tool gives the bytes a reproducible image needs: `mkfs.erofs` takes owners and
//! times from a staging tree, writes a random UUID by default, and its layout changes with its
//! version. So the image is written here from the on-disk format (the kernel's
//! `Documentation/filesystems/erofs.rst` and `fs/erofs/erofs_fs.h`): uncompressed, 4 KiB blocks,
//! no extended attributes, no optional features but the superblock checksum.
//!
//! What is written is a pure function of the plan and the file contents:
//!
//! - The superblock's build time is the plan's epoch, and so is every mtime; the UUID is the
//!   first 128 bits of a SHA-256 over every entry (path, type, owner, mode, links, contents'
//!   digests, targets, device numbers) and the epoch, shaped as an RFC 9562 version-8 UUID. A
//!   one-byte change anywhere gives another UUID; nothing random or host-dependent goes in.
//! - An inode is compact (32 bytes) unless its owner, link count or size needs the extended
//!   (64-byte) form. It keeps the plan's inode number (the root's is 0); a hard link is one
//!   inode with several names, and its data is written once.
//! - Data is `FLAT_PLAIN` (whole blocks) or `FLAT_INLINE`: the whole blocks, then the last
//!   partial block ("tail") packed right after the inode, which the format allows only where
//!   inode and tail fit in one block; a tail that cannot is padded to a block of its own.
//! - Inodes, with their tails, are taken in plan (path) order and each put in the metadata block
//!   with the least room that holds it (best fit, the earliest block among equals), or a new
//!   one. The root comes first, so its nid is 0 (the superblock has 16 bits for it).
//! - Directories hold `.` and `..` and their entries sorted by name bytes (lookups binary-search
//!   them), packed into blocks so that no entry and no name crosses a block.
//!
//! The layout is decided from the plan alone (every size is known), so the image can be written
//! strictly in order into any [`Write`]. For that, each metadata block is preceded by the data
//! blocks of the inodes in it: a file is read once, its whole blocks go out as they come and its
//! tail waits in the 4 KiB metadata block being filled. `meta_blkaddr` points at the first
//! metadata block and the nids of later inodes count on from there, past the data between.
//!
//! Files of 4 GiB and more get extended inodes and are written plainly, block after block, up to
//! the 16 TiB the format's 32-bit block numbers address. Writing them sparsely (the chunk-based
//! layout with holes for all-zero chunks) would need to know which chunks are zero before the
//! layout is fixed, so every large file would be read twice; images of mostly-empty files are
//! not what bake is for, so the simple layout wins.
//!
//! [`read`] lists any uncompressed EROFS image (flat and chunk-based files, inline extended
//! attributes skipped), `mkfs.erofs`'s as well as ours, for `bake inspect` and `bake diff`. Its
//! input is untrusted: every offset is checked against the image length before it is read,
//! nothing is allocated by a size the image claims, depth, path length, entry count and the
//! bytes hashed are bounded, and a directory reached twice is an error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::Digest;
use crate::base::progress::{Counted, Event, Reporter};
use crate::format::cpio::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG};
use crate::plan::{Node, Plan};
use crate::recipe::DeviceKind;
use crate::source::content::{Content, Spool};

const BLOCK_BITS: u8 = 12;
const BLOCK: u64 = 1 << BLOCK_BITS;
/// Where the superblock starts: room for a boot sector before it.
const SUPER_OFFSET: usize = 1024;
const SUPER_SIZE: usize = 128;
const MAGIC: u32 = 0xE0F5_E1E2;
const COMPAT_SB_CHKSUM: u32 = 0x1;
/// Incompatible features the reader understands: only chunk-based files change how an
/// uncompressed inode is read; the others concern compressed inodes (refused one by one),
/// extra devices (refused where a chunk points at one) and extended attributes (skipped).
const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
const INCOMPAT_KNOWN: u32 = 0x7f;
/// Inodes sit in 32-byte slots; a nid is a slot number counted from `meta_blkaddr`.
const SLOT: u64 = 32;
const COMPACT_SIZE: u64 = 32;
const EXTENDED_SIZE: u64 = 64;
const DIRENT_SIZE: usize = 12;
const NAME_MAX: usize = 255;
/// The block address meaning "none" (and, in a chunk index, a hole).
const NULL_ADDR: u32 = u32::MAX;

const FLAT_PLAIN: u16 = 0;
const COMPRESSED_FULL: u16 = 1;
const FLAT_INLINE: u16 = 2;
const COMPRESSED_COMPACT: u16 = 3;
const CHUNK_BASED: u16 = 4;

// Directory entry file types (the kernel's generic FT_* values).
const FT_REG_FILE: u8 = 1;
const FT_DIR: u8 = 2;
const FT_CHRDEV: u8 = 3;
const FT_BLKDEV: u8 = 4;
const FT_FIFO: u8 = 5;
const FT_SYMLINK: u8 = 7;

/// Writes the image of `plan` into `out`, strictly in order, and returns `out`.
pub fn write<W: Write>(plan: &Plan, spool: &Spool, mut out: W, reporter: &dyn Reporter) -> Result<W> {
    let layout = Layout::new(plan)?;
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
                Data::File(content) => {
                    let inner = content.open(spool)?;
                    bytes += content.size;
                    Box::new(Counted { inner, entries, bytes: bytes - content.size, reporter })
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

/// The exact length [`write()`] will give for `plan`, known before anything is read.
pub fn image_size(plan: &Plan) -> Result<u64> {
    Ok(Layout::new(plan)?.blocks * BLOCK)
}

/// Copies an inode's bytes: whole blocks to `out`, then the tail into `inline` (the metadata
/// block, right after the inode) or, padded to a block, to `out`.
fn copy_data(
    data: &mut dyn Read,
    inode: &Inode<'_>,
    out: &mut impl Write,
    inline: &mut [u8],
    buf: &mut [u8],
) -> io::Result<()> {
    let whole = inode.size / BLOCK * BLOCK;
    let mut copied = 0u64;
    let short = |copied: u64| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("its data ended after {copied} bytes where the plan promises {}", inode.size),
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
enum Data<'p> {
    None,
    File(&'p Content),
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
struct Inode<'p> {
    /// Its first name, for messages (empty for the root).
    path: &'p [u8],
    data: Data<'p>,
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

impl<'p> Inode<'p> {
    /// Root-owned, one link, inode number 0, not yet sized or placed.
    fn unplaced(path: &'p [u8], data: Data<'p>, mtime: u64) -> Inode<'p> {
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

/// Every decision about the image, made from the plan before a byte is written.
struct Layout<'p> {
    /// In nid order, the root first.
    inodes: Vec<Inode<'p>>,
    meta_blocks: Vec<MetaBlock>,
    meta_blkaddr: u64,
    /// Length of the image in blocks.
    blocks: u64,
    /// Whether a block of zeros ends the image (see [`Layout::new`]).
    trailing_zeros: bool,
    epoch: u64,
    uuid: [u8; 16],
}

impl<'p> Layout<'p> {
    fn new(plan: &'p Plan) -> Result<Layout<'p>> {
        let mut inodes = Self::inodes(plan)?;
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
        Ok(Layout { inodes, meta_blocks, meta_blkaddr, blocks, trailing_zeros, epoch: plan.epoch, uuid: uuid(plan) })
    }

    /// One inode per directory, symlink, device and distinct file, with its data and size.
    fn inodes(plan: &'p Plan) -> Result<Vec<Inode<'p>>> {
        let top_dirs = plan.entries.iter().filter(|e| matches!(e.node, Node::Dir) && e.path.parent().is_root());
        let dots = vec![
            Dirent { name: b".", inode: 0, file_type: FT_DIR },
            Dirent { name: b"..", inode: 0, file_type: FT_DIR },
        ];
        let mut inodes = vec![Inode {
            mode: (S_IFDIR | 0o755) as u16,
            nlink: 2 + top_dirs.count() as u32,
            ..Inode::unplaced(b"", Data::Dir(dots), plan.epoch)
        }];
        let mut dirs: BTreeMap<&[u8], usize> = BTreeMap::from([(&b""[..], 0)]);
        let mut files: BTreeMap<u32, usize> = BTreeMap::new();
        for entry in &plan.entries {
            let path = entry.path.as_bytes();
            let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(at) => (&path[..at], &path[at + 1..]),
                None => (&b""[..], path),
            };
            let Some(&parent) = dirs.get(parent) else {
                return Err(Error::failure(format!("`{}` comes before its directory in the plan", entry.path)));
            };
            if name.len() > NAME_MAX {
                return Err(Error::input(format!(
                    "`{}`: a name of {} bytes is longer than the {NAME_MAX} EROFS allows",
                    entry.path,
                    name.len()
                )));
            }
            if let Node::File { .. } = entry.node
                && let Some(&shared) = files.get(&entry.ino)
            {
                push_dirent(&mut inodes[parent], Dirent { name, inode: shared, file_type: FT_REG_FILE });
                continue;
            }
            let index = inodes.len();
            let (type_bits, file_type, data, rdev) = match &entry.node {
                Node::Dir => {
                    dirs.insert(path, index);
                    let dots = vec![
                        Dirent { name: b".", inode: index, file_type: FT_DIR },
                        Dirent { name: b"..", inode: parent, file_type: FT_DIR },
                    ];
                    (S_IFDIR, FT_DIR, Data::Dir(dots), 0)
                }
                Node::File { content, .. } => {
                    files.insert(entry.ino, index);
                    (S_IFREG, FT_REG_FILE, Data::File(content), 0)
                }
                Node::Symlink { target } => (S_IFLNK, FT_SYMLINK, Data::Bytes(target), 0),
                Node::Device { kind: DeviceKind::Fifo, .. } => (S_IFIFO, FT_FIFO, Data::None, 0),
                Node::Device { kind, major, minor } => {
                    crate::plan::tree::check_device_numbers(*major, *minor)
                        .map_err(|e| Error::input(format!("`{}`: {e}", entry.path)))?;
                    // The kernel's `new_encode_dev`: minor's low byte, 12 bits of major, the
                    // rest of minor.
                    let rdev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
                    match kind {
                        DeviceKind::Char => (S_IFCHR, FT_CHRDEV, Data::None, rdev),
                        _ => (S_IFBLK, FT_BLKDEV, Data::None, rdev),
                    }
                }
            };
            inodes.push(Inode {
                mode: (type_bits | (entry.mode & 0o7777)) as u16,
                uid: entry.uid,
                gid: entry.gid,
                nlink: entry.nlink,
                ino: entry.ino,
                rdev,
                ..Inode::unplaced(path, data, plan.epoch)
            });
            push_dirent(&mut inodes[parent], Dirent { name, inode: index, file_type });
        }
        for inode in &mut inodes {
            inode.size = match &mut inode.data {
                Data::None => 0,
                Data::File(content) => content.size,
                Data::Bytes(bytes) => bytes.len() as u64,
                Data::Dir(entries) => {
                    entries.sort_by(|a, b| a.name.cmp(b.name));
                    directory_size(entries)
                }
            };
            // The plan gives every entry the epoch as its mtime, the superblock's build time,
            // so only these make an inode extended.
            inode.extended =
                inode.uid > 0xffff || inode.gid > 0xffff || inode.nlink > 0xffff || inode.size > u64::from(u32::MAX);
        }
        Ok(inodes)
    }

    /// Packs the inodes (and their inline tails) into metadata blocks, and gives each metadata
    /// block and each inode's data their block addresses: block 0 holds the superblock, then
    /// every metadata block follows the data of the inodes it holds.
    fn place(inodes: &mut [Inode<'_>]) -> Result<Vec<MetaBlock>> {
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

fn too_large() -> Error {
    Error::input("the image would be larger than the 16 TiB EROFS can address with 4 KiB blocks")
}

fn push_dirent<'p>(dir: &mut Inode<'p>, entry: Dirent<'p>) {
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

/// The volume UUID: a digest of everything the image holds, as a version-8 UUID.
fn uuid(plan: &Plan) -> [u8; 16] {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"bake erofs uuid 1");
    field(&plan.epoch.to_le_bytes());
    for entry in &plan.entries {
        field(entry.path.as_bytes());
        field(entry.type_name().as_bytes());
        for number in [entry.mode, entry.uid, entry.gid, entry.ino, entry.nlink] {
            field(&number.to_le_bytes());
        }
        match &entry.node {
            Node::Dir => {}
            Node::File { content, .. } => {
                field(&content.size.to_le_bytes());
                field(&content.sha256);
            }
            Node::Symlink { target } => field(target),
            Node::Device { major, minor, .. } => {
                field(&major.to_le_bytes());
                field(&minor.to_le_bytes());
            }
        }
    }
    crate::base::hash::uuid_v8(&hasher.finalize())
}

// CRC-32C (Castagnoli), for the superblock checksum. Written here because no crate in the
// dependency tree computes it (crc32fast is the IEEE polynomial) and a table is a dozen lines.
// Like the kernel's `crc32c(~0, ...)`, the register is returned without the final inversion.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc32c(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// One entry of an image, as [`read`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Without a leading `/`; the root is empty.
    pub path: Vec<u8>,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u64,
    pub size: u64,
    /// The nid: names of one hard-linked file share it.
    pub ino: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// Regular files only.
    pub sha256: Option<Digest>,
    /// Symlinks only.
    pub target: Option<Vec<u8>>,
}

/// Whether `bytes` (at least the first 1028 of a file) start an EROFS image.
pub fn is_magic(bytes: &[u8]) -> bool {
    bytes.get(SUPER_OFFSET..SUPER_OFFSET + 4) == Some(&MAGIC.to_le_bytes()[..])
}

/// Deepest directory nesting [`read`] follows (a path of `PATH_MAX` has at most 2048 levels).
const MAX_DEPTH: usize = 2048;
/// Most entries [`read`] lists.
const MAX_ENTRIES: usize = 1 << 22;
/// Bytes of data [`read`] may hash beyond the image's own length: chunk-based files can repeat
/// a block or be mostly holes, and a hostile image must not keep it busy for ever.
const EXTRA_WORK: u64 = 16 << 30;
/// What [`read`] may return, in path bytes, beyond 16 times the image's own length: names are
/// stored once per directory entry, but a path repeats its parents' names, and a hostile image
/// can point many directories at the same blocks.
const EXTRA_PATH_BYTES: u64 = 4 << 20;

/// Every entry of an EROFS image, the root first, in path order (bytewise, as plans are).
pub fn read(input: impl Read + Seek) -> Result<Vec<Entry>> {
    let mut image = Image::open(input)?;
    let root = image.inode(image.root_nid, b"")?;
    if root.mode & S_IFMT != S_IFDIR {
        return Err(bad(format!("the root (nid {}) is not a directory", image.root_nid)));
    }
    let mut entries = vec![image.entry(Vec::new(), &root)?];
    let mut visited = BTreeSet::from([image.root_nid]);
    let mut pending = vec![(Vec::new(), root, 0usize)];
    // Each entry takes at least a 12-byte directory record in the image, and the paths returned
    // are bounded by the image's size: what a small image can make `read` hold stays small.
    let max_entries = usize::try_from(image.len / 12 + 16).unwrap_or(usize::MAX).min(MAX_ENTRIES);
    let mut path_bytes_left = image.len.saturating_mul(16).saturating_add(EXTRA_PATH_BYTES);
    while let Some((path, dir, depth)) = pending.pop() {
        for (name, nid) in image.dirents(&dir, &path, max_entries.saturating_sub(entries.len()))? {
            let mut child = path.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            path_bytes_left = path_bytes_left.checked_sub(child.len() as u64).ok_or_else(|| {
                bad(format!("its paths add up to more than 16 times its size (at `{}`)", shown(&child)))
            })?;
            if child.len() >= crate::base::path::PATH_MAX {
                return Err(bad(format!(
                    "`{}...` is longer than {} bytes",
                    shown(&child[..64]),
                    crate::base::path::PATH_MAX
                )));
            }
            let inode = image.inode(nid, &child)?;
            entries.push(image.entry(child.clone(), &inode)?);
            if inode.mode & S_IFMT == S_IFDIR {
                if !visited.insert(nid) {
                    return Err(bad(format!(
                        "`{}` is a directory already reached by another name (nid {nid})",
                        shown(&child)
                    )));
                }
                if depth + 1 >= MAX_DEPTH {
                    return Err(bad(format!("`{}` is nested deeper than {MAX_DEPTH} levels", shown(&child))));
                }
                pending.push((child, inode, depth + 1));
            }
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn bad(message: String) -> Error {
    Error::input(format!("bad EROFS image: {message}"))
}

fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | (u64::from(le32(bytes, at + 4)) << 32)
}

/// An inode as read from the image.
struct RawInode {
    nid: u64,
    /// Byte offset of the inode in the image.
    at: u64,
    /// Header and inline extended attributes: where inline data or chunk indexes begin.
    body: u64,
    layout: u16,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    size: u64,
    i_u: u32,
}

/// An image being read: its superblock and what is left of the work allowed.
struct Image<R> {
    input: R,
    len: u64,
    block_bits: u32,
    meta_base: u64,
    root_nid: u64,
    build_time: u64,
    chunked: bool,
    work_left: u64,
    /// Digests by nid, so a file with several names is hashed once.
    digests: BTreeMap<u64, Digest>,
}

impl<R: Read + Seek> Image<R> {
    fn open(mut input: R) -> Result<Image<R>> {
        let len = input
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::input(format!("cannot read the EROFS image: {}", io_cause(&e))))?;
        let mut image = Image {
            input,
            len,
            block_bits: 12,
            meta_base: 0,
            root_nid: 0,
            build_time: 0,
            chunked: false,
            work_left: len.saturating_add(EXTRA_WORK),
            digests: BTreeMap::new(),
        };
        if len < (SUPER_OFFSET + SUPER_SIZE) as u64 {
            return Err(bad(format!("{len} bytes is too short for a superblock")));
        }
        let mut sb = [0u8; SUPER_SIZE];
        image.read_at(SUPER_OFFSET as u64, &mut sb)?;
        if le32(&sb, 0) != MAGIC {
            return Err(Error::input(format!("not an EROFS image: no magic number at byte {SUPER_OFFSET}")));
        }
        let block_bits = u32::from(sb[12]);
        if !(9..=16).contains(&block_bits) {
            return Err(bad(format!("block size 2^{block_bits} is not supported")));
        }
        image.block_bits = block_bits;
        let block = 1u64 << block_bits;
        if le32(&sb, 8) & COMPAT_SB_CHKSUM != 0 && block > SUPER_OFFSET as u64 && len >= block {
            let mut area = vec![0u8; block as usize - SUPER_OFFSET];
            image.read_at(SUPER_OFFSET as u64, &mut area)?;
            area[4..8].fill(0);
            let computed = crc32c(!0, &area);
            if computed != le32(&sb, 4) {
                return Err(bad(format!(
                    "superblock checksum {:08x} does not match its contents ({computed:08x})",
                    le32(&sb, 4)
                )));
            }
        }
        let incompat = le32(&sb, 80);
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(bad(format!("it uses features this reader does not know (incompatible bits {incompat:#x})")));
        }
        image.chunked = incompat & INCOMPAT_CHUNKED_FILE != 0;
        image.root_nid = u64::from(le16(&sb, 14));
        image.build_time = le64(&sb, 24);
        image.meta_base = u64::from(le32(&sb, 40)) << block_bits;
        Ok(image)
    }

    fn block(&self) -> u64 {
        1 << self.block_bits
    }

    /// Reads `buf.len()` bytes at `offset`, which must lie inside the image.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(bad(format!("{} bytes at offset {offset} lie beyond its end ({} bytes)", buf.len(), self.len)));
        }
        self.input
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.input.read_exact(buf))
            .map_err(|e| Error::input(format!("cannot read the EROFS image at offset {offset}: {}", io_cause(&e))))
    }

    fn inode(&mut self, nid: u64, path: &[u8]) -> Result<RawInode> {
        let at = nid.checked_mul(SLOT).and_then(|o| o.checked_add(self.meta_base));
        let Some(at) = at else {
            return Err(bad(format!("`{}` has the impossible nid {nid}", shown(path))));
        };
        let mut raw = [0u8; EXTENDED_SIZE as usize];
        self.read_at(at, &mut raw[..COMPACT_SIZE as usize])?;
        let format = le16(&raw, 0);
        if format >> 4 != 0 {
            return Err(bad(format!("`{}` (nid {nid}) has an unknown inode format {format:#x}", shown(path))));
        }
        let extended = format & 1 != 0;
        let header = if extended {
            self.read_at(at + COMPACT_SIZE, &mut raw[COMPACT_SIZE as usize..])?;
            EXTENDED_SIZE
        } else {
            COMPACT_SIZE
        };
        let xattr_count = u64::from(le16(&raw, 2));
        let xattrs = if xattr_count == 0 { 0 } else { 12 + 4 * (xattr_count - 1) };
        let mode = u32::from(le16(&raw, 4));
        // The fields the two forms place differently: (nlink, uid, gid, mtime, size).
        let (nlink, uid, gid, mtime, size) = if extended {
            (le32(&raw, 44), le32(&raw, 24), le32(&raw, 28), le64(&raw, 32), le64(&raw, 8))
        } else {
            let (nlink, uid, gid) = (le16(&raw, 6), le16(&raw, 24), le16(&raw, 26));
            (nlink.into(), uid.into(), gid.into(), self.build_time, le32(&raw, 8).into())
        };
        let layout = (format >> 1) & 7;
        let inode = RawInode {
            nid,
            at,
            body: header + xattrs,
            layout,
            mode,
            nlink,
            uid,
            gid,
            mtime,
            size,
            i_u: le32(&raw, 16),
        };
        if !matches!(mode & S_IFMT, S_IFREG | S_IFDIR | S_IFLNK | S_IFCHR | S_IFBLK | S_IFIFO | 0o140000) {
            return Err(bad(format!("`{}` (nid {nid}) has an unknown file type in mode {mode:o}", shown(path))));
        }
        match inode.layout {
            FLAT_PLAIN | FLAT_INLINE => {}
            // Only regular files are chunk-based: chunks may repeat blocks, which must not
            // multiply directories.
            CHUNK_BASED if self.chunked && mode & S_IFMT == S_IFREG => {}
            CHUNK_BASED if self.chunked => {
                return Err(bad(format!("`{}` (nid {nid}) is chunk-based but not a regular file", shown(path))));
            }
            COMPRESSED_FULL | COMPRESSED_COMPACT => {
                return Err(Error::input(format!(
                    "compressed EROFS files are not supported: `{}` is compressed",
                    shown(path)
                )));
            }
            other => {
                return Err(bad(format!("`{}` (nid {nid}) has an unknown data layout {other}", shown(path))));
            }
        }
        Ok(inode)
    }

    /// Where the byte at `offset` of `inode` lies: its position in the image (`None` in a hole)
    /// and how many bytes from there on are contiguous.
    fn map(&mut self, inode: &RawInode, offset: u64, path: &[u8]) -> Result<(Option<u64>, u64)> {
        let block = self.block();
        let left = inode.size - offset;
        match inode.layout {
            FLAT_PLAIN => Ok((Some((u64::from(inode.i_u) << self.block_bits).saturating_add(offset)), left)),
            FLAT_INLINE => {
                let whole = (inode.size - 1) / block * block;
                if offset < whole {
                    return Ok((Some((u64::from(inode.i_u) << self.block_bits) + offset), whole - offset));
                }
                let tail_at = inode.at + inode.body;
                if tail_at % block + (inode.size - whole) > block {
                    return Err(bad(format!(
                        "the inline data of `{}` (nid {}) crosses a block boundary",
                        shown(path),
                        inode.nid
                    )));
                }
                Ok((Some(tail_at + offset - whole), left))
            }
            _ => {
                let format = inode.i_u & 0xffff;
                if format & !0x3f != 0 {
                    return Err(bad(format!("`{}` has an unknown chunk format {format:#x}", shown(path))));
                }
                let chunk_bits = self.block_bits + (format & 0x1f);
                if chunk_bits > 48 {
                    return Err(bad(format!("`{}` has chunks of 2^{chunk_bits} bytes", shown(path))));
                }
                let unit: u64 = if format & 0x20 != 0 { 8 } else { 4 };
                let chunk = offset >> chunk_bits;
                let index_at = ((inode.at + inode.body).div_ceil(unit) * unit).saturating_add(unit * chunk);
                let mut index = [0u8; 8];
                self.read_at(index_at, &mut index[..unit as usize])?;
                let blkaddr = if unit == 8 {
                    if le16(&index, 2) != 0 {
                        return Err(bad(format!("`{}` has data on another device", shown(path))));
                    }
                    le32(&index, 4)
                } else {
                    le32(&index, 0)
                };
                let start = chunk << chunk_bits;
                let len = start.saturating_add(1 << chunk_bits).min(inode.size) - offset;
                let at = (blkaddr != NULL_ADDR).then(|| (u64::from(blkaddr) << self.block_bits) + offset - start);
                Ok((at, len))
            }
        }
    }

    /// Fills `buf` with the bytes of `inode` from `offset` on.
    fn read_data(&mut self, inode: &RawInode, mut offset: u64, mut buf: &mut [u8], path: &[u8]) -> Result<()> {
        let Some(work_left) = self.work_left.checked_sub(buf.len() as u64) else {
            return Err(bad(format!("`{}` gives more data than the image can plausibly hold", shown(path))));
        };
        self.work_left = work_left;
        while !buf.is_empty() {
            let (at, len) = self.map(inode, offset, path)?;
            let n = len.min(buf.len() as u64) as usize;
            if n == 0 {
                return Err(bad(format!("`{}` maps no data at offset {offset}", shown(path))));
            }
            let (here, rest) = buf.split_at_mut(n);
            match at {
                Some(at) => self.read_at(at, here)?,
                None => here.fill(0),
            }
            offset += n as u64;
            buf = rest;
        }
        Ok(())
    }

    /// The names and nids in a directory, without `.` and `..`; more than `limit` is an error.
    fn dirents(&mut self, dir: &RawInode, path: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        let block = self.block();
        let mut out = Vec::new();
        let mut buf = vec![0u8; block as usize];
        let mut start = 0;
        let mut previous: Option<Vec<u8>> = None;
        while start < dir.size {
            let len = (dir.size - start).min(block) as usize;
            let data = &mut buf[..len];
            self.read_data(dir, start, data, path)?;
            let corrupt = |what: &str| {
                bad(format!("directory `{}` (nid {}): {what} in the block at {start}", shown(path), dir.nid))
            };
            if len < DIRENT_SIZE {
                return Err(corrupt("a partial entry"));
            }
            let first = usize::from(le16(data, 8));
            if first < DIRENT_SIZE || first % DIRENT_SIZE != 0 || first > len {
                return Err(corrupt("a bad first name offset"));
            }
            let count = first / DIRENT_SIZE;
            for i in 0..count {
                let de = i * DIRENT_SIZE;
                let nameoff = usize::from(le16(data, de + 8));
                let end = if i + 1 < count {
                    usize::from(le16(data, de + DIRENT_SIZE + 8))
                } else {
                    data[nameoff.min(len)..].iter().position(|&b| b == 0).map_or(len, |p| nameoff + p)
                };
                if nameoff < first || end > len || nameoff >= end || end - nameoff > NAME_MAX {
                    return Err(corrupt("a bad name offset"));
                }
                let name = &data[nameoff..end];
                if name.contains(&b'/') || name.contains(&0) {
                    return Err(corrupt("a name with `/` or NUL"));
                }
                // Lookups bisect the names, so they are strictly increasing, each once.
                if previous.as_deref().is_some_and(|p| p >= name) {
                    return Err(corrupt(&format!("`{}` out of order or repeated", String::from_utf8_lossy(name))));
                }
                previous = Some(name.to_vec());
                if name != b"." && name != b".." {
                    if out.len() >= limit {
                        return Err(bad("more entries than its size can hold".to_string()));
                    }
                    out.push((name.to_vec(), le64(data, de)));
                }
            }
            start += block;
        }
        Ok(out)
    }

    fn entry(&mut self, path: Vec<u8>, inode: &RawInode) -> Result<Entry> {
        let mut entry = Entry {
            path,
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            nlink: inode.nlink,
            mtime: inode.mtime,
            size: inode.size,
            ino: inode.nid,
            rdev_major: 0,
            rdev_minor: 0,
            sha256: None,
            target: None,
        };
        match inode.mode & S_IFMT {
            S_IFREG => entry.sha256 = Some(self.digest(inode, &entry.path)?),
            S_IFLNK => {
                if inode.size == 0 || inode.size >= crate::base::path::PATH_MAX as u64 {
                    return Err(bad(format!("symlink `{}` has a target of {} bytes", shown(&entry.path), inode.size)));
                }
                let mut target = vec![0u8; inode.size as usize];
                self.read_data(inode, 0, &mut target, &entry.path)?;
                entry.target = Some(target);
            }
            S_IFCHR | S_IFBLK => {
                // The kernel's `new_decode_dev`.
                let rdev = inode.i_u;
                entry.rdev_major = (rdev & 0xfff00) >> 8;
                entry.rdev_minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
            }
            _ => {}
        }
        Ok(entry)
    }

    fn digest(&mut self, inode: &RawInode, path: &[u8]) -> Result<Digest> {
        if let Some(digest) = self.digests.get(&inode.nid) {
            return Ok(*digest);
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; (256 * 1024).min(inode.size) as usize];
        let mut offset = 0;
        while offset < inode.size {
            let n = (inode.size - offset).min(buf.len() as u64) as usize;
            self.read_data(inode, offset, &mut buf[..n], path)?;
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        let digest: Digest = hasher.finalize().into();
        self.digests.insert(inode.nid, digest);
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::io::Cursor;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::base::path::ImagePath;
    use crate::plan::PlanEntry;

    const EPOCH: u64 = 1_700_000_000;

    enum Spec {
        Dir,
        File(Vec<u8>),
        /// Another name for the file at this path.
        Hardlink(&'static str),
        Symlink(Vec<u8>),
        Device(DeviceKind, u32, u32),
    }

    struct Item {
        path: Vec<u8>,
        spec: Spec,
        mode: u32,
        uid: u32,
        gid: u32,
    }

    fn item(path: impl AsRef<[u8]>, spec: Spec, mode: u32) -> Item {
        Item { path: path.as_ref().to_vec(), spec, mode, uid: 0, gid: 0 }
    }

    fn owned(item: Item, uid: u32, gid: u32) -> Item {
        Item { uid, gid, ..item }
    }

    fn image_path(bytes: &[u8]) -> ImagePath {
        ImagePath::normalise(bytes).unwrap()
    }

    /// Bytes that differ from block to block, so a misplaced block shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 12) as u8).wrapping_add(seed)).collect()
    }

    /// A plan as `plan::freeze` makes one: path order, inode numbers from 1, link counts.
    fn plan(epoch: u64, mut items: Vec<Item>) -> Plan {
        items.sort_by_key(|item| image_path(&item.path));
        let canonical = |item: &Item| match &item.spec {
            Spec::Hardlink(target) => image_path(target.as_bytes()),
            _ => image_path(&item.path),
        };
        let mut contents = BTreeMap::new();
        let mut names: BTreeMap<ImagePath, Vec<ImagePath>> = BTreeMap::new();
        for item in &items {
            if let Spec::File(bytes) = &item.spec {
                contents.insert(image_path(&item.path), Content::inline(bytes));
            }
            if let Spec::File(_) | Spec::Hardlink(_) = item.spec {
                names.entry(canonical(item)).or_default().push(image_path(&item.path));
            }
        }
        let mut inos = BTreeMap::new();
        let mut next = 0;
        let mut entries = Vec::new();
        for item in &items {
            let path = image_path(&item.path);
            let (node, ino, nlink) = match &item.spec {
                Spec::Dir => {
                    next += 1;
                    let subdirs =
                        items.iter().filter(|o| matches!(o.spec, Spec::Dir) && image_path(&o.path).parent() == path);
                    (Node::Dir, next, 2 + subdirs.count() as u32)
                }
                Spec::File(_) | Spec::Hardlink(_) => {
                    let key = canonical(item);
                    let group = &names[&key];
                    let ino = *inos.entry(key.clone()).or_insert_with(|| {
                        next += 1;
                        next
                    });
                    let node = Node::File {
                        content: contents[&key].clone(),
                        link_to: (group[0] != path).then(|| group[0].clone()),
                        carries_data: group.last() == Some(&path),
                    };
                    (node, ino, group.len() as u32)
                }
                Spec::Symlink(target) => {
                    next += 1;
                    (Node::Symlink { target: target.clone() }, next, 1)
                }
                Spec::Device(kind, major, minor) => {
                    next += 1;
                    (Node::Device { kind: *kind, major: *major, minor: *minor }, next, 1)
                }
            };
            entries.push(PlanEntry { path, node, mode: item.mode, uid: item.uid, gid: item.gid, ino, nlink });
        }
        Plan {
            name: "test".to_string(),
            epoch,
            initramfs: None,
            disk: None,
            kernel: None,
            entries,
            inputs: Vec::new(),
            package_layers: Vec::new(),
            kernel_package: None,
            packages: Vec::new(),
        }
    }

    fn spool() -> Spool {
        Spool::new(std::env::temp_dir().join("bake-erofs-test-spool-never-written"))
    }

    fn image(plan: &Plan) -> Vec<u8> {
        let out = write(plan, &spool(), Vec::new(), &crate::base::progress::Silent).unwrap();
        assert_eq!(out.len() as u64, image_size(plan).unwrap());
        out
    }

    fn content_bytes(content: &Content) -> Vec<u8> {
        let spool = spool();
        let mut out = Vec::new();
        content.open(&spool).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    /// Whether an erofs-utils tool can be run; if not, says which test is skipped and why.
    fn have(tool: &str, test: &str) -> bool {
        let found = Command::new(tool).arg("-V").output().is_ok();
        if !found {
            eprintln!("skipping {test}: `{tool}` (erofs-utils) is not installed");
        }
        found
    }

    fn run(command: &mut Command) -> String {
        let out = command.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // erofs-utils 1.5 reports some errors (a bad superblock checksum) and still exits 0.
        assert!(out.status.success() && !text.contains("<E>"), "{command:?} failed: {text}");
        text
    }

    /// Writes `bytes` to a file in `dir` and returns its path.
    fn save(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join("image.erofs");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `fsck.erofs` checks the image and extracts it; the tree must be the plan's.
    fn check_with_fsck(image: &[u8], plan: &Plan) {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), image);
        let root = dir.path().join("out");
        run(Command::new("fsck.erofs").arg(format!("--extract={}", root.display())).arg(&path));
        check_tree(&root, plan, false);
    }

    /// A read-only kernel mount of an image, unmounted when dropped (so a failed assertion
    /// leaves none behind).
    struct Mounted {
        root: std::path::PathBuf,
    }

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.root).status();
        }
    }

    /// Mounts `image` at `root` through a loop device, or says why not (not root, no loop
    /// devices, no EROFS in this kernel) and gives `None`.
    fn mount(image: &Path, root: &Path, test: &str) -> Option<Mounted> {
        std::fs::create_dir(root).unwrap();
        let out = Command::new("mount").args(["-t", "erofs", "-o", "loop,ro"]).arg(image).arg(root).output();
        match out {
            Ok(out) if out.status.success() => Some(Mounted { root: root.to_path_buf() }),
            Ok(out) => {
                eprintln!("skipping the kernel mount in {test}: {}", String::from_utf8_lossy(&out.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("skipping the kernel mount in {test}: cannot run `mount`: {e}");
                None
            }
        }
    }

    /// The kernel mounts the image; the tree must be the plan's.
    fn check_with_kernel(image: &[u8], plan: &Plan, test: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), image);
        if let Some(mounted) = mount(&path, &dir.path().join("mnt"), test) {
            check_tree(&mounted.root, plan, true);
        }
    }

    /// The tree at `root` holds exactly the plan. `exact`: also the setuid and setgid bits of
    /// files and hard links as shared inodes, which `fsck.erofs --extract` loses.
    fn check_tree(root: &Path, plan: &Plan, exact: bool) {
        let mut host_inodes: BTreeMap<u32, u64> = BTreeMap::new();
        let mut found = 0;
        for entry in walkdir::WalkDir::new(root).min_depth(1) {
            entry.unwrap();
            found += 1;
        }
        assert_eq!(found, plan.entries.len(), "entries extracted");
        for entry in &plan.entries {
            let host = root.join(OsStr::from_bytes(entry.path.as_bytes()));
            let meta = std::fs::symlink_metadata(&host).unwrap();
            let what = &entry.path;
            // fsck.erofs 1.5 sets a file's mode before its owner, and chown clears setuid and
            // setgid.
            let kept = if !exact && matches!(entry.node, Node::File { .. }) { 0o1777 } else { 0o7777 };
            assert_eq!(meta.mode() & kept, entry.mode & kept, "{what} mode");
            assert_eq!((meta.uid(), meta.gid()), (entry.uid, entry.gid), "{what} owner");
            assert_eq!(meta.mtime() as u64, plan.epoch, "{what} mtime");
            let kind = meta.file_type();
            match &entry.node {
                Node::Dir => {
                    assert!(kind.is_dir(), "{what}");
                    if exact {
                        assert_eq!(meta.nlink(), u64::from(entry.nlink), "{what} links");
                    }
                }
                Node::File { content, .. } => {
                    assert!(kind.is_file(), "{what}");
                    assert_eq!(std::fs::read(&host).unwrap(), content_bytes(content), "{what} content");
                    // fsck.erofs 1.5 extracts every name of a hard-linked file as a file of its
                    // own.
                    if exact {
                        assert_eq!(meta.nlink(), u64::from(entry.nlink), "{what} links");
                        let ino = *host_inodes.entry(entry.ino).or_insert(meta.ino());
                        assert_eq!(ino, meta.ino(), "{what}: hard links share one inode");
                    }
                }
                Node::Symlink { target } => {
                    assert!(kind.is_symlink(), "{what}");
                    assert_eq!(std::fs::read_link(&host).unwrap().as_os_str().as_bytes(), &target[..], "{what}");
                }
                Node::Device { kind: device, major, minor } => {
                    match device {
                        DeviceKind::Char => assert!(kind.is_char_device(), "{what}"),
                        DeviceKind::Block => assert!(kind.is_block_device(), "{what}"),
                        DeviceKind::Fifo => assert!(kind.is_fifo(), "{what}"),
                    }
                    let rdev = meta.rdev();
                    let host_major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
                    let host_minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
                    assert_eq!((host_major, host_minor), (u64::from(*major), u64::from(*minor)), "{what}");
                }
            }
        }
        let distinct: BTreeSet<u64> = host_inodes.values().copied().collect();
        assert_eq!(distinct.len(), host_inodes.len(), "distinct files share an inode");
    }

    /// Our reader gives back the plan.
    fn check_with_reader(image: &[u8], plan: &Plan) -> Vec<Entry> {
        let entries = read(Cursor::new(image)).unwrap();
        assert_eq!(entries.len(), plan.entries.len() + 1);
        let root = &entries[0];
        assert_eq!((root.path.as_slice(), root.mode, root.uid, root.gid), (&b""[..], S_IFDIR | 0o755, 0, 0));
        let top_dirs = plan.entries.iter().filter(|e| matches!(e.node, Node::Dir) && e.path.parent().is_root());
        assert_eq!(root.nlink, 2 + top_dirs.count() as u32);
        let mut nids: BTreeMap<u32, u64> = BTreeMap::new();
        for (found, entry) in entries[1..].iter().zip(&plan.entries) {
            let what = &entry.path;
            assert_eq!(found.path, entry.path.as_bytes());
            let (type_bits, size) = match &entry.node {
                Node::Dir => (S_IFDIR, found.size),
                Node::File { content, .. } => (S_IFREG, content.size),
                Node::Symlink { target } => (S_IFLNK, target.len() as u64),
                Node::Device { kind: DeviceKind::Char, .. } => (S_IFCHR, 0),
                Node::Device { kind: DeviceKind::Block, .. } => (S_IFBLK, 0),
                Node::Device { kind: DeviceKind::Fifo, .. } => (S_IFIFO, 0),
            };
            assert_eq!(found.mode, type_bits | entry.mode, "{what}");
            assert_eq!((found.uid, found.gid, found.nlink), (entry.uid, entry.gid, entry.nlink), "{what}");
            assert_eq!((found.mtime, found.size), (plan.epoch, size), "{what}");
            assert_eq!(*nids.entry(entry.ino).or_insert(found.ino), found.ino, "{what}: one inode per ino");
            match &entry.node {
                Node::File { content, .. } => assert_eq!(found.sha256, Some(content.sha256), "{what}"),
                Node::Symlink { target } => assert_eq!(found.target.as_ref(), Some(target), "{what}"),
                Node::Device { major, minor, kind: DeviceKind::Char | DeviceKind::Block } => {
                    assert_eq!((found.rdev_major, found.rdev_minor), (*major, *minor), "{what}")
                }
                _ => assert_eq!((found.sha256, &found.target), (None, &None), "{what}"),
            }
        }
        let distinct: BTreeSet<u64> = nids.values().copied().collect();
        assert_eq!(distinct.len(), nids.len(), "distinct inodes have distinct nids");
        entries
    }

    /// `dump.erofs --path=...`: a lookup by name (a binary search over the sorted entries).
    fn dump(image: &Path, path: &[u8]) -> String {
        let arg = OsStr::from_bytes(&[b"--path=/", path].concat()).to_owned();
        run(Command::new("dump.erofs").arg(arg).arg(image))
    }

    fn everything() -> Plan {
        let long_target: Vec<u8> = b"../".repeat(1400);
        let mut items = vec![
            item("bin", Spec::Dir, 0o755),
            item("bin/tool", Spec::File(pattern(4097, 1)), 0o4755),
            item("bin/tool2", Spec::Hardlink("bin/tool"), 0o4755),
            item("etc", Spec::Dir, 0o755),
            item("etc/a-link-to-tool", Spec::Hardlink("bin/tool"), 0o4755),
            item("data", Spec::Dir, 0o750),
            item("data/big", Spec::File(pattern(300_000, 2)), 0o644),
            item("empty", Spec::Dir, 0o700),
            owned(item("home", Spec::Dir, 0o755), 1000, 1000),
            owned(item("home/user", Spec::Dir, 0o700), 1000, 1000),
            item("tmp", Spec::Dir, 0o1777),
            owned(item("srv", Spec::Dir, 0o2775), 0, 50),
            owned(item("srv/shared", Spec::File(b"shared\n".to_vec()), 0o2664), 0, 50),
            item("dev", Spec::Dir, 0o755),
            item("dev/null", Spec::Device(DeviceKind::Char, 1, 3), 0o666),
            owned(item("dev/sda", Spec::Device(DeviceKind::Block, 8, 0), 0o660), 0, 6),
            item("dev/largest", Spec::Device(DeviceKind::Char, 4095, 1_048_575), 0o600),
            item("dev/wide-minor", Spec::Device(DeviceKind::Block, 259, 70_000), 0o600),
            item("dev/initctl", Spec::Device(DeviceKind::Fifo, 0, 0), 0o600),
            item("links", Spec::Dir, 0o755),
            item("links/short", Spec::Symlink(b"../bin/tool".to_vec()), 0o777),
            item("links/dangling", Spec::Symlink(b"/nowhere".to_vec()), 0o777),
            item("links/long", Spec::Symlink(long_target[..3999].to_vec()), 0o777),
            item("links/longest", Spec::Symlink(long_target[..4095].to_vec()), 0o777),
            item("names", Spec::Dir, 0o755),
            item("names/-sorts-before-dot", Spec::File(b"-".to_vec()), 0o644),
            item("names/!bang", Spec::File(b"!".to_vec()), 0o644),
            item(b"names/caf\xe9", Spec::File(b"latin-1 name".to_vec()), 0o644),
            item([&b"names/"[..], &[b'n'; 255]].concat(), Spec::Dir, 0o755),
            item([&b"names/"[..], &[b'n'; 255], b"/", &[b'f'; 255]].concat(), Spec::File(b"x".to_vec()), 0o644),
            owned(item("owners", Spec::Dir, 0o755), 65_535, 65_535),
            owned(item("owners/high", Spec::File(b"extended inode".to_vec()), 0o640), 70_000, 80_000),
            owned(item("owners/high-dir", Spec::Dir, 0o755), 100_000, 0),
            owned(item("owners/high-link", Spec::Symlink(b"high".to_vec()), 0o777), 0, 4_000_000_000),
            owned(item("owners/max", Spec::File(b"compact inode".to_vec()), 0o600), 65_535, 65_535),
        ];
        // Tails around the block size and around what fits inline after a 32-byte inode.
        for size in [0usize, 1, 31, 32, 33, 4000, 4063, 4064, 4065, 4095, 4096, 4097, 8191, 8192, 8193, 12345] {
            items.push(item(format!("data/{size:05}"), Spec::File(pattern(size, size as u8)), 0o644));
        }
        plan(EPOCH, items)
    }

    #[test]
    fn crc32c_is_the_castagnoli_crc() {
        // The check value of CRC-32C is e3069283 (with the final inversion this code leaves out).
        assert_eq!(!crc32c(!0, b"123456789"), 0xe306_9283);
    }

    #[test]
    fn inodes_and_tails_go_into_the_fullest_block_that_holds_them() {
        let place = |sizes: &[(u64, bool)]| {
            let mut inodes: Vec<Inode<'_>> = sizes
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

    #[test]
    fn superblock_fields_follow_the_format() {
        let plan = everything();
        let out = image(&plan);
        assert!(is_magic(&out));
        assert_eq!(out.len() % BLOCK as usize, 0);
        assert!(out[..SUPER_OFFSET].iter().all(|&b| b == 0));
        let sb = &out[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE];
        assert_eq!(le32(sb, 8), COMPAT_SB_CHKSUM);
        assert_eq!(sb[12], 12);
        assert_eq!(le16(sb, 14), 0, "root nid");
        let inodes = plan.entries.iter().filter(|e| !matches!(e.node, Node::File { link_to: Some(_), .. })).count();
        assert_eq!(le64(sb, 16), inodes as u64 + 1);
        assert_eq!((le64(sb, 24), le32(sb, 32)), (EPOCH, 0), "build time");
        assert_eq!(u64::from(le32(sb, 36)) * BLOCK, out.len() as u64);
        assert_eq!(sb[54] >> 4, 8, "UUID version");
        assert_eq!(sb[56] >> 6, 0b10, "UUID variant");
        assert_eq!(le32(sb, 80), 0, "no incompatible features");
        let mut area = out[SUPER_OFFSET..BLOCK as usize].to_vec();
        area[4..8].fill(0);
        assert_eq!(crc32c(!0, &area), le32(sb, 4));
    }

    #[test]
    fn fsck_erofs_extracts_exactly_the_plan() {
        let plan = everything();
        let out = image(&plan);
        check_with_reader(&out, &plan);
        if !have("fsck.erofs", "fsck_erofs_extracts_exactly_the_plan") {
            return;
        }
        check_with_fsck(&out, &plan);
    }

    #[test]
    fn the_kernel_mounts_exactly_the_plan() {
        let plan = everything();
        check_with_kernel(&image(&plan), &plan, "the_kernel_mounts_exactly_the_plan");
    }

    #[test]
    fn dump_erofs_finds_every_name_and_the_superblock() {
        if !have("dump.erofs", "dump_erofs_finds_every_name_and_the_superblock") {
            return;
        }
        let plan = everything();
        let out = image(&plan);
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &out);
        let text = run(Command::new("dump.erofs").arg("-s").arg(&path));
        let uuid = &out[SUPER_OFFSET + 48..SUPER_OFFSET + 64];
        let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
        let uuid = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
        assert!(text.contains(&format!("Filesystem UUID:                              {uuid}")), "{text}");
        assert!(text.contains("Filesystem root nid:                          0\n"), "{text}");
        assert!(text.contains("sb_csum"), "{text}");
        let mut nids: BTreeMap<u32, String> = BTreeMap::new();
        for entry in &plan.entries {
            let text = dump(&path, entry.path.as_bytes());
            let what = &entry.path;
            assert!(text.contains(&format!("Links: {} ", entry.nlink)), "{what}: {text}");
            // dump.erofs 1.5 shows only the 0777 bits; setuid and setgid are compared with
            // mkfs.erofs's own encoding in `the_reader_reads_mkfs_erofs_images_as_ours`.
            assert!(text.contains(&format!("Access: {:04o}/", entry.mode & 0o777)), "{what}: {text}");
            assert!(text.contains(&format!("Uid: {}   Gid: {} ", entry.uid, entry.gid)), "{what}: {text}");
            let nid = text.split("NID: ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap().to_string();
            assert_eq!(*nids.entry(entry.ino).or_insert(nid.clone()), nid, "{what}: hard links share one inode");
        }
        assert_eq!(nids.values().collect::<BTreeSet<_>>().len(), nids.len(), "distinct inodes have distinct nids");
        // Small tails are inline (layout 2); a tail that cannot share a block with its inode,
        // and a size of whole blocks, are not (layout 0).
        for (name, layout) in [("data/00001", 2), ("data/04065", 0), ("data/04096", 0), ("data/12345", 2)] {
            let text = dump(&path, name.as_bytes());
            assert!(text.contains(&format!("Layout: {layout} ")), "{name}: {text}");
        }
        let text = dump(&path, b"owners/high");
        assert!(text.contains("Inode size: 64 ") && text.contains("Uid: 70000 "), "{text}");
        let text = dump(&path, b"owners/max");
        assert!(text.contains("Inode size: 32 ") && text.contains("Uid: 65535 "), "{text}");
    }

    #[test]
    fn a_directory_of_5000_entries_spans_blocks_and_stays_searchable() {
        let mut items = vec![item("many", Spec::Dir, 0o755)];
        for i in 0..5000 {
            items.push(item(format!("many/entry-{i:05}"), Spec::File(format!("{i}\n").into_bytes()), 0o644));
        }
        for c in [b'a', b'z'] {
            items.push(item([&b"many/"[..], &[c; 255]].concat(), Spec::File(vec![c]), 0o644));
        }
        items.push(item("many/sub", Spec::Dir, 0o755));
        let plan = plan(EPOCH, items);
        let out = image(&plan);
        let entries = check_with_reader(&out, &plan);
        assert!(entries[1].size > 20 * BLOCK, "the directory has {} bytes", entries[1].size);
        if !have("fsck.erofs", "a_directory_of_5000_entries_spans_blocks") {
            return;
        }
        check_with_fsck(&out, &plan);
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &out);
        for name in ["many/entry-00000", "many/entry-02500", "many/entry-04999", "many/sub"] {
            dump(&path, name.as_bytes());
        }
        dump(&path, &[&b"many/"[..], &[b'z'; 255]].concat());
        // Every name is looked up by the kernel's binary search over the sorted blocks.
        check_with_kernel(&out, &plan, "a_directory_of_5000_entries_spans_blocks");
    }

    #[test]
    fn a_tree_100_deep_round_trips() {
        let mut items = Vec::new();
        let mut path = String::from("d");
        for depth in 0..100 {
            items.push(item(&path, Spec::Dir, 0o755));
            items.push(item(format!("{path}/file"), Spec::File(format!("{depth}").into_bytes()), 0o644));
            path.push_str("/d");
        }
        let plan = plan(EPOCH, items);
        let out = image(&plan);
        check_with_reader(&out, &plan);
        if have("fsck.erofs", "a_tree_100_deep_round_trips") {
            check_with_fsck(&out, &plan);
        }
        check_with_kernel(&out, &plan, "a_tree_100_deep_round_trips");
    }

    #[test]
    fn an_empty_image_is_a_root_directory() {
        let plan = plan(0, Vec::new());
        let out = image(&plan);
        assert_eq!(out.len() as u64, 2 * BLOCK, "superblock and one inode block");
        let entries = check_with_reader(&out, &plan);
        assert_eq!(entries[0].size, 2 * DIRENT_SIZE as u64 + 3, "`.` and `..`");
        if have("fsck.erofs", "an_empty_image_is_a_root_directory") {
            check_with_fsck(&out, &plan);
        }
    }

    #[test]
    fn two_writes_are_identical_and_one_changed_byte_changes_the_uuid() {
        let first = image(&everything());
        assert_eq!(first, image(&everything()));
        let mut plan = everything();
        let entry = plan.entries.iter_mut().find(|e| e.path.as_bytes() == b"data/big").unwrap();
        let mut bytes = pattern(300_000, 2);
        bytes[123_456] ^= 1;
        entry.node = Node::File { content: Content::inline(&bytes), link_to: None, carries_data: true };
        let second = image(&plan);
        assert_eq!(first.len(), second.len());
        let uuid = SUPER_OFFSET + 48..SUPER_OFFSET + 64;
        assert_ne!(first[uuid.clone()], second[uuid]);
    }

    /// A host tree for `mkfs.erofs`, and the plan that describes the same tree.
    fn host_tree(root: &Path) -> Plan {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let sparse = {
            let mut bytes = vec![0u8; 1 << 20];
            bytes[700_000..700_005].copy_from_slice(b"data!");
            bytes
        };
        let items = vec![
            item("a", Spec::File(pattern(5000, 1)), 0o644),
            owned(item("b", Spec::File(pattern(8192, 2)), 0o4711), 1234, 5678),
            item("hard", Spec::Hardlink("a"), 0o644),
            item("empty", Spec::File(Vec::new()), 0o600),
            item("sparse", Spec::File(sparse), 0o644),
            item("sub", Spec::Dir, 0o2755),
            owned(item("sub/high", Spec::File(b"x".to_vec()), 0o640), 70_000, 70_001),
            item("sub/link", Spec::Symlink(b"../a".to_vec()), 0o777),
            item("sub/fifo", Spec::Device(DeviceKind::Fifo, 0, 0), 0o600),
            item("sub/null", Spec::Device(DeviceKind::Char, 1, 3), 0o666),
            item("sub/deeper", Spec::Dir, 0o1777),
        ];
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for item in &items {
            let host = root.join(OsStr::from_bytes(&item.path));
            match &item.spec {
                Spec::Dir => std::fs::create_dir(&host).unwrap(),
                Spec::File(bytes) => std::fs::write(&host, bytes).unwrap(),
                Spec::Hardlink(target) => std::fs::hard_link(root.join(target), &host).unwrap(),
                Spec::Symlink(target) => symlink(OsStr::from_bytes(target), &host).unwrap(),
                Spec::Device(kind, major, minor) => {
                    let kind = match kind {
                        DeviceKind::Char => libc::S_IFCHR,
                        DeviceKind::Block => libc::S_IFBLK,
                        DeviceKind::Fifo => libc::S_IFIFO,
                    };
                    let name = std::ffi::CString::new(host.as_os_str().as_bytes()).unwrap();
                    let dev = libc::makedev(*major, *minor);
                    // SAFETY: a valid NUL-terminated path; mknod touches nothing else.
                    assert_eq!(unsafe { libc::mknod(name.as_ptr(), kind | item.mode, dev) }, 0);
                }
            }
            if !matches!(item.spec, Spec::Symlink(_)) {
                std::os::unix::fs::chown(&host, Some(item.uid), Some(item.gid)).unwrap();
                std::fs::set_permissions(&host, std::fs::Permissions::from_mode(item.mode)).unwrap();
            }
        }
        // Extended attributes, which mkfs.erofs stores inline and the reader must step over.
        for name in ["a", "sub"] {
            let path = std::ffi::CString::new(root.join(name).as_os_str().as_bytes()).unwrap();
            // SAFETY: NUL-terminated path and name, and a value of the length given.
            let set = unsafe { libc::setxattr(path.as_ptr(), c"user.bake".as_ptr(), b"value".as_ptr().cast(), 5, 0) };
            assert_eq!(set, 0, "setxattr: {}", io::Error::last_os_error());
        }
        // The sparse file really has holes, so the chunk-based image below has some.
        let sparse = std::fs::OpenOptions::new().write(true).open(root.join("sparse")).unwrap();
        sparse.set_len(0).unwrap();
        std::os::unix::fs::FileExt::write_at(&sparse, b"data!", 700_000).unwrap();
        sparse.set_len(1 << 20).unwrap();
        plan(0, items)
    }

    /// Entries without their nids, and the groups of names that share one.
    fn comparable(entries: Vec<Entry>) -> (Vec<Entry>, BTreeSet<Vec<Vec<u8>>>) {
        let mut groups: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        let entries = entries
            .into_iter()
            .map(|e| {
                groups.entry(e.ino).or_default().push(e.path.clone());
                Entry { ino: 0, ..e }
            })
            .collect();
        (entries, groups.into_values().collect())
    }

    fn mkfs(args: &[&str], tree: &Path, dir: &Path) -> Vec<u8> {
        let image = dir.join("mkfs.erofs");
        let mut command = Command::new("mkfs.erofs");
        command.args(["-T0", "-U", "00000000-0000-0000-0000-000000000000"]).args(args).arg(&image).arg(tree);
        run(&mut command);
        std::fs::read(image).unwrap()
    }

    #[test]
    fn the_reader_reads_mkfs_erofs_images_as_ours() {
        if !have("mkfs.erofs", "the_reader_reads_mkfs_erofs_images_as_ours") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let plan = host_tree(&tree);
        let ours = comparable(check_with_reader(&image(&plan), &plan));
        let theirs = comparable(read(Cursor::new(mkfs(&[], &tree, dir.path()))).unwrap());
        assert_eq!(ours, theirs);
        // Chunk-based files, with holes for the zero chunks of `sparse`.
        let chunked = mkfs(&["--chunksize=4096"], &tree, dir.path());
        assert!(chunked.len() < 512 * 1024, "holes are not stored");
        assert_eq!(ours, comparable(read(Cursor::new(chunked)).unwrap()));
        // Compressed files are refused by name.
        let err = read(Cursor::new(mkfs(&["-zlz4"], &tree, dir.path()))).unwrap_err();
        assert!(err.message().contains("compressed EROFS files are not supported"), "{err}");
    }

    #[test]
    fn fsck_erofs_checks_the_superblock_checksum() {
        if !have("fsck.erofs", "fsck_erofs_checks_the_superblock_checksum") {
            return;
        }
        let mut out = image(&plan(EPOCH, vec![item("f", Spec::File(b"x".to_vec()), 0o644)]));
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("fsck.erofs").arg(save(dir.path(), &out)));
        out[SUPER_OFFSET + 100] ^= 1; // a reserved byte: only the checksum notices
        let bad = Command::new("fsck.erofs").arg(save(dir.path(), &out)).output().unwrap();
        let text = String::from_utf8_lossy(&bad.stderr).into_owned() + &String::from_utf8_lossy(&bad.stdout);
        assert!(text.contains("chksum doesn't match"), "fsck.erofs did not check the checksum: {text}");
        let err = read(Cursor::new(&out)).unwrap_err();
        assert!(err.message().contains("checksum"), "{err}");
    }

    #[test]
    fn names_out_of_order_or_repeated_are_refused() {
        // Regression: the reader took any order, so a directory could list one name many times.
        let items =
            vec![item("aaaa1", Spec::File(b"1".to_vec()), 0o644), item("aaaa2", Spec::File(b"2".to_vec()), 0o644)];
        let good = image(&plan(EPOCH, items));
        assert_eq!(read(Cursor::new(&good)).unwrap().len(), 3);
        let at = good.windows(10).position(|w| w == b"aaaa1aaaa2").expect("the two names, side by side");
        for (swap, why) in [(&b"aaaa2aaaa1"[..], "out of order"), (&b"aaaa1aaaa1"[..], "repeated")] {
            let mut bad = good.clone();
            bad[at..at + 10].copy_from_slice(swap);
            let err = read(Cursor::new(&bad)).unwrap_err();
            assert!(err.message().contains("out of order or repeated"), "{why}: {err}");
        }
    }

    #[test]
    fn a_small_image_cannot_claim_more_entries_than_it_can_hold() {
        // Regression: a 5 MB image of 65k hard links under a deep path made `bake inspect` hold
        // 500 MB; entries and path bytes are now bounded by the image's size.
        let mut items: Vec<Item> = (1..=300).map(|depth| item("d/".repeat(depth), Spec::Dir, 0o755)).collect();
        let deep = "d/".repeat(300);
        items.extend((0..20_000).map(|i| item(format!("{deep}n{i:05}"), Spec::Hardlink("f"), 0)));
        items.push(item("f", Spec::File(b"x".to_vec()), 0o644));
        let out = image(&plan(EPOCH, items));
        assert!(20_000 * 606 > out.len() * 16 + (4 << 20), "the paths must outgrow the budget: {} bytes", out.len());
        let err = read(Cursor::new(&out)).unwrap_err();
        assert!(err.message().contains("more than 16 times its size"), "{err}");
    }

    #[test]
    fn truncated_and_garbage_images_are_errors_not_panics() {
        let out = image(&everything());
        for cut in (0..out.len()).step_by(61) {
            let result = read(Cursor::new(&out[..cut]));
            if cut <= out.len() - BLOCK as usize {
                // The last block holds inodes every walk needs.
                assert!(result.is_err(), "cut at {cut}");
            }
        }
        let err = read(Cursor::new(&out[..1100])).unwrap_err();
        assert!(err.message().contains("too short for a superblock"), "{err}");
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut garbage: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let err = read(Cursor::new(&garbage)).unwrap_err();
        assert!(err.message().contains("not an EROFS image"), "{err}");
        // Garbage behind a plausible superblock without a checksum.
        let mut sb = out[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE].to_vec();
        sb[8] = 0;
        for nid in [0u16, 3, 100, 2047] {
            sb[14..16].copy_from_slice(&nid.to_le_bytes());
            sb[40..44].copy_from_slice(&1u32.to_le_bytes());
            garbage[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE].copy_from_slice(&sb);
            let _ = read(Cursor::new(&garbage));
        }
    }

    #[test]
    fn every_flipped_metadata_byte_is_read_without_panic() {
        let plan = plan(
            EPOCH,
            vec![
                item("d", Spec::Dir, 0o755),
                item("d/f", Spec::File(pattern(5000, 3)), 0o644),
                item("d/l", Spec::Symlink(b"f".to_vec()), 0o777),
                item("d/h", Spec::Hardlink("d/f"), 0o644),
                item("c", Spec::Device(DeviceKind::Char, 1, 3), 0o600),
            ],
        );
        let mut out = image(&plan);
        out[SUPER_OFFSET + 8] = 0; // no checksum, so flips reach the rest
        for at in SUPER_OFFSET..out.len() {
            for mask in [0x01, 0x80, 0xff] {
                out[at] ^= mask;
                let _ = read(Cursor::new(&out));
                out[at] ^= mask;
            }
        }
    }

    /// An image kept sparsely: only blocks that are not all zeros are stored.
    #[derive(Default)]
    struct Sparse {
        blocks: BTreeMap<u64, Vec<u8>>,
        len: u64,
        partial: Vec<u8>,
    }

    impl Write for Sparse {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let zeros = [0u8; BLOCK as usize];
            self.partial.extend_from_slice(buf);
            let whole = self.partial.len() / BLOCK as usize * BLOCK as usize;
            for block in self.partial[..whole].chunks(BLOCK as usize) {
                if block != zeros {
                    self.blocks.insert(self.len / BLOCK, block.to_vec());
                }
                self.len += BLOCK;
            }
            self.partial.drain(..whole);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct SparseReader<'a> {
        image: &'a Sparse,
        pos: u64,
    }

    impl Read for SparseReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let (block, offset) = (self.pos / BLOCK, (self.pos % BLOCK) as usize);
            let n = buf.len().min(BLOCK as usize - offset).min(self.image.len.saturating_sub(self.pos) as usize);
            match self.image.blocks.get(&block) {
                Some(bytes) => buf[..n].copy_from_slice(&bytes[offset..offset + n]),
                None => buf[..n].fill(0),
            }
            self.pos += n as u64;
            Ok(n)
        }
    }

    impl Seek for SparseReader<'_> {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.pos = match to {
                SeekFrom::Start(at) => at,
                SeekFrom::End(delta) => self.image.len.checked_add_signed(delta).unwrap(),
                SeekFrom::Current(delta) => self.pos.checked_add_signed(delta).unwrap(),
            };
            Ok(self.pos)
        }
    }

    #[test]
    fn a_file_over_4_gib_gets_an_extended_inode_and_64_bit_size() {
        // A sparse host file, so the test needs no disk (on tmpfs where there is one, whose
        // holes read fastest); the image is kept sparsely too.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let host = dir.path().join("big");
        let size = (4u64 << 30) + 5000;
        let file = std::fs::File::create(&host).unwrap();
        file.set_len(size).unwrap();
        let marks = [(0, &b"first block"[..]), ((4 << 30) - 3, b"across 4 GiB"), (size - 904, &pattern(904, 9))];
        for (at, bytes) in marks {
            std::os::unix::fs::FileExt::write_at(&file, bytes, at).unwrap();
        }
        // `sha256sum` of that file, so the test reads its 4 GiB twice (writing, and reading the
        // image back), not three times.
        let sha256 =
            crate::base::hash::parse_hex("45a14ad6f331f054f29fd4d42a0db7b3d2db564aff7f332d7ae6348ee45fc1c9").unwrap();
        let mut plan = plan(EPOCH, vec![item("small", Spec::File(b"small".to_vec()), 0o644)]);
        let content = Content::host(&host, size, sha256);
        plan.entries.insert(
            0,
            PlanEntry {
                path: image_path(b"big"),
                node: Node::File { content, link_to: None, carries_data: true },
                mode: 0o600,
                uid: 0,
                gid: 0,
                ino: 2,
                nlink: 1,
            },
        );
        let out = write(&plan, &spool(), Sparse::default(), &crate::base::progress::Silent).unwrap();
        assert_eq!(out.len, image_size(&plan).unwrap());
        let entries = read(SparseReader { image: &out, pos: 0 }).unwrap();
        assert_eq!((entries[1].path.as_slice(), entries[1].size, entries[1].sha256), (&b"big"[..], size, Some(sha256)));
        assert_eq!(entries[2].sha256, Some(crate::base::hash::digest_bytes(b"small")));

        // The kernel reads it back, sparsely stored on the host as well.
        let image = dir.path().join("image.erofs");
        let file = std::fs::File::create(&image).unwrap();
        file.set_len(out.len).unwrap();
        for (block, bytes) in &out.blocks {
            std::os::unix::fs::FileExt::write_at(&file, bytes, block * BLOCK).unwrap();
        }
        if have("dump.erofs", "a_file_over_4_gib_gets_an_extended_inode") {
            let text = dump(&image, b"big");
            assert!(text.contains(&format!("Size: {size} ")) && text.contains("Inode size: 64 "), "{text}");
        }
        if let Some(mounted) = mount(&image, &dir.path().join("mnt"), "a_file_over_4_gib_gets_an_extended_inode") {
            let big = std::fs::File::open(mounted.root.join("big")).unwrap();
            assert_eq!(big.metadata().unwrap().len(), size);
            for (at, bytes) in marks {
                let mut found = vec![0u8; bytes.len()];
                std::os::unix::fs::FileExt::read_exact_at(&big, &mut found, at).unwrap();
                assert_eq!(found, bytes, "at {at}");
            }
        }
    }

    #[test]
    fn a_directory_that_contains_itself_is_an_error() {
        let plan = plan(EPOCH, vec![item("d", Spec::Dir, 0o755), item("d/f", Spec::File(b"x".to_vec()), 0o644)]);
        let mut out = image(&plan);
        let entries = read(Cursor::new(&out)).unwrap();
        let (dir, file) = (entries[1].ino, entries[2].ino);
        // `f`'s entry in `d`: its nid, name offset, type "regular file"; point it at `d`.
        let at =
            out.windows(12).position(|w| w[..8] == file.to_le_bytes() && w[10] == FT_REG_FILE && w[11] == 0).unwrap();
        out[at..at + 8].copy_from_slice(&dir.to_le_bytes());
        let err = read(Cursor::new(&out)).unwrap_err();
        assert!(err.message().contains("already reached by another name"), "{err}");
    }
}
