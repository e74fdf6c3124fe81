//! The first half of planning: the recipe checked, its packages resolved and fetched, and every
//! input hashed, but no archive unpacked yet. That is enough to know whether the outputs are
//! already in the build cache ([`Prepared::cache_key`]) and to stop on a pin mismatch before
//! any real work.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use toml::Spanned;

use super::check::{self, Declared, LayerInput, LayerSource, Pattern};
use super::{DiskPlan, InitramfsPlan, Settings, VERITY_PARTITION_SUFFIX};
use crate::base::error::{Error, Result};
use crate::base::hash::{Digest, digest_file};
use crate::base::progress::{Event, Reporter};
use crate::format::{cpio, gpt};
use crate::lockfile::{LockedKernel, LockedLayer, LockedPackage};
use crate::recipe::{Disk, InputKind, KernelSection, PartitionTable, RecipeFile};
use crate::source::apt::Lists;
use crate::source::dir::Scanned;
use crate::source::packages::{self, LockState, PackageSettings};
use crate::source::store::Store;
use crate::source::{Input, apt};

/// A recipe checked, its packages resolved and fetched, and every input hashed.
pub struct Prepared<'r> {
    pub(super) recipe: &'r RecipeFile,
    pub(super) name: String,
    pub(super) epoch: u64,
    pub(super) initramfs: Option<InitramfsPlan>,
    pub(super) disk: Option<DiskPlan>,
    /// The largest file the requested outputs can hold.
    pub(super) file_limit: u64,
    pub(super) layers: Vec<ReadyLayer>,
    pub(super) package_layers: Vec<LockedLayer>,
    pub(super) kernel: Option<KernelSource>,
    /// For `[disk] boot = "uefi"`: the stage-1 recipe and systemd's EFI stub.
    pub(super) boot: Option<BootSource>,
    pub(super) declared: Vec<Declared>,
    /// The recipe's `source` files.
    pub(super) inputs: Vec<Input>,
    pub(super) patterns: Vec<Pattern>,
    pub(super) lock: LockState,
    /// The input store, when the build has a cache.
    pub(super) store: Option<Store>,
}

/// A layer whose input is hashed, ready to be laid in.
pub(super) struct ReadyLayer {
    /// The layer's number in the recipe, from 1.
    pub number: usize,
    /// The path as the recipe writes it; for a package, its Debian file name.
    pub written: String,
    pub host: PathBuf,
    /// The input's digest (for a `dir`, of what is taken from it).
    pub sha256: Digest,
    pub what: Ready,
}

/// What a ready layer is.
pub(super) enum Ready {
    Dir(Scanned),
    Tar,
    Deb,
    /// One package of a `packages` layer.
    Package(LockedPackage),
}

impl ReadyLayer {
    pub fn kind(&self) -> InputKind {
        match self.what {
            Ready::Dir(_) => InputKind::Dir,
            Ready::Tar => InputKind::Tar,
            Ready::Deb => InputKind::Deb,
            Ready::Package(_) => InputKind::Package,
        }
    }

    /// The layer as the manifest and the lock record it.
    pub fn input(&self) -> Input {
        Input { kind: self.kind(), path: self.written.clone(), sha256: self.sha256 }
    }

    /// `layer 2 (`base.tar`)`, `layer 3 (package `jq` 1.6-2.1 (amd64))`, for messages.
    pub fn label(&self) -> String {
        match &self.what {
            Ready::Package(package) => format!("layer {} (package {})", self.number, package.label()),
            _ => format!("layer {} (`{}`)", self.number, self.written),
        }
    }
}

/// Where the `[kernel]` package comes from.
pub(super) struct KernelSource {
    pub host: PathBuf,
    pub sha256: Digest,
    /// As the manifest names it: the recipe's `deb`, or the package's file name.
    pub written: String,
    /// For `package`: what it resolved to.
    pub package: Option<LockedKernel>,
    /// The input store, when the build has a cache.
    pub store: Option<Store>,
}

/// What `[disk] boot = "uefi"` is made from.
pub(super) struct BootSource {
    /// The stage-1 recipe: as the recipe writes it, and on the host.
    pub recipe_written: String,
    pub recipe_host: PathBuf,
    /// The package holding systemd's EFI stub.
    pub stub: StubSource,
}

/// Where the EFI stub's package comes from: `stub-deb`, or `systemd-boot-efi` by name.
pub(super) struct StubSource {
    pub host: PathBuf,
    pub sha256: Digest,
    /// As the manifest names it: the recipe's `stub-deb`, or the package's file name.
    pub written: String,
    /// By name: what it resolved to.
    pub package: Option<LockedKernel>,
}

