//! Reading any uncompressed EROFS image, as untrusted input (see the module documentation of
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};

use sha2::{Digest as _, Sha256};

use super::*;
use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::Digest;
use crate::base::path::PATH_MAX;
use crate::format::{Entry, FileType};

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

/// Every entry of an EROFS image, the root first (its name empty), in path order (bytewise, as
/// bake writes them). Names are paths without a leading `/`.
pub fn read(input: impl Read + Seek) -> Result<Vec<Entry>> {
    let mut image = Image::open(input)?;
    let root = image.inode(image.root_nid, b"")?;
    if FileType::from_mode(root.mode) != Some(FileType::Dir) {
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
            if child.len() >= PATH_MAX {
                return Err(bad(format!("`{}...` is longer than {} bytes", shown(&child[..64]), PATH_MAX)));
            }
            let inode = image.inode(nid, &child)?;
            entries.push(image.entry(child.clone(), &inode)?);
            if FileType::from_mode(inode.mode) == Some(FileType::Dir) {
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
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// Where the first byte of the regular file at `path` (without a leading `/`) lies in the
/// image: for changing it on purpose, to test that a verified disk refuses to read it.
pub fn locate(input: impl Read + Seek, path: &[u8]) -> Result<u64> {
    let mut image = Image::open(input)?;
    let mut inode = image.inode(image.root_nid, b"")?;
    let mut walked = Vec::new();
    for name in path.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        if FileType::from_mode(inode.mode) != Some(FileType::Dir) {
            return Err(Error::input(format!("`{}` is not a directory", shown(&walked))));
        }
        let entries = image.dirents(&inode, &walked, MAX_ENTRIES)?;
        let nid = entries.iter().find(|(n, _)| n == name).map(|&(_, nid)| nid);
        if !walked.is_empty() {
            walked.push(b'/');
        }
        walked.extend_from_slice(name);
        let nid = nid.ok_or_else(|| Error::input(format!("`{}` is not in the image", shown(&walked))))?;
        inode = image.inode(nid, &walked)?;
    }
    if FileType::from_mode(inode.mode) != Some(FileType::File) || inode.size == 0 {
        return Err(Error::input(format!("`{}` is not a regular file with data", shown(&walked))));
    }
    match image.map(&inode, 0, &walked)? {
        (Some(at), _) => Ok(at),
        (None, _) => Err(Error::input(format!("`{}` starts with a hole", shown(&walked)))),
    }
}

fn bad(message: String) -> Error {
    Error::input(format!("bad EROFS image: {message}"))
}

fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
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
        self.check_layout(&inode, path)?;
        Ok(inode)
    }

    /// Refuses an inode of a file type or a data layout this reader does not know.
    fn check_layout(&self, inode: &RawInode, path: &[u8]) -> Result<()> {
        let (nid, mode) = (inode.nid, inode.mode);
        if FileType::from_mode(mode).is_none() {
            return Err(bad(format!("`{}` (nid {nid}) has an unknown file type in mode {mode:o}", shown(path))));
        }
        match inode.layout {
            FLAT_PLAIN | FLAT_INLINE => {}
            // Only regular files are chunk-based: chunks may repeat blocks, which must not
            // multiply directories.
            CHUNK_BASED if self.chunked && FileType::from_mode(mode) == Some(FileType::File) => {}
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
        Ok(())
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
            name: path,
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            nlink: inode.nlink,
            mtime: inode.mtime,
            size: inode.size,
            ino: inode.nid,
            dev: (0, 0),
            rdev: (0, 0),
            sha256: None,
            target: None,
        };
        match FileType::from_mode(inode.mode) {
            Some(FileType::File) => entry.sha256 = Some(self.digest(inode, &entry.name)?),
            Some(FileType::Symlink) => {
                if inode.size == 0 || inode.size >= PATH_MAX as u64 {
                    return Err(bad(format!("symlink `{}` has a target of {} bytes", shown(&entry.name), inode.size)));
                }
                let mut target = vec![0u8; inode.size as usize];
                self.read_data(inode, 0, &mut target, &entry.name)?;
                entry.target = Some(target);
            }
            Some(FileType::Char | FileType::Block) => entry.rdev = decode_dev(inode.i_u),
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

/// A device number as the kernel's `new_decode_dev` unpacks it: (major, minor).
fn decode_dev(rdev: u32) -> (u32, u32) {
    ((rdev & 0xfff00) >> 8, (rdev & 0xff) | ((rdev >> 12) & 0xfff00))
}
