//! From a recipe to a [`Plan`]: every entry of the image, sorted, with every bit of metadata
//! decided, and every input with its digest.
//!
//! This is the only place where the recipe meets the host, and it reads nothing the recipe does
//! not name: inputs are hashed and laid into a [`Tree`] in order, the `[remove]` patterns prune
//! it, the recipe's own entries go in last, and the result is frozen. Modification times are all
//! the image epoch, inode numbers are given in path order, and owners come from the recipe or the
//! archives, so nothing about the builder (user, umask, clock, time zone, locale, build folder,
//! directory order) can reach the image. The writers only ever see a `Plan`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub mod tree;

use toml::Spanned;

use crate::base::error::{Error, IoContext, Result};
use crate::source::content::{Content, Spool};
use sha2::{Digest as _, Sha256};

use crate::base::hash::{Digest, HashingReader, digest_file, hex, parse_hex};
use crate::base::path::ImagePath;
use crate::base::progress::{Event, Reporter};
use crate::lockfile::{LockedKernel, LockedLayer, LockedPackage};
use crate::plan::tree::{Entry, Kind, Meta, Tree};
use crate::recipe::{Compression, DeviceKind, Mode, RecipeFile};
use crate::source::packages::{LockPolicy, LockState, PackageSettings, PackagesLayer};

/// What the environment may contribute to a build; everything else is ignored.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `SOURCE_DATE_EPOCH`, the epoch when the recipe sets none.
    pub source_date_epoch: Option<String>,
    /// For tests of `bake verify` only (`BAKE_TEST_LEAK_INPUT_MTIME=1`): make the build
    /// deliberately non-reproducible by taking the epoch from the recipe file's mtime, so a test
    /// can prove that verify notices and explains such a leak.
    pub leak_input_mtime: bool,
    /// Where packages are cached and how the lock file is used.
    pub packages: PackageSettings,
}

impl Environment {
    pub fn from_process() -> Environment {
        Environment {
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH").ok(),
            leak_input_mtime: std::env::var_os("BAKE_TEST_LEAK_INPUT_MTIME").is_some_and(|v| v == "1"),
            packages: PackageSettings { cache: crate::source::apt::default_cache(), policy: LockPolicy::Honour },
        }
    }
}

/// The validated, resolved image.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    /// Modification time of every entry, in seconds since 1970.
    pub epoch: u64,
    pub initramfs: Option<InitramfsPlan>,
    /// The disk, when the recipe has `[disk]`.
    pub disk: Option<DiskPlan>,
    /// The kernel, when the recipe has `[kernel]`.
    pub kernel: Option<KernelPlan>,
    /// Every entry in path order (parents before children). The root is not an entry.
    pub entries: Vec<PlanEntry>,
    /// Every input, in recipe order.
    pub inputs: Vec<Input>,
    /// The `packages` layers, resolved.
    pub package_layers: Vec<LockedLayer>,
    /// The `[kernel] package`, resolved.
    pub kernel_package: Option<LockedKernel>,
    /// Every package laid in, in order, with its licence (for the SBOM).
    pub packages: Vec<PlannedPackage>,
}

/// A Debian package in the image.
#[derive(Debug, Clone)]
pub struct PlannedPackage {
    pub package: LockedPackage,
    /// What its machine-readable copyright file declares, if it has one.
    pub license: Option<crate::debian::copyright::Declared>,
}

/// The recipe's kernel, read and resolved.
#[derive(Debug, Clone)]
pub struct KernelPlan {
    pub version: String,
    pub vmlinuz: Content,
    /// The package as the recipe names it.
    pub package: String,
    /// Installed modules, in load order.
    pub modules: Vec<String>,
    /// Requested modules that are built into the kernel.
    pub builtin: Vec<String>,
    /// `[kernel] cmdline`, for `bake test`.
    pub cmdline: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct DiskPlan {
    pub partition_table: crate::recipe::PartitionTable,
}

#[derive(Debug, Clone, Copy)]
pub struct InitramfsPlan {
    pub compression: Compression,
    /// Explicit level; the compressor's default when `None`.
    pub level: Option<i64>,
}

/// An input the image was made from.
#[derive(Debug, Clone)]
pub struct Input {
    /// `dir`, `tar`, `deb`, `package`, `kernel` or `file`.
    pub kind: &'static str,
    /// The path as written in the recipe (relative to it), so the manifest does not depend on
    /// where the recipe was built.
    pub path: String,
    pub sha256: Digest,
}

#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub path: ImagePath,
    pub node: Node,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Inode number: 1, 2, ... in path order; hard links share their first name's.
    pub ino: u32,
    /// Names of a file; for a directory 2 plus its subdirectories, as on a real file system.
    pub nlink: u32,
}

