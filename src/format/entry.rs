//! One entry of an image as a reader finds it, the same for every format: `bake inspect`,
//! `bake diff` and `bake verify` see a cpio archive and an EROFS file system alike.

use crate::base::hash::Digest;
use crate::format::FileType;

/// Longest symlink target a reader takes into memory.
pub const MAX_TARGET: u64 = 64 * 1024;

/// One entry of an image, with its data summarised: a regular file by its digest, a symlink by
/// its target. Nothing else of the data is kept, so an image of any size is read in little
/// memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name as the image stores it (a cpio archive may write `./etc` or `etc`; an EROFS
    /// path has no leading `/` and the root is empty).
    pub name: Vec<u8>,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    /// Names of one hard-linked file share it (within one archive or file system).
    pub ino: u64,
    pub mtime: u64,
    /// Bytes of data the entry carries (a symlink's target length; in cpio, 0 for all but one
    /// name of a hard-linked file).
    pub size: u64,
    /// The device the file was on, as cpio records it (major, minor); 0 in a file system.
    pub dev: (u32, u32),
    /// A device node's number (major, minor).
    pub rdev: (u32, u32),
    /// The sha256 of a regular file's data (of the data this entry carries).
    pub sha256: Option<Digest>,
    /// A symlink's target.
    pub target: Option<Vec<u8>>,
}

impl Entry {
    /// The entry's type; `None` for type bits no file type has.
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    /// The path in the image, as the kernel resolves it: without `./`, leading or trailing `/`
    /// (`.` and the empty name are the root, shown as `/`).
    pub fn path(&self) -> String {
        let name = String::from_utf8_lossy(&self.name);
        let trimmed = name.trim_start_matches("./").trim_matches('/');
        if trimmed.is_empty() || trimmed == "." { "/".to_string() } else { format!("/{trimmed}") }
    }
}
