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

use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, digest_file, hex};
use crate::base::progress::{Event, Reporter};
use crate::debian::index::{Index, List, Priority};
use crate::debian::snapshot::{self, Snapshot};
use crate::lockfile::LockedPackage;

/// Runs an apt program (in `dir`, if given) and returns its standard output.
fn apt(program: &str, args: &[&str], dir: Option<&Path>) -> Result<String> {
    let mut command = Command::new(program);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command.args(args).stdin(Stdio::null()).output().map_err(|e| {
        Error::input(format!(
            "cannot run `{program}`: {}: `packages` layers need apt (a Debian or Ubuntu host); a locked recipe \
             whose packages are all in the cache builds without it",
            crate::base::error::io_cause(&e)
        ))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        return Err(Error::failure(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            said.join("; ")
        )));
    }
    String::from_utf8(output.stdout).map_err(|_| Error::failure(format!("`{program}` printed something not UTF-8")))
}

/// apt's native architecture (`APT::Architecture`).
pub fn native_architecture() -> Result<String> {
    let shell = apt("apt-config", &["shell", "ARCH", "APT::Architecture"], None)?;
    // Prints `ARCH='amd64'`.
    let arch = shell.trim().strip_prefix("ARCH=").unwrap_or("").trim_matches('\'');
    if arch.is_empty() || !arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::failure(format!("apt names no usable architecture: `{}`", shell.trim())));
    }
    Ok(arch.to_string())
}

/// The Packages files apt has downloaded, in apt's order, each with its suite's priority and,
/// when its archive and Release date are known, its snapshot.
pub fn package_lists() -> Result<Vec<(PathBuf, i32, Option<Snapshot>)>> {
    let format = ["indextargets", "--format", "$(FILENAME)\t$(METAKEY)", "Created-By: Packages"];
    let listing = apt("apt-get", &format, None)?;
    let mut lists: Vec<(PathBuf, i32, Option<Snapshot>)> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(file, key)| (PathBuf::from(file.trim()), key.trim()))
        .filter(|(p, _)| p.is_file())
        .map(|(p, key)| {
            let release = release_file(&p, key).and_then(|r| std::fs::read_to_string(r).ok());
            let priority = release.as_deref().map_or(Priority::DEFAULT, Priority::of_release);
            let archive = p.file_name().and_then(|n| snapshot::archive_of_list(&n.to_string_lossy()));
            let time = release.as_deref().and_then(snapshot::time_of_release);
            let snapshot = archive.zip(time).map(|(archive, time)| Snapshot { archive, time });
            (p, priority, snapshot)
        })
        .collect();
    lists.dedup();
    if lists.is_empty() {
        return Err(Error::input(
            "apt has no package lists: run `apt-get update` (as root) so bake can resolve `packages` layers",
        ));
    }
    Ok(lists)
}

/// apt's package lists, read on first use (tens of thousands of packages, skimmed when the build
/// has said which names it will ask about), and, with a cache folder, what resolutions against
/// these very lists gave before.
#[derive(Default)]
pub struct Lists {
    index: Option<Index>,
    /// The names the build will ask about, when known before the lists are read: the index
    /// then parses only what resolutions from them can reach (see [`Index::skimming`]).
    roots: Option<Vec<String>>,
    /// `CACHE/store/apt`, when resolutions are remembered.
    memo_dir: Option<PathBuf>,
    /// The file of resolutions for the lists as they are now, once known (`None` inside when
    /// apt's lists cannot be listed).
    memo: Option<Option<Memo>>,
}

