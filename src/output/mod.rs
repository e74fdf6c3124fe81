//! What a build writes, as one table: [`OUTPUTS`] lists every kind of output in the order they
//! are written, each a [`Writer`] that says whether a plan wants it, refuses a plan it cannot
//! hold before anything is written, and writes itself into a staged file (see [`stage`]). Later
//! outputs may read earlier ones (the disk holds the file system; the manifest, the SBOM and
//! `SHA256SUMS` list what came before them). [`build`] runs the whole pipeline, with the
//! [`cache`] of earlier builds.

pub mod build;
pub mod cache;
mod disk;
mod erofs;
mod esp;
mod initramfs;
mod kernel;
mod manifest;
mod sbom;
pub mod stage;
mod sums;
mod uki;
mod verity;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::base::error::{IoContext, Result};
use crate::base::hash::{Digest, HashingWriter};
use crate::base::progress::Reporter;
use crate::plan::Plan;
use crate::source::content::Spool;
use stage::Staged;

/// What an output file is. Everything that needs to know (the SBOM, `bake test`, `bake verify`,
/// the cache) asks this, never the file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// `NAME.cpio` with the compressor's suffix.
    Initramfs,
    /// `NAME.erofs`, the read-only file system.
    FileSystem,
    /// `NAME.img`, a GPT disk holding the file system.
    Disk,
    /// `NAME.verity`, the dm-verity hash tree of the file system.
    Verity,
    /// `NAME.efi`, the unified kernel image of a disk that boots by itself.
    Uki,
    /// `NAME.vmlinuz`, the kernel.
    Kernel,
    /// `NAME.spdx.json`.
    Sbom,
    /// `NAME.manifest.json`.
    Manifest,
    /// `SHA256SUMS`.
    Sums,
}

impl OutputKind {
    const ALL: [OutputKind; 9] = [
        OutputKind::Initramfs,
        OutputKind::FileSystem,
        OutputKind::Verity,
        OutputKind::Uki,
        OutputKind::Disk,
        OutputKind::Kernel,
        OutputKind::Sbom,
        OutputKind::Manifest,
        OutputKind::Sums,
    ];

    /// Its name in records (the build cache's).
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Initramfs => "initramfs",
            OutputKind::FileSystem => "erofs",
            OutputKind::Verity => "verity",
            OutputKind::Uki => "efi",
            OutputKind::Disk => "disk",
            OutputKind::Kernel => "kernel",
            OutputKind::Sbom => "sbom",
            OutputKind::Manifest => "manifest",
            OutputKind::Sums => "sums",
        }
    }

    /// The kind a record names.
    pub fn from_name(name: &str) -> Option<OutputKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether it is an image of the tree, which `bake inspect` and `bake diff` read and which
    /// contains the image's packages.
    pub fn is_image(self) -> bool {
        matches!(self, OutputKind::Initramfs | OutputKind::FileSystem | OutputKind::Disk)
    }

    /// Whether it is something the build makes (an image, a hash tree, the kernel), as opposed
    /// to a document about those (the SBOM, the manifest, the sums), which lists them.
    pub fn is_artifact(self) -> bool {
        self.is_image() || matches!(self, OutputKind::Verity | OutputKind::Uki | OutputKind::Kernel)
    }
}

/// An output file of the build.
#[derive(Debug, Clone)]
pub struct Output {
    pub kind: OutputKind,
    /// File name inside the output folder.
    pub file: String,
    pub size: u64,
    pub sha256: Digest,
    /// For a dm-verity hash tree: its root hash.
    pub root_hash: Option<Digest>,
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub name: String,
    pub entries: usize,
    /// Bytes of regular file data in the image, each hard-linked file counted once.
    pub data_bytes: u64,
    /// Every output, in the order they were written: images, the kernel, the SBOM, the
    /// manifest and `SHA256SUMS`.
    pub outputs: Vec<Output>,
    pub out_dir: PathBuf,
    pub elapsed: Duration,
    /// Whether the outputs came from the build cache.
    pub cached: bool,
}

