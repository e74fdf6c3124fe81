//! From a recipe to a [`Plan`]: every entry of the image, sorted, with every bit of metadata
//! decided, and every input with its digest.
//!
//! This is the only place where the recipe meets the host, and it reads nothing the recipe does
//! not name. `check` checks the recipe against itself; [`prepare()`] resolves and fetches its
//! packages and hashes every input, enough to look in the build cache; `lay` unpacks the
//! inputs into the [`tree::Tree`] in order, prunes it with the `[remove]` patterns, writes what
//! maintainer scripts would have made (dpkg's database; `system`: the accounts), adds the
//! kernel's [`modules`] and the recipe's own entries last, and freezes it. Modification times are
//! all the image epoch, inode numbers are given in path order, and owners come from the recipe
//! or the archives, so nothing about the builder (user, umask, clock, time zone, locale, build
//! folder, directory order) can reach the image. The writers only ever see a `Plan`.

mod check;
pub mod depmod;
mod lay;
pub mod modules;
pub mod prepare;
mod scripts;
mod system;
mod systemd;
pub mod tree;

pub use prepare::{Prepared, prepare};

use std::path::PathBuf;

use crate::base::error::Result;
use crate::base::path::ImagePath;
use crate::base::progress::Reporter;
use crate::debian::copyright::Declared;
use crate::format::compress::Compression;
use crate::lockfile::{LockedKernel, LockedLayer, LockedPackage};
use crate::recipe::{PartitionTable, RecipeFile};
use crate::source::content::{Content, Spool};
use crate::source::packages::PackageSettings;
use crate::source::{Input, Meta, Node};

/// The name of a disk's verity partition: the image's name and this.
pub const VERITY_PARTITION_SUFFIX: &str = "-verity";

/// What a build takes from outside the recipe.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `SOURCE_DATE_EPOCH`, the epoch when the recipe sets none.
    pub source_date_epoch: Option<String>,
    /// Where packages are cached and how the lock file is used.
    pub packages: PackageSettings,
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
    /// For `[disk] boot = "uefi"`: the stage-1 recipe and the EFI stub.
    pub boot: Option<BootPlan>,
    /// Every package laid in, in order, with its licence (for the SBOM).
    pub packages: Vec<PlannedPackage>,
}

/// A Debian package in the image.
#[derive(Debug, Clone)]
pub struct PlannedPackage {
    pub package: LockedPackage,
    /// What its machine-readable copyright file declares, if it has one.
    pub license: Option<Declared>,
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
    pub partition_table: PartitionTable,
    /// Whether a dm-verity hash tree protects the file system.
    pub verity: bool,
    /// Whether the disk boots with UEFI firmware alone (`boot = "uefi"`): see [`Plan::boot`].
    pub uefi: bool,
}

/// What `[disk] boot = "uefi"` builds into the unified kernel image, besides the stage-1 (which
/// the build plans from `recipe`).
#[derive(Debug)]
pub struct BootPlan {
    /// The stage-1 recipe on the host, and as the recipe names it.
    pub recipe: PathBuf,
    pub written: String,
    /// systemd's EFI stub (`linuxx64.efi.stub`), read from its package.
    pub stub: Vec<u8>,
    /// The stub's package, by name: what it resolved to.
    pub stub_package: Option<LockedKernel>,
}

#[derive(Debug, Clone, Copy)]
pub struct InitramfsPlan {
    pub compression: Compression,
    /// Explicit level; the compressor's default when `None`.
    pub level: Option<i64>,
    /// Written as independently compressed frames (zstd, gzip and xz; see
    /// `output::initramfs`), rather than one stream.
    pub frames: bool,
}

/// One entry of the image, every bit of it decided.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub path: ImagePath,
    pub node: Node,
    pub meta: Meta,
    /// Inode number: 1, 2, ... in path order; hard links share their first name's.
    pub ino: u32,
    /// Names of a file; for a directory 2 plus its subdirectories, as on a real file system.
    pub nlink: u32,
    /// For the second and later names of a hard-linked file: its first name.
    pub first_name: Option<ImagePath>,
    /// Whether this name carries a regular file's data in a cpio archive (the last name of a
    /// hard-link group, as GNU cpio and the kernel's `gen_init_cpio` do; for a single name,
    /// itself).
    pub carries_data: bool,
    /// Whether an archive laid it (a package, a tar or `.deb` layer, the kernel package), as
    /// opposed to the recipe's own entries, its folder layers and what bake writes itself. An
    /// initramfs never compresses the two kinds in one frame: archives are kept by digest and
    /// change rarely, the rest is what a user edits.
    pub archived: bool,
}

/// Turns `recipe` into a [`Plan`], reading its inputs (archive data is kept in `spool`).
pub fn plan(recipe: &RecipeFile, settings: &Settings, spool: &mut Spool, reporter: &dyn Reporter) -> Result<Plan> {
    prepare(recipe, settings, None, reporter)?.lay(spool, reporter)
}

/// For `[disk] boot = "uefi"`: the stage-1 recipe `boot-recipe` names, loaded and checked to
/// have what a unified kernel image needs (an `[initramfs]` and a `[kernel]`, and no disk that
/// boots by itself). Errors name the outer recipe's `boot-recipe`.
pub fn stage1_recipe(recipe: &RecipeFile) -> Result<Option<RecipeFile>> {
    let Some(disk) = &recipe.recipe.disk else { return Ok(None) };
    let disk = disk.get_ref();
    let (Some(_), Some(path)) = (&disk.boot, &disk.boot_recipe) else { return Ok(None) };
    let stage1 = RecipeFile::load(&recipe.host_path(path.get_ref())).map_err(|e| e.context("`boot-recipe`"))?;
    let lacks = |what: &str| {
        recipe.error(path, format!("`{}` has no `{what}` to build into the unified kernel image", path.get_ref()))
    };
    if stage1.recipe.initramfs.is_none() {
        return Err(lacks("[initramfs]"));
    }
    if stage1.recipe.kernel.is_none() {
        return Err(lacks("[kernel]"));
    }
    if stage1.recipe.disk.as_ref().is_some_and(|d| d.get_ref().boot.is_some()) {
        return Err(recipe.error(path, format!("`{}` is a disk that boots by itself, not a stage-1", path.get_ref())));
    }
    Ok(Some(stage1))
}

impl Plan {
    /// Bytes of regular file data the image holds, each hard-linked file counted once.
    pub fn data_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.carries_data)
            .map(|e| match &e.node {
                Node::File { content } => content.size,
                _ => 0,
            })
            .sum()
    }
}