/// Resolutions against one state of apt: `CACHE/store/apt/KEY.json`, KEY a digest of apt's
/// whole configuration (`apt-config dump`: the architecture, the folders, any pinning), the
/// sources files' bytes, the name, size, modification time and inode of every file in its
/// lists folder, and the source of this bake. `apt-get update` rewrites the lists and a changed
/// source or setting is another text, so either is another key; a newer bake is another key
/// too. (Asking apt for its list files takes half a second; this takes a hundredth.)
struct Memo {
    path: PathBuf,
    entries: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Lists {
    /// Lists that remember resolutions under `cache` (none without a cache folder).
    pub fn remembering(cache: Option<&Path>) -> Lists {
        Lists { memo_dir: cache.map(|c| c.join("store/apt")), ..Lists::default() }
    }

    /// Says which package names the build will ask about (the packages of its layers and
    /// lock, its kernel package, the EFI stub), before the lists are first read. Asking about
    /// others later still gives the right answer, only more slowly.
    pub fn expect(&mut self, names: impl IntoIterator<Item = String>) {
        self.roots.get_or_insert_with(Vec::new).extend(names);
    }

    /// Whether the lists were read (and their memory is worth giving back when done).
    pub fn were_read(&self) -> bool {
        self.index.is_some()
    }

    pub fn index(&mut self, reporter: &dyn Reporter) -> Result<&Index> {
        if self.index.is_none() {
            self.index = Some(load_index(self.roots.as_deref(), reporter)?);
        }
        Ok(self.index.as_ref().expect("just loaded"))
    }

    /// What a resolution named `key` gave against the lists as they are now, if remembered.
    pub fn remembered<T: serde::de::DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        let memo = self.memo()?;
        serde_json::from_value(memo.entries.get(key)?.clone()).ok()
    }

