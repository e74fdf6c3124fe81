//! `NAME.lock`: every input of a recipe, pinned.
//!
//! `bake lock hello.toml` writes `hello.lock` beside the recipe: for each `packages` layer the
//! request as the recipe made it and every package it resolved to (name, version, architecture,
//! sha256 of the `.deb`, and where the archive keeps it), and the sha256 of every other input
//! (`dir`, `tar` and `deb` layers, `source` files, the kernel package). `bake build` then fetches
//! exactly those packages and refuses any input whose bytes changed. The file is TOML, sorted as
//! the recipe is, with no timestamps, so that two runs over the same inputs give the same bytes
//! and a change reads as a small diff in review.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::error::{Error, IoContext, Result};
use crate::recipe::InputKind;

/// The lock format this bake writes and reads.
pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The lock format.
    pub version: u32,
    /// The `packages` layers, in recipe order.
    #[serde(default, rename = "layer", skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LockedLayer>,
    /// The `[kernel] package`, resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<LockedKernel>,
    /// systemd's EFI stub for `[disk] boot = "uefi"` (the package `systemd-boot-efi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub: Option<LockedKernel>,
    /// Every other input, in recipe order.
    #[serde(default, rename = "input", skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<LockedInput>,
}

/// A `packages` layer: the request, and what it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedLayer {
    /// The layer's number in the recipe, from 1.
    pub layer: usize,
    pub packages: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub recommends: bool,
    /// The layer's `variant` (`essential`, `minbase`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The closure in the order it is laid in.
    #[serde(default, rename = "package")]
    pub resolved: Vec<LockedPackage>,
}

/// A package named for what it holds (the `[kernel] package`, systemd's EFI stub), and the
/// package it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedKernel {
    pub request: String,
    pub package: LockedPackage,
}

/// One Debian package, pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Of the `.deb`, as 64 hex digits.
    pub sha256: String,
    /// The source package it was built from, and that package's version (for the SBOM).
    pub source: String,
    pub source_version: String,
    /// Where the archive keeps it (`pool/main/...`): the path below a mirror's or a snapshot's
    /// root.
    pub filename: String,
    pub size: u64,
    /// The archive it came from (`debian`, `debian-security`), and a moment its snapshot holds
    /// it (its list's Release `Date:`, `YYYYMMDDTHHMMSSZ`): where to fetch it once apt no
    /// longer offers it. Absent in locks written before bake recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

impl LockedPackage {
    pub fn from_index(p: &crate::debian::index::Package) -> LockedPackage {
        LockedPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            architecture: p.architecture.clone(),
            sha256: p.sha256.clone(),
            source: p.source.clone(),
            source_version: p.source_version.clone(),
            filename: p.filename.clone(),
            size: p.size,
            archive: p.snapshot.as_ref().map(|s| s.archive.clone()),
            snapshot: p.snapshot.as_ref().map(|s| s.time.clone()),
        }
    }

    /// `jq 1.6-2.1 (amd64)`, for messages.
    pub fn label(&self) -> String {
        format!("`{}` {} ({})", self.name, self.version, self.architecture)
    }

    /// The file name Debian gives the package: `jq_1.6-2.1_amd64.deb` (an epoch's `:` is kept).
    pub fn deb_name(&self) -> String {
        format!("{}_{}_{}.deb", self.name, self.version, self.architecture)
    }
}

/// Any other input: the same kind and path as in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedInput {
    pub kind: InputKind,
    pub path: String,
    pub sha256: String,
}

/// The lock file of a recipe: `hello.lock` beside `hello.toml`.
pub fn path_for(recipe: &Path) -> PathBuf {
    recipe.with_extension("lock")
}

/// Reads the lock at `path`, if there is one.
pub fn read(path: &Path) -> Result<Option<Lock>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).reading(path),
    };
    let lock: Lock = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        Error::input(format!(
            "{}:{line}: not a lock file bake can read: {}; run `bake lock --update` to write it again",
            path.display(),
            e.message().split_whitespace().collect::<Vec<_>>().join(" ")
        ))
    })?;
    check(&lock).map_err(|e| e.context(format!("`{}`", path.display())))?;
    if lock.version != LOCK_VERSION {
        return Err(Error::input(format!(
            "`{}` has lock version {}, but this bake reads version {LOCK_VERSION}: run `bake lock --update`",
            path.display(),
            lock.version
        )));
    }
    Ok(Some(lock))
}

