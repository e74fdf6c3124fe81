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

use std::collections::{BTreeMap, HashMap};

use super::PlanEntry;
use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::source::{Meta, Node, Sink};

/// How many symlinks one lookup may follow before it is called a loop (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Where an entry came from, for messages: an index into [`Tree::origin_label`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin(u32);

/// One path of the tree.
#[derive(Clone, Debug)]
pub struct Entry {
    pub node: Node,
    pub meta: Meta,
    pub origin: Origin,
    /// Which inode it is: hard links share one, every other entry has its own.
    pub inode: u64,
}

/// The image being assembled.
pub struct Tree {
    entries: BTreeMap<ImagePath, Entry>,
    /// Each origin's label, and whether it is an archive (see [`Tree::archive_origin`]).
    origins: Vec<(String, bool)>,
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

    /// Registers a description of an input (`layer 2 (`base.tar`)`) for later messages.
    pub fn origin(&mut self, label: String) -> Origin {
        self.push_origin(label, false)
    }

    /// [`Tree::origin`] for an archive kept by its digest (a package, a tar or `.deb` layer,
    /// the kernel package): what it lays is marked [`PlanEntry::archived`].
    pub fn archive_origin(&mut self, label: String) -> Origin {
        self.push_origin(label, true)
    }

    fn push_origin(&mut self, label: String, archive: bool) -> Origin {
        self.origins.push((label, archive));
        Origin((self.origins.len() - 1) as u32)
    }

    pub fn origin_label(&self, origin: Origin) -> &str {
        &self.origins[origin.0 as usize].0
    }

    /// A fresh inode key.
    fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// A [`Sink`] that lays an input into the tree, its entries marked as coming from `origin`.
    pub fn sink(&mut self, origin: Origin) -> LayerSink<'_> {
        LayerSink { tree: self, origin }
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