#[derive(Debug, Clone)]
pub enum Node {
    Dir,
    File {
        content: Content,
        /// For the second and later names of a hard-linked file, its first name.
        link_to: Option<ImagePath>,
        /// Whether this name carries the data in a cpio archive (the last name of a group, as
        /// GNU cpio and the kernel's `gen_init_cpio` do; for a single name, itself).
        carries_data: bool,
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

impl PlanEntry {
    /// The type word used in manifests and listings.
    pub fn type_name(&self) -> &'static str {
        match &self.node {
            Node::Dir => "dir",
            Node::File { .. } => "file",
            Node::Symlink { .. } => "symlink",
            Node::Device { kind: DeviceKind::Char, .. } => "char",
            Node::Device { kind: DeviceKind::Block, .. } => "block",
            Node::Device { kind: DeviceKind::Fifo, .. } => "fifo",
        }
    }
}

/// A `[[file]]`, `[[dir]]`, ... of the recipe, checked but not yet placed.
struct Declared {
    path: ImagePath,
    label: String,
    what: Declaration,
}

enum Declaration {
    Entry(Kind, Meta),
    /// A regular file; its inode key is handed out when it is placed.
    File(Content, Meta),
    Hardlink(ImagePath),
}

/// An input layer, checked but not yet read.
struct LayerInput<'r> {
    /// The layer's number in the recipe, from 1 (the packages of one `packages` layer share it).
    number: usize,
    /// `dir`, `tar`, `deb`, `package` (one package of a `packages` layer, a `.deb` in the cache)
    /// or `packages` (a request not yet resolved).
    kind: &'static str,
    written: String,
    host: PathBuf,
    /// The recipe's `sha256` for it.
    pin: Option<&'r Spanned<String>>,
    /// For a `package`: the package it is, and its digest (checked when it was fetched).
    package: Option<(LockedPackage, Digest)>,
    /// For `packages`: the request.
    request: Option<PackagesLayer<'r>>,
}

/// Turns `recipe` into a [`Plan`], reading its inputs (archive data is kept in `spool`).
pub fn plan(recipe: &RecipeFile, env: &Environment, spool: &mut Spool, reporter: &dyn Reporter) -> Result<Plan> {
    prepare(recipe, env, None, reporter)?.lay(spool, reporter)
}

/// A recipe checked, its packages resolved and fetched, and every input hashed, but no archive
/// unpacked yet: enough to know whether the outputs are already in the build cache.
pub struct Prepared<'r> {
    recipe: &'r RecipeFile,
    name: String,
    epoch: u64,
    initramfs: Option<InitramfsPlan>,
    disk: Option<DiskPlan>,
    file_limit: u64,
    /// Each layer with its digest (a file's, or for a `dir` the digest of what was taken from
    /// it) and, for a `dir`, what it holds.
    layers: Vec<(LayerInput<'r>, Digest, Option<crate::source::dir::Scanned>)>,
    package_layers: Vec<LockedLayer>,
    kernel_source: Option<KernelSource>,
    declared: Vec<Declared>,
    /// The recipe's `source` files.
    inputs: Vec<Input>,
    patterns: Vec<Pattern>,
    lock: LockState,
}

