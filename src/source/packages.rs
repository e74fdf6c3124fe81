//! `packages` layers and `[kernel] package`: from Debian package names to pinned `.deb` files in
//! the cache.
//!
//! With a lock file, a request the lock covers (the same names, excludes and recommends for the
//! same layer) gets exactly the packages the lock pins, and apt's lists are not even read unless
//! a package must be downloaded. A request the lock does not cover is resolved from apt's lists
//! (with a warning, or an error under `--locked`). `bake lock` keeps what the lock pins for
//! unchanged requests and resolves the rest; `bake lock --update` resolves everything again.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::Input;
use super::apt::Lists;
use crate::base::error::{Error, Result};
use crate::base::hash::hex;
use crate::base::progress::{Event, Reporter};
use crate::debian::resolve::{Request, Variant};
use crate::lockfile::{Lock, LockedKernel, LockedLayer, LockedPackage};
use crate::recipe::{InputKind, RecipeFile};

/// How `bake` treats the recipe's lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockPolicy {
    /// `bake build`: use the lock when there is one; resolve what it does not cover, with a
    /// warning; refuse an input whose bytes differ from the lock.
    #[default]
    Honour,
    /// `bake build --locked`: a missing lock, or one that does not cover the recipe, is an error.
    Require,
    /// `bake lock`: keep what the lock pins for unchanged requests, resolve the rest, and do not
    /// check other inputs (their digests are what is being written).
    Relock,
    /// `bake lock --update`: ignore the lock; resolve everything from apt's lists now.
    Update,
}

/// Where packages come from and how the lock is used.
#[derive(Debug, Clone, Default)]
pub struct PackageSettings {
    /// The cache folder (`--cache`, else the XDG cache); `None` when neither is known.
    pub cache: Option<PathBuf>,
    pub policy: LockPolicy,
    /// A folder `bake vendor` wrote (`--inputs`, `BAKE_INPUTS`): pinned packages are taken from
    /// there before apt is asked.
    pub inputs: Option<PathBuf>,
    /// A snapshot archive (`BAKE_SNAPSHOT_MIRROR`) for pinned packages apt no longer offers.
    pub snapshot_mirror: Option<String>,
    /// A store of pinned inputs by sha256 (`--inputs-from`), asked when no other source has one.
    pub store: Option<std::sync::Arc<dyn super::apt::InputStore>>,
}

impl PackageSettings {
    pub fn cache(&self) -> Result<&Path> {
        self.cache.as_deref().ok_or_else(|| {
            Error::input("no folder to cache packages in: set HOME or XDG_CACHE_HOME, or pass `--cache DIR`")
        })
    }

    /// Where pinned packages come from besides apt.
    pub fn sources(&self) -> Result<super::apt::Sources<'_>> {
        Ok(super::apt::Sources {
            cache: self.cache()?,
            inputs: self.inputs.as_deref(),
            snapshot_mirror: self.snapshot_mirror.as_deref(),
            store: self.store.as_deref(),
        })
    }
}

/// The lock as this build uses it.
pub struct LockState {
    pub path: PathBuf,
    /// The lock file's contents, unless there is none or the policy ignores it.
    pub lock: Option<Lock>,
    pub policy: LockPolicy,
}

impl LockState {
    pub fn load(recipe: &RecipeFile, policy: LockPolicy) -> Result<LockState> {
        let path = crate::lockfile::path_for(&recipe.path);
        let lock = if policy == LockPolicy::Update { None } else { crate::lockfile::read(&path)? };
        if policy == LockPolicy::Require && lock.is_none() {
            return Err(Error::input(format!(
                "`{}` is missing, and `--locked` requires it: run `bake lock {}` and commit the lock",
                path.display(),
                recipe.path.display()
            )));
        }
        Ok(LockState { path, lock, policy })
    }

    /// What to tell the user to do about a stale or unusable pin.
    pub fn hint(&self, recipe: &RecipeFile) -> String {
        format!("run `bake lock --update {}` to pin what apt offers now", recipe.path.display())
    }

