//! A host directory as a layer.
//!
//! The tree is walked in sorted name order and symlinks are stored as symlinks, never followed.
//! Only the kind of each entry and, for files, the exec bit are taken from the host: files are
//! 0755 when any exec bit is set and 0644 otherwise, directories 0755, and everything is owned by
//! root. A checkout's umask, owner, timestamps and setuid bits therefore never reach the image;
//! what needs other bits or owners says so in the recipe. Host hard links are stored as separate
//! files, because whether two paths share an inode depends on how the tree was copied. Sockets,
//! FIFOs and device nodes are refused: a recipe declares those with `[[device]]`.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::content::Content;
use super::digest_cache::{Remembered, Stat};
use super::{Meta, Node, Sink, check_file_size};
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::Digest;
use crate::base::interrupt;
use crate::base::path::ImagePath;
use crate::format::limits::check_symlink_target;

/// A host directory walked and hashed, ready to be laid into a tree.
pub struct Scanned {
    items: Vec<Item>,
    /// Each file's digest and size, in walk order.
    digests: Vec<(Digest, u64)>,
    /// A digest of everything taken from the directory (names, kinds, bits, link targets,
    /// content digests), which stands for it as an input.
    pub summary: Digest,
}

/// Walks `root` and hashes its files, on every core; files larger than `file_limit` are refused.
/// With a cache folder, the digests of files unchanged since an earlier scan are taken from
/// it ([`crate::source::digest_cache`]) rather than read again.
pub fn scan(root: &Path, file_limit: u64, cache: Option<&Path>) -> Result<Scanned> {
    let meta = std::fs::metadata(root).reading(root)?;
    if !meta.is_dir() {
        return Err(Error::input(format!("`{}` is not a directory", root.display())));
    }
    let remembered = cache.map(|cache| Remembered::load(cache, root));
    let items = walk(root, file_limit)?;
    let files: Vec<(&Item, Stat)> = items
        .iter()
        .filter_map(|i| match i.what {
            What::File { stat, .. } => Some((i, stat)),
            _ => None,
        })
        .collect();
    let mut digests: Vec<Option<(Digest, u64)>> =
        files.iter().map(|(item, stat)| remembered.as_ref().and_then(|r| r.get(item.path.as_bytes(), stat))).collect();
    let unknown: Vec<&Path> =
        files.iter().zip(&digests).filter(|(_, known)| known.is_none()).map(|((item, _), _)| &*item.host).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut hashed = crate::base::hash::digest_files(&unknown, threads).into_iter();
    for digest in digests.iter_mut().filter(|d| d.is_none()) {
        *digest = Some(hashed.next().expect("one digest per unknown file")?);
    }
    let digests: Vec<(Digest, u64)> = digests.into_iter().map(|d| d.expect("every file hashed")).collect();
    if let Some(remembered) = remembered {
        remembered
            .save(files.iter().zip(&digests).map(|((item, stat), (digest, _))| (item.path.as_bytes(), *stat, *digest)));
    }

    let mut summary = Sha256::new();
    let mut files = digests.iter();
    for item in &items {
        let (tag, mode, detail): (u8, u32, &[u8]) = match &item.what {
            What::Dir => (b'd', 0o755, &[]),
            What::Symlink(target) => (b'l', 0o777, target),
            What::File { executable, .. } => {
                let (sha256, size) = files.next().expect("one digest per file");
                check_file_size(&format!("`{}`", item.host.display()), *size, file_limit)?;
                (b'f', file_mode(*executable), sha256)
            }
        };
        summary.update([tag]);
        summary.update(format!("{mode:o}").as_bytes());
        summary.update([0]);
        summary.update(item.path.as_bytes());
        summary.update([0]);
        summary.update(detail);
        summary.update([b'\n']);
    }
    Ok(Scanned { items, digests, summary: summary.finalize().into() })
}

impl Scanned {
    /// Lays the directory's entries into `sink`, in walk order.
    pub fn lay(self, sink: &mut dyn Sink) -> Result<()> {
        let mut digests = self.digests.into_iter();
        for item in self.items {
            let (node, mode) = match item.what {
                What::Dir => (Node::Dir, 0o755),
                What::Symlink(target) => (Node::Symlink { target }, 0o777),
                What::File { executable, .. } => {
                    let (sha256, size) = digests.next().expect("one digest per file");
                    (Node::File { content: Content::host(&item.host, size, sha256) }, file_mode(executable))
                }
            };
            sink.insert(&item.path, node, Meta::root(mode))?;
        }
        Ok(())
    }
}

fn file_mode(executable: bool) -> u32 {
    if executable { 0o755 } else { 0o644 }
}

/// One entry of the walk.
struct Item {
    host: PathBuf,
    path: ImagePath,
    what: What,
}

enum What {
    Dir,
    Symlink(Vec<u8>),
    File { executable: bool, stat: Stat },
}

/// Every entry under `root` in sorted order, refusing what a dir layer cannot hold.
fn walk(root: &Path, file_limit: u64) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for item in walkdir::WalkDir::new(root).min_depth(1).follow_links(false).sort_by_file_name() {
        interrupt::stop_point()?;
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            Error::input(format!(
                "cannot read `{}`: {}",
                path.display(),
                e.io_error().map_or(e.to_string(), crate::base::error::io_cause)
            ))
        })?;
        let host = item.path();
        let relative = host.strip_prefix(root).unwrap_or(host);
        let path = ImagePath::normalise(relative.as_os_str().as_bytes())
            .map_err(|e| Error::input(format!("`{}`: {e}", host.display())))?;
        let file_type = item.file_type();
        let what = if file_type.is_dir() {
            What::Dir
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(host).reading(host)?;
            let target = target.as_os_str().as_bytes().to_vec();
            check_symlink_target(&target).map_err(|e| e.context(format!("`{}`", host.display())))?;
            What::Symlink(target)
        } else if file_type.is_file() {
            let host_meta =
                item.metadata().map_err(|e| Error::input(format!("cannot read `{}`: {e}", host.display())))?;
            // Checked here too, so a file too large for the image is refused before any hashing.
            check_file_size(&format!("`{}`", host.display()), host_meta.len(), file_limit)?;
            What::File { executable: host_meta.permissions().mode() & 0o111 != 0, stat: Stat::of(&host_meta) }
        } else {
            return Err(Error::input(format!(
                "`{}` is {}: a dir layer can hold only files, directories and symlinks; declare \
                 device nodes and FIFOs with [[device]]",
                host.display(),
                special_kind(&file_type)
            )));
        };
        items.push(Item { host: host.to_path_buf(), path, what });
    }
    Ok(items)
}

fn special_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_socket() {
        "a socket"
    } else if file_type.is_fifo() {
        "a fifo"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "of an unknown kind"
    }
}
