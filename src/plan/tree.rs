//! The image being assembled: every path with its type, bits and owner, and the rules for
//! laying one thing over another.
//!
//! Layers and recipe entries are applied in order, and the rules follow what a package manager
//! does on a real root file system, so the image is what a user would get by installing the
//! same things in the same order:
//!
//! - a later entry at a path replaces the earlier one; a directory over a directory only
//!   updates its bits and owner;
//! - a parent that nothing declared is created as a directory, 0755 root:root;
//! - a parent that is a symlink to a directory inside the image is followed, as dpkg does, so
//!   `/bin/sh` lands in `/usr/bin/sh` when `/bin` points to `usr/bin` (merged-/usr);
//!   likewise a directory entry over such a symlink keeps the symlink;
//! - a parent that is a file, a symlink that leads out of the image or loops, and a
//!   non-directory over a directory that still holds entries are errors naming both entries,
//!   never a silent rewrite.
//!
//! Hard links share the file they point to (its bytes and its inode), so removing or replacing
//! one name leaves the others as they were, as on a real file system.

use std::collections::BTreeMap;

use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::recipe::DeviceKind;
use crate::source::content::Content;

/// How many symlinks one lookup may follow before it is called a loop (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Where an entry came from, for messages: an index into [`Tree::origin_label`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin(u32);

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

