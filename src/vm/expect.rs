//! A recipe's `[test]`, checked: what the guest must print, how long it may take, how much
//! memory it has, which kernel boots it and, for a disk, which initramfs, and which of its
//! services the host checks over HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::recipe::{HttpCheck, PartitionTable, RecipeFile};
use crate::vm::probe::HttpProbe;

/// Default `[test]` values.
const DEFAULT_TIMEOUT: u64 = 60;
const DEFAULT_MEMORY: u32 = 256;

/// The `[test]` of a recipe, checked.
pub(super) struct Expectations {
    pub expect: Vec<String>,
    pub timeout: Duration,
    pub memory: u32,
    /// MiB of blank virtio disk to attach.
    pub scratch_disk: Option<u32>,
    /// Extra kernel command line (`[kernel] cmdline`).
    pub cmdline: Option<String>,
    pub kernel: KernelSource,
    /// For a disk: how it boots.
    pub boot: Option<DiskBoot>,
    /// `[[test.http]]`, in recipe order.
    pub http: Vec<HttpProbe>,
}

/// How a disk boots, and what is done to it first.
pub(super) struct DiskBoot {
    pub start: DiskStart,
    /// A file whose first byte is changed on a copy of the disk before it boots.
    pub tamper: Option<ImagePath>,
}

/// Who starts a disk.
pub(super) enum DiskStart {
    /// `[test] boot-recipe`: a kernel and the initramfs of that recipe, which finds the root on
    /// the disk. Boxed: a recipe is large beside the other variant.
    Stage1(Box<Stage1>),
    /// `[disk] boot = "uefi"`: UEFI firmware, from the disk's EFI system partition alone.
    Firmware,
}

/// A stage-1 initramfs that boots a disk.
pub(super) struct Stage1 {
    /// The recipe of the initramfs (with the kernel's modules) that boots the disk.
    pub recipe: RecipeFile,
    pub partition_table: PartitionTable,
}

impl Stage1 {
    /// What the kernel command line says of the root, given the root hash of a verity disk:
    /// `bake test` attaches the disk as the first virtio-blk device (and a bare hash tree as the
    /// second), so `root=` names the root partition, and `roothash=` with
    /// `systemd.verity_root_hash=` (systemd's names) the verity setup.
    pub fn root_arguments(&self, root_hash: Option<&str>) -> String {
        let (root, tree) = match self.partition_table {
            PartitionTable::Gpt => ("/dev/vda1", "/dev/vda2"),
            PartitionTable::None => ("/dev/vda", "/dev/vdb"),
        };
        match root_hash {
            Some(hash) => format!("root={root} roothash={hash} systemd.verity_root_hash={tree}"),
            None => format!("root={root}"),
        }
    }
}

/// Where the kernel to boot comes from.
#[derive(Debug, Clone)]
pub(super) enum KernelSource {
    /// `--kernel`, or `BAKE_KERNEL`.
    Given(PathBuf),
    /// The recipe's `[kernel]` (or its boot recipe's): the `NAME.vmlinuz` its build writes.
    Built,
    /// Inside the image: a disk with a unified kernel image, which the firmware starts.
    InImage,
}

/// Checks the `[test]` of `recipe`. The kernel is `kernel` (`--kernel`), else the recipe's
/// `[kernel]` (its modules are built for that kernel, so it beats the environment), else
/// `default_kernel` (`BAKE_KERNEL`).
pub(super) fn expectations(
    recipe: &RecipeFile,
    kernel: Option<&Path>,
    default_kernel: Option<&Path>,
) -> Result<Expectations> {
    let Some(test) = &recipe.recipe.test else {
        return Err(Error::input(format!(
            "`{}` has no `[test]` section: there is nothing to check after booting it",
            recipe.path.display()
        )));
    };
    let t = test.get_ref();
    let boot = disk_boot(recipe, test)?;
    // The kernel, its modules and its command line come with the initramfs that boots.
    let stage1 = boot.as_ref().and_then(|b| match &b.start {
        DiskStart::Stage1(stage1) => Some(&stage1.recipe),
        DiskStart::Firmware => None,
    });
    let booting = stage1.unwrap_or(recipe);
    let kernel = match boot.as_ref().map(|b| &b.start) {
        Some(DiskStart::Firmware) => {
            if let Some(path) = kernel {
                return Err(Error::input(format!(
                    "`--kernel {}` cannot boot `{}`: its disk boots with firmware alone, from the kernel in its \
                     unified kernel image",
                    path.display(),
                    recipe.path.display()
                )));
            }
            KernelSource::InImage
        }
        _ => kernel_source(booting, kernel, default_kernel)?,
    };
    Ok(Expectations {
        expect: t.expect.clone(),
        timeout: Duration::from_secs(
            bounded(recipe, t.timeout.as_ref(), 1..=3600, "`timeout` is in seconds")?.unwrap_or(DEFAULT_TIMEOUT),
        ),
        memory: bounded(recipe, t.memory.as_ref(), 64..=65536, "`memory` is in MiB")?.unwrap_or(DEFAULT_MEMORY),
        scratch_disk: bounded(recipe, t.scratch_disk.as_ref(), 1..=65536, "`scratch-disk` is in MiB")?,
        cmdline: booting.recipe.kernel.as_ref().and_then(|k| k.get_ref().cmdline.clone()),
        kernel,
        boot,
        http: t.http.iter().map(|check| http_probe(recipe, check)).collect::<Result<_>>()?,
    })
}

