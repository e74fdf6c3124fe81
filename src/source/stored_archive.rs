//! Tar archives and Debian packages in the input store ([`super::store`]): what reading one
//! laid into its sink, in order (every directory, file, symlink, device and hard link with its
//! bits and owner), what dpkg keeps of a package, and each file's bytes as a blob. A later
//! build replays that into its tree instead of decompressing the archive again; the tree, and
//! so the image, is the same (`tests/kernel.rs` compares every example built from the store,
//! into a fresh store and with `--no-cache`).
//!
//! Every blob is hashed before an entry is used: a damaged one drops the entry, and the archive
//! is read again. An archive whose paths or link targets are not UTF-8 is not stored (it is
//! read every time).

use serde::{Deserialize, Serialize};

use super::content::{Content, Spool};
use super::deb::Installed;
use super::store::Entry;
use super::{Meta, Node, Sink};
use crate::base::error::{Error, Result};
use crate::base::hash::{hex, parse_hex};
use crate::base::path::ImagePath;
use crate::recipe::DeviceKind;

/// One step of laying the archive in.
#[derive(Serialize, Deserialize, Clone)]
enum Step {
    Dir { path: String, mode: u32, uid: u32, gid: u32 },
    File { path: String, mode: u32, uid: u32, gid: u32, sha256: String, size: u64 },
    Symlink { path: String, target: String, uid: u32, gid: u32 },
    Device { path: String, mode: u32, uid: u32, gid: u32, kind: DeviceKind, major: u32, minor: u32 },
    Link { path: String, target: String },
}

/// What dpkg keeps of a package, as [`Installed`] has it.
#[derive(Serialize, Deserialize)]
struct StoredInstalled {
    control: String,
    md5sums: Option<String>,
    conffiles: Option<String>,
    postinst: Option<String>,
    paths: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    steps: Vec<Step>,
    installed: Option<StoredInstalled>,
}

/// A sink that passes everything on and writes it down, for the store.
pub struct Recorder<'s> {
    inner: &'s mut dyn Sink,
    steps: Vec<Step>,
    files: Vec<Content>,
    /// Cleared when something cannot be stored (a path that is not UTF-8).
    storable: bool,
}

impl<'s> Recorder<'s> {
    pub fn new(inner: &'s mut dyn Sink) -> Recorder<'s> {
        Recorder { inner, steps: Vec::new(), files: Vec::new(), storable: true }
    }

    fn text(&mut self, bytes: &[u8]) -> String {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => {
                self.storable = false;
                String::new()
            }
        }
    }

    /// Files what was recorded in `entry` (the blobs read back from `spool`), with what dpkg
    /// keeps of a package. Nothing is stored for an archive that cannot be.
    pub fn store(self, entry: &Entry, installed: Option<&Installed>, spool: &Spool) -> Result<()> {
        if !self.storable {
            return Ok(());
        }
        let store_error = |e: std::io::Error| Error::failure(format!("the input store: {e}"));
        for content in &self.files {
            let mut reader = content.open(spool)?;
            entry.put_blob(&content.sha256, &mut reader).map_err(store_error)?;
        }
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
        let installed = match installed {
            None => None,
            Some(i) => {
                let paths: Option<Vec<String>> = i.paths.iter().map(|p| text(p.as_bytes())).collect();
                let (Some(control), Some(paths)) = (text(&i.control), paths) else { return Ok(()) };
                let optional = |b: &Option<Vec<u8>>| b.as_deref().map(text);
                let (md5sums, conffiles, postinst) =
                    (optional(&i.md5sums), optional(&i.conffiles), optional(&i.postinst));
                if [&md5sums, &conffiles, &postinst].iter().any(|o| matches!(o, Some(None))) {
                    return Ok(());
                }
                Some(StoredInstalled {
                    control,
                    md5sums: md5sums.flatten(),
                    conffiles: conffiles.flatten(),
                    postinst: postinst.flatten(),
                    paths,
                })
            }
        };
        entry.write_index(&Stored { steps: self.steps, installed }).map_err(store_error)
    }
}