#[derive(Clone, Debug)]
pub enum Kind {
    /// A directory; `implied` when it was only created as the parent of something.
    Dir {
        implied: bool,
    },
    /// A regular file. Names with the same `inode` are hard links of one file.
    File {
        content: Content,
        inode: u64,
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

impl Kind {
    /// What the entry is, in a word, for messages.
    pub fn noun(&self) -> &'static str {
        match self {
            Kind::Dir { .. } => "directory",
            Kind::File { .. } => "regular file",
            Kind::Symlink { .. } => "symlink",
            Kind::Device { kind: DeviceKind::Char, .. } => "character device",
            Kind::Device { kind: DeviceKind::Block, .. } => "block device",
            Kind::Device { kind: DeviceKind::Fifo, .. } => "fifo",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub meta: Meta,
    pub origin: Origin,
}

pub struct Tree {
    entries: BTreeMap<ImagePath, Entry>,
    origins: Vec<String>,
    next_inode: u64,
    max_file_size: u64,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree { entries: BTreeMap::new(), origins: Vec::new(), next_inode: 0, max_file_size: u64::MAX }
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    /// A tree whose regular files must be smaller than `limit` bytes (the largest file the
    /// requested outputs can hold), so an input that is too large is refused before its bytes
    /// are read.
    pub fn with_file_limit(limit: u64) -> Tree {
        Tree { max_file_size: limit, ..Tree::default() }
    }

    /// Refuses a file of `size` bytes that the outputs cannot hold; `what` names it.
    pub fn check_file_size(&self, what: &str, size: u64) -> Result<()> {
        check_file_size(what, size, self.max_file_size)
    }

    /// Registers a description of an input (`layer 2 (`base.tar`)`) for later messages.
    pub fn origin(&mut self, label: String) -> Origin {
        self.origins.push(label);
        Origin((self.origins.len() - 1) as u32)
    }

    pub fn origin_label(&self, origin: Origin) -> &str {
        &self.origins[origin.0 as usize]
    }

    /// A fresh inode key for a new regular file.
    pub fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    pub fn get(&self, path: &ImagePath) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ImagePath, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn has_children(&self, dir: &ImagePath) -> usize {
        self.entries.range(dir.below_start()..dir.below_end()).count()
    }

    /// Places `entry` at `path` (see the module documentation for the rules). Returns the path
    /// where it really went, which differs from `path` when a parent is a symlink.
    pub fn insert(&mut self, path: &ImagePath, entry: Entry) -> Result<ImagePath> {
        if path.is_root() {
            return match entry.kind {
                // The root's own bits are the kernel's to choose; a layer's `./` is accepted.
                Kind::Dir { .. } => Ok(ImagePath::root()),
                _ => Err(Error::input(format!(
                    "`/` from {} is a {}: the image root can only be a directory",
                    self.origin_label(entry.origin),
                    entry.kind.noun()
                ))),
            };
        }
        let parent = self
            .walk(&ImagePath::root(), path.parent().components(), path, entry.origin, Walk::Create, &mut 0)
            .map_err(|e| e.into_error(path))?;
        let Some(parent) = parent else { unreachable!("Walk::Create always yields a directory") };
        // Following symlinks can lengthen a path beyond what the kernel unpacks.
        self.check_length(&parent.join(path.file_name()), path, entry.origin)?;
        let physical = parent.join(path.file_name());
        let Some(existing) = self.entries.get(&physical) else {
            self.entries.insert(physical.clone(), entry);
            return Ok(physical);
        };
        let (existing_kind, existing_origin) = (existing.kind.clone(), existing.origin);
        match (&existing_kind, &entry.kind) {
            (Kind::Dir { .. }, Kind::Dir { implied: true }) => {}
            (Kind::Dir { .. }, Kind::Dir { implied: false }) => {
                self.entries.insert(physical.clone(), entry);
            }
            (Kind::Symlink { .. }, Kind::Dir { .. }) if self.lookup_dir(&physical, path, entry.origin).is_some() => {
                // dpkg keeps a symlink to a directory where a package ships the directory.
            }
            (Kind::Dir { .. }, _) if self.has_children(&physical) > 0 => {
                return Err(Error::input(format!(
                    "`{}` from {} is a {}, but `{}` is a directory from {} that holds {} entries: \
                     a non-directory cannot replace it; prune it first with `[remove]` or \
                     restructure the layers",
                    path,
                    self.origin_label(entry.origin),
                    entry.kind.noun(),
                    physical,
                    self.origin_label(existing_origin),
                    self.has_children(&physical)
                )));
            }
            _ => {
                self.entries.insert(physical.clone(), entry);
            }
        }
        Ok(physical)
    }

    /// Gives the regular file at `target` the further name `path` (a hard link).
    pub fn link(&mut self, path: &ImagePath, target: &ImagePath, origin: Origin) -> Result<ImagePath> {
        let target_dir = self
            .walk(&ImagePath::root(), target.parent().components(), path, origin, Walk::Lookup, &mut 0)
            .map_err(|e| e.into_error(path))?;
        let found = target_dir.map(|dir| dir.join(target.file_name())).and_then(|t| self.entries.get(&t));
        let file = match found {
            Some(entry @ Entry { kind: Kind::File { .. }, .. }) => entry.clone(),
            Some(other) => {
                return Err(Error::input(format!(
                    "hard link `{path}` from {} points to `{target}`, which is a {} from {}: \
                     hard links must point to regular files",
                    self.origin_label(origin),
                    other.kind.noun(),
                    self.origin_label(other.origin)
                )));
            }
            None => {
                return Err(Error::input(format!(
                    "hard link `{path}` from {} points to `{target}`, which is not in the image \
                     at that point",
                    self.origin_label(origin)
                )));
            }
        };
        self.insert(path, Entry { origin, ..file })
    }

    /// Refuses a path reached by following symlinks that the kernel could not create.
    fn check_length(&self, physical: &ImagePath, for_path: &ImagePath, origin: Origin) -> Result<()> {
        match ImagePath::normalise(physical.as_bytes()) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::input(format!(
                "`{for_path}` from {} cannot be placed: through symlinks it lands at `{physical}`: {e}",
                self.origin_label(origin)
            ))),
        }
    }

    /// Removes `path` and, for a directory, everything below it. Returns how many entries went.
    pub fn remove(&mut self, path: &ImagePath) -> usize {
        let below: Vec<ImagePath> =
            self.entries.range(path.below_start()..path.below_end()).map(|(p, _)| p.clone()).collect();
        let mut removed = usize::from(self.entries.remove(path).is_some());
        for p in below {
            removed += usize::from(self.entries.remove(&p).is_some());
        }
        removed
    }

    /// The physical path of the directory at `dir`, following symlinks, or `None` when there is
    /// no such directory. `for_path` and `origin` name the entry that asked, for messages.
    fn lookup_dir(&mut self, dir: &ImagePath, for_path: &ImagePath, origin: Origin) -> Option<ImagePath> {
        self.walk(&ImagePath::root(), dir.components(), for_path, origin, Walk::Lookup, &mut 0).ok().flatten()
    }

    /// Walks `components` (which may hold `..` and `.` when they come from a symlink target) from
    /// the directory `start`, following symlinks, and returns the physical directory reached.
    /// With [`Walk::Create`] missing directories are created (implied); with [`Walk::Lookup`] a
    /// missing one gives `None`. `follows` counts the symlinks followed in the whole lookup, which
    /// Linux caps at 40: that bounds loops and also chains that double at every step.
    fn walk<'c>(
        &mut self,
        start: &ImagePath,
        components: impl Iterator<Item = &'c [u8]>,
        for_path: &ImagePath,
        origin: Origin,
        mode: Walk,
        follows: &mut u32,
    ) -> std::result::Result<Option<ImagePath>, WalkError> {
        let mut current = start.clone();
        for name in components {
            match name {
                b"" | b"." => continue,
                b".." => {
                    if current.is_root() {
                        return Err(WalkError::Escape);
                    }
                    current = current.parent();
                    continue;
                }
                _ => {}
            }
            let next = current.join(name);
            let (kind, found_origin) = match self.entries.get(&next) {
                Some(entry) => (entry.kind.clone(), entry.origin),
                None => {
                    if mode == Walk::Lookup {
                        return Ok(None);
                    }
                    self.check_length(&next, for_path, origin).map_err(WalkError::Error)?;
                    let implied = Entry { kind: Kind::Dir { implied: true }, meta: Meta::root(0o755), origin };
                    self.entries.insert(next.clone(), implied);
                    current = next;
                    continue;
                }
            };
            current = match kind {
                Kind::Dir { .. } => next,
                Kind::Symlink { target } => {
                    *follows += 1;
                    if *follows > MAX_SYMLINKS {
                        return Err(WalkError::Error(Error::input(format!(
                            "`{for_path}` from {} cannot be placed: too many levels of symlinks at \
                             `{next}` from {} (a symlink loop?)",
                            self.origin_label(origin),
                            self.origin_label(found_origin)
                        ))));
                    }
                    let base = if target.first() == Some(&b'/') { ImagePath::root() } else { current.clone() };
                    let parts: Vec<&[u8]> = target.split(|&b| b == b'/').collect();
                    match self.walk(&base, parts.into_iter(), for_path, origin, mode, follows) {
                        Ok(Some(dir)) => dir,
                        Ok(None) => return Ok(None),
                        Err(WalkError::Escape) => {
                            return Err(WalkError::Error(Error::input(format!(
                                "`{for_path}` from {} cannot be placed: its parent `{next}` is a \
                                 symlink to `{}` from {}, which leads out of the image",
                                self.origin_label(origin),
                                String::from_utf8_lossy(&target),
                                self.origin_label(found_origin)
                            ))));
                        }
                        Err(e) => return Err(e),
                    }
                }
                other => {
                    return Err(WalkError::Error(Error::input(format!(
                        "`{for_path}` from {} cannot be placed: its parent `{next}` is a {} from {}",
                        self.origin_label(origin),
                        other.noun(),
                        self.origin_label(found_origin)
                    ))));
                }
            };
        }
        Ok(Some(current))
    }
}

