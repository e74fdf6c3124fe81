//! The initramfs output: a [`Plan`] written as a newc cpio archive through a compressor.
//!
//! Entries go in plan order (every directory before its contents), named without a leading `/`.
//! A hard-linked file is written once: every name gets the shared inode number and link count,
//! and only the last name carries the data, as GNU cpio and the kernel's `gen_init_cpio` do.

use std::io::Write;

use crate::base::error::{Error, Result};
use crate::base::progress::{Event, Reporter};
use crate::format::compress::Encoder;
use crate::format::cpio::{self, Header};
use crate::plan::{InitramfsPlan, Node, Plan};
use crate::recipe::DeviceKind;
use crate::source::content::Spool;

/// Refuses, before any work, what newc cannot hold: a file of 4 GiB or more, an mtime after
/// 2106-02-07, more inodes than 32 bits count.
pub fn check(plan: &Plan) -> Result<()> {
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
        if let Node::File { content, .. } = &entry.node {
            crate::plan::tree::check_file_size(&format!("`{}`", entry.path), content.size, cpio::FIELD_MAX + 1)?;
        }
    }
    Ok(())
}

/// The bytes of file data the archive will carry, for progress.
pub fn data_bytes(plan: &Plan) -> u64 {
    plan.entries
        .iter()
        .map(|e| match &e.node {
            Node::File { content, carries_data: true, .. } => content.size,
            _ => 0,
        })
        .sum()
}

/// Writes the archive for `plan` into `out`, compressed as `settings` says, and returns `out`.
/// `workers` is the number of compression threads (it never changes the bytes).
pub fn write<W: Write>(
    plan: &Plan,
    settings: InitramfsPlan,
    spool: &Spool,
    out: W,
    workers: u32,
    reporter: &dyn Reporter,
) -> Result<W> {
    let io = |what: &str, e: std::io::Error| Error::failure(format!("cannot write the initramfs: {what}: {e}"));
    let encoder = Encoder::new(out, settings.compression, settings.level, workers)
        .map_err(|e| io("cannot start the compressor", e))?;
    let mut archive = cpio::Writer::new(encoder);
    let mtime = plan.epoch as u32;
    let mut bytes = 0u64;
    for (done, entry) in plan.entries.iter().enumerate() {
        crate::base::interrupt::check().map_err(|e| io("stopping", e))?;
        let name = entry.path.as_bytes();
        let (type_bits, rdev) = match &entry.node {
            Node::Dir => (cpio::S_IFDIR, (0, 0)),
            Node::File { .. } => (cpio::S_IFREG, (0, 0)),
            Node::Symlink { .. } => (cpio::S_IFLNK, (0, 0)),
            Node::Device { kind, major, minor } => match kind {
                DeviceKind::Char => (cpio::S_IFCHR, (*major, *minor)),
                DeviceKind::Block => (cpio::S_IFBLK, (*major, *minor)),
                DeviceKind::Fifo => (cpio::S_IFIFO, (0, 0)),
            },
        };
        let mut header = Header {
            name,
            ino: entry.ino,
            mode: type_bits | entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            nlink: entry.nlink,
            mtime,
            size: 0,
            rdev_major: rdev.0,
            rdev_minor: rdev.1,
        };
        let shown = || entry.path.to_string();
        match &entry.node {
            Node::File { content, carries_data: true, .. } => {
                header.size = content.size as u32;
                let mut data = crate::base::progress::Counted {
                    inner: content.open(spool)?,
                    entries: done as u64,
                    bytes,
                    reporter,
                };
                archive.append(&header, &mut data).map_err(|e| io(&shown(), e))?;
                bytes += content.size;
            }
            Node::Symlink { target } => {
                header.size = target.len() as u32;
                archive.append(&header, &mut &target[..]).map_err(|e| io(&shown(), e))?;
            }
            _ => archive.append(&header, &mut std::io::empty()).map_err(|e| io(&shown(), e))?,
        }
        reporter.report(Event::WriteProgress { entries: done as u64 + 1, bytes });
    }
    let encoder = archive.finish().map_err(|e| io("the trailer", e))?;
    encoder.finish().map_err(|e| io("the end of the compressed stream", e))
}