/// A `[[test.http]]`, checked: a port from 1 to 65535, a path a request line can carry, and
/// text to look for.
fn http_probe(recipe: &RecipeFile, check: &Spanned<HttpCheck>) -> Result<HttpProbe> {
    let c = check.get_ref();
    let port = u16::try_from(*c.port.get_ref())
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| recipe.error(&c.port, "`port` is a TCP port, from 1 to 65535"))?;
    let path = c.path.get_ref();
    if !path.starts_with('/') || path.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err(recipe.error(
            &c.path,
            format!("`path` `{}` must start with `/` and hold no spaces or control characters", path.escape_debug()),
        ));
    }
    if c.expect.get_ref().is_empty() {
        return Err(recipe.error(&c.expect, "`expect` is the text the answer must hold, and may not be empty"));
    }
    if let Some(after) = c.after.as_ref().filter(|a| a.get_ref().is_empty()) {
        return Err(recipe.error(
            after,
            "`after` is a console line to wait for, and may not be empty (leave it out to start at once)",
        ));
    }
    Ok(HttpProbe {
        port,
        path: path.clone(),
        expect: c.expect.get_ref().clone(),
        after: c.after.as_ref().map(|a| a.get_ref().clone()),
    })
}

/// A `[test]` number, refused with `what` (and the range) when it is outside `range`.
fn bounded<T>(
    recipe: &RecipeFile,
    value: Option<&Spanned<T>>,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<Option<T>>
where
    T: PartialOrd + Copy + std::fmt::Display,
{
    match value {
        Some(v) if !range.contains(v.get_ref()) => {
            Err(recipe.error(v, format!("{what}, from {} to {}", range.start(), range.end())))
        }
        Some(v) => Ok(Some(*v.get_ref())),
        None => Ok(None),
    }
}

/// For a recipe with a `[disk]`: the boot recipe its `[test]` names, checked.
fn disk_boot(recipe: &RecipeFile, test: &Spanned<crate::recipe::Test>) -> Result<Option<DiskBoot>> {
    let tamper = match &test.get_ref().tamper {
        Some(path) => Some(
            ImagePath::from_recipe(path.get_ref())
                .map_err(|e| recipe.error(path, format!("`{}`: {e}", path.get_ref())))?,
        ),
        None => None,
    };
    let firmware = recipe.recipe.disk.as_ref().is_some_and(|d| d.get_ref().boot.is_some());
    match (&test.get_ref().boot_recipe, &recipe.recipe.disk) {
        (Some(path), Some(_)) if firmware => Err(recipe.error(
            path,
            "this disk boots with firmware alone (`[disk] boot = \"uefi\"`, its stage-1 is `[disk] boot-recipe`): \
             `[test] boot-recipe` makes no sense for it",
        )),
        (None, Some(_)) if firmware => Ok(Some(DiskBoot { start: DiskStart::Firmware, tamper })),
        (Some(path), Some(disk)) => {
            let boot = RecipeFile::load(&recipe.host_path(path.get_ref())).map_err(|e| recipe.error(path, e))?;
            if boot.recipe.initramfs.is_none() {
                return Err(recipe.error(path, format!("`{}` has no `[initramfs]` to boot with", path.get_ref())));
            }
            let stage1 = Stage1 { recipe: boot, partition_table: disk.get_ref().partition_table };
            Ok(Some(DiskBoot { start: DiskStart::Stage1(Box::new(stage1)), tamper }))
        }
        (Some(path), None) => Err(recipe.error(path, "`boot-recipe` boots a `[disk]`, and this recipe has none")),
        (None, _) if tamper.is_some() => {
            Err(recipe.error(test, "`tamper` changes a file on a `[disk]`, and this test boots no disk"))
        }
        (None, _) if recipe.recipe.initramfs.is_none() => Err(recipe.error(
            test,
            "`bake test` boots the initramfs, but the recipe has no `[initramfs]` (a `[disk]` boots with \
             `boot-recipe`)",
        )),
        (None, _) => Ok(None),
    }
}

/// Where the kernel comes from: `kernel`, else the recipe's `[kernel]`, else `default_kernel`.
fn kernel_source(recipe: &RecipeFile, kernel: Option<&Path>, default_kernel: Option<&Path>) -> Result<KernelSource> {
    let given = |path: &Path| {
        if path.is_file() {
            Ok(KernelSource::Given(path.to_path_buf()))
        } else {
            Err(Error::input(format!("kernel `{}` is not a file", path.display())))
        }
    };
    if let Some(path) = kernel {
        return given(path);
    }
    if recipe.recipe.kernel.is_some() {
        return Ok(KernelSource::Built);
    }
    match default_kernel {
        Some(path) => given(path),
        None => Err(Error::input(format!(
            "no kernel to boot `{}`: pass `--kernel PATH`, set BAKE_KERNEL, or add a `[kernel]` to the \
             recipe (`scripts/fetch-kernel.sh` fetches Debian's cloud kernel and prints its path)",
            recipe.path.display()
        ))),
    }
}