/// What the recipe asks for, checked without reading any input.
struct Checked<'r> {
    name: String,
    epoch: u64,
    initramfs: Option<InitramfsPlan>,
    disk: Option<DiskPlan>,
    file_limit: u64,
    layers: Vec<LayerInput<'r>>,
    declared: Vec<Declared>,
    inputs: Vec<Input>,
    patterns: Vec<Pattern>,
}

/// Checks `recipe`, resolves and fetches its packages and hashes every input. With a cache
/// folder, files of `dir` layers unchanged since an earlier build are not read again.
pub fn prepare<'r>(
    recipe: &'r RecipeFile,
    settings: &Settings,
    cache: Option<&Path>,
    reporter: &dyn Reporter,
) -> Result<Prepared<'r>> {
    let checked = check_recipe(recipe, settings)?;
    // Package names become pinned `.deb` files in the cache.
    let lock = LockState::load(recipe, settings.packages.policy)?;
    for input in &checked.inputs {
        lock.check_input(recipe, input)?;
    }
    let mut lists = Lists::remembering(cache);
    lists.expect(expected_packages(recipe, &lock));
    let (layers, package_layers) =
        resolve_packages(recipe, checked.layers, &lock, &settings.packages, &mut lists, reporter)?;
    let kernel = match &recipe.recipe.kernel {
        Some(section) => Some(KernelSource {
            store: cache.map(Store::new),
            ..kernel_source(recipe, section, &lock, &settings.packages, &mut lists, reporter)?
        }),
        None => None,
    };
    let boot = boot_source(recipe, &lock, &settings.packages, &mut lists, reporter)?;
    // apt's lists are done with: their memory goes back before the kernel is unpacked.
    let were_read = lists.were_read();
    drop(lists);
    if were_read {
        crate::base::memory::release_free();
    }
    // Hash every input before unpacking any, so a pin mismatch stops the build before work.
    let layers = hash_layers(recipe, layers, &lock, checked.file_limit, cache, reporter)?;
    Ok(Prepared {
        recipe,
        name: checked.name,
        epoch: checked.epoch,
        initramfs: checked.initramfs,
        disk: checked.disk,
        file_limit: checked.file_limit,
        layers,
        package_layers,
        kernel,
        boot,
        declared: checked.declared,
        inputs: checked.inputs,
        patterns: checked.patterns,
        lock,
        store: cache.map(Store::new),
    })
}

/// Every package name a build of `recipe` may ask apt's lists about: its layers' packages and
/// exclusions, its kernel package, the EFI stub, and everything its lock pins.
fn expected_packages(recipe: &RecipeFile, lock: &LockState) -> Vec<String> {
    let r = &recipe.recipe;
    let mut names: Vec<String> = Vec::new();
    for layer in &r.layers {
        let layer = layer.get_ref();
        names.extend(layer.packages.iter().flat_map(|p| p.get_ref().iter().cloned()));
        names.extend(layer.exclude.iter().flat_map(|p| p.get_ref().iter().cloned()));
    }
    names.extend(r.kernel.iter().filter_map(|k| k.get_ref().package.as_ref()).map(|p| p.get_ref().clone()));
    names.push(crate::source::packages::STUB_PACKAGE.to_string());
    if let Some(lock) = &lock.lock {
        names.extend(lock.layers.iter().flat_map(|l| l.resolved.iter().map(|p| p.name.clone())));
        names.extend(lock.kernel.iter().chain(&lock.stub).map(|k| k.package.name.clone()));
    }
    names
}

/// Checks everything that can be checked without reading an input first, so a typo is reported
/// in a moment, not after minutes of unpacking.
fn check_recipe<'r>(recipe: &'r RecipeFile, settings: &Settings) -> Result<Checked<'r>> {
    let r = &recipe.recipe;
    let name = check::name(recipe)?;
    let epoch = check::epoch(recipe, settings.source_date_epoch.as_deref())?;
    let initramfs = match &r.initramfs {
        Some(section) => Some(InitramfsPlan {
            compression: section.compression,
            level: check::level(recipe, section.compression, section.level.as_ref())?,
            frames: check::frames(recipe, section.compression, section.frames.as_ref())?,
        }),
        None => None,
    };
    if initramfs.is_some() && epoch > cpio::FIELD_MAX {
        return Err(Error::input(format!(
            "epoch {epoch} is after 2106-02-07 06:28:15 UTC, the last time a cpio newc header can hold"
        )));
    }
    let disk = match &r.disk {
        Some(d) => Some(check_disk(recipe, d)?),
        None => None,
    };
    if let Some(disk) = disk.filter(|d| d.partition_table == PartitionTable::Gpt) {
        check_partition_names(recipe, &name, disk)?;
    }
    // The largest file the requested outputs can hold (cpio newc: below 4 GiB; EROFS's limit is
    // that of the whole image, checked when it is laid out).
    let file_limit = if initramfs.is_some() { cpio::FIELD_MAX + 1 } else { u64::MAX };
    let layers = check::layers(recipe)?;
    let (declared, inputs) = check::declared(recipe, file_limit)?;
    let patterns = check::patterns(recipe)?;
    Ok(Checked { name, epoch, initramfs, disk, file_limit, layers, declared, inputs, patterns })
}