/// Checks `recipe`, resolves and fetches its packages and hashes every input. With a cache
/// folder, files of `dir` layers unchanged since an earlier build are not read again.
pub fn prepare<'r>(
    recipe: &'r RecipeFile,
    env: &Environment,
    cache: Option<&Path>,
    reporter: &dyn Reporter,
) -> Result<Prepared<'r>> {
    let r = &recipe.recipe;
    let name = check_name(recipe, &r.image.name)?;
    let epoch = epoch(recipe, env)?;
    let initramfs = match &r.initramfs {
        Some(section) => Some(InitramfsPlan {
            compression: section.compression,
            level: check_level(recipe, section.compression, section.level.as_ref())?,
        }),
        None => None,
    };

    // Check everything that can be checked without reading an input first, so a typo is
    // reported in a moment, not after minutes of unpacking.
    if initramfs.is_some() && epoch > crate::format::cpio::FIELD_MAX {
        return Err(Error::input(format!(
            "epoch {epoch} is after 2106-02-07 06:28:15 UTC, the last time a cpio newc header can hold"
        )));
    }
    let disk = r.disk.as_ref().map(|d| DiskPlan { partition_table: d.get_ref().partition_table });
    if disk.is_some_and(|d| d.partition_table == crate::recipe::PartitionTable::Gpt)
        && name.encode_utf16().count() > crate::format::gpt::NAME_UNITS
    {
        return Err(recipe.error(
            &r.image.name,
            format!(
                "image name `{name}` is longer than the {} characters a GPT partition label holds (the disk's \
                 partition is named after the image): shorten it, or use `partition-table = \"none\"`",
                crate::format::gpt::NAME_UNITS
            ),
        ));
    }
    // The largest file the requested outputs can hold (cpio newc: below 4 GiB; EROFS's limit is
    // that of the whole image, checked when it is laid out).
    let file_limit = if initramfs.is_some() { crate::format::cpio::FIELD_MAX + 1 } else { u64::MAX };
    let layers = check_layers(recipe)?;
    let (declared, inputs) = check_declared(recipe, file_limit)?;
    let patterns = check_patterns(recipe)?;

    // Package names become pinned `.deb` files in the cache.
    let lock = LockState::load(recipe, env.packages.policy)?;
    for input in &inputs {
        lock.check_input(recipe, input.kind, &input.path, &input.sha256)?;
    }
    let mut lists = crate::source::apt::Lists::default();
    let (layers, package_layers) = resolve_packages(recipe, layers, &lock, &env.packages, &mut lists, reporter)?;
    let kernel_source = match &r.kernel {
        Some(section) => Some(kernel_source(recipe, section, &lock, &env.packages, &mut lists, reporter)?),
        None => None,
    };

    // Hash every input before unpacking any, so a pin mismatch stops the build before work.
    let mut hashed = Vec::with_capacity(layers.len());
    let total = layers.len();
    for (index, layer) in layers.into_iter().enumerate() {
        let (sha256, scanned) = match (layer.kind, &layer.package) {
            ("dir", _) => {
                reporter.report(Event::Input { index: index + 1, total, label: layer_label(&layer) });
                let dir = crate::source::dir::scan(&layer.host, file_limit, cache)?;
                (dir.summary, Some(dir))
            }
            (_, Some((_, digest))) => (*digest, None),
            _ => (digest_file(&layer.host)?.0, None),
        };
        if let Some(pin) = layer.pin {
            check_pin(recipe, pin, &layer.host, &sha256)?;
        }
        if layer.package.is_none() && layer.kind != "dir" {
            lock.check_input(recipe, layer.kind, &layer.written, &sha256)?;
        }
        hashed.push((layer, sha256, scanned));
    }
    Ok(Prepared {
        recipe,
        name,
        epoch,
        initramfs,
        disk,
        file_limit,
        layers: hashed,
        package_layers,
        kernel_source,
        declared,
        inputs,
        patterns,
        lock,
    })
}

fn layer_label(layer: &LayerInput) -> String {
    match &layer.package {
        Some((package, _)) => format!("layer {} (package {})", layer.number, package.label()),
        None => format!("layer {} (`{}`)", layer.number, layer.written),
    }
}

