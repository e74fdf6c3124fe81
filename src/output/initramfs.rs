//! The initramfs output: a [`Plan`] written as a newc cpio archive through a compressor.
//!
//! Entries go in plan order (every directory before its contents), named without a leading `/`.
//! A hard-linked file is written once: every name gets the shared inode number and link count,
//! and only the last name carries the data, as GNU cpio and the kernel's `gen_init_cpio` do.

use super::{Job, OutputKind, Sink, Writer, Written};
use crate::base::error::{Error, Result};
use crate::base::progress::{Counted, Event};
use crate::format::compress::Encoder;
use crate::format::cpio::{self, Header};
use crate::plan::Plan;
use crate::source::{Node, check_file_size};

/// `NAME.cpio`, `NAME.cpio.zst`, ...
pub struct Initramfs;

impl Writer for Initramfs {
    fn kind(&self) -> OutputKind {
        OutputKind::Initramfs
    }

    fn wanted(&self, plan: &Plan) -> bool {
        plan.initramfs.is_some()
    }

    fn file(&self, plan: &Plan) -> String {
        let compression = plan.initramfs.map_or("", |settings| settings.compression.suffix());
        format!("{}.cpio{compression}", plan.name)
    }

    /// Refuses what newc cannot hold: a file of 4 GiB or more, an mtime after 2106-02-07, more
    /// inodes than 32 bits count.
    fn check(&self, plan: &Plan) -> Result<()> {
        if plan.epoch > cpio::FIELD_MAX {
            return Err(Error::input(format!(
                "epoch {} is after 2106-02-07 06:28:15 UTC, the last time a cpio newc header can hold",
                plan.epoch
            )));
        }
        if plan.entries.len() as u64 >= cpio::FIELD_MAX {
            return Err(Error::input("the image has more entries than a cpio archive can number"));
        }
        for entry in &plan.entries {
            if let Node::File { content } = &entry.node {
                check_file_size(&format!("`{}`", entry.path), content.size, cpio::FIELD_MAX + 1)?;
            }
        }
        Ok(())
    }

    fn progress(&self, plan: &Plan) -> Option<(u64, u64)> {
        Some((plan.entries.len() as u64, plan.data_bytes()))
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let plan = job.plan;
        let settings = plan.initramfs.ok_or_else(|| Error::failure("the plan has no initramfs"))?;
        let io = |what: &str, e: std::io::Error| Error::failure(format!("cannot write the initramfs: {what}: {e}"));
        let encoder = Encoder::new(out, settings.compression, settings.level, job.threads)
            .map_err(|e| io("cannot start the compressor", e))?;
        let mut archive = cpio::Writer::new(encoder);
        let mut bytes = 0u64;
        for (done, entry) in plan.entries.iter().enumerate() {
            crate::base::interrupt::check().map_err(|e| io("stopping", e))?;
            let (major, minor) = match entry.node {
                Node::Device { major, minor, .. } if entry.node.file_type().is_device() => (major, minor),
                _ => (0, 0),
            };
            let mut header = Header {
                name: entry.path.as_bytes(),
                ino: entry.ino,
                mode: entry.node.file_type().bits() | entry.meta.mode,
                uid: entry.meta.uid,
                gid: entry.meta.gid,
                nlink: entry.nlink,
                mtime: plan.epoch as u32,
                size: 0,
                rdev_major: major,
                rdev_minor: minor,
            };
            let shown = || entry.path.to_string();
            match &entry.node {
                Node::File { content } if entry.carries_data => {
                    header.size = content.size as u32;
                    let inner = content.open(job.spool)?;
                    let mut data = Counted { inner, entries: done as u64, bytes, reporter: job.reporter };
                    archive.append(&header, &mut data).map_err(|e| io(&shown(), e))?;
                    bytes += content.size;
                }
                Node::Symlink { target } => {
                    header.size = target.len() as u32;
                    archive.append(&header, &mut &target[..]).map_err(|e| io(&shown(), e))?;
                }
                _ => archive.append(&header, &mut std::io::empty()).map_err(|e| io(&shown(), e))?,
            }
            job.reporter.report(Event::WriteProgress { entries: done as u64 + 1, bytes });
        }
        let encoder = archive.finish().map_err(|e| io("the trailer", e))?;
        let out = encoder.finish().map_err(|e| io("the end of the compressed stream", e))?;
        Ok(out.into())
    }
}