impl Sink for Recorder<'_> {
    fn insert(&mut self, path: &ImagePath, node: Node, meta: Meta) -> Result<()> {
        let p = self.text(path.as_bytes());
        let Meta { mode, uid, gid } = meta;
        let step = match &node {
            Node::Dir => Step::Dir { path: p, mode, uid, gid },
            Node::File { content } => {
                self.files.push(content.clone());
                Step::File { path: p, mode, uid, gid, sha256: hex(&content.sha256), size: content.size }
            }
            Node::Symlink { target } => {
                let target = self.text(target);
                Step::Symlink { path: p, target, uid, gid }
            }
            Node::Device { kind, major, minor } => {
                Step::Device { path: p, mode, uid, gid, kind: *kind, major: *major, minor: *minor }
            }
        };
        self.steps.push(step);
        self.inner.insert(path, node, meta)
    }

    fn link(&mut self, path: &ImagePath, target: &ImagePath) -> Result<()> {
        let (p, t) = (self.text(path.as_bytes()), self.text(target.as_bytes()));
        self.steps.push(Step::Link { path: p, target: t });
        self.inner.link(path, target)
    }

    fn check_file_size(&self, what: &str, size: u64) -> Result<()> {
        self.inner.check_file_size(what, size)
    }
}

/// Lays the archive `entry` holds into `sink`, and returns what dpkg keeps of it (for a
/// package stored with it); `None`, having laid nothing, when the entry is missing, damaged
/// (then dropped) or lacks the dpkg record a package (`installed`) needs, so the caller reads
/// the archive. `label` names the archive in errors.
pub fn replay(entry: &Entry, label: &str, sink: &mut dyn Sink, installed: bool) -> Result<Option<Option<Installed>>> {
    let Some(stored) = entry.read_index::<Stored>() else { return Ok(None) };
    if installed && stored.installed.is_none() {
        return Ok(None);
    }
    // Every blob must still have its bytes (hashed on two threads), or the entry goes.
    let mut blobs = Vec::new();
    for step in &stored.steps {
        if let Step::File { sha256, size, .. } = step {
            let Some(digest) = parse_hex(sha256) else { return Ok(drop_entry(entry)) };
            blobs.push((entry.blob_path(&digest), *size, digest));
        }
    }
    let wanted: Vec<_> = blobs.iter().map(|&(_, size, digest)| (digest, size)).collect();
    if !entry.blobs_intact(&wanted) {
        return Ok(drop_entry(entry));
    }
    let path = |p: &str| {
        ImagePath::from_member(p.as_bytes())
            .map_err(|e| Error::input(format!("`{label}` in the input store: entry `{p}`: {e}")))
    };
    let in_archive = |e: Error| e.context(format!("`{label}`"));
    let mut blobs = blobs.into_iter();
    for step in stored.steps {
        match step {
            Step::Dir { path: p, mode, uid, gid } => {
                sink.insert(&path(&p)?, Node::Dir, Meta { mode, uid, gid }).map_err(in_archive)?;
            }
            Step::File { path: p, mode, uid, gid, .. } => {
                let (blob, size, digest) = blobs.next().expect("one blob per file");
                sink.check_file_size(&format!("`{label}`: entry `{p}`"), size)?;
                let content = Content::host(&blob, size, digest);
                sink.insert(&path(&p)?, Node::File { content }, Meta { mode, uid, gid }).map_err(in_archive)?;
            }
            Step::Symlink { path: p, target, uid, gid } => {
                let node = Node::Symlink { target: target.into_bytes() };
                sink.insert(&path(&p)?, node, Meta { mode: 0o777, uid, gid }).map_err(in_archive)?;
            }
            Step::Device { path: p, mode, uid, gid, kind, major, minor } => {
                sink.insert(&path(&p)?, Node::Device { kind, major, minor }, Meta { mode, uid, gid })
                    .map_err(in_archive)?;
            }
            Step::Link { path: p, target } => {
                sink.link(&path(&p)?, &path(&target)?).map_err(in_archive)?;
            }
        }
    }
    let installed = match stored.installed {
        None => None,
        Some(i) => Some(Installed {
            control: i.control.into_bytes(),
            md5sums: i.md5sums.map(String::into_bytes),
            conffiles: i.conffiles.map(String::into_bytes),
            postinst: i.postinst.map(String::into_bytes),
            paths: i.paths.iter().map(|p| path(p)).collect::<Result<_>>()?,
        }),
    };
    Ok(Some(installed))
}

/// Removes a damaged entry; says the caller should read the archive.
fn drop_entry<T>(entry: &Entry) -> Option<T> {
    entry.remove();
    None
}