impl Prepared<'_> {
    /// A digest of everything the outputs are made from: `bake` (the program's own digest),
    /// the recipe's text, the epoch, and every input with its digest, the packages' locked
    /// identities (which the SBOM repeats) and the kernel's. Two builds with the same key give
    /// the same bytes, so the key can name them in a cache. Each field is length-prefixed, so
    /// no two different lists of fields hash alike.
    pub fn cache_key(&self, bake: &Digest) -> Digest {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"bake build cache key 1");
        field(bake);
        field(self.recipe.text.as_bytes());
        field(self.epoch.to_string().as_bytes());
        let package_fields = |field: &mut dyn FnMut(&[u8]), p: &LockedPackage| {
            for value in [&p.name, &p.version, &p.architecture, &p.sha256, &p.source, &p.source_version, &p.filename] {
                field(value.as_bytes());
            }
            field(p.size.to_string().as_bytes());
        };
        for (layer, sha256, _) in &self.layers {
            field(layer.kind.as_bytes());
            field(layer.written.as_bytes());
            field(sha256);
            if let Some((package, _)) = &layer.package {
                package_fields(&mut field, package);
            }
        }
        for input in &self.inputs {
            field(input.kind.as_bytes());
            field(input.path.as_bytes());
            field(&input.sha256);
        }
        if let Some(kernel) = &self.kernel_source {
            field(b"kernel");
            field(kernel.written.as_bytes());
            field(&kernel.sha256);
            if let Some(locked) = &kernel.package {
                package_fields(&mut field, &locked.package);
            }
        }
        h.finalize().into()
    }

    /// Unpacks the archives and lays every input and entry into the image's tree.
    pub fn lay(self, spool: &mut Spool, reporter: &dyn Reporter) -> Result<Plan> {
        let Prepared {
            recipe,
            name,
            epoch,
            initramfs,
            disk,
            file_limit,
            mut layers,
            package_layers,
            kernel_source,
            declared,
            inputs,
            patterns,
            lock,
        } = self;
        let mut tree = Tree::with_file_limit(file_limit);
        let mut packages = Vec::new();
        let total = layers.len();
        for (index, (layer, sha256, scanned)) in layers.iter_mut().enumerate() {
            let label = layer_label(layer);
            let origin = tree.origin(label.clone());
            if let Some(dir) = scanned.take() {
                dir.lay(&mut tree, origin)?;
                continue;
            }
            reporter.report(Event::Input { index: index + 1, total, label });
            // Archives are read a second time to lay them in: check it is still the same file.
            let file = std::fs::File::open(&layer.host).reading(&layer.host)?;
            let mut reader = HashingReader::new(std::io::BufReader::with_capacity(1 << 20, file));
            let label = layer.host.display().to_string();
            if layer.kind == "tar" {
                crate::source::tar::read(&mut reader, &label, &mut tree, spool, origin)?;
            } else {
                crate::source::deb::read(&mut reader, &label, &mut tree, spool, origin)?;
            }
            if reader.finish().reading(&layer.host)? != *sha256 {
                return Err(Error::input(format!("`{label}` changed while it was being read")));
            }
            // A package two layers name is laid in twice but listed once.
            if let Some((package, _)) = &layer.package
                && !packages.iter().any(|p: &PlannedPackage| p.package == *package)
            {
                let license = declared_license(&tree, spool, &package.name, origin)?;
                packages.push(PlannedPackage { package: package.clone(), license });
            }
        }
        let mut all_inputs: Vec<Input> = layers
            .into_iter()
            .map(|(layer, sha256, _)| Input { kind: layer.kind, path: layer.written, sha256 })
            .collect();
        all_inputs.extend(inputs);

        prune(&mut tree, &patterns, reporter);

        // The kernel's modules go in after pruning, so no `[remove]` pattern takes away a module
        // the recipe asked for.
        let (kernel, kernel_package) = match (&recipe.recipe.kernel, kernel_source) {
            (Some(section), Some(source)) => {
                let (plan, input) = kernel(recipe, section, &source, &mut tree, spool, reporter)?;
                all_inputs.push(input);
                (Some(plan), source.package)
            }
            _ => (None, None),
        };
        if let Some(locked) = &kernel_package {
            // Its licence is not read: bake lays in modules, not the package's documentation.
            packages.push(PlannedPackage { package: locked.package.clone(), license: None });
        }

        for item in declared {
            let origin = tree.origin(item.label);
            match item.what {
                Declaration::Entry(kind, meta) => tree.insert(&item.path, Entry { kind, meta, origin })?,
                Declaration::File(content, meta) => {
                    let kind = Kind::File { content, inode: tree.new_inode() };
                    tree.insert(&item.path, Entry { kind, meta, origin })?
                }
                Declaration::Hardlink(target) => tree.link(&item.path, &target, origin)?,
            };
        }

        lock.check_coverage(recipe, &all_inputs, &package_layers, kernel_package.as_ref(), reporter)?;
        Ok(Plan {
            name,
            epoch,
            initramfs,
            disk,
            kernel,
            entries: freeze(&tree),
            inputs: all_inputs,
            package_layers,
            kernel_package,
            packages,
        })
    }
}

/// Replaces each `packages` layer by the packages it resolves to, fetched into the cache.
fn resolve_packages<'r>(
    recipe: &'r RecipeFile,
    layers: Vec<LayerInput<'r>>,
    lock: &LockState,
    settings: &PackageSettings,
    lists: &mut crate::source::apt::Lists,
    reporter: &dyn Reporter,
) -> Result<(Vec<LayerInput<'r>>, Vec<LockedLayer>)> {
    let mut out = Vec::with_capacity(layers.len());
    let mut resolved = Vec::new();
    for layer in layers {
        let Some(request) = &layer.request else {
            out.push(layer);
            continue;
        };
        let locked = crate::source::packages::resolve_layer(recipe, request, lock, lists, reporter)?;
        let cache = settings.cache()?;
        for package in &locked.resolved {
            let (host, digest) = crate::source::apt::fetch(package, cache, lists, &lock.hint(recipe), reporter)?;
            out.push(LayerInput {
                number: layer.number,
                kind: "package",
                written: package.deb_name(),
                host,
                pin: None,
                package: Some((package.clone(), digest)),
                request: None,
            });
        }
        resolved.push(locked);
    }
    Ok((out, resolved))
}

/// Where the `[kernel]` package comes from.
struct KernelSource {
    host: PathBuf,
    sha256: Digest,
    /// As the manifest names it: the recipe's `deb`, or the package's file name.
    written: String,
    /// For `package`: what it resolved to.
    package: Option<LockedKernel>,
}