    /// Remembers what the resolution named `key` gave (best effort: a failure to write costs
    /// the next build a resolution, nothing else).
    pub fn remember<T: serde::Serialize>(&mut self, key: &str, value: &T) {
        let Some(memo) = self.memo() else { return };
        let Ok(value) = serde_json::to_value(value) else { return };
        memo.entries.insert(key.to_string(), value);
        let Ok(bytes) = serde_json::to_vec(&memo.entries) else { return };
        let write = || -> std::io::Result<()> {
            let dir = memo.path.parent().expect("in the memo folder");
            std::fs::create_dir_all(dir)?;
            let mut file = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.persist(&memo.path).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }

    fn memo(&mut self) -> Option<&mut Memo> {
        if self.memo.is_none() {
            self.memo = Some(self.memo_dir.as_ref().and_then(|dir| open_memo(dir)));
        }
        self.memo.as_mut().and_then(Option::as_mut)
    }
}

/// The memo for apt's lists as they are now (empty when new or unreadable).
fn open_memo(dir: &Path) -> Option<Memo> {
    use sha2::Digest as _;
    use std::os::unix::fs::MetadataExt;
    let dump = apt("apt-config", &["dump"], None).ok()?;
    let dirs = apt(
        "apt-config",
        &["shell", "L", "Dir::State::lists/d", "S", "Dir::Etc::sourcelist/f", "P", "Dir::Etc::sourceparts/d"],
        None,
    )
    .ok()?;
    let dir_of = |name: &str| {
        dirs.lines().find_map(|l| l.strip_prefix(&format!("{name}='"))).map(|v| PathBuf::from(v.trim_end_matches('\'')))
    };
    let (lists, sources, parts) = (dir_of("L")?, dir_of("S")?, dir_of("P")?);
    let mut key = sha2::Sha256::new();
    key.update(format!("bake apt memo 1\0{}\0", env!("BAKE_SOURCE_DIGEST")));
    key.update(dump.as_bytes());
    let sorted = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
        files.sort();
        files
    };
    for file in sorted(&lists) {
        let Ok(meta) = std::fs::symlink_metadata(&file) else { continue };
        key.update(format!(
            "\0list\0{}\0{}\0{}.{}\0{}",
            file.display(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino()
        ));
    }
    for file in std::iter::once(sources).chain(sorted(&parts)) {
        key.update(format!("\0source\0{}\0", file.display()));
        key.update(std::fs::read(&file).unwrap_or_default());
    }
    let key: Digest = key.finalize().into();
    let path = dir.join(format!("{}.json", hex(&key)));
    let entries = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    Some(Memo { path, entries })
}

/// Reads apt's package lists into an index for its native architecture: with `roots`, skimmed
/// (only what resolutions from them can reach is parsed), else whole.
fn load_index(roots: Option<&[String]>, reporter: &dyn Reporter) -> Result<Index> {
    let arch = native_architecture()?;
    let lists = package_lists()?;
    reporter.report(Event::Info(format!("reading {} apt package lists", lists.len())));
    let warn = |skipped: &[String]| {
        if let Some(first) = skipped.first() {
            reporter.report(Event::Warning(format!(
                "skipped {} malformed package stanza(s) in an apt list, the first: {first}",
                skipped.len()
            )));
        }
    };
    if let Some(roots) = roots {
        let lists = lists
            .into_iter()
            .map(|(path, priority, snapshot)| List {
                origin: path.display().to_string(),
                priority,
                snapshot,
                open: Box::new(move || open_list(&path).map_err(|e| e.to_string())),
            })
            .collect();
        let (index, skipped) = Index::skimming(&arch, lists, roots)
            .map_err(|e| Error::failure(format!("cannot read apt's package lists: {e}")))?;
        warn(&skipped);
        return Ok(index);
    }
    let mut index = Index::new(&arch);
    for (list, priority, snapshot) in &lists {
        let mut text = String::new();
        open_list(list)?.read_to_string(&mut text).map_err(|e| unreadable(list, &e))?;
        let (_, skipped) = index.add_list_from(&text, &list.display().to_string(), *priority, snapshot.clone());
        warn(&skipped);
    }
    Ok(index)
}

fn unreadable(path: &Path, e: &std::io::Error) -> Error {
    Error::failure(format!("cannot read apt's package list `{}`: {}", path.display(), crate::base::error::io_cause(e)))
}

/// The Release file apt keeps beside a package list: the list's name is the suite's file name
/// prefix followed by its `MetaKey` with `/` as `_` (`..._dists_bookworm_` +
/// `main_binary-amd64_Packages`), and the Release file is that prefix + `InRelease` or `Release`.
fn release_file(list: &Path, meta_key: &str) -> Option<PathBuf> {
    let name = list.file_name()?.to_str()?;
    let key = meta_key.replace('/', "_");
    let stem = name.find(&key).map(|at| &name[..at])?;
    ["InRelease", "Release"].iter().map(|r| list.with_file_name(format!("{stem}{r}"))).find(|p| p.is_file())
}

/// A Packages file, decompressed as apt stored it (apt keeps them plain or, with
/// `Acquire::GzipIndexes` or by default on newer releases, compressed).
fn open_list(path: &Path) -> Result<Box<dyn std::io::BufRead>> {
    let file = std::fs::File::open(path).reading(path)?;
    let reader = std::io::BufReader::new(file);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let decoded: Box<dyn Read> = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("lz4") => Box::new(lz4_flex::frame::FrameDecoder::new(reader)),
        Some("gz") => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Some("xz") => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
        Some("zst") => Box::new(zstd::stream::read::Decoder::new(reader).reading(path)?),
        Some(ext @ ("bz2" | "lzma")) => {
            return Err(Error::input(format!(
                "apt keeps `{}` compressed with {ext}, which bake does not read: set \
                 `Acquire::GzipIndexes` or `KeepCompressedAs` to another compressor and run `apt-get update`",
                path.display()
            )));
        }
        _ => Box::new(reader),
    };
    Ok(Box::new(std::io::BufReader::with_capacity(256 << 10, decoded)))
}

/// Where `package` lives in the cache: its Debian file name with an epoch's `:` written
/// `%3a`, as apt writes it (a `:` is not allowed on every file system).
fn cached_path(cache: &Path, package: &LockedPackage) -> PathBuf {
    cache.join("debs").join(package.deb_name().replace(':', "%3a"))
}

/// The digest of `path` if it holds exactly the bytes `package` pins.
fn holds(path: &Path, package: &LockedPackage) -> Result<Option<Digest>> {
    if !path.is_file() {
        return Ok(None);
    }
    let (digest, _) = digest_file(path)?;
    Ok((hex(&digest) == package.sha256).then_some(digest))
}

/// Where pinned packages may come from besides apt.
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    /// bake's package cache (its `debs/` folder), where fetched packages are kept.
    pub cache: &'a Path,
    /// A folder `bake vendor` wrote.
    pub inputs: Option<&'a Path>,
    /// A snapshot archive's root URL.
    pub snapshot_mirror: Option<&'a str>,
    /// A store of pinned inputs by sha256 (`--inputs-from`, a registry repository), asked last.
    pub store: Option<&'a dyn InputStore>,
}

