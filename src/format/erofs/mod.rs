//! EROFS, the kernel's read-only file system, written by hand ([`write()`](write::write)) and read back ([`read()`](read::read)).
//!
//! Nobody else's tool gives the bytes a reproducible image needs: `mkfs.erofs` takes owners and
//! times from a staging tree, writes a random UUID by default, and its layout changes with its
//! version. So the image is written here from the on-disk format (the kernel's
//! `Documentation/filesystems/erofs.rst` and `fs/erofs/erofs_fs.h`): uncompressed, 4 KiB blocks,
//! no extended attributes, no optional features but the superblock checksum.
//!
//! What is written is a pure function of the entries given, their contents and [`write::Options`]:
//!
//! - The superblock's build time is the epoch given, and so is every mtime; the UUID is given
//!   too (bake derives it from the content: `output::erofs`). Nothing random or host-dependent
//!   goes in.
//! - An inode is compact (32 bytes) unless its owner, link count or size needs the extended
//!   (64-byte) form. It keeps the inode number given (the root's is 0); a hard link is one
//!   inode with several names, and its data is written once.
//! - Data is `FLAT_PLAIN` (whole blocks) or `FLAT_INLINE`: the whole blocks, then the last
//!   partial block ("tail") packed right after the inode, which the format allows only where
//!   inode and tail fit in one block; a tail that cannot is padded to a block of its own.
//! - Inodes, with their tails, are taken in the order given (path order) and each put in the metadata block
//!   with the least room that holds it (best fit, the earliest block among equals), or a new
//!   one. The root comes first, so its nid is 0 (the superblock has 16 bits for it).
//! - Directories hold `.` and `..` and their entries sorted by name bytes (lookups binary-search
//!   them), packed into blocks so that no entry and no name crosses a block.
//!
//! The layout is decided from the entries alone (every size is known), so the image can be written
//! strictly in order into any `Write`. For that, each metadata block is preceded by the data
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
//! [`read()`](read::read) lists any uncompressed EROFS image (flat and chunk-based files, inline extended
//! attributes skipped), `mkfs.erofs`'s as well as ours, for `bake inspect` and `bake diff`. Its
//! input is untrusted: every offset is checked against the image length before it is read,
//! nothing is allocated by a size the image claims, depth, path length, entry count and the
//! bytes hashed are bounded, and a directory reached twice is an error.

pub mod read;
#[cfg(test)]
mod tests;
pub mod write;

pub use read::read;
pub use write::{Node, Options, image_size, write};

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

/// Whether `bytes` (at least the first 1028 of a file) start an EROFS image.
pub fn is_magic(bytes: &[u8]) -> bool {
    bytes.get(SUPER_OFFSET..SUPER_OFFSET + 4) == Some(&MAGIC.to_le_bytes()[..])
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

fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | (u64::from(le32(bytes, at + 4)) << 32)
}