fn kernel_source(
    recipe: &RecipeFile,
    section: &Spanned<crate::recipe::KernelSection>,
    lock: &LockState,
    settings: &PackageSettings,
    lists: &mut crate::source::apt::Lists,
    reporter: &dyn Reporter,
) -> Result<KernelSource> {
    let k = section.get_ref();
    match (&k.deb, &k.package) {
        (Some(deb), None) => {
            let host = recipe.host_path(deb.get_ref());
            if !host.is_file() {
                return Err(recipe.error(deb, format!("`{}` is not a readable file", host.display())));
            }
            let sha256 = digest_file(&host)?.0;
            Ok(KernelSource { host, sha256, written: deb.get_ref().clone(), package: None })
        }
        (None, Some(name)) => {
            if let Some(pin) = &k.sha256 {
                return Err(recipe.error(pin, "`sha256` pins a `deb`; a kernel `package` is pinned in the lock file"));
            }
            let locked = crate::source::packages::resolve_kernel(recipe, name, lock, lists, reporter)?;
            let (host, sha256) =
                crate::source::apt::fetch(&locked.package, settings.cache()?, lists, &lock.hint(recipe), reporter)?;
            Ok(KernelSource { host, sha256, written: locked.package.deb_name(), package: Some(locked) })
        }
        _ => Err(recipe.error(section, "`[kernel]` needs exactly one of `deb` or `package`")),
    }
}

/// The licence a package's machine-readable copyright file declares, read from what the
/// package itself laid into `tree` (before `[remove]` prunes documentation).
fn declared_license(
    tree: &Tree,
    spool: &Spool,
    name: &str,
    origin: crate::plan::tree::Origin,
) -> Result<Option<crate::debian::copyright::Declared>> {
    let Ok(path) = ImagePath::from_recipe(&format!("/usr/share/doc/{name}/copyright")) else { return Ok(None) };
    let Some(Entry { kind: Kind::File { content, .. }, origin: from, .. }) = tree.get(&path) else { return Ok(None) };
    if *from != origin || content.size > 1 << 20 {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut content.open(spool)?, &mut bytes)
        .map_err(|e| Error::failure(format!("cannot read the copyright file of `{name}`: {e}")))?;
    Ok(crate::debian::copyright::declared_license(&String::from_utf8_lossy(&bytes)))
}

/// Refuses an input whose digest is not the `sha256` the recipe pins for it.
fn check_pin(recipe: &RecipeFile, pin: &Spanned<String>, host: &Path, sha256: &Digest) -> Result<()> {
    let expected = parse_hex(pin.get_ref())
        .ok_or_else(|| recipe.error(pin, format!("`sha256` must be 64 hex digits, not `{}`", pin.get_ref())))?;
    if expected != *sha256 {
        return Err(recipe.error(
            pin,
            format!(
                "`{}` has sha256 {}, but the recipe pins {}: the file is not the one the recipe was written for",
                host.display(),
                hex(sha256),
                pin.get_ref()
            ),
        ));
    }
    Ok(())
}

/// Reads the `[kernel]` package, resolves its modules and lays them into `tree` under
/// `/lib/modules/VERSION/` with `modules.dep` and `modules.load-order`.
fn kernel(
    recipe: &RecipeFile,
    section: &Spanned<crate::recipe::KernelSection>,
    source: &KernelSource,
    tree: &mut Tree,
    spool: &mut Spool,
    reporter: &dyn Reporter,
) -> Result<(KernelPlan, Input)> {
    let k = section.get_ref();
    let host = &source.host;
    let sha256 = source.sha256;
    if let Some(pin) = &k.sha256 {
        check_pin(recipe, pin, host, &sha256)?;
    }
    reporter.report(Event::Info(format!("reading the kernel package `{}`", source.written)));
    let package = crate::source::kernel::read_package(host, spool)?;
    let requested: &[String] = k.modules.as_ref().map_or(&[], |m| m.get_ref());
    let resolution = crate::source::kernel::resolve(&package, requested).map_err(|e| match &k.modules {
        Some(span) => recipe.error(span, e),
        None => recipe.error(section, e),
    })?;
    for missing in &resolution.missing_softdeps {
        reporter.report(Event::Warning(format!(
            "soft dependency `{missing}` skipped: the kernel package has no module of that name (aliases are not followed), or it cannot be loaded"
        )));
    }
    let origin = tree.origin(format!("the kernel package (`{}`)", source.written));
    let base = format!("/lib/modules/{}", package.version);
    let place = |tree: &mut Tree, relative: &str, content: Content| -> Result<()> {
        let path = ImagePath::from_recipe(&format!("{base}/{relative}"))
            .map_err(|e| Error::input(format!("`{}`: module path `{relative}`: {e}", host.display())))?;
        let kind = Kind::File { content, inode: tree.new_inode() };
        tree.insert(&path, Entry { kind, meta: Meta::root(0o644), origin }).map(|_| ())
    };
    for name in &resolution.load_order {
        let module = &package.modules[name];
        place(tree, &module.path, module.content.clone())?;
    }
    for (name, content) in &package.index_files {
        place(tree, name, content.clone())?;
    }
    let dep = crate::source::kernel::modules_dep(&package, &resolution.load_order);
    place(tree, "modules.dep", Content::inline(dep.as_bytes()))?;
    let order = crate::source::kernel::load_order_file(&package, &resolution.load_order);
    place(tree, "modules.load-order", Content::inline(order.as_bytes()))?;
    let plan = KernelPlan {
        version: package.version.clone(),
        vmlinuz: package.vmlinuz.clone(),
        package: source.written.clone(),
        modules: resolution.load_order,
        builtin: resolution.builtin,
        cmdline: k.cmdline.clone(),
    };
    let kind = if source.package.is_some() { "package" } else { "kernel" };
    Ok((plan, Input { kind, path: source.written.clone(), sha256 }))
}