/// Why a walk stopped: a `..` above the root is only known to be an escape by the symlink that
/// led there, which words the message.
enum WalkError {
    Escape,
    Error(Error),
}

impl WalkError {
    fn into_error(self, path: &ImagePath) -> Error {
        match self {
            WalkError::Escape => Error::input(format!("`{path}` cannot be placed: it leads out of the image")),
            WalkError::Error(e) => e,
        }
    }
}

/// Linux device numbers: 12 bits of major, 20 of minor.
pub fn check_device_numbers(major: u32, minor: u32) -> std::result::Result<(), String> {
    if major >= 1 << 12 || minor >= 1 << 20 {
        return Err(format!(
            "device {major}:{minor} is out of range: Linux majors are below 4096, minors below 1048576"
        ));
    }
    Ok(())
}

/// A symlink target the kernel can create: not empty, no NUL, shorter than `PATH_MAX`.
pub fn check_symlink_target(target: &[u8]) -> std::result::Result<(), String> {
    if target.is_empty() || target.contains(&0) {
        return Err("a symlink target must be non-empty and without NUL".to_string());
    }
    if target.len() >= crate::base::path::PATH_MAX {
        return Err(format!("a symlink target of {} bytes is longer than the kernel allows", target.len()));
    }
    Ok(())
}