    /// The entries directly in the directory at the physical path `dir`, in path order.
    pub fn children<'t>(&'t self, dir: &ImagePath) -> Box<dyn Iterator<Item = (&'t ImagePath, &'t Entry)> + 't> {
        let below: Box<dyn Iterator<Item = _>> = if dir.is_root() {
            Box::new(self.entries.iter())
        } else {
            Box::new(self.entries.range(dir.below_start()..dir.below_end()))
        };
        let dir = dir.clone();
        Box::new(below.filter(move |(path, _)| path.parent() == dir))
    }

    fn has_children(&self, dir: &ImagePath) -> usize {
        self.entries.range(dir.below_start()..dir.below_end()).count()
    }

    /// Places `node` with `meta` at `path`, a new inode (see the module documentation for the
    /// rules). Returns the path where it really went, which differs from `path` when a parent is
    /// a symlink.
    pub fn insert(&mut self, path: &ImagePath, node: Node, meta: Meta, origin: Origin) -> Result<ImagePath> {
        let inode = self.new_inode();
        self.place(path, Entry { node, meta, origin, inode })
    }

    fn place(&mut self, path: &ImagePath, entry: Entry) -> Result<ImagePath> {
        if path.is_root() {
            return match entry.node {
                // The root's own bits are the kernel's to choose; a layer's `./` is accepted.
                Node::Dir => Ok(ImagePath::root()),
                _ => Err(Error::input(format!(
                    "`/` from {} is a {}: the image root can only be a directory",
                    self.origin_label(entry.origin),
                    entry.node.file_type().noun()
                ))),
            };
        }
        let parent = self
            .walk(&ImagePath::root(), path.parent().components(), &mut Lookup::new(path, entry.origin, Walk::Create))
            .map_err(|e| e.into_error(path))?;
        let Some(parent) = parent else { unreachable!("Walk::Create always yields a directory") };
        // Following symlinks can lengthen a path beyond what the kernel unpacks.
        self.check_length(&parent.join(path.file_name()), path, entry.origin)?;
        let physical = parent.join(path.file_name());
        let Some(existing) = self.entries.get(&physical) else {
            self.entries.insert(physical.clone(), entry);
            return Ok(physical);
        };
        let (existing_node, existing_origin) = (existing.node.clone(), existing.origin);
        match (&existing_node, &entry.node) {
            (Node::Dir, Node::Dir) => {
                // A directory over a directory updates its bits and owner.
                self.entries.insert(physical.clone(), entry);
            }
            (Node::Symlink { .. }, Node::Dir) if self.lookup_dir(&physical, path, entry.origin).is_some() => {
                // dpkg keeps a symlink to a directory where a package ships the directory.
            }
            (Node::Dir, _) if self.has_children(&physical) > 0 => {
                return Err(Error::input(format!(
                    "`{}` from {} is a {}, but `{}` is a directory from {} that holds {} entries: \
                     a non-directory cannot replace it; prune it first with `[remove]` or \
                     restructure the layers",
                    path,
                    self.origin_label(entry.origin),
                    entry.node.file_type().noun(),
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
            .walk(&ImagePath::root(), target.parent().components(), &mut Lookup::new(path, origin, Walk::Lookup))
            .map_err(|e| e.into_error(path))?;
        let found = target_dir.map(|dir| dir.join(target.file_name())).and_then(|t| self.entries.get(&t));
        let file = match found {
            Some(entry @ Entry { node: Node::File { .. }, .. }) => entry.clone(),
            Some(other) => {
                return Err(Error::input(format!(
                    "hard link `{path}` from {} points to `{target}`, which is a {} from {}: \
                     hard links must point to regular files",
                    self.origin_label(origin),
                    other.node.file_type().noun(),
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
        self.place(path, Entry { origin, ..file })
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

    /// Whether `path` is in the tree, its parent directories looked up through symlinks as the
    /// kernel would (`/bin/sh` in a merged-/usr tree is `/usr/bin/sh`); `origin` asks.
    pub fn holds(&mut self, path: &ImagePath, origin: Origin) -> bool {
        path.is_root() || self.physical(path, origin).is_some_and(|p| self.entries.contains_key(&p))
    }

    /// The directory `path` names, following symlinks all the way, or `None` when it names no
    /// directory.
    pub fn resolve_dir(&mut self, path: &ImagePath, origin: Origin) -> Option<ImagePath> {
        let dir = self.lookup_dir(path, path, origin)?;
        if self.entries.contains_key(&dir) || dir.is_root() {
            return Some(dir);
        }
        None
    }

    /// `path` with its parent directories looked up through symlinks (the last name as it is).
    pub fn physical(&mut self, path: &ImagePath, origin: Origin) -> Option<ImagePath> {
        let dir = self.lookup_dir(&path.parent(), path, origin)?;
        Some(ImagePath::from_components(dir.components().chain([path.file_name()])))
    }

    /// The physical path of the directory at `dir`, following symlinks, or `None` when there is
    /// no such directory. `for_path` and `origin` name the entry that asked, for messages.
    fn lookup_dir(&mut self, dir: &ImagePath, for_path: &ImagePath, origin: Origin) -> Option<ImagePath> {
        self.walk(&ImagePath::root(), dir.components(), &mut Lookup::new(for_path, origin, Walk::Lookup)).ok().flatten()
    }

    /// Walks `components` (which may hold `..` and `.` when they come from a symlink target) from
    /// the directory `start`, following symlinks, and returns the physical directory reached.
    /// With [`Walk::Create`] missing directories are created (implied); with [`Walk::Lookup`] a
    /// missing one gives `None`.
    fn walk<'c>(
        &mut self,
        start: &ImagePath,
        components: impl Iterator<Item = &'c [u8]>,
        lookup: &mut Lookup<'_>,
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
            let Some(entry) = self.entries.get(&next) else {
                if lookup.mode == Walk::Lookup {
                    return Ok(None);
                }
                self.check_length(&next, lookup.for_path, lookup.origin).map_err(WalkError::Error)?;
                let inode = self.new_inode();
                let implied = Entry { node: Node::Dir, meta: Meta::root(0o755), origin: lookup.origin, inode };
                self.entries.insert(next.clone(), implied);
                current = next;
                continue;
            };
            let (node, found_origin) = (entry.node.clone(), entry.origin);
            current = match node {
                Node::Dir => next,
                Node::Symlink { target } => match self.follow(&current, &next, &target, found_origin, lookup)? {
                    Some(dir) => dir,
                    None => return Ok(None),
                },
                other => {
                    return Err(WalkError::Error(Error::input(format!(
                        "`{}` from {} cannot be placed: its parent `{next}` is a {} from {}",
                        lookup.for_path,
                        self.origin_label(lookup.origin),
                        other.file_type().noun(),
                        self.origin_label(found_origin)
                    ))));
                }
            };
        }
        Ok(Some(current))
    }

    /// Follows the symlink `link` in the directory `current`, pointing at `target` (it came from
    /// `found_origin`), and returns the directory it leads to. Linux caps the symlinks one
    /// lookup follows at 40: that bounds loops and also chains that double at every step.
    fn follow(
        &mut self,
        current: &ImagePath,
        link: &ImagePath,
        target: &[u8],
        found_origin: Origin,
        lookup: &mut Lookup<'_>,
    ) -> std::result::Result<Option<ImagePath>, WalkError> {
        lookup.follows += 1;
        if lookup.follows > MAX_SYMLINKS {
            return Err(WalkError::Error(Error::input(format!(
                "`{}` from {} cannot be placed: too many levels of symlinks at `{link}` from {} (a symlink loop?)",
                lookup.for_path,
                self.origin_label(lookup.origin),
                self.origin_label(found_origin)
            ))));
        }
        let base = if target.first() == Some(&b'/') { ImagePath::root() } else { current.clone() };
        let parts: Vec<&[u8]> = target.split(|&b| b == b'/').collect();
        match self.walk(&base, parts.into_iter(), lookup) {
            Err(WalkError::Escape) => Err(WalkError::Error(Error::input(format!(
                "`{}` from {} cannot be placed: its parent `{link}` is a symlink to `{}` from {}, which leads \
                 out of the image",
                lookup.for_path,
                self.origin_label(lookup.origin),
                String::from_utf8_lossy(target),
                self.origin_label(found_origin)
            )))),
            other => other,
        }
    }
}

impl Tree {
    /// The finished tree as plan entries, in path order (parents before children), with inode
    /// numbers 1, 2, ... given in path order (hard links share their first name's) and link
    /// counts as on a real file system (a directory's is 2 plus its subdirectories).
    pub fn freeze(&self) -> Vec<PlanEntry> {
        // Names per inode, in path order.
        let mut names: HashMap<u64, Vec<&ImagePath>> = HashMap::new();
        let mut subdirs: BTreeMap<ImagePath, u32> = BTreeMap::new();
        for (path, entry) in self.iter() {
            match entry.node {
                Node::File { .. } => names.entry(entry.inode).or_default().push(path),
                Node::Dir => *subdirs.entry(path.parent()).or_default() += 1,
                _ => {}
            }
        }
        let mut inos: HashMap<u64, u32> = HashMap::new();
        let mut next_ino = 0u32;
        let mut out = Vec::with_capacity(self.len());
        for (path, entry) in self.iter() {
            let ino = *inos.entry(entry.inode).or_insert_with(|| {
                next_ino += 1;
                next_ino
            });
            let (nlink, first_name, carries_data) = match entry.node {
                Node::Dir => (2 + subdirs.get(path).copied().unwrap_or(0), None, false),
                Node::File { .. } => {
                    let group = &names[&entry.inode];
                    // The last name carries the data in a cpio archive, as GNU cpio and the
                    // kernel's `gen_init_cpio` do.
                    (group.len() as u32, (group[0] != path).then(|| group[0].clone()), group.last() == Some(&path))
                }
                _ => (1, None, false),
            };
            let node = entry.node.clone();
            let archived = self.origins[entry.origin.0 as usize].1;
            out.push(PlanEntry {
                path: path.clone(),
                node,
                meta: entry.meta,
                ino,
                nlink,
                first_name,
                carries_data,
                archived,
            });
        }
        out
    }
}

/// Lays one input into a [`Tree`]: what its reader finds is marked as coming from that input.
pub struct LayerSink<'t> {
    tree: &'t mut Tree,
    origin: Origin,
}

impl Sink for LayerSink<'_> {
    fn insert(&mut self, path: &ImagePath, node: Node, meta: Meta) -> Result<()> {
        self.tree.insert(path, node, meta, self.origin).map(|_| ())
    }

    fn link(&mut self, path: &ImagePath, target: &ImagePath) -> Result<()> {
        self.tree.link(path, target, self.origin).map(|_| ())
    }

    fn check_file_size(&self, what: &str, size: u64) -> Result<()> {
        crate::source::check_file_size(what, size, self.tree.max_file_size)
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

/// One lookup through the tree: what it is for (for messages), whether it creates missing
/// directories, and how many symlinks it has followed.
struct Lookup<'a> {
    for_path: &'a ImagePath,
    origin: Origin,
    mode: Walk,
    follows: u32,
}

impl<'a> Lookup<'a> {
    fn new(for_path: &'a ImagePath, origin: Origin, mode: Walk) -> Lookup<'a> {
        Lookup { for_path, origin, mode, follows: 0 }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Create,
    Lookup,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::content::Content;

    fn p(s: &str) -> ImagePath {
        ImagePath::from_recipe(s).unwrap()
    }

    fn dir() -> (Node, Meta) {
        (Node::Dir, Meta::root(0o700))
    }

    fn file(text: &str) -> (Node, Meta) {
        (Node::File { content: Content::inline(text.as_bytes()) }, Meta::root(0o644))
    }

    fn symlink(target: &str) -> (Node, Meta) {
        (Node::Symlink { target: target.as_bytes().to_vec() }, Meta::root(0o777))
    }

    /// Inserts `(node, meta)` at `path`.
    fn put(tree: &mut Tree, path: &str, (node, meta): (Node, Meta), origin: Origin) -> Result<ImagePath> {
        tree.insert(&p(path), node, meta, origin)
    }

    fn paths(tree: &Tree) -> Vec<String> {
        tree.iter().map(|(p, _)| p.display()).collect()
    }

    #[test]
    fn missing_parents_are_implied_root_owned_0755_and_a_declaration_wins() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/a/b/c", file("x"), o).unwrap();
        assert_eq!(paths(&tree), ["/a", "/a/b", "/a/b/c"]);
        assert_eq!(tree.get(&p("/a")).unwrap().meta, Meta::root(0o755));
        put(&mut tree, "/a", dir(), o).unwrap();
        assert_eq!(tree.get(&p("/a")).unwrap().meta.mode, 0o700);
        // A later implied parent does not undo the declaration.
        put(&mut tree, "/a/d", file("y"), o).unwrap();
        assert_eq!(tree.get(&p("/a")).unwrap().meta.mode, 0o700);
    }

    #[test]
    fn entries_under_a_symlinked_directory_go_through_it() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/usr/bin", dir(), o).unwrap();
        put(&mut tree, "/bin", symlink("usr/bin"), o).unwrap();
        assert_eq!(put(&mut tree, "/bin/sh", file("sh"), o).unwrap(), p("/usr/bin/sh"));
        // A directory entry over the symlink keeps the symlink, as dpkg does.
        put(&mut tree, "/bin", dir(), o).unwrap();
        assert!(matches!(tree.get(&p("/bin")).unwrap().node, Node::Symlink { .. }));
        assert_eq!(paths(&tree), ["/bin", "/usr", "/usr/bin", "/usr/bin/sh"]);
        // Absolute targets and chains of links resolve inside the image.
        put(&mut tree, "/sbin", symlink("/bin"), o).unwrap();
        assert_eq!(put(&mut tree, "/sbin/init", file("init"), o).unwrap(), p("/usr/bin/init"));
    }

    #[test]
    fn a_parent_that_is_a_file_is_an_error_naming_both_entries() {
        let mut tree = Tree::new();
        let a = tree.origin("layer 1 (`a.tar`)".into());
        let b = tree.origin("layer 2 (`b.tar`)".into());
        put(&mut tree, "/etc", file("x"), a).unwrap();
        let err = put(&mut tree, "/etc/passwd", file("y"), b).unwrap_err();
        let msg = err.message();
        assert!(msg.contains("`/etc/passwd` from layer 2 (`b.tar`)"), "{msg}");
        assert!(msg.contains("`/etc` is a regular file from layer 1 (`a.tar`)"), "{msg}");
    }

    #[test]
    fn escaping_and_looping_symlinks_are_errors() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/up", symlink("../../outside"), o).unwrap();
        let err = put(&mut tree, "/up/x", file("x"), o).unwrap_err();
        assert!(err.message().contains("leads out of the image"), "{err}");
        assert!(err.message().contains("`/up` is a symlink to `../../outside`"), "{err}");
        put(&mut tree, "/loop1", symlink("loop2"), o).unwrap();
        put(&mut tree, "/loop2", symlink("loop1"), o).unwrap();
        let err = put(&mut tree, "/loop1/x", file("x"), o).unwrap_err();
        assert!(err.message().contains("too many levels of symlinks"), "{err}");
    }

    /// Regression: symlinks that each point twice at the next made one lookup take 2^39 steps.
    #[test]
    fn a_chain_of_doubling_symlinks_is_refused_quickly() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/s39", symlink("."), o).unwrap();
        for i in (0..39).rev() {
            let next = format!("s{}", i + 1);
            put(&mut tree, &format!("/s{i}"), symlink(&format!("{next}/{next}")), o).unwrap();
        }
        let err = put(&mut tree, "/s0/x", file("x"), o).unwrap_err();
        assert!(err.message().contains("too many levels of symlinks"), "{err}");
    }

    #[test]
    fn a_hard_link_through_an_escaping_symlink_names_the_symlink() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/up", symlink("../.."), o).unwrap();
        let err = tree.link(&p("/x"), &p("/up/etc/shadow"), o).unwrap_err();
        assert!(err.message().contains("`/up` is a symlink to `../..`"), "{err}");
    }

    #[test]
    fn a_path_made_too_long_by_a_symlink_is_refused() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        let long = "d".repeat(250);
        let target = [long.as_str(); 17].join("/");
        put(&mut tree, "/l", symlink(&target), o).unwrap();
        let err = put(&mut tree, "/l/x", file("x"), o).unwrap_err();
        assert!(err.message().contains("through symlinks it lands at"), "{err}");
    }

    #[test]
    fn a_directory_with_entries_is_not_replaced_by_a_file() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/d/x", file("x"), o).unwrap();
        let err = put(&mut tree, "/d", file("y"), o).unwrap_err();
        assert!(err.message().contains("holds 1 entries"), "{err}");
        // An empty directory can be replaced.
        put(&mut tree, "/e", dir(), o).unwrap();
        put(&mut tree, "/e", symlink("d"), o).unwrap();
        assert!(matches!(tree.get(&p("/e")).unwrap().node, Node::Symlink { .. }));
    }

    #[test]
    fn hard_links_share_the_file_and_survive_removal_of_the_first_name() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/bin/busybox", file("busybox"), o).unwrap();
        tree.link(&p("/bin/ls"), &p("/bin/busybox"), o).unwrap();
        let inode_of = |tree: &Tree, path: &str| tree.get(&p(path)).unwrap().inode;
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
            put(&mut tree, path, file(path), o).unwrap();
        }
        assert_eq!(tree.remove(&p("/doc")), 4);
        assert_eq!(paths(&tree), ["/doc-x", "/docs"]);
    }

    #[test]
    fn freezing_numbers_inodes_in_path_order_and_counts_links() {
        let mut tree = Tree::new();
        let o = tree.origin("test".into());
        put(&mut tree, "/bin/busybox", file("busybox"), o).unwrap();
        tree.link(&p("/bin/ls"), &p("/bin/busybox"), o).unwrap();
        put(&mut tree, "/bin/sub/x", file("x"), o).unwrap();
        put(&mut tree, "/a", symlink("bin"), o).unwrap();
        let entries = tree.freeze();
        let summary: Vec<(String, u32, u32, Option<String>, bool)> = entries
            .iter()
            .map(|e| (e.path.display(), e.ino, e.nlink, e.first_name.as_ref().map(|f| f.display()), e.carries_data))
            .collect();
        assert_eq!(
            summary,
            [
                ("/a".to_string(), 1, 1, None, false),
                ("/bin".to_string(), 2, 3, None, false),
                ("/bin/busybox".to_string(), 3, 2, None, false),
                ("/bin/ls".to_string(), 3, 2, Some("/bin/busybox".to_string()), true),
                ("/bin/sub".to_string(), 4, 2, None, false),
                ("/bin/sub/x".to_string(), 5, 1, None, true),
            ]
        );
    }
}