fn check_name(recipe: &RecipeFile, name: &Spanned<String>) -> Result<String> {
    let text = name.get_ref();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() || text.starts_with('.') || !text.chars().all(allowed) {
        return Err(recipe.error(
            name,
            format!(
                "image name `{text}` must be letters, digits, `.`, `_` and `-`, not starting \
                 with `.` (it is the stem of the output files)"
            ),
        ));
    }
    Ok(text.clone())
}

fn epoch(recipe: &RecipeFile, env: &Environment) -> Result<u64> {
    if env.leak_input_mtime {
        let modified = std::fs::metadata(&recipe.path).and_then(|m| m.modified()).reading(&recipe.path)?;
        return Ok(modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    }
    if let Some(epoch) = &recipe.recipe.image.epoch {
        return u64::try_from(*epoch.get_ref())
            .map_err(|_| recipe.error(epoch, "`epoch` is seconds since 1970 and cannot be negative"));
    }
    match &env.source_date_epoch {
        None => Ok(0),
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            Error::input(format!(
                "SOURCE_DATE_EPOCH=`{text}` is not a whole number of seconds since 1970; fix or \
                 unset it, or set `epoch` in `[image]` of `{}`",
                recipe.path.display()
            ))
        }),
    }
}

fn check_level(recipe: &RecipeFile, compression: Compression, level: Option<&Spanned<i64>>) -> Result<Option<i64>> {
    let Some(level) = level else { return Ok(None) };
    match compression.levels() {
        None => Err(recipe.error(level, format!("`{}` compression has no levels: remove `level`", compression.name()))),
        Some((low, high, _)) if !(low..=high).contains(level.get_ref()) => Err(recipe
            .error(level, format!("`{}` levels go from {low} to {high}, not {}", compression.name(), level.get_ref()))),
        Some(_) => Ok(Some(*level.get_ref())),
    }
}

fn check_layers(recipe: &RecipeFile) -> Result<Vec<LayerInput<'_>>> {
    let mut out = Vec::new();
    for (number, layer) in recipe.recipe.layers.iter().enumerate() {
        let l = layer.get_ref();
        let given: Vec<(&'static str, &Spanned<String>)> = [("dir", &l.dir), ("tar", &l.tar), ("deb", &l.deb)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect();
        let kinds = given.len() + usize::from(l.packages.is_some());
        if kinds == 0 {
            return Err(recipe.error(layer, "a `[[layer]]` needs one of `dir`, `tar`, `deb` or `packages`"));
        }
        if kinds > 1 {
            return Err(recipe.error(
                layer,
                "a `[[layer]]` takes only one of `dir`, `tar`, `deb` or `packages`; use one layer each",
            ));
        }
        if let Some(names) = &l.packages {
            if let Some(pin) = &l.sha256 {
                return Err(
                    recipe.error(pin, "`sha256` pins a `tar` or `deb` file; packages are pinned by `bake lock`")
                );
            }
            let exclude = l.exclude.as_ref().map_or_else(Vec::new, |e| e.get_ref().clone());
            let request =
                PackagesLayer { layer: number + 1, names, exclude, recommends: l.recommends.unwrap_or(false) };
            out.push(LayerInput {
                number: number + 1,
                kind: "packages",
                written: String::new(),
                host: PathBuf::new(),
                pin: None,
                package: None,
                request: Some(request),
            });
            continue;
        }
        if let Some(exclude) = &l.exclude {
            return Err(recipe.error(exclude, "`exclude` drops packages from a `packages` layer; this layer has none"));
        }
        if l.recommends.is_some() {
            return Err(recipe.error(layer, "`recommends` applies to a `packages` layer; this layer has none"));
        }
        let (kind, value) = given[0];
        if kind == "dir"
            && let Some(pin) = &l.sha256
        {
            return Err(recipe.error(pin, "`sha256` pins a `tar` or `deb` file; a `dir` layer cannot be pinned"));
        }
        let host = recipe.host_path(value.get_ref());
        let meta = std::fs::metadata(&host).map_err(|e| {
            recipe.error(value, format!("cannot read `{}`: {}", host.display(), crate::base::error::io_cause(&e)))
        })?;
        let expected_dir = kind == "dir";
        if meta.is_dir() != expected_dir || (!expected_dir && !meta.is_file()) {
            let want = if expected_dir { "a directory" } else { "a regular file" };
            return Err(recipe.error(value, format!("`{}` is not {want}", host.display())));
        }
        out.push(LayerInput {
            number: number + 1,
            kind,
            written: value.get_ref().clone(),
            host,
            pin: l.sha256.as_ref(),
            package: None,
            request: None,
        });
    }
    Ok(out)
}

