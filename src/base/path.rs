//! Paths inside the image.
//!
//! An [`ImagePath`] is a normalised path relative to the image root, kept as bytes so that names
//! which are not UTF-8 (legal in tar archives and on Linux file systems) survive unchanged. It
//! has no leading or trailing `/`, no empty or `.` components and never a `..` component, so it
//! cannot name anything outside the image. The root itself is the empty path. Paths are ordered
//! bytewise, which puts every directory before everything inside it.

use std::fmt;

/// Longest path the kernel's initramfs unpacker accepts (`PATH_MAX`, including the NUL).
pub const PATH_MAX: usize = 4096;
/// Longest single name a Linux file system accepts (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImagePath(Vec<u8>);

/// Why a path could not be made an [`ImagePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// It has a `..` component.
    DotDot,
    /// It is absolute where only relative names are allowed (archive members).
    Absolute,
    /// It has a NUL byte.
    Nul,
    /// One component is longer than [`NAME_MAX`].
    NameTooLong(usize),
    /// The whole path is longer than [`PATH_MAX`] allows.
    PathTooLong(usize),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::DotDot => f.write_str("`..` components are not allowed in image paths"),
            PathError::Absolute => f.write_str("absolute member names are not allowed"),
            PathError::Nul => f.write_str("a NUL byte is not allowed in a path"),
            PathError::NameTooLong(n) => {
                write!(f, "a name of {n} bytes is longer than the {NAME_MAX} a file system allows")
            }
            PathError::PathTooLong(n) => {
                write!(f, "a path of {n} bytes is longer than the {} the kernel allows", PATH_MAX - 1)
            }
        }
    }
}

impl ImagePath {
    /// The image root.
    pub fn root() -> ImagePath {
        ImagePath(Vec::new())
    }

    /// A path written in a recipe: `/etc/passwd` (a leading `/` is optional, the image root is
    /// always the base).
    pub fn from_recipe(text: &str) -> Result<ImagePath, PathError> {
        ImagePath::normalise(text.as_bytes())
    }

    /// A member name from an archive (`./usr/bin/env`, `usr/bin/env`): absolute names are refused,
    /// because an archive meant for the image should not name host paths.
    pub fn from_member(name: &[u8]) -> Result<ImagePath, PathError> {
        if name.first() == Some(&b'/') {
            return Err(PathError::Absolute);
        }
        ImagePath::normalise(name)
    }

    /// Drops empty and `.` components; refuses `..`, NUL and over-long names.
    pub fn normalise(bytes: &[u8]) -> Result<ImagePath, PathError> {
        if bytes.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut out = Vec::with_capacity(bytes.len());
        for component in bytes.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(PathError::DotDot),
                name if name.len() > NAME_MAX => return Err(PathError::NameTooLong(name.len())),
                name => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(name);
                }
            }
        }
        // The cpio name is written with a leading nothing and a trailing NUL.
        if out.len() + 1 > PATH_MAX {
            return Err(PathError::PathTooLong(out.len()));
        }
        Ok(ImagePath(out))
    }

    /// Builds a path from components known to be valid (each one a name of an existing path).
    pub fn from_components<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> ImagePath {
        let mut out = Vec::new();
        for part in parts {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(part);
        }
        ImagePath(out)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path without a leading `/`, as it is stored in a cpio archive.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// The directory holding this path (the root for a top-level name and for the root itself).
    pub fn parent(&self) -> ImagePath {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(at) => ImagePath(self.0[..at].to_vec()),
            None => ImagePath::root(),
        }
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(at) => &self.0[at + 1..],
            None => &self.0,
        }
    }

    /// This path with `name` appended (`name` is one valid component).
    pub fn join(&self, name: &[u8]) -> ImagePath {
        let mut out = self.0.clone();
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(name);
        ImagePath(out)
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &ImagePath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// The smallest path that sorts after everything below `self` (`a/` + 1 = `a0`): with
    /// [`ImagePath::below_start`] it bounds a range query for a whole subtree.
    pub fn below_end(&self) -> ImagePath {
        let mut out = self.0.clone();
        out.push(b'/' + 1);
        ImagePath(out)
    }

    /// The smallest path that lies below `self` sorts at or after this one.
    pub fn below_start(&self) -> ImagePath {
        let mut out = self.0.clone();
        out.push(b'/');
        ImagePath(out)
    }

    /// The absolute form as text for messages and manifests (`/etc/passwd`); bytes that are not
    /// UTF-8 are shown as U+FFFD here (the manifest also records the exact bytes).
    pub fn display(&self) -> String {
        format!("/{}", String::from_utf8_lossy(&self.0))
    }

    /// The absolute form when it is valid UTF-8.
    pub fn to_utf8(&self) -> Option<String> {
        std::str::from_utf8(&self.0).ok().map(|s| format!("/{s}"))
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::from_recipe(s).unwrap()
    }

    #[test]
    fn normalises_slashes_and_dots() {
        assert_eq!(p("/usr//bin/./env/").as_bytes(), b"usr/bin/env");
        assert_eq!(p("etc").as_bytes(), b"etc");
        assert!(p("/").is_root());
        assert_eq!(ImagePath::from_member(b"./bin/busybox").unwrap().as_bytes(), b"bin/busybox");
    }

    #[test]
    fn refuses_what_could_escape_or_cannot_be_stored() {
        assert_eq!(ImagePath::from_member(b"../etc/passwd"), Err(PathError::DotDot));
        assert_eq!(ImagePath::from_member(b"usr/../../x"), Err(PathError::DotDot));
        assert_eq!(ImagePath::from_member(b"/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(ImagePath::normalise(b"a\0b"), Err(PathError::Nul));
        let long = vec![b'x'; 256];
        assert_eq!(ImagePath::normalise(&long), Err(PathError::NameTooLong(256)));
        let deep = b"a/".repeat(3000);
        assert!(matches!(ImagePath::normalise(&deep), Err(PathError::PathTooLong(_))));
    }

    #[test]
    fn non_utf8_names_survive() {
        let path = ImagePath::from_member(b"caf\xe9").unwrap();
        assert_eq!(path.as_bytes(), b"caf\xe9");
        assert_eq!(path.to_utf8(), None);
    }

    #[test]
    fn parent_name_and_subtree_bounds() {
        let path = p("/usr/bin/env");
        assert_eq!(path.parent(), p("/usr/bin"));
        assert_eq!(path.file_name(), b"env");
        assert_eq!(p("/usr").parent(), ImagePath::root());
        assert!(path.starts_with(&p("/usr")));
        assert!(!p("/usr2").starts_with(&p("/usr")));
        let dir = p("/usr");
        assert!(dir.below_start() <= path && path < dir.below_end());
        assert!(!(dir.below_start() <= p("/usr-x") && p("/usr-x") < dir.below_end()));
        assert!(p("/usr-x") < dir.below_start() || p("/usr-x") >= dir.below_end());
    }

    #[test]
    fn sorting_puts_directories_before_their_contents() {
        let mut paths = [p("/bin2"), p("/bin/sh"), p("/bin-x"), p("/bin")];
        paths.sort();
        let bin = paths.iter().position(|x| *x == p("/bin")).unwrap();
        let sh = paths.iter().position(|x| *x == p("/bin/sh")).unwrap();
        assert!(bin < sh);
    }
}