/// `[disk]`: `boot` needs a GPT disk and a `boot-recipe`, and those two keys mean nothing
/// without `boot`.
fn check_disk(recipe: &RecipeFile, section: &Spanned<Disk>) -> Result<DiskPlan> {
    let d = section.get_ref();
    match (&d.boot, &d.boot_recipe) {
        (Some(boot), _) if d.partition_table == PartitionTable::None => {
            return Err(recipe.error(
                boot,
                "`boot = \"uefi\"` puts an EFI system partition on the disk, and `partition-table = \"none\"` writes \
                 no disk",
            ));
        }
        (Some(boot), None) => {
            return Err(recipe.error(
                boot,
                "`boot = \"uefi\"` needs `boot-recipe`, the stage-1 recipe to build into the unified kernel image",
            ));
        }
        (None, Some(path)) => {
            return Err(recipe.error(path, "`boot-recipe` is for `boot = \"uefi\"`, which this `[disk]` does not set"));
        }
        _ => {}
    }
    if let (None, Some(stub)) = (&d.boot, &d.stub_deb) {
        return Err(recipe.error(stub, "`stub-deb` is for `boot = \"uefi\"`, which this `[disk]` does not set"));
    }
    if let Some(path) = &d.boot_recipe {
        let host = recipe.host_path(path.get_ref());
        if !host.is_file() {
            return Err(recipe.error(path, format!("`{}` is not a readable file", host.display())));
        }
    }
    Ok(DiskPlan { partition_table: d.partition_table, verity: d.verity, uefi: d.boot.is_some() })
}

/// Where `[disk] boot = "uefi"` takes its stage-1 recipe and EFI stub from.
fn boot_source(
    recipe: &RecipeFile,
    lock: &LockState,
    settings: &PackageSettings,
    lists: &mut Lists,
    reporter: &dyn Reporter,
) -> Result<Option<BootSource>> {
    let Some(disk) = &recipe.recipe.disk else { return Ok(None) };
    let d = disk.get_ref();
    let (Some(boot), Some(path)) = (&d.boot, &d.boot_recipe) else { return Ok(None) };
    let stub = match &d.stub_deb {
        Some(deb) => {
            let host = recipe.host_path(deb.get_ref());
            if !host.is_file() {
                return Err(recipe.error(deb, format!("`{}` is not a readable file", host.display())));
            }
            let sha256 = digest_file(&host)?.0;
            StubSource { host, sha256, written: deb.get_ref().clone(), package: None }
        }
        None => {
            let locked = packages::resolve_stub(recipe, boot, lock, lists, reporter)?;
            let (host, sha256) =
                apt::fetch(&locked.package, &settings.sources()?, lists, &lock.hint(recipe), reporter)?;
            StubSource { host, sha256, written: locked.package.deb_name(), package: Some(locked) }
        }
    };
    let recipe_host = recipe.host_path(path.get_ref());
    Ok(Some(BootSource { recipe_written: path.get_ref().clone(), recipe_host, stub }))
}

/// The disk's partitions are named after the image (`NAME`, and `NAME-verity` for the hash
/// tree): refuses a name too long for a GPT partition label.
fn check_partition_names(recipe: &RecipeFile, name: &str, disk: DiskPlan) -> Result<()> {
    let suffix = if disk.verity { VERITY_PARTITION_SUFFIX } else { "" };
    let longest = format!("{name}{suffix}");
    if longest.encode_utf16().count() <= gpt::NAME_UNITS {
        return Ok(());
    }
    let what = if disk.verity { "the verity partition" } else { "the disk's partition" };
    Err(recipe.error(
        &recipe.recipe.image.name,
        format!(
            "image name `{name}` is longer than the {} characters a GPT partition label holds ({what} is named \
             `{longest}`): shorten it, or use `partition-table = \"none\"`",
            gpt::NAME_UNITS - suffix.len()
        ),
    ))
}