fn image_path(recipe: &RecipeFile, path: &Spanned<String>) -> Result<ImagePath> {
    ImagePath::from_recipe(path.get_ref()).map_err(|e| recipe.error(path, format!("`{}`: {e}", path.get_ref())))
}

fn mode_or(mode: Option<Mode>, default: u32) -> u32 {
    mode.map_or(default, |m| m.0)
}

/// Checks the recipe's own entries and reads their sources; returns them in the order they are
/// applied (directories, symlinks, files, devices, hard links: so each can rely on the ones
/// before) and the source files as inputs.
fn check_declared(recipe: &RecipeFile, file_limit: u64) -> Result<(Vec<Declared>, Vec<Input>)> {
    let r = &recipe.recipe;
    let mut out = Vec::new();
    let mut inputs = Vec::new();
    let mut seen: HashMap<ImagePath, String> = HashMap::new();
    let mut add = |path: &Spanned<String>, what: Declaration, out: &mut Vec<Declared>| -> Result<()> {
        let image = image_path(recipe, path)?;
        let label = format!("`{}`", recipe.at(path.span().start));
        if let Some(first) = seen.get(&image) {
            return Err(recipe.error(path, format!("`{image}` is declared twice: first at {first}")));
        }
        seen.insert(image.clone(), label.clone());
        out.push(Declared { path: image, label, what });
        Ok(())
    };
    for d in &r.dirs {
        let d = d.get_ref();
        let meta = Meta { mode: mode_or(d.mode, 0o755), uid: d.uid, gid: d.gid };
        add(&d.path, Declaration::Entry(Kind::Dir { implied: false }, meta), &mut out)?;
    }
    for s in &r.symlinks {
        let s = s.get_ref();
        crate::plan::tree::check_symlink_target(s.target.get_ref().as_bytes())
            .map_err(|e| recipe.error(&s.target, e))?;
        let meta = Meta { mode: 0o777, uid: s.uid, gid: s.gid };
        let kind = Kind::Symlink { target: s.target.get_ref().as_bytes().to_vec() };
        add(&s.path, Declaration::Entry(kind, meta), &mut out)?;
    }
    for f in &r.files {
        let entry = f.get_ref();
        let (content, default_mode) = match (&entry.source, &entry.content) {
            (Some(source), None) => {
                let host = recipe.host_path(source.get_ref());
                let (content, executable) = read_source(&host, file_limit).map_err(|e| recipe.error(source, e))?;
                inputs.push(Input { kind: "file", path: source.get_ref().clone(), sha256: content.sha256 });
                (content, if executable { 0o755 } else { 0o644 })
            }
            (None, Some(text)) => (Content::inline(text.as_bytes()), 0o644),
            _ => return Err(recipe.error(f, "a `[[file]]` needs exactly one of `source` or `content`")),
        };
        let meta = Meta { mode: mode_or(entry.mode, default_mode), uid: entry.uid, gid: entry.gid };
        add(&entry.path, Declaration::File(content, meta), &mut out)?;
    }
    for d in &r.devices {
        let entry = d.get_ref();
        let (major, minor) = match (entry.kind, entry.major, entry.minor) {
            (DeviceKind::Fifo, None, None) => (0, 0),
            (DeviceKind::Fifo, _, _) => return Err(recipe.error(d, "a `fifo` has no `major` or `minor` numbers")),
            (_, Some(major), Some(minor)) => {
                crate::plan::tree::check_device_numbers(major, minor).map_err(|e| recipe.error(d, e))?;
                (major, minor)
            }
            _ => return Err(recipe.error(d, "a `char` or `block` device needs both `major` and `minor`")),
        };
        let meta = Meta { mode: mode_or(entry.mode, 0o600), uid: entry.uid, gid: entry.gid };
        add(&entry.path, Declaration::Entry(Kind::Device { kind: entry.kind, major, minor }, meta), &mut out)?;
    }
    for h in &r.hardlinks {
        let entry = h.get_ref();
        let target = image_path(recipe, &entry.target)?;
        add(&entry.path, Declaration::Hardlink(target), &mut out)?;
    }
    Ok((out, inputs))
}

