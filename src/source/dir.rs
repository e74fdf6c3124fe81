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
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::content::Content;
use crate::error::{Error, IoContext, Result};
use crate::hash::{Digest, digest_file};
use crate::path::ImagePath;
use crate::tree::{Entry, Kind, Meta, Origin, Tree};

/// Lays the directory `root` into `tree` and returns a digest of everything taken from it (names,
/// kinds, bits, link targets, content digests), which stands for the directory as an input.
pub fn read(root: &Path, tree: &mut Tree, origin: Origin) -> Result<Digest> {
    let meta = std::fs::metadata(root).reading(root)?;
    if !meta.is_dir() {
        return Err(Error::input(format!("`{}` is not a directory", root.display())));
    }
    let mut summary = Sha256::new();
    for item in walkdir::WalkDir::new(root).min_depth(1).follow_links(false).sort_by_file_name() {
        crate::interrupt::check().map_err(|e| Error::failure(e.to_string()))?;
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            Error::input(format!(
                "cannot read `{}`: {}",
                path.display(),
                e.io_error().map_or(e.to_string(), crate::error::io_cause)
            ))
        })?;
        let host = item.path();
        let relative = host.strip_prefix(root).unwrap_or(host);
        let path = ImagePath::normalise(relative.as_os_str().as_bytes())
            .map_err(|e| Error::input(format!("`{}`: {e}", host.display())))?;
        let file_type = item.file_type();
        let (kind, mode, detail) = if file_type.is_dir() {
            (Kind::Dir { implied: false }, 0o755, Vec::new())
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(host).reading(host)?;
            let target = target.as_os_str().as_bytes().to_vec();
            crate::tree::check_symlink_target(&target)
                .map_err(|e| Error::input(format!("`{}`: {e}", host.display())))?;
            (Kind::Symlink { target: target.clone() }, 0o777, target)
        } else if file_type.is_file() {
            let host_meta =
                item.metadata().map_err(|e| Error::input(format!("cannot read `{}`: {e}", host.display())))?;
            tree.check_file_size(&format!("`{}`", host.display()), host_meta.len())?;
            let host_mode = host_meta.permissions().mode();
            let (sha256, size) = digest_file(host)?;
            let mode = if host_mode & 0o111 != 0 { 0o755 } else { 0o644 };
            let inode = tree.new_inode();
            (Kind::File { content: Content::host(host, size, sha256), inode }, mode, sha256.to_vec())
        } else {
            return Err(Error::input(format!(
                "`{}` is {}: a dir layer can hold only files, directories and symlinks; declare \
                 device nodes and FIFOs with [[device]]",
                host.display(),
                special_kind(&file_type)
            )));
        };
        summary.update([kind_tag(&kind)]);
        summary.update(format!("{mode:o}").as_bytes());
        summary.update([0]);
        summary.update(path.as_bytes());
        summary.update([0]);
        summary.update(&detail);
        summary.update([b'\n']);
        tree.insert(&path, Entry { kind, meta: Meta::root(mode), origin })?;
    }
    Ok(summary.finalize().into())
}

fn kind_tag(kind: &Kind) -> u8 {
    match kind {
        Kind::Dir { .. } => b'd',
        Kind::File { .. } => b'f',
        Kind::Symlink { .. } => b'l',
        Kind::Device { .. } => b'c',
    }
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