    /// Called when the lock does not cover something the recipe asks for.
    fn uncovered(&self, recipe: &RecipeFile, what: &str, reporter: &dyn Reporter) -> Result<()> {
        let lock = self.path.display();
        match (self.policy, &self.lock) {
            (LockPolicy::Require, _) => Err(Error::input(format!(
                "`{lock}` does not pin {what} as the recipe now asks, and `--locked` requires it: run `bake lock {}`",
                recipe.path.display()
            ))),
            (LockPolicy::Honour, Some(_)) => {
                reporter.report(Event::Warning(format!(
                    "`{lock}` does not pin {what} as the recipe now asks: resolving it from apt's package lists; run \
                     `bake lock {}` to pin it",
                    recipe.path.display()
                )));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl LockState {
    /// The lock, when this build holds inputs to it.
    fn checking(&self) -> Option<&Lock> {
        match self.policy {
            LockPolicy::Honour | LockPolicy::Require => self.lock.as_ref(),
            LockPolicy::Relock | LockPolicy::Update => None,
        }
    }

    /// Refuses an input whose bytes differ from those the lock pins for it.
    pub fn check_input(&self, recipe: &RecipeFile, input: &Input) -> Result<()> {
        let Some(lock) = self.checking() else { return Ok(()) };
        let (kind, path) = (input.kind.name(), &input.path);
        match lock.inputs.iter().find(|l| l.kind == input.kind && l.path == *path) {
            Some(pinned) if pinned.sha256 != hex(&input.sha256) => Err(Error::input(format!(
                "{kind} `{path}` has sha256 {}, but `{}` pins {}: it changed since it was locked; run `bake lock {}` \
                 if the change is intended",
                hex(&input.sha256),
                self.path.display(),
                pinned.sha256,
                recipe.path.display()
            ))),
            _ => Ok(()),
        }
    }

    /// After planning: every input is what the lock pins, the lock covers every input, and the
    /// recipe still uses everything the lock pins (a warning, or an error under `--locked`).
    pub fn check_coverage(
        &self,
        recipe: &RecipeFile,
        inputs: &[Input],
        layers: &[LockedLayer],
        kernel: Option<&LockedKernel>,
        stub: Option<&LockedKernel>,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let Some(lock) = self.checking() else { return Ok(()) };
        let inputs: Vec<&Input> = inputs.iter().filter(|i| i.kind != InputKind::Package).collect();
        for input in &inputs {
            self.check_input(recipe, input)?;
            if !lock.inputs.iter().any(|l| l.kind == input.kind && l.path == input.path) {
                self.uncovered(recipe, &format!("{} `{}`", input.kind.name(), input.path), reporter)?;
            }
        }
        let mut unused: Vec<String> = lock
            .inputs
            .iter()
            .filter(|l| !inputs.iter().any(|i| i.kind == l.kind && i.path == l.path))
            .map(|l| format!("{} `{}`", l.kind.name(), l.path))
            .collect();
        unused.extend(
            lock.layers.iter().filter(|l| !layers.contains(l)).map(|l| format!("packages for layer {}", l.layer)),
        );
        if let Some(pinned) = &lock.kernel
            && kernel != Some(pinned)
        {
            unused.push(format!("the kernel package `{}`", pinned.request));
        }
        if let Some(pinned) = &lock.stub
            && stub != Some(pinned)
        {
            unused.push(format!("the EFI stub package `{}`", pinned.request));
        }
        for what in unused {
            let message = format!(
                "`{}` pins {what}, which the recipe no longer asks for: run `bake lock {}`",
                self.path.display(),
                recipe.path.display()
            );
            if self.policy == LockPolicy::Require {
                return Err(Error::input(format!("{message} (`--locked` requires an exact lock)")));
            }
            reporter.report(Event::Warning(message));
        }
        Ok(())
    }
}

/// A `packages` layer as the recipe writes it.
pub struct PackagesLayer<'r> {
    /// The layer's number, from 1.
    pub layer: usize,
    pub names: &'r Spanned<Vec<String>>,
    pub exclude: Vec<String>,
    pub recommends: bool,
    pub variant: Option<Variant>,
}

/// Resolves a `packages` layer to the packages it lays in, in order.
pub fn resolve_layer(
    recipe: &RecipeFile,
    request: &PackagesLayer,
    state: &LockState,
    lists: &mut Lists,
    reporter: &dyn Reporter,
) -> Result<LockedLayer> {
    let names = request.names.get_ref();
    if names.is_empty() && request.variant.is_none() {
        return Err(recipe.error(request.names, "`packages` names no package (and the layer has no `variant`)"));
    }
    let covered = state.lock.as_ref().and_then(|l| {
        l.layers.iter().find(|x| {
            x.layer == request.layer
                && x.packages == *names
                && x.exclude == request.exclude
                && x.recommends == request.recommends
                && x.variant.as_deref() == request.variant.map(Variant::name)
        })
    });
    if let Some(locked) = covered {
        return Ok(locked.clone());
    }
    state.uncovered(recipe, &format!("the packages of layer {}", request.layer), reporter)?;
    let key = format!(
        "layer {} {names:?} exclude {:?} recommends {} variant {:?}",
        request.layer,
        request.exclude,
        request.recommends,
        request.variant.map(Variant::name)
    );
    let (locked, unused_excludes) = match lists.remembered::<(LockedLayer, Vec<String>)>(&key) {
        Some(remembered) => remembered,
        None => {
            let resolved = resolve_names(recipe, request, lists, reporter)?;
            lists.remember(&key, &resolved);
            resolved
        }
    };
    for unused in &unused_excludes {
        reporter.report(Event::Warning(format!(
            "layer {}: `exclude` names `{unused}`, which is not in the closure of its packages",
            request.layer
        )));
    }
    reporter.report(Event::Info(format!(
        "layer {}: {} packages resolve to {}",
        request.layer,
        names.len(),
        locked.resolved.len()
    )));
    Ok(locked)
}

/// Resolves a layer's names against apt's lists: the layer, and the `exclude` names that are
/// not in the closure.
fn resolve_names(
    recipe: &RecipeFile,
    request: &PackagesLayer,
    lists: &mut Lists,
    reporter: &dyn Reporter,
) -> Result<(LockedLayer, Vec<String>)> {
    let names = request.names.get_ref();
    let index = lists.index(reporter)?;
    let resolution = crate::debian::resolve::resolve(
        index,
        &Request {
            packages: names,
            exclude: &request.exclude,
            recommends: request.recommends,
            variant: request.variant,
        },
    )
    .map_err(|e| recipe.error(request.names, e))?;
    let locked = LockedLayer {
        layer: request.layer,
        packages: names.clone(),
        exclude: request.exclude.clone(),
        recommends: request.recommends,
        variant: request.variant.map(|v| v.name().to_string()),
        resolved: resolution.packages.iter().map(LockedPackage::from_index).collect(),
    };
    Ok((locked, resolution.unused_excludes.clone()))
}

/// The package of systemd's EFI stub for `[disk] boot = "uefi"`: as the lock pins it, else the
/// candidate apt offers. `at` is where the recipe asks for it, for errors.
pub fn resolve_stub<T>(
    recipe: &RecipeFile,
    at: &Spanned<T>,
    state: &LockState,
    lists: &mut Lists,
    reporter: &dyn Reporter,
) -> Result<LockedKernel> {
    if let Some(locked) = state.lock.as_ref().and_then(|l| l.stub.as_ref()).filter(|k| k.request == STUB_PACKAGE) {
        return Ok(locked.clone());
    }
    state.uncovered(recipe, "the EFI stub package", reporter)?;
    if let Some(remembered) = lists.remembered::<LockedKernel>("stub") {
        reporter.report(Event::Info(format!("EFI stub package `{STUB_PACKAGE}` is {}", remembered.package.version)));
        return Ok(remembered);
    }
    let index = lists.index(reporter)?;
    let package = index.candidate(STUB_PACKAGE).ok_or_else(|| {
        recipe.error(
            at,
            format!(
                "apt's package lists offer no `{STUB_PACKAGE}` (systemd's EFI stub): name a local one with `stub-deb`"
            ),
        )
    })?;
    reporter.report(Event::Info(format!("EFI stub package `{STUB_PACKAGE}` is {}", package.version)));
    let locked = LockedKernel { request: STUB_PACKAGE.to_string(), package: LockedPackage::from_index(package) };
    lists.remember("stub", &locked);
    Ok(locked)
}

/// The Debian package that ships systemd's EFI stub.
pub const STUB_PACKAGE: &str = "systemd-boot-efi";

/// Resolves `[kernel] package` to the package that holds the kernel: the named one, or, for a
/// metapackage such as `linux-image-cloud-amd64`, the `linux-image-*` package it depends on.
pub fn resolve_kernel(
    recipe: &RecipeFile,
    name: &Spanned<String>,
    state: &LockState,
    lists: &mut Lists,
    reporter: &dyn Reporter,
) -> Result<LockedKernel> {
    if let Some(locked) = state.lock.as_ref().and_then(|l| l.kernel.as_ref()).filter(|k| k.request == *name.get_ref()) {
        return Ok(locked.clone());
    }
    state.uncovered(recipe, "the kernel package", reporter)?;
    let key = format!("kernel {}", name.get_ref());
    if let Some(remembered) = lists.remembered::<LockedKernel>(&key) {
        let (package, version) = (&remembered.package.name, &remembered.package.version);
        reporter.report(Event::Info(format!("kernel package `{}` is {package} {version}", name.get_ref())));
        return Ok(remembered);
    }
    let index = lists.index(reporter)?;
    let mut package = index
        .candidate(name.get_ref())
        .ok_or_else(|| recipe.error(name, format!("apt's package lists offer no package `{}`", name.get_ref())))?;
    // A metapackage's dependencies lead to the versioned image package; a few steps at most.
    for _ in 0..4 {
        let next = package
            .depends
            .iter()
            .filter_map(|group| group.first())
            .find(|r| r.name.starts_with("linux-image-"))
            .and_then(|r| index.candidate(&r.name));
        match next {
            Some(next) => package = next,
            None => break,
        }
    }
    reporter.report(Event::Info(format!(
        "kernel package `{}` is {} {}",
        name.get_ref(),
        package.name,
        package.version
    )));
    let locked = LockedKernel { request: name.get_ref().clone(), package: LockedPackage::from_index(package) };
    lists.remember(&key, &locked);
    Ok(locked)
}