/// Reads a recipe `source` file: it must be a regular file (a FIFO or `/dev/zero` would never
/// end). Returns its content and whether any exec bit is set.
fn read_source(host: &Path, file_limit: u64) -> std::result::Result<(Content, bool), String> {
    let meta = std::fs::metadata(host)
        .map_err(|e| format!("cannot read `{}`: {}", host.display(), crate::base::error::io_cause(&e)))?;
    if !meta.is_file() {
        return Err(format!("`{}` is not a regular file", host.display()));
    }
    crate::plan::tree::check_file_size(&format!("`{}`", host.display()), meta.len(), file_limit)
        .map_err(|e| e.to_string())?;
    let (sha256, size) = digest_file(host).map_err(|e| e.to_string())?;
    Ok((Content::host(host, size, sha256), meta.permissions().mode() & 0o111 != 0))
}

/// A `[remove]` pattern, compiled.
struct Pattern {
    text: String,
    matcher: globset::GlobMatcher,
}

fn check_patterns(recipe: &RecipeFile) -> Result<Vec<Pattern>> {
    let Some(remove) = &recipe.recipe.remove else { return Ok(Vec::new()) };
    remove
        .paths
        .iter()
        .map(|p| {
            let text = p.get_ref();
            let anchored = if text.starts_with('/') { text.clone() } else { format!("/{text}") };
            let glob = globset::GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| recipe.error(p, format!("bad pattern `{text}`: {}", e.kind())))?;
            Ok(Pattern { text: text.clone(), matcher: glob.compile_matcher() })
        })
        .collect()
}

/// Applies the `[remove]` patterns: a matching directory goes with everything below it.
fn prune(tree: &mut Tree, patterns: &[Pattern], reporter: &dyn Reporter) {
    if patterns.is_empty() {
        return;
    }
    let mut matched = vec![0usize; patterns.len()];
    let mut doomed = Vec::new();
    for (path, _) in tree.iter() {
        let absolute = [b"/", path.as_bytes()].concat();
        let candidate = Path::new(OsStr::from_bytes(&absolute));
        let mut hit = false;
        for (i, pattern) in patterns.iter().enumerate() {
            if pattern.matcher.is_match(candidate) {
                matched[i] += 1;
                hit = true;
            }
        }
        if hit {
            doomed.push(path.clone());
        }
    }
    for path in doomed {
        tree.remove(&path);
    }
    for (pattern, count) in patterns.iter().zip(matched) {
        if count == 0 {
            reporter.report(Event::Warning(format!("`[remove]` pattern `{}` matched nothing", pattern.text)));
        }
    }
}

/// Turns the finished tree into sorted plan entries with inode numbers and link counts.
fn freeze(tree: &Tree) -> Vec<PlanEntry> {
    // Names per inode key, in path order.
    let mut names: HashMap<u64, Vec<ImagePath>> = HashMap::new();
    let mut subdirs: BTreeMap<ImagePath, u32> = BTreeMap::new();
    for (path, entry) in tree.iter() {
        match &entry.kind {
            Kind::File { inode, .. } => names.entry(*inode).or_default().push(path.clone()),
            Kind::Dir { .. } => *subdirs.entry(path.parent()).or_default() += 1,
            _ => {}
        }
    }
    let mut inos: HashMap<u64, u32> = HashMap::new();
    let mut next_ino = 0u32;
    let mut out = Vec::with_capacity(tree.len());
    for (path, entry) in tree.iter() {
        let (node, ino, nlink) = match &entry.kind {
            Kind::Dir { .. } => {
                next_ino += 1;
                (Node::Dir, next_ino, 2 + subdirs.get(path).copied().unwrap_or(0))
            }
            Kind::File { content, inode } => {
                let group = &names[inode];
                let ino = *inos.entry(*inode).or_insert_with(|| {
                    next_ino += 1;
                    next_ino
                });
                let link_to = (group[0] != *path).then(|| group[0].clone());
                let carries_data = group.last() == Some(path);
                (Node::File { content: content.clone(), link_to, carries_data }, ino, group.len() as u32)
            }
            Kind::Symlink { target } => {
                next_ino += 1;
                (Node::Symlink { target: target.clone() }, next_ino, 1)
            }
            Kind::Device { kind, major, minor } => {
                next_ino += 1;
                (Node::Device { kind: *kind, major: *major, minor: *minor }, next_ino, 1)
            }
        };
        let Meta { mode, uid, gid } = entry.meta;
        out.push(PlanEntry { path: path.clone(), node, mode, uid, gid, ino, nlink });
    }
    out
}
