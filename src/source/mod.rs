//! Where the image's contents come from. Each reader takes one input as a stream, in its own
//! order, never unpacking anything onto the host, and lays what it finds into a [`Sink`] (the
//! plan's tree) as [`Node`]s: [`dir`] a host directory, [`tar`] a tar archive, [`deb`] the data
//! of a Debian package, [`kernel`] a kernel package's image and modules. Archive members' bytes
//! wait in the [`content::Spool`] until an output is written. [`apt`] and [`packages`] turn
//! Debian package names into pinned `.deb` files in the cache; the [`store`] keeps what was read
//! out of an archive for the next build.

pub mod apt;
pub mod content;
pub mod deb;
pub mod digest_cache;
pub mod dir;
pub mod kernel;
pub mod packages;
pub mod store;
pub mod stored_archive;
pub mod stub;
pub mod tar;

use crate::base::error::{Error, Result};
use crate::base::hash::Digest;
use crate::base::path::ImagePath;
use crate::format::FileType;
use crate::recipe::{DeviceKind, InputKind};
use content::Content;

/// What an entry of the image is, with what it holds: the same for every reader, the plan's
/// tree and the plan itself.
#[derive(Clone, Debug)]
pub enum Node {
    Dir,
    /// A regular file (names that share one are hard links of it).
    File {
        content: Content,
    },
    Symlink {
        target: Vec<u8>,
    },
    Device {
        kind: DeviceKind,
        major: u32,
        minor: u32,
    },
}

impl Node {
    pub fn file_type(&self) -> FileType {
        match self {
            Node::Dir => FileType::Dir,
            Node::File { .. } => FileType::File,
            Node::Symlink { .. } => FileType::Symlink,
            Node::Device { kind, .. } => kind.file_type(),
        }
    }
}

/// Permission bits and owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits, `0o7777` at most.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Meta {
    pub const fn root(mode: u32) -> Meta {
        Meta { mode, uid: 0, gid: 0 }
    }
}

/// Where a reader lays what it reads: the image being assembled, one input at a time.
pub trait Sink {
    /// Places `node` with `meta` at `path`, as a new inode.
    fn insert(&mut self, path: &ImagePath, node: Node, meta: Meta) -> Result<()>;
    /// Gives the regular file already at `target` the further name `path` (a hard link).
    fn link(&mut self, path: &ImagePath, target: &ImagePath) -> Result<()>;
    /// Refuses a regular file of `size` bytes that the outputs cannot hold; `what` names it.
    fn check_file_size(&self, what: &str, size: u64) -> Result<()>;
}

/// Refuses a file of `size` bytes when it is not smaller than `limit` (the largest file the
/// requested outputs can hold: a cpio newc archive's, or none); `what` names it.
pub fn check_file_size(what: &str, size: u64, limit: u64) -> Result<()> {
    if size < limit {
        return Ok(());
    }
    Err(Error::input(format!("{what} is {size} bytes: a cpio newc archive cannot hold files of 4 GiB or more")))
}

/// An input the image was made from, as the manifest and the lock file record it.
#[derive(Debug, Clone)]
pub struct Input {
    pub kind: InputKind,
    /// The path as written in the recipe (relative to it), so the manifest does not depend on
    /// where the recipe was built; for a package, its Debian file name.
    pub path: String,
    pub sha256: Digest,
}
