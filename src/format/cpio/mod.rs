//! The cpio "newc" format (the kernel's initramfs format), written by hand.
//!
//! The `cpio` crate takes names only as `&str` (image paths are bytes and need not be UTF-8) and
//! does not notice when an entry's data is shorter than its header says, so it cannot promise
//! the exact bytes an image needs. The format is small: each entry is a 110-byte ASCII header
//! (`070701` and thirteen 8-digit hex fields), the name with a NUL, padding to a multiple of 4,
//! the data, padding to a multiple of 4; a `TRAILER!!!` entry ends the archive. See the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`. [`write::Writer`] writes an archive;
//! [`read::Reader`] reads any newc or newc-with-CRC archive (GNU cpio's, the kernel's
//! `gen_init_cpio`'s, distributions'), with every size it is told checked before anything is
//! allocated.

pub mod read;
pub mod write;

pub use read::{Item, Reader};
pub use write::{TRAILER_HEADER, Writer, entry_len, header_bytes};

/// newc header magic without CRCs.
const MAGIC: &[u8; 6] = b"070701";
/// newc header magic with CRCs (the `check` field holds a sum of the data bytes).
const MAGIC_CRC: &[u8; 6] = b"070702";
/// Bytes of a header before the name: the magic and thirteen 8-digit hex fields.
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

/// The largest value a header field holds: files of 4 GiB or more and times after
/// 2106-02-07 06:28:15 UTC cannot be stored.
pub const FIELD_MAX: u64 = u32::MAX as u64;

/// One entry's header fields, as the writer takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub ino: u32,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// Bytes of data that follow the header.
    pub size: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Whether `bytes` start a newc archive.
pub fn is_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_CRC)
}

/// Bytes of zeros that follow `offset` bytes to make them a multiple of 4.
fn padding(offset: u64) -> usize {
    (4 - (offset % 4) as usize) % 4
}