/// A store that keeps pinned inputs by their sha256, asked when no other source has one (a
/// registry repository: `bake build --inputs-from`).
pub trait InputStore: std::fmt::Debug + Send + Sync {
    /// What to call it in a message.
    fn name(&self) -> String;
    /// Writes the input whose sha256 is `sha256` (hex), `size` bytes, into `out` (the file at
    /// `path`), checked against that digest as it streams; `false` when the store lacks it.
    fn fetch(
        &self,
        sha256: &str,
        size: u64,
        out: &mut std::fs::File,
        path: &Path,
        reporter: &dyn Reporter,
    ) -> Result<bool>;
}

/// Where a pinned package is found in a folder `bake vendor` wrote: by its sha256.
pub fn vendored_path(inputs: &Path, sha256: &str) -> PathBuf {
    inputs.join("sha256").join(sha256)
}

/// The `.deb` of `package`, from the first source that has it, in this order: bake's package
/// cache; the vendored folder (`--inputs`); apt (`apt-get download`, when its lists offer the
/// pinned version); the snapshot archive (`BAKE_SNAPSHOT_MIRROR`, when the lock says which
/// archive and time); the input store (`--inputs-from`). Every source is held to the pinned sha256: other bytes are an error naming
/// the package and the source, never a reason to try another version. apt's `lists` are read
/// only when apt has to be asked; `lock_hint` says how to fix a package no source has.
pub fn fetch(
    package: &LockedPackage,
    settings: &Sources<'_>,
    lists: &mut Lists,
    lock_hint: &str,
    reporter: &dyn Reporter,
) -> Result<(PathBuf, Digest)> {
    let cache = settings.cache;
    let path = cached_path(cache, package);
    if let Some(digest) = holds(&path, package)? {
        reporter.report(Event::Detail(format!("{} from the package cache `{}`", package.label(), path.display())));
        return Ok((path, digest));
    }
    if let Some(inputs) = settings.inputs {
        let vendored = vendored_path(inputs, &package.sha256);
        if vendored.is_file() {
            let (digest, _) = digest_file(&vendored)?;
            if hex(&digest) != package.sha256 {
                return Err(Error::input(format!(
                    "{}: `{}` in the vendored folder has sha256 {}, not the pinned {}: the folder was changed;                      run `bake vendor` again",
                    package.label(),
                    vendored.display(),
                    hex(&digest),
                    package.sha256
                )));
            }
            reporter.report(Event::Detail(format!(
                "{} from the vendored folder `{}`",
                package.label(),
                inputs.display()
            )));
            return Ok((vendored, digest));
        }
    }
    // With a snapshot archive to fall back on, apt having no lists at all (an offline machine,
    // an `APT_CONFIG` without sources) is not an error: the archive is asked instead.
    let mirror_can = settings.snapshot_mirror.is_some() && package.archive.is_some() && package.snapshot.is_some();
    let offered = match lists.index(reporter) {
        Ok(index) => check_offered(package, index, cache)?,
        Err(e) if mirror_can || settings.store.is_some() => {
            reporter.report(Event::Detail(format!("apt cannot be asked ({e}); trying the other sources")));
            false
        }
        Err(e) => return Err(e),
    };
    if offered {
        let sha256 = download(package, cache, &path, reporter)?;
        return Ok((path, sha256));
    }
    if let (Some(mirror), Some(archive), Some(time)) = (settings.snapshot_mirror, &package.archive, &package.snapshot) {
        let url = crate::debian::snapshot::url(mirror, archive, time, &package.filename);
        let missing = || {
            Error::input(format!(
                "{}: the snapshot archive has no `{url}` (404): the lock names an archive or time it does not keep",
                package.label()
            ))
        };
        match fetch_url(package, &url, cache, &path, reporter) {
            Ok(Some(sha256)) => return Ok((path, sha256)),
            Ok(None) if settings.store.is_none() => return Err(missing()),
            Ok(None) => reporter.report(Event::Detail(format!("{}; asking the input store", missing()))),
            // A network failure: the store may have it. Other bytes than the pin (an input
            // error) are never passed over.
            Err(e) if settings.store.is_some() && e.class() == crate::base::error::Class::Failure => {
                reporter.report(Event::Warning(format!("{e}; asking the input store")));
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(store) = settings.store
        && let Some(sha256) = fetch_from_store(package, store, cache, &path, reporter)?
    {
        return Ok((path, sha256));
    }
    let (mirror, archive) = (settings.snapshot_mirror, &package.archive);
    let now = match lists.index(reporter) {
        Ok(index) => index
            .candidate(&package.name)
            .map(|p| format!("apt offers {} now", p.version))
            .unwrap_or_else(|| "apt does not offer it at all now".to_string()),
        Err(e) => format!("apt cannot be asked: {e}"),
    };
    let snapshot = match (mirror, archive) {
        (None, Some(_)) => {
            "; the lock says where a snapshot archive keeps it: set BAKE_SNAPSHOT_MIRROR (Debian's is https://snapshot.debian.org/archive)"
        }
        (_, None) => "; the lock predates snapshot times, so no snapshot archive can be asked",
        _ => "",
    };
    let store = settings.store.map(|s| format!(" nor in the input store {}", s.name())).unwrap_or_default();
    Err(Error::input(format!(
        "{} is no longer offered by apt's package lists ({now}; the distribution replaced it, or the lists are out of date: `apt-get update`), and it is not in the cache `{}`{}{store}{snapshot}: {lock_hint}",
        package.label(),
        cache.display(),
        settings.inputs.map(|d| format!(" nor in `{}`", d.display())).unwrap_or_default(),
    )))
}

/// Downloads `package` from `url` (a snapshot archive) into the cache at `dest`, kept only with
/// the pinned digest and size; returns the digest, or `None` when the archive has no such file.
fn fetch_url(
    package: &LockedPackage,
    url: &str,
    cache: &Path,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<Option<Digest>> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).writing(&debs)?;
    reporter.report(Event::Info(format!("downloading {} from the snapshot archive: {url}", package.label())));
    let failed = |what: String| Error::failure(format!("{}: cannot fetch `{url}`: {what}", package.label()));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(600)))
            .tls_config(crate::base::http::tls())
            .http_status_as_error(false)
            .build(),
    );
    let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if status == 404 {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let mut part = crate::base::file::staged_in(&debs, ".snapshot-")?;
    let mut body = response.body_mut().as_reader().take(package.size.saturating_add(1));
    std::io::copy(&mut body, part.as_file_mut()).map_err(|e| failed(crate::base::error::io_cause(&e)))?;
    keep_pinned(part, package, &format!("the snapshot archive served {{}} for `{url}`"), dest).map(Some)
}

