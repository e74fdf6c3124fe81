//! The host's apt, asked two things only: which package lists it has, and to download one
//! exact `.deb`.
//!
//! Resolution never asks apt (or dpkg) what to install: bake reads the Packages indexes apt
//! keeps (`apt-get indextargets` says where, for whatever configuration `APT_CONFIG` selects)
//! and resolves the closure itself ([`crate::debian::resolve`]), so what happens to be
//! installed on the builder never matters. Downloads go through `apt-get download NAME:ARCH=VERSION`
//! (apt's sources, proxies and signatures), into a folder of the cache, and are kept only when
//! their sha256 is the one the index or the lock names. A package already in the cache with
//! that digest is used without asking apt at all, so a locked recipe builds offline.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::debian::index::Index;
use crate::error::{Error, IoContext, Result};
use crate::hash::{digest_file, hex};
use crate::lock::LockedPackage;
use crate::progress::{Event, Reporter};

/// Runs an apt program and returns its standard output.
fn apt(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| {
        Error::input(format!(
            "cannot run `{program}`: {}: `packages` layers need apt (a Debian or Ubuntu host); a locked recipe \
             whose packages are all in the cache builds without it",
            crate::error::io_cause(&e)
        ))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::failure(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            stderr.trim()
        )));
    }
    String::from_utf8(output.stdout).map_err(|_| Error::failure(format!("`{program}` printed something not UTF-8")))
}

/// apt's native architecture (`APT::Architecture`).
pub fn native_architecture() -> Result<String> {
    let shell = apt("apt-config", &["shell", "ARCH", "APT::Architecture"])?;
    // Prints `ARCH='amd64'`.
    let arch = shell.trim().strip_prefix("ARCH=").unwrap_or("").trim_matches('\'');
    if arch.is_empty() || !arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::failure(format!("apt names no usable architecture: `{}`", shell.trim())));
    }
    Ok(arch.to_string())
}

/// The Packages files apt has downloaded, in apt's order.
pub fn package_lists() -> Result<Vec<PathBuf>> {
    let listing = apt("apt-get", &["indextargets", "--format", "$(FILENAME)", "Created-By: Packages"])?;
    let mut lists: Vec<PathBuf> =
        listing.lines().map(str::trim).filter(|l| !l.is_empty()).map(PathBuf::from).filter(|p| p.is_file()).collect();
    lists.dedup();
    if lists.is_empty() {
        return Err(Error::input(
            "apt has no package lists: run `apt-get update` (as root) so bake can resolve `packages` layers",
        ));
    }
    Ok(lists)
}

/// apt's package lists, read on first use (it takes a moment: tens of thousands of packages).
#[derive(Default)]
pub struct Lists {
    index: Option<Index>,
}

impl Lists {
    pub fn index(&mut self, reporter: &dyn Reporter) -> Result<&Index> {
        if self.index.is_none() {
            self.index = Some(load_index(reporter)?);
        }
        Ok(self.index.as_ref().expect("just loaded"))
    }
}

/// Reads apt's package lists into an index for its native architecture.
fn load_index(reporter: &dyn Reporter) -> Result<Index> {
    let mut index = Index::new(&native_architecture()?);
    let lists = package_lists()?;
    reporter.report(Event::Info(format!("reading {} apt package lists", lists.len())));
    for list in &lists {
        let text = read_list(list)?;
        index.add(&text, &list.display().to_string()).map_err(Error::failure)?;
    }
    Ok(index)
}

/// A Packages file as text, decompressed as apt stored it (apt keeps them plain or, with
/// `Acquire::GzipIndexes` or by default on newer releases, compressed).
fn read_list(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).reading(path)?;
    let reader = std::io::BufReader::new(file);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut decoded: Box<dyn Read> = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("lz4") => Box::new(lz4_flex::frame::FrameDecoder::new(reader)),
        Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Some("xz") => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        Some("zst") => Box::new(zstd::stream::read::Decoder::new(reader).reading(path)?),
        _ => Box::new(reader),
    };
    let mut text = String::new();
    decoded.read_to_string(&mut text).map_err(|e| {
        Error::failure(format!("cannot read apt's package list `{}`: {}", path.display(), crate::error::io_cause(&e)))
    })?;
    Ok(text)
}

/// The package cache: `--cache`, else `$XDG_CACHE_HOME/bake`, else `~/.cache/bake`.
pub fn default_cache() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    xdg.or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))).map(|c| c.join("bake"))
}

/// Where `package` lives in the cache.
fn cached_path(cache: &Path, package: &LockedPackage) -> PathBuf {
    cache.join("debs").join(package.deb_name())
}

/// Whether `path` holds exactly the bytes `package` pins.
fn holds(path: &Path, package: &LockedPackage) -> Result<bool> {
    if !path.is_file() {
        return Ok(false);
    }
    Ok(hex(&digest_file(path)?.0) == package.sha256)
}

/// The `.deb` of `package` in the cache, downloaded through apt when it is not there yet.
/// apt's `lists` are read only when apt has to be used; `lock_hint` says how to fix a package
/// the archive no longer offers.
pub fn fetch(
    package: &LockedPackage,
    cache: &Path,
    lists: &mut Lists,
    lock_hint: &str,
    reporter: &dyn Reporter,
) -> Result<PathBuf> {
    let path = cached_path(cache, package);
    if holds(&path, package)? {
        return Ok(path);
    }
    let index = lists.index(reporter)?;
    match index.find(&package.name, &package.version, &package.architecture) {
        None => {
            let now = index
                .candidate(&package.name)
                .map(|p| format!("apt offers {} now", p.version))
                .unwrap_or_else(|| "apt does not offer it at all now".to_string());
            return Err(Error::input(format!(
                "{} is no longer offered by apt's package lists ({now}; the distribution replaced it, or the lists are \
                 out of date: `apt-get update`), and it is not in the cache `{}`: {lock_hint}",
                package.label(),
                cache.display()
            )));
        }
        Some(offered) if offered.sha256 != package.sha256 => {
            return Err(Error::input(format!(
                "{}: the archive now has sha256 {} for this version, but it is pinned as {}: the archive changed a \
                 published package; check your sources, then {lock_hint}",
                package.label(),
                offered.sha256,
                package.sha256
            )));
        }
        Some(_) => {}
    }
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).writing(&debs)?;
    let work = tempfile::Builder::new().prefix(".download-").tempdir_in(&debs).writing(&debs)?;
    reporter.report(Event::Info(format!("downloading {}", package.label())));
    let spec = format!("{}:{}={}", package.name, package.architecture, package.version);
    let output = Command::new("apt-get")
        .args(["download", "-q", &spec])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::failure(format!("cannot run `apt-get download`: {}", crate::error::io_cause(&e))))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::failure(format!(
            "`apt-get download {spec}` failed ({}): {}",
            output.status,
            stderr.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("; ")
        )));
    }
    let mut downloaded: Vec<PathBuf> = std::fs::read_dir(work.path())
        .reading(work.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    let Some(file) = downloaded.pop().filter(|_| downloaded.is_empty()) else {
        return Err(Error::failure(format!("`apt-get download {spec}` did not leave exactly one .deb")));
    };
    let (sha256, _) = digest_file(&file)?;
    if hex(&sha256) != package.sha256 {
        return Err(Error::failure(format!(
            "`apt-get download {spec}` gave a file with sha256 {}, not the pinned {}: refusing it",
            hex(&sha256),
            package.sha256
        )));
    }
    std::fs::rename(&file, &path).writing(&path)?;
    Ok(path)
}