/// Checks what a lock says about packages before any of it names a file or reaches apt: a
/// name or version that could climb out of the cache folder or pass for an option is refused.
fn check(lock: &Lock) -> Result<()> {
    let packages = lock
        .layers
        .iter()
        .flat_map(|l| &l.resolved)
        .chain(lock.kernel.as_ref().map(|k| &k.package))
        .chain(lock.stub.as_ref().map(|k| &k.package));
    let word = |text: &str, extra: &[u8]| {
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    for p in packages {
        if !crate::debian::version::is_package_name(&p.name) {
            return Err(refused(format!("`{}` is not a Debian package name", p.name)));
        }
        if !word(&p.version, b".+-~:") || p.version.starts_with(['-', '.']) {
            return Err(refused(format!("`{}` has version `{}`, which is not a Debian version", p.name, p.version)));
        }
        if !word(&p.architecture, b"-") || p.architecture.starts_with('-') {
            return Err(refused(format!("`{}` has architecture `{}`", p.name, p.architecture)));
        }
        if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(refused(format!("`{}` has sha256 `{}`, not 64 lower-case hex digits", p.name, p.sha256)));
        }
        // They name a URL's path: the archive one word, the file below `pool/`, never `..`.
        if let Some(archive) = &p.archive
            && (!word(archive, b"-._") || archive.starts_with('.'))
        {
            return Err(refused(format!("`{}` has archive `{archive}`, not an archive's name", p.name)));
        }
        if let Some(time) = &p.snapshot
            && !crate::debian::snapshot::is_time(time)
        {
            return Err(refused(format!("`{}` has snapshot `{time}`, not a time as YYYYMMDDTHHMMSSZ", p.name)));
        }
        if p.archive.is_some()
            && (!p.filename.starts_with("pool/")
                || p.filename.split('/').any(|c| c.is_empty() || c == "." || c == "..")
                || !word(&p.filename, b"-._+~/%"))
        {
            return Err(refused(format!("`{}` has file name `{}`, not a path below `pool/`", p.name, p.filename)));
        }
    }
    Ok(())
}

/// A lock refused by [`check`]: `what` is wrong, and the way out.
fn refused(what: String) -> Error {
    Error::input(format!("{what}; run `bake lock --update` to write it again"))
}

/// The text of a lock file: a header saying what it is, then the TOML.
pub fn text(lock: &Lock, recipe_name: &str) -> String {
    let body = toml::to_string(lock).expect("a lock is plain data");
    format!(
        "# Pinned inputs of `{recipe_name}`, written by `bake lock`. Commit it with the recipe.\n\
         # Do not edit: `bake lock` pins new inputs, `bake lock --update` moves packages to the\n\
         # versions apt offers now.\n\n{body}"
    )
}

/// Writes `lock` (of the recipe file named `recipe_name`) to `path`, unless the file already
/// holds exactly those bytes; returns whether it was written. It is written beside the lock and
/// renamed over it, so a reader never sees half a lock.
pub fn write(path: &Path, lock: &Lock, recipe_name: &str) -> Result<bool> {
    let text = text(lock, recipe_name);
    if std::fs::read(path).ok().is_some_and(|old| old == text.as_bytes()) {
        return Ok(false);
    }
    // A lock is a file to commit, readable like the recipe beside it.
    crate::base::file::replace(path, text.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str) -> LockedPackage {
        LockedPackage {
            name: name.to_string(),
            version: "1:2.0-1".to_string(),
            architecture: "amd64".to_string(),
            sha256: "ab".repeat(32),
            source: "src".to_string(),
            source_version: "1:2.0-1".to_string(),
            filename: format!("pool/main/s/src/{name}_2.0-1_amd64.deb"),
            size: 1234,
            archive: Some("debian".to_string()),
            snapshot: Some("20261201T013313Z".to_string()),
        }
    }

    #[test]
    fn a_lock_round_trips_through_its_text() {
        let lock = Lock {
            version: LOCK_VERSION,
            layers: vec![LockedLayer {
                layer: 2,
                packages: vec!["jq".into()],
                exclude: vec!["libc6".into()],
                recommends: false,
                variant: None,
                resolved: vec![package("libonig5"), package("jq")],
            }],
            kernel: Some(LockedKernel { request: "linux-image-cloud-amd64".into(), package: package("linux-image-x") }),
            stub: Some(LockedKernel { request: "systemd-boot-efi".into(), package: package("systemd-boot-efi") }),
            inputs: vec![LockedInput { kind: InputKind::File, path: "init".into(), sha256: "cd".repeat(32) }],
        };
        let text = text(&lock, "x.toml");
        assert!(text.starts_with("# Pinned inputs of `x.toml`"), "{text}");
        assert!(text.contains("[[layer.package]]\nname = \"libonig5\""), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read(&path).unwrap(), Some(lock));
    }

    #[test]
    fn a_missing_lock_is_none_and_a_broken_one_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        assert_eq!(read(&path).unwrap(), None);
        std::fs::write(&path, "version = 1\n\n[[input]]\nkind = \"file\"\npath = 3\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("x.lock:5:"), "{err}");
        std::fs::write(&path, "version = 7\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("lock version 7"), "{err}");
    }

    #[test]
    fn the_lock_sits_beside_the_recipe() {
        assert_eq!(path_for(Path::new("recipes/hello.toml")), Path::new("recipes/hello.lock"));
    }
}