/// Puts `part` at `dest` when it holds exactly the pinned bytes of `package`; otherwise an error
/// naming the package and, through `from` (with `{}` for what came), the source.
fn keep_pinned(part: tempfile::NamedTempFile, package: &LockedPackage, from: &str, dest: &Path) -> Result<Digest> {
    let (sha256, size) = digest_file(part.path())?;
    if hex(&sha256) != package.sha256 || size != package.size {
        let came = format!("{size} bytes with sha256 {}", hex(&sha256));
        return Err(Error::input(format!(
            "{}: {}, not the pinned {} bytes with sha256 {}: refusing them",
            package.label(),
            from.replace("{}", &came),
            package.size,
            package.sha256
        )));
    }
    crate::base::file::put_in_place(part, dest)?;
    Ok(sha256)
}

/// `package` from the input `store` into the cache at `dest`, kept only with the pinned digest
/// and size; `None` when the store does not have it.
fn fetch_from_store(
    package: &LockedPackage,
    store: &dyn InputStore,
    cache: &Path,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<Option<Digest>> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).writing(&debs)?;
    let mut part = crate::base::file::staged_in(&debs, ".store-")?;
    let part_path = part.path().to_path_buf();
    let found = store
        .fetch(&package.sha256, package.size, part.as_file_mut(), &part_path, reporter)
        .map_err(|e| e.context(format!("{} from the input store {}", package.label(), store.name())))?;
    if !found {
        return Ok(None);
    }
    let sha256 = keep_pinned(part, package, &format!("the input store {} sent {{}}", store.name()), dest)?;
    reporter.report(Event::Detail(format!("{} from the input store {}", package.label(), store.name())));
    Ok(Some(sha256))
}

