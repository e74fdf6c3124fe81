//! Helpers shared by the integration tests: running the real `bake` binary, reading its outputs
//! with independent tools (GNU cpio and the compressors' own command-line programs), and making
//! input fixtures (dir trees, tar archives, Debian packages) without touching the host's root.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

mod token;
#[allow(unused_imports)]
pub use token::*;

/// The repository's top folder.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every recipe the repository holds: the examples in `recipes/` and the boot cases in
/// `qemu-tests/` (the ones that must fail included), sorted.
pub fn all_recipes() -> Vec<PathBuf> {
    let mut recipes: Vec<PathBuf> = ["recipes", "qemu-tests", "qemu-tests/must-fail"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo().join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    recipes.sort();
    recipes.iter().map(|r| usable(r)).collect()
}

/// `recipe`, ready to build. A recipe with a committed lock is first checked with `bake lock` on
/// a copy: the lock must be current for the recipe and its inputs ("unchanged"). Debian replaces
/// package versions at point releases, so when a pinned package is no longer offered (and not in
/// the cache) the copy is re-locked with `--update` and returned instead, with a note: the test
/// then proves the recipe still builds and boots, while `tests/packages.rs` proves the lock's
/// own behaviour offline.
pub fn usable(recipe: &Path) -> PathBuf {
    let lock = recipe.with_extension("lock");
    if !lock.exists() {
        return recipe.to_path_buf();
    }
    let dir = tempfile::Builder::new().prefix("relocked-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap().keep();
    let stem = recipe.file_stem().unwrap();
    let copy = dir.join(recipe.file_name().unwrap());
    std::fs::copy(recipe, &copy).unwrap();
    std::fs::copy(&lock, copy.with_extension("lock")).unwrap();
    let inputs = recipe.with_file_name(stem);
    if inputs.is_dir() {
        run_ok(Command::new("cp").arg("-R").arg(&inputs).arg(&dir));
    }
    let out = Bake::new("lock").arg(&copy).run();
    if out.code() == Some(0) {
        let stdout = out.stdout();
        assert!(
            stdout.contains(": unchanged:"),
            "`{}` is stale: run `bake lock {}`: {stdout}",
            lock.display(),
            recipe.display()
        );
        return recipe.to_path_buf();
    }
    let stderr = out.stderr();
    assert!(stderr.contains("is no longer offered"), "`bake lock {}` failed:\n{stderr}", recipe.display());
    eprintln!(
        "NOTE: `{}` pins a package Debian no longer offers; testing a copy re-locked to today's versions. \
         Run `bake lock --update {}` and commit the lock.\n{stderr}",
        lock.display(),
        recipe.display()
    );
    Bake::new("lock").arg("--update").arg(&copy).ok();
    copy
}

/// A cache folder of its own below `dir` whose `debs/` is the shared package cache (nothing is
/// fetched again), so its build cache and input store start empty.
pub fn own_cache(dir: &Path) -> PathBuf {
    let shared = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"))
        .join("bake/debs");
    std::fs::create_dir_all(&shared).unwrap();
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&shared, cache.join("debs")).unwrap();
    cache
}

/// A `bake` command line, assembled fluently and run once, as in
/// `Bake::build(&recipe).out(&dir).arg("--json").ok().json()`.
///
/// Its environment is clean: no `SOURCE_DATE_EPOCH` leaks in from the caller, and every build is
/// a real one (`BAKE_NO_CACHE=1`: a test that builds twice must not get the first build's outputs
/// back from the cache); [`Bake::allow_cache`] turns the cache back on where a test tests it.
pub struct Bake {
    cmd: Command,
}

impl Bake {
    /// `bake SUBCOMMAND`.
    pub fn new(subcommand: &str) -> Bake {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bake"));
        cmd.arg(subcommand).env_remove("SOURCE_DATE_EPOCH").env("BAKE_NO_CACHE", "1");
        Bake { cmd }
    }

    /// `bake build RECIPE`.
    pub fn build(recipe: impl AsRef<OsStr>) -> Bake {
        Bake::new("build").arg(recipe)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Bake {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Bake {
        self.cmd.args(args);
        self
    }

    /// `-o DIR`: the output folder.
    pub fn out(self, dir: impl AsRef<OsStr>) -> Bake {
        self.arg("-o").arg(dir)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Bake {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Bake {
        self.cmd.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Bake {
        self.cmd.current_dir(dir);
        self
    }

    /// Lets builds use the build cache (`BAKE_NO_CACHE` unset).
    pub fn allow_cache(self) -> Bake {
        self.env_remove("BAKE_NO_CACHE")
    }

    /// The command itself, for a test that spawns it or sets more than this builder does.
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Runs it, whatever its exit status.
    pub fn run(mut self) -> Outcome {
        Outcome(run(&mut self.cmd))
    }

    /// Runs it and insists that it exited 0.
    pub fn ok(self) -> Outcome {
        self.exits(0)
    }

    /// Runs it and insists that it exited with exactly `code`.
    pub fn fails(self, code: i32) -> Outcome {
        self.exits(code)
    }

    fn exits(mut self, code: i32) -> Outcome {
        let out = Outcome(run(&mut self.cmd));
        assert_eq!(
            out.code(),
            Some(code),
            "{:?}: expected exit status {code}, got {}:\nstdout:\n{}\nstderr:\n{}",
            self.cmd,
            out.0.status,
            out.stdout(),
            out.stderr()
        );
        out
    }
}

/// What a `bake` run did.
pub struct Outcome(Output);

impl Outcome {
    /// The exit status; `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    pub fn stdout(&self) -> String {
        text(&self.0.stdout)
    }

    pub fn stderr(&self) -> String {
        text(&self.0.stderr)
    }

    /// Standard output, parsed as JSON (`--json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout(), self.stderr()))
    }
}

/// Runs `cmd`, returning its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` and insists that it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The single image file (`NAME.cpio*`) in an output folder.
pub fn image_in(out: &Path) -> PathBuf {
    let mut images: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(OsStr::to_str).is_some_and(|n| n.contains(".cpio")))
        .collect();
    assert_eq!(images.len(), 1, "expected one image in {}: {images:?}", out.display());
    images.pop().unwrap()
}

/// Checks that an external tool exists, with a useful message when it does not.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success());
    assert!(found.unwrap_or(false), "`{tool}` is needed by the tests: install it (scripts/test.sh does, as root)");
}

/// Pipes `input` through `program args` and returns its standard output.
pub fn pipe(program: &str, args: &[&str], input: &[u8], dir: Option<&Path>) -> Vec<u8> {
    require_tool(program);
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {}", text(&out.stderr));
    out.stdout
}

/// The uncompressed archive, decompressed by the compressor's own program (not by bake).
pub fn decompress(image: &Path) -> Vec<u8> {
    let bytes = std::fs::read(image).unwrap();
    let name = image.file_name().unwrap().to_str().unwrap();
    match name.rsplit('.').next().unwrap() {
        "zst" => pipe("zstd", &["-dc"], &bytes, None),
        "gz" => pipe("gzip", &["-dc"], &bytes, None),
        "xz" => pipe("xz", &["-dc"], &bytes, None),
        "lz4" => pipe("lz4", &["-dc"], &bytes, None),
        "cpio" => bytes,
        other => panic!("unknown image suffix `{other}`"),
    }
}

/// GNU cpio's verbose listing of an uncompressed archive, one line per entry.
pub fn cpio_list(archive: &[u8]) -> Vec<String> {
    let out = pipe("cpio", &["-itv", "--numeric-uid-gid", "--quiet"], archive, None);
    text(&out).lines().map(str::to_string).collect()
}

/// Extracts an uncompressed archive with GNU cpio into `dir`, leaving out device nodes (which
/// only root may make) and FIFOs under `dev/`.
pub fn cpio_extract(archive: &[u8], dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    pipe("cpio", &["-idm", "--quiet", "--no-absolute-filenames", "-f", "dev/*"], archive, Some(dir));
}

pub fn manifest(out: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join(format!("{name}.manifest.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every file in `dir` (names and bytes), for comparing two output folders.
pub fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The SHA-256 of `bytes` in lower-case hex, computed here rather than by the library under test.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar archive made in memory with the `tar` crate, so tests can hold device nodes, owners
/// and hard links without root.
pub struct TarMaker {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for TarMaker {
    fn default() -> Self {
        TarMaker::new()
    }
}

impl TarMaker {
    pub fn new() -> TarMaker {
        TarMaker { builder: tar::Builder::new(Vec::new()) }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_111_111_111);
        header.set_size(0);
        header
    }

    /// Writes a raw name into the header (no normalisation by the tar crate, so hostile names
    /// such as `../x` can be made).
    fn append_raw(&mut self, mut header: tar::Header, name: &[u8], data: &[u8]) {
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
    }

    pub fn dir(&mut self, name: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        self.append_raw(Self::header(tar::EntryType::Directory, mode, uid, gid), name.as_bytes(), b"");
        self
    }

    pub fn file(&mut self, name: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        self.append_raw(Self::header(tar::EntryType::Regular, mode, uid, gid), name.as_bytes(), data);
        self
    }

    pub fn raw_file(&mut self, name: &[u8], data: &[u8]) -> &mut Self {
        self.append_raw(Self::header(tar::EntryType::Regular, 0o644, 0, 0), name, data);
        self
    }

    fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
        let mut header = Self::header(kind, 0o777, 0, 0);
        header.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.append_raw(header, name.as_bytes(), b"");
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Link, name, target)
    }

    pub fn device(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
        mode: u32,
        gid: u64,
    ) -> &mut Self {
        let mut header = Self::header(kind, mode, 0, gid);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        self.append_raw(header, name.as_bytes(), b"");
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }

    /// The archive so far, for builder chains that end in a `&mut Self`.
    pub fn finish_clone(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A minimal Debian package (`debian-binary`, `control.tar.xz`, `data.tar.xz`).
pub fn deb(data_tar: &[u8]) -> Vec<u8> {
    let mut control = TarMaker::new();
    control.file("./control", 0o644, 0, 0, b"Package: fixture\nVersion: 1.0\nArchitecture: all\n");
    let control = xz(&control.finish());
    let data = xz(data_tar);
    let mut builder = ar::Builder::new(Vec::new());
    for (name, bytes) in [("debian-binary", &b"2.0\n"[..]), ("control.tar.xz", &control), ("data.tar.xz", &data)] {
        let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        builder.append(&header, bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Bytes that do not compress to nothing, deterministic.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 251) as u8
        })
        .collect()
}

/// Writes `recipe` as `dir/recipe.toml` and returns its path.
pub fn write_recipe(dir: &Path, recipe: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("recipe.toml");
    std::fs::write(&path, recipe).unwrap();
    path
}

/// Serves the files below `root` over HTTP/1.1 on a loopback port (`GET /PATH` gives
/// `root/PATH`, anything else 404), from a thread that lives as long as the test; returns the
/// base URL (`http://127.0.0.1:PORT`). A stand-in for a snapshot archive, which these machines
/// cannot reach.
pub fn serve_folder(root: &Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // The headers, up to the empty line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let file = root.join(&path);
            let safe = !path.split('/').any(|c| c == "..");
            let response = match std::fs::read(&file) {
                Ok(body) if safe && request.starts_with("GET ") => {
                    let mut r =
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                            .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A real OCI registry (Debian's `docker-registry`, distribution 2.8) on a free loopback port,
/// storing in its own folder, stopped when dropped. With `auth`, it asks for basic auth (user
/// `bake`, password `secret`).
pub struct Registry {
    child: Arc<Mutex<Option<std::process::Child>>>,
    config: PathBuf,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Where it keeps blobs: `docker/registry/v2/blobs/sha256/XX/HEX/data`.
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(auth: bool) -> Registry {
        // bcrypt of `secret`, as `htpasswd -B` writes it.
        let htpasswd = "bake:$2b$05$UFmOdYI9ib2euw/dzJliR.hAHoIHGMtoPeqdHkir8I/.mydNKtkAu\n";
        Registry::start_with(|dir| match auth {
            true => {
                let path = dir.join("htpasswd");
                std::fs::write(&path, htpasswd).unwrap();
                format!("auth:\n  htpasswd:\n    realm: bake-test\n    path: {}\n", path.display())
            }
            false => String::new(),
        })
    }

    /// A registry whose configuration ends with what `auth` gives for its folder.
    pub fn start_with(auth: impl FnOnce(&Path) -> String) -> Registry {
        require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let storage = dir.path().join("storage");
        // A fixed secret: uploads under way survive a restart.
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: bake-test-secret\n{}",
            storage.display(),
            auth(dir.path())
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let registry = Registry {
            child: Arc::new(Mutex::new(None)),
            config: config_path,
            address: format!("127.0.0.1:{port}"),
            storage,
            _dir: dir,
        };
        registry.restart();
        registry
    }

    /// Starts the registry again (after [`Registry::stopper`]), with the same storage and port.
    pub fn restart(&self) {
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&self.config).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        // It refuses to start when REGISTRY_* variables are set.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(key);
            }
        }
        *self.child.lock().unwrap() = Some(command.spawn().unwrap());
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(&self.address).is_err() {
            assert!(start.elapsed().as_secs() < 20, "docker-registry did not listen on {}", self.address);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// What stops the registry (kills it), from any thread.
    pub fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let child = self.child.clone();
        move || {
            if let Some(mut child) = child.lock().unwrap().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// The file holding blob `sha256:HEX` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage.join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Which way bytes go through a [`Proxy`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Way {
    /// From bake to the server.
    Up,
    /// From the server to bake.
    Down,
}

/// A TCP proxy on a loopback port in front of `target`, counting the bytes each way, that can
/// cut the connection at a chosen byte: a dropped connection, on demand.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub address: String,
    pub up: Arc<AtomicU64>,
    pub down: Arc<AtomicU64>,
    cut: Arc<Mutex<Option<Cut>>>,
}

struct Cut {
    way: Way,
    /// The count of bytes that way at which the connection is cut.
    at: u64,
    then: Box<dyn FnOnce() + Send>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let proxy = Proxy {
            address,
            up: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicU64::new(0)),
            cut: Arc::new(Mutex::new(None)),
        };
        let (up, down, cut, target) = (proxy.up.clone(), proxy.down.clone(), proxy.cut.clone(), target.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(&target) else { continue };
                for (from, to, way, count) in
                    [(&client, &server, Way::Up, up.clone()), (&server, &client, Way::Down, down.clone())]
                {
                    let (from, to, cut) = (from.try_clone().unwrap(), to.try_clone().unwrap(), cut.clone());
                    let pair = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || pump(from, to, way, &count, &cut, pair));
                }
            }
        });
        proxy
    }

    /// Cuts the connection once `bytes` more have gone `way`, then runs `then`.
    pub fn cut_after(&self, way: Way, bytes: u64, then: impl FnOnce() + Send + 'static) {
        let counted = match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        };
        let at = counted.load(Ordering::SeqCst) + bytes;
        *self.cut.lock().unwrap() = Some(Cut { way, at, then: Box::new(then) });
    }
}

/// Copies `from` to `to`, counting, until either end closes or the cut is reached.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    way: Way,
    count: &AtomicU64,
    cut: &Mutex<Option<Cut>>,
    pair: (std::net::TcpStream, std::net::TcpStream),
) {
    use std::io::{Read, Write};
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 {
            break;
        }
        let before = count.load(Ordering::SeqCst);
        let mut guard = cut.lock().unwrap();
        let stop =
            guard.as_ref().filter(|c| c.way == way && before + n as u64 >= c.at).map(|c| (c.at - before) as usize);
        let n = stop.unwrap_or(n);
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::SeqCst);
        if stop.is_some() {
            let Cut { then, .. } = guard.take().unwrap();
            drop(guard);
            let _ = pair.0.shutdown(std::net::Shutdown::Both);
            let _ = pair.1.shutdown(std::net::Shutdown::Both);
            then();
            return;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