/// Replaces each `packages` layer by the packages it resolves to, fetched into the cache.
fn resolve_packages<'r>(
    recipe: &'r RecipeFile,
    layers: Vec<LayerInput<'r>>,
    lock: &LockState,
    settings: &PackageSettings,
    lists: &mut Lists,
    reporter: &dyn Reporter,
) -> Result<(Vec<LayerInput<'r>>, Vec<LockedLayer>)> {
    let mut out = Vec::with_capacity(layers.len());
    let mut resolved = Vec::new();
    for layer in layers {
        let LayerSource::Packages(request) = &layer.source else {
            out.push(layer);
            continue;
        };
        let locked = packages::resolve_layer(recipe, request, lock, lists, reporter)?;
        for package in &locked.resolved {
            let (host, sha256) = apt::fetch(package, &settings.sources()?, lists, &lock.hint(recipe), reporter)?;
            let source = LayerSource::Package { package: Box::new(package.clone()), host, sha256 };
            out.push(LayerInput { number: layer.number, source });
        }
        resolved.push(locked);
    }
    Ok((out, resolved))
}

/// Hashes every layer's input: a `dir` by what bake takes from it (reusing remembered digests
/// of unchanged files when there is a cache folder), a file by its bytes; checks the recipe's
/// pins and the lock's.
fn hash_layers(
    recipe: &RecipeFile,
    layers: Vec<LayerInput<'_>>,
    lock: &LockState,
    file_limit: u64,
    cache: Option<&Path>,
    reporter: &dyn Reporter,
) -> Result<Vec<ReadyLayer>> {
    let total = layers.len();
    let mut ready = Vec::with_capacity(total);
    for (index, layer) in layers.into_iter().enumerate() {
        let (label, number) = (layer.label(), layer.number);
        let ready_layer = |written, host, sha256, what| ReadyLayer { number, written, host, sha256, what };
        let layer = match layer.source {
            LayerSource::Host { kind: InputKind::Dir, written, host, .. } => {
                reporter.report(Event::Input { index: index + 1, total, label });
                let dir = crate::source::dir::scan(&host, file_limit, cache)?;
                ready_layer(written, host, dir.summary, Ready::Dir(dir))
            }
            LayerSource::Host { kind, written, host, pin } => {
                let sha256 = digest_file(&host)?.0;
                if let Some(pin) = pin {
                    check::pin(recipe, pin, &host, &sha256)?;
                }
                let what = if kind == InputKind::Tar { Ready::Tar } else { Ready::Deb };
                let layer = ready_layer(written, host, sha256, what);
                lock.check_input(recipe, &layer.input())?;
                layer
            }
            LayerSource::Package { package, host, sha256 } => {
                ready_layer(package.deb_name(), host, sha256, Ready::Package(*package))
            }
            LayerSource::Packages(_) => unreachable!("packages layers are resolved before hashing"),
        };
        ready.push(layer);
    }
    Ok(ready)
}

fn kernel_source(
    recipe: &RecipeFile,
    section: &Spanned<KernelSection>,
    lock: &LockState,
    settings: &PackageSettings,
    lists: &mut Lists,
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
            if let Some(pin) = &k.sha256 {
                check::pin(recipe, pin, &host, &sha256)?;
            }
            Ok(KernelSource { host, sha256, written: deb.get_ref().clone(), package: None, store: None })
        }
        (None, Some(name)) => {
            if let Some(pin) = &k.sha256 {
                return Err(recipe.error(pin, "`sha256` pins a `deb`; a kernel `package` is pinned in the lock file"));
            }
            let locked = packages::resolve_kernel(recipe, name, lock, lists, reporter)?;
            let (host, sha256) =
                apt::fetch(&locked.package, &settings.sources()?, lists, &lock.hint(recipe), reporter)?;
            Ok(KernelSource { host, sha256, written: locked.package.deb_name(), package: Some(locked), store: None })
        }
        _ => Err(recipe.error(section, "`[kernel]` needs exactly one of `deb` or `package`")),
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
        for layer in &self.layers {
            field(layer.kind().name().as_bytes());
            field(layer.written.as_bytes());
            field(&layer.sha256);
            if let Ready::Package(package) = &layer.what {
                package_fields(&mut field, package);
            }
        }
        for input in &self.inputs {
            field(input.kind.name().as_bytes());
            field(input.path.as_bytes());
            field(&input.sha256);
        }
        if let Some(boot) = &self.boot {
            field(b"boot");
            field(boot.recipe_written.as_bytes());
            field(boot.stub.written.as_bytes());
            field(&boot.stub.sha256);
            if let Some(locked) = &boot.stub.package {
                package_fields(&mut field, &locked.package);
            }
        }
        if let Some(kernel) = &self.kernel {
            field(b"kernel");
            field(kernel.written.as_bytes());
            field(&kernel.sha256);
            if let Some(locked) = &kernel.package {
                package_fields(&mut field, &locked.package);
            }
        }
        h.finalize().into()
    }
}