/// Whether apt can download the package as pinned; refuses one for another architecture or
/// offered with other bytes.
fn check_offered(package: &LockedPackage, index: &Index, cache: &Path) -> Result<bool> {
    if package.architecture != "all" && package.architecture != index.arch() {
        return Err(Error::input(format!(
            "{} is for {}, but apt's native architecture here is {}, and it is not in the cache `{}`",
            package.label(),
            package.architecture,
            index.arch(),
            cache.display()
        )));
    }
    match index.find(&package.name, &package.version, &package.architecture) {
        None => Ok(false),
        Some(offered) if offered.sha256 != package.sha256 => Err(Error::input(format!(
            "{}: the archive now has sha256 {} for this version, but it is pinned as {}: the archive changed a \
             published package; check your sources, then run `bake lock --update`",
            package.label(),
            offered.sha256,
            package.sha256
        ))),
        Some(_) => Ok(true),
    }
}

/// Downloads `package` with `apt-get download` into a temporary folder of the cache, and
/// keeps it, at `dest`, only with the pinned digest; returns the digest.
fn download(package: &LockedPackage, cache: &Path, dest: &Path, reporter: &dyn Reporter) -> Result<Digest> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).writing(&debs)?;
    let work = tempfile::Builder::new().prefix(".download-").tempdir_in(&debs).writing(&debs)?;
    reporter.report(Event::Info(format!("downloading {}", package.label())));
    let spec = format!("{}:{}={}", package.name, package.architecture, package.version);
    apt("apt-get", &["download", "-q", &spec], Some(work.path()))?;
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
    std::fs::rename(&file, dest).writing(dest)?;
    Ok(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against this machine's own apt lists (tens of thousands of packages): an index skimmed
    /// for a few roots resolves what the examples ask for exactly as the whole index does.
    #[test]
    fn a_skimmed_index_of_the_host_lists_resolves_as_the_whole_one() {
        use crate::debian::resolve::{Request, Variant, resolve};
        let reporter = crate::base::progress::Silent;
        let Ok(whole) = load_index(None, &reporter) else { return };
        if whole.is_empty() {
            return; // no apt lists on this machine
        }
        let requests: [(&[&str], bool, Option<Variant>); 4] = [
            (&["systemd-sysv", "udev"], false, Some(Variant::Minbase)),
            (&["busybox-static"], false, None),
            (&["systemd", "dbus"], true, None),
            (&["linux-image-cloud-amd64", "systemd-boot-efi"], false, Some(Variant::Essential)),
        ];
        for (names, recommends, variant) in requests {
            let packages: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            // Skimmed for the first name only: the others are found as deferred packages.
            let skimmed = load_index(Some(&packages[..1]), &reporter).unwrap();
            let request = Request { packages: &packages, exclude: &[], recommends, variant };
            assert_eq!(resolve(&whole, &request), resolve(&skimmed, &request), "{names:?}");
            for name in names {
                assert_eq!(whole.candidate(name), skimmed.candidate(name), "{name}");
            }
        }
    }

    #[test]
    fn the_release_file_is_found_beside_its_list() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("deb.debian.org_debian_dists_bookworm-backports_main_binary-amd64_Packages.lz4");
        std::fs::write(&list, "").unwrap();
        assert_eq!(release_file(&list, "main/binary-amd64/Packages"), None);
        let release = dir.path().join("deb.debian.org_debian_dists_bookworm-backports_InRelease");
        std::fs::write(&release, "NotAutomatic: yes\n").unwrap();
        assert_eq!(release_file(&list, "main/binary-amd64/Packages"), Some(release));
        // A flat repository: `deb file:/repo ./`.
        let flat = dir.path().join("_repo_._Packages");
        std::fs::write(&flat, "").unwrap();
        std::fs::write(dir.path().join("_repo_._Release"), "").unwrap();
        assert_eq!(release_file(&flat, "Packages"), Some(dir.path().join("_repo_._Release")));
    }
}