/// Refuses a file of `size` bytes when it is not smaller than `limit`; `what` names it.
pub fn check_file_size(what: &str, size: u64, limit: u64) -> Result<()> {
    if size < limit {
        return Ok(());
    }
    Err(Error::input(format!("{what} is {size} bytes: a cpio newc archive cannot hold files of 4 GiB or more")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Create,
    Lookup,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::from_recipe(s).unwrap()
    }

    fn dir(origin: Origin) -> Entry {
        Entry { kind: Kind::Dir { implied: false }, meta: Meta::root(0o700), origin }
    }

    fn file(tree: &mut Tree, text: &str, origin: Origin) -> Entry {
        let inode = tree.new_inode();
        Entry { kind: Kind::File { content: Content::inline(text.as_bytes()), inode }, meta: Meta::root(0o644), origin }
    }

    fn symlink(target: &str, origin: Origin) -> Entry {
        Entry { kind: Kind::Symlink { target: target.as_bytes().to_vec() }, meta: Meta::root(0o777), origin }
    }

    fn paths(tree: &Tree) -> Vec<String> {
        tree.iter().map(|(p, _)| p.display()).collect()
    }

    #[test]
    fn missing_parents_are_implied_root_owned_0755_and_a_declaration_wins() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        let f = file(&mut tree, "x", o);
        tree.insert(&p("/a/b/c"), f).unwrap();
        assert_eq!(paths(&tree), ["/a", "/a/b", "/a/b/c"]);
        assert_eq!(tree.get(&p("/a")).unwrap().meta, Meta::root(0o755));
        tree.insert(&p("/a"), dir(o)).unwrap();
        assert_eq!(tree.get(&p("/a")).unwrap().meta.mode, 0o700);
        // A later implied parent does not undo the declaration.
        let g = file(&mut tree, "y", o);
        tree.insert(&p("/a/d"), g).unwrap();
        assert_eq!(tree.get(&p("/a")).unwrap().meta.mode, 0o700);
    }

    #[test]
    fn entries_under_a_symlinked_directory_go_through_it() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        tree.insert(&p("/usr/bin"), dir(o)).unwrap();
        tree.insert(&p("/bin"), symlink("usr/bin", o)).unwrap();
        let f = file(&mut tree, "sh", o);
        assert_eq!(tree.insert(&p("/bin/sh"), f).unwrap(), p("/usr/bin/sh"));
        // A directory entry over the symlink keeps the symlink, as dpkg does.
        tree.insert(&p("/bin"), dir(o)).unwrap();
        assert!(matches!(tree.get(&p("/bin")).unwrap().kind, Kind::Symlink { .. }));
        assert_eq!(paths(&tree), ["/bin", "/usr", "/usr/bin", "/usr/bin/sh"]);
        // Absolute targets and chains of links resolve inside the image.
        tree.insert(&p("/sbin"), symlink("/bin", o)).unwrap();
        let f = file(&mut tree, "init", o);
        assert_eq!(tree.insert(&p("/sbin/init"), f).unwrap(), p("/usr/bin/init"));
    }

    #[test]
    fn a_parent_that_is_a_file_is_an_error_naming_both_entries() {
        let mut tree = Tree::new();
        let a = tree.origin("layer 1 (`a.tar`)".into());
        let b = tree.origin("layer 2 (`b.tar`)".into());
        let f = file(&mut tree, "x", a);
        tree.insert(&p("/etc"), f).unwrap();
        let g = file(&mut tree, "y", b);
        let err = tree.insert(&p("/etc/passwd"), g).unwrap_err();
        let msg = err.message();
        assert!(msg.contains("`/etc/passwd` from layer 2 (`b.tar`)"), "{msg}");
        assert!(msg.contains("`/etc` is a regular file from layer 1 (`a.tar`)"), "{msg}");
    }

    #[test]
    fn escaping_and_looping_symlinks_are_errors() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        tree.insert(&p("/up"), symlink("../../outside", o)).unwrap();
        let f = file(&mut tree, "x", o);
        let err = tree.insert(&p("/up/x"), f).unwrap_err();
        assert!(err.message().contains("leads out of the image"), "{err}");
        assert!(err.message().contains("`/up` is a symlink to `../../outside`"), "{err}");
        tree.insert(&p("/loop1"), symlink("loop2", o)).unwrap();
        tree.insert(&p("/loop2"), symlink("loop1", o)).unwrap();
        let f = file(&mut tree, "x", o);
        let err = tree.insert(&p("/loop1/x"), f).unwrap_err();
        assert!(err.message().contains("too many levels of symlinks"), "{err}");
    }

    /// Regression: symlinks that each point twice at the next made one lookup take 2^39 steps.
    #[test]
    fn a_chain_of_doubling_symlinks_is_refused_quickly() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        tree.insert(&p("/s39"), symlink(".", o)).unwrap();
        for i in (0..39).rev() {
            let next = format!("s{}", i + 1);
            tree.insert(&p(&format!("/s{i}")), symlink(&format!("{next}/{next}"), o)).unwrap();
        }
        let f = file(&mut tree, "x", o);
        let err = tree.insert(&p("/s0/x"), f).unwrap_err();
        assert!(err.message().contains("too many levels of symlinks"), "{err}");
    }

    #[test]
    fn a_hard_link_through_an_escaping_symlink_names_the_symlink() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        tree.insert(&p("/up"), symlink("../..", o)).unwrap();
        let err = tree.link(&p("/x"), &p("/up/etc/shadow"), o).unwrap_err();
        assert!(err.message().contains("`/up` is a symlink to `../..`"), "{err}");
    }

    #[test]
    fn a_path_made_too_long_by_a_symlink_is_refused() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        let long = "d".repeat(250);
        let target = [long.as_str(); 17].join("/");
        tree.insert(&p("/l"), symlink(&target, o)).unwrap();
        let f = file(&mut tree, "x", o);
        let err = tree.insert(&p("/l/x"), f).unwrap_err();
        assert!(err.message().contains("through symlinks it lands at"), "{err}");
    }

    #[test]
    fn a_directory_with_entries_is_not_replaced_by_a_file() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        let f = file(&mut tree, "x", o);
        tree.insert(&p("/d/x"), f).unwrap();
        let g = file(&mut tree, "y", o);
        let err = tree.insert(&p("/d"), g).unwrap_err();
        assert!(err.message().contains("holds 1 entries"), "{err}");
        // An empty directory can be replaced.
        tree.insert(&p("/e"), dir(o)).unwrap();
        tree.insert(&p("/e"), symlink("d", o)).unwrap();
        assert!(matches!(tree.get(&p("/e")).unwrap().kind, Kind::Symlink { .. }));
    }

    #[test]
    fn hard_links_share_the_file_and_survive_removal_of_the_first_name() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        let f = file(&mut tree, "busybox", o);
        tree.insert(&p("/bin/busybox"), f).unwrap();
        tree.link(&p("/bin/ls"), &p("/bin/busybox"), o).unwrap();
        let inode_of = |tree: &Tree, path: &str| match &tree.get(&p(path)).unwrap().kind {
            Kind::File { inode, .. } => *inode,
            _ => panic!("not a file"),
        };
        assert_eq!(inode_of(&tree, "/bin/ls"), inode_of(&tree, "/bin/busybox"));
        assert_eq!(tree.remove(&p("/bin/busybox")), 1);
        assert!(tree.get(&p("/bin/ls")).is_some());
        let err = tree.link(&p("/bin/cat"), &p("/bin/missing"), o).unwrap_err();
        assert!(err.message().contains("not in the image"), "{err}");
        let err = tree.link(&p("/bin/x"), &p("/bin"), o).unwrap_err();
        assert!(err.message().contains("must point to regular files"), "{err}");
    }

    #[test]
    fn removing_a_directory_takes_its_subtree_and_nothing_beside_it() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        for path in ["/doc/a", "/doc/b/c", "/doc-x", "/docs"] {
            let f = file(&mut tree, path, o);
            tree.insert(&p(path), f).unwrap();
        }
        assert_eq!(tree.remove(&p("/doc")), 4);
        assert_eq!(paths(&tree), ["/doc-x", "/docs"]);
    }
}