impl Built {
    /// The first output of `kind`.
    pub fn output(&self, kind: OutputKind) -> Option<&Output> {
        self.outputs.iter().find(|o| o.kind == kind)
    }
}

/// What a writer works from.
pub struct Job<'a> {
    pub plan: &'a Plan,
    /// For `[disk] boot = "uefi"`: the stage-1 the unified kernel image boots, planned from
    /// `boot-recipe` (it has an initramfs and a kernel).
    pub stage1: Option<&'a Plan>,
    /// Where archive members' bytes are kept.
    pub spool: &'a Spool,
    /// Compression threads (never changes the bytes).
    pub threads: u32,
    /// The input store, where compressed initramfs frames are kept between builds (none with
    /// `--no-cache`). Never changes the bytes.
    pub store: Option<&'a crate::source::store::Store>,
    pub reporter: &'a dyn Reporter,
    /// The outputs already written by this build, in order.
    pub earlier: &'a [Staged],
    /// Where this output goes, for messages.
    pub path: &'a Path,
}

impl Job<'_> {
    /// Writes `text` (a document held in memory) into `out`.
    pub fn write_text(&self, mut out: Sink, text: &str) -> Result<Written> {
        out.write_all(text.as_bytes()).writing(self.path)?;
        Ok(out.into())
    }

    /// The earlier output of `kind`, if this build wrote one.
    pub fn earlier(&self, kind: OutputKind) -> Option<&Staged> {
        self.earlier.iter().find(|s| s.output().kind == kind)
    }

    /// The earlier outputs that are artifacts, in order.
    pub fn artifacts(&self) -> Vec<Output> {
        self.earlier.iter().map(Staged::output).filter(|o| o.kind.is_artifact()).cloned().collect()
    }
}

/// The file an output is being written into: buffered and hashed on the way.
pub type Sink = HashingWriter<File>;

/// One kind of output.
pub trait Writer: Sync {
    fn kind(&self) -> OutputKind;
    /// Whether `plan` asks for this output.
    fn wanted(&self, plan: &Plan) -> bool;
    /// Its file name in the output folder.
    fn file(&self, plan: &Plan) -> String;
    /// Refuses, before anything is written, a plan this output cannot hold.
    fn check(&self, _plan: &Plan) -> Result<()> {
        Ok(())
    }
    /// For an output worth a progress bar: the entries and bytes of file data it will write.
    fn progress(&self, _plan: &Plan) -> Option<(u64, u64)> {
        None
    }
    /// Writes the output into `out` and returns it, with what writing it found out.
    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written>;
}

/// What a writer hands back: the file it wrote, and what it found out on the way.
pub struct Written {
    pub sink: Sink,
    /// For a dm-verity hash tree: its root hash.
    pub root_hash: Option<Digest>,
}

impl From<Sink> for Written {
    fn from(sink: Sink) -> Written {
        Written { sink, root_hash: None }
    }
}

/// Every kind of output, in the order a build writes them.
pub static OUTPUTS: [&dyn Writer; 9] = [
    &initramfs::Initramfs,
    &erofs::FileSystem,
    &verity::HashTree,
    &uki::Uki,
    &disk::Disk,
    &kernel::Vmlinuz,
    &sbom::Sbom,
    &manifest::Manifest,
    &sums::Sums,
];

/// The writers of the outputs `plan` asks for, in order.
pub fn wanted(plan: &Plan) -> Vec<&'static dyn Writer> {
    OUTPUTS.iter().copied().filter(|w| w.wanted(plan)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_kind_once_in_writing_order() {
        let kinds: Vec<OutputKind> = OUTPUTS.iter().map(|w| w.kind()).collect();
        assert_eq!(kinds, OutputKind::ALL);
        for kind in OutputKind::ALL {
            assert_eq!(OutputKind::from_name(kind.name()), Some(kind));
        }
    }
}
