//! The initramfs output: a [`Plan`] written as a newc cpio archive through a compressor.
//!
//! Entries go in plan order (every directory before its contents), named without a leading `/`.
//! A hard-linked file is written once: every name gets the shared inode number and link count,
//! and only the last name carries the data, as GNU cpio and the kernel's `gen_init_cpio` do.
//!
//! zstd, gzip and xz images are a series of independent frames (zstd frames, gzip members, xz
//! streams), each holding whole entries of the one archive. The archive is cut after an entry
//! once the frame holds [`FRAME_MIN`] bytes and the entry's path hashes to a cut (one path in
//! [`CUT_ONE_IN`]), or once it holds [`FRAME_MAX`]; and wherever entries laid from archives
//! (packages, tar and `.deb` layers, the kernel package) and the others (the recipe's own, its
//! folder layers, what bake writes) meet, so an edited `[[file]]` is a frame of a few bytes,
//! not one of the megabytes of package files beside it. The cuts depend only on the plan, so
//! the bytes are the same for any number of threads; and a changed file changes only its own
//! frame: the cuts before it stay, and after it they fall in the same places again at the next
//! path that hashes to a cut. Frames are compressed side by side, one per thread, and kept in
//! the input store under a digest of what they hold (every entry's header and its data's
//! sha256), so the next build compresses only the frames whose entries changed, and reads no
//! file data at all for the others.
//!
//! The kernel unpacks such an image: `init/initramfs.c` keeps its cpio parser's state from one
//! compressed stream to the next and only requires each to end between two entries. Every
//! decompressor reads the concatenation as one stream (`zstd -d`, `gzip -d`, `xz -d`, then GNU
//! cpio). Each frame loses the matches it could have found in the frames before it (measured
//! in docs/recipe.md): `frames = false` writes one stream instead, as do LZ4 (fast enough to
//! redo) and `none`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::cache::BuildCache;
use super::{Job, OutputKind, Sink, Writer, Written};
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, HashingWriter, hex, parse_hex};
use crate::base::progress::{Counted, Event, Reporter};
use crate::format::compress::Encoder;
use crate::format::cpio::{self, Header};
use crate::plan::{InitramfsPlan, Plan, PlanEntry};
use crate::source::content::Spool;
use crate::source::store::{BUDGET, Store};
use crate::source::{Node, check_file_size};

/// A frame is cut at the first path that hashes to a cut once it holds this many bytes...
const FRAME_MIN: u64 = 1 << 20;
/// ...and after whatever entry takes it to this many.
const FRAME_MAX: u64 = 4 << 20;
/// One path in this many is a cut.
const CUT_ONE_IN: u64 = 8;
/// Begins every frame's key: changes whenever what a key covers or how frames are cut changes.
const FRAME_KEY: &[u8] = b"bake initramfs frame 1\0";

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
        let settings = job.plan.initramfs.ok_or_else(|| Error::failure("the plan has no initramfs"))?;
        if settings.frames { write_frames(job, settings, out) } else { write_stream(job, settings, out) }
    }
}

fn io_error(what: &str, e: io::Error) -> Error {
    Error::failure(format!("cannot write the initramfs: {what}: {e}"))
}

/// The entry's header as the archive holds it.
fn header<'a>(plan: &Plan, entry: &'a PlanEntry) -> Header<'a> {
    let (rdev_major, rdev_minor) = match entry.node {
        Node::Device { major, minor, .. } if entry.node.file_type().is_device() => (major, minor),
        _ => (0, 0),
    };
    let size = match &entry.node {
        Node::File { content } if entry.carries_data => content.size as u32,
        Node::Symlink { target } => target.len() as u32,
        _ => 0,
    };
    Header {
        name: entry.path.as_bytes(),
        ino: entry.ino,
        mode: entry.node.file_type().bits() | entry.meta.mode,
        uid: entry.meta.uid,
        gid: entry.meta.gid,
        nlink: entry.nlink,
        mtime: plan.epoch as u32,
        size,
        rdev_major,
        rdev_minor,
    }
}

/// Appends `entry` to `archive`; with `progress`, reports its data as it passes (`done`
/// entries and `bytes` of file data written before it).
fn append(
    plan: &Plan,
    spool: &Spool,
    archive: &mut cpio::Writer<impl Write>,
    entry: &PlanEntry,
    progress: Option<(&dyn Reporter, usize, u64)>,
) -> Result<()> {
    let header = header(plan, entry);
    let shown = || entry.path.to_string();
    match &entry.node {
        Node::File { content } if entry.carries_data => {
            let inner = content.open(spool)?;
            match progress {
                Some((reporter, done, bytes)) => {
                    archive.append(&header, &mut Counted { inner, entries: done as u64, bytes, reporter })
                }
                None => archive.append(&header, &mut { inner }),
            }
        }
        Node::Symlink { target } => archive.append(&header, &mut &target[..]),
        _ => archive.append(&header, &mut io::empty()),
    }
    .map_err(|e| io_error(&shown(), e))
}

/// `frames = false`, LZ4 and `none`: the archive as one stream.
fn write_stream(job: &Job<'_>, settings: InitramfsPlan, out: Sink) -> Result<Written> {
    let encoder = Encoder::stream(out, settings.compression, settings.level, job.threads)
        .map_err(|e| io_error("cannot start the compressor", e))?;
    let mut archive = cpio::Writer::new(encoder);
    let mut bytes = 0u64;
    for (done, entry) in job.plan.entries.iter().enumerate() {
        crate::base::interrupt::check().map_err(|e| io_error("stopping", e))?;
        append(job.plan, job.spool, &mut archive, entry, Some((job.reporter, done, bytes)))?;
        if entry.carries_data
            && let Node::File { content } = &entry.node
        {
            bytes += content.size;
        }
        job.reporter.report(Event::WriteProgress { entries: done as u64 + 1, bytes });
    }
    let encoder = archive.finish().map_err(|e| io_error("the trailer", e))?;
    let out = encoder.finish().map_err(|e| io_error("the end of the compressed stream", e))?;
    Ok(out.into())
}

/// One frame: a run of entries compressed on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    entries: Range<usize>,
    /// Uncompressed bytes: headers, names, data, padding, and the trailer in the last frame.
    len: u64,
    /// Bytes of file data, for progress.
    data: u64,
    /// What determines its bytes (see [`frames`]): it is kept in the store under this.
    key: Digest,
}

/// 64-bit FNV-1a: a fixed, well-known hash, so the cuts never depend on a library's choice.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Where the archive of `plan` is cut into frames, and each frame's key: a digest of bake's
/// source (which pins the compressors), the compressor and level, and every entry's header and
/// data. Besides the size cuts, the archive is cut wherever entries laid from archives and the
/// others meet ([`PlanEntry::archived`]), so an edited `[[file]]` is compressed again alone,
/// not with the megabytes of package files beside it.
fn frames(plan: &Plan, settings: InitramfsPlan) -> Vec<Frame> {
    let mut empty = Sha256::new();
    empty.update(FRAME_KEY);
    empty.update(BuildCache::source_digest());
    empty.update(settings.compression.name().as_bytes());
    empty.update(settings.compression.level_or_default(settings.level).to_le_bytes());
    let mut frames = Vec::new();
    let (mut start, mut len, mut data, mut hasher) = (0, 0u64, 0u64, empty.clone());
    let mut close = |end: usize, len: &mut u64, data: &mut u64, hasher: &mut Sha256| {
        let key = std::mem::replace(hasher, empty.clone()).finalize().into();
        frames.push(Frame { entries: start..end, len: std::mem::take(len), data: std::mem::take(data), key });
        start = end;
    };
    let count = plan.entries.len();
    for (i, entry) in plan.entries.iter().enumerate() {
        if len > 0 && plan.entries[i - 1].archived != entry.archived {
            close(i, &mut len, &mut data, &mut hasher);
        }
        let header = header(plan, entry);
        hasher.update(cpio::header_bytes(&header));
        match &entry.node {
            Node::File { content } if entry.carries_data => hasher.update(content.sha256),
            Node::Symlink { target } => hasher.update(target),
            _ => {}
        }
        len += cpio::entry_len(&header);
        if matches!(entry.node, Node::File { .. }) {
            data += u64::from(header.size);
        }
        let cut = len >= FRAME_MAX || (len >= FRAME_MIN && fnv1a(entry.path.as_bytes()).is_multiple_of(CUT_ONE_IN));
        if cut && i + 1 < count {
            close(i + 1, &mut len, &mut data, &mut hasher);
        }
    }
    hasher.update(cpio::header_bytes(&cpio::TRAILER_HEADER));
    len += cpio::entry_len(&cpio::TRAILER_HEADER);
    close(count, &mut len, &mut data, &mut hasher);
    frames
}

/// A kept frame's record in the store: the digest and size of its bytes.
#[derive(Serialize, Deserialize)]
struct KeptFrame {
    sha256: String,
    size: u64,
}

/// A frame ready to be copied into the image.
enum Ready {
    /// Found in the store, its bytes just checked.
    Kept(File),
    /// Compressed by this build: the file, and the digest and size of its bytes.
    Made(File, Digest, u64),
}

/// zstd, gzip and xz: the archive as frames, compressed on `job.threads` threads, kept ones
/// taken from the store, copied into `out` in order.
fn write_frames(job: &Job<'_>, settings: InitramfsPlan, mut out: Sink) -> Result<Written> {
    let plan = job.plan;
    let frames = frames(plan, settings);
    let scratch = job.path.parent().unwrap_or(std::path::Path::new("."));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let workers = (job.threads.max(1) as usize).min(frames.len());
    let (plan, spool, store) = (job.plan, job.spool, job.store);
    let mut added = false;
    std::thread::scope(|scope| -> Result<()> {
        let (send, receive) = mpsc::channel::<(usize, Result<Ready>)>();
        for _ in 0..workers {
            let send = send.clone();
            let (frames, next, stop) = (&frames, &next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(frame) = frames.get(i) else { break };
                    let ready = match store.and_then(|store| kept(store, &frame.key)) {
                        Some(file) => Ok(Ready::Kept(file)),
                        None => compress(plan, spool, frame, settings, scratch, stop),
                    };
                    if send.send((i, ready)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send);
        let mut waiting: HashMap<usize, Result<Ready>> = HashMap::new();
        let mut bytes = 0u64;
        let result = (|| {
            for (i, frame) in frames.iter().enumerate() {
                let ready = loop {
                    if let Some(ready) = waiting.remove(&i) {
                        break ready;
                    }
                    let (j, ready) =
                        receive.recv().map_err(|_| Error::failure("a compression thread stopped early"))?;
                    waiting.insert(j, ready);
                };
                let mut file = match ready? {
                    Ready::Kept(file) => file,
                    Ready::Made(mut file, sha256, size) => {
                        if let Some(store) = job.store {
                            keep(store, &frame.key, &mut file, &sha256, size);
                            added = true;
                        }
                        file
                    }
                };
                file.seek(SeekFrom::Start(0)).map_err(|e| io_error("a compressed frame", e))?;
                io::copy(&mut file, &mut out).writing(job.path)?;
                bytes += frame.data;
                job.reporter.report(Event::WriteProgress { entries: frame.entries.end as u64, bytes });
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        result
    })?;
    if added && let Some(store) = job.store {
        store.evict(BUDGET);
    }
    Ok(out.into())
}

/// The frame kept under `key`, if the store has it with the bytes it was kept with.
fn kept(store: &Store, key: &Digest) -> Option<File> {
    let entry = store.entry("frames", key);
    let index: KeptFrame = entry.read_index()?;
    let sha256 = parse_hex(&index.sha256)?;
    if !entry.blobs_intact(&[(sha256, index.size)]) {
        entry.remove();
        return None;
    }
    File::open(entry.blob_path(&sha256)).ok()
}

/// Keeps a frame this build compressed; a store that cannot take it only costs the next build
/// the time to compress it again.
fn keep(store: &Store, key: &Digest, file: &mut File, sha256: &Digest, size: u64) {
    let entry = store.entry("frames", key);
    let stored = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| entry.put_blob(sha256, &mut (&mut *file).take(size)))
        .and_then(|_| entry.write_index(&KeptFrame { sha256: hex(sha256), size }));
    if stored.is_err() {
        entry.remove();
    }
}

/// Compresses one frame into an unnamed file next to the output.
fn compress(
    plan: &Plan,
    spool: &Spool,
    frame: &Frame,
    settings: InitramfsPlan,
    scratch: &std::path::Path,
    stop: &AtomicBool,
) -> Result<Ready> {
    let file = tempfile::tempfile_in(scratch).writing(scratch)?;
    let encoder = Encoder::unit(HashingWriter::new(file), settings.compression, settings.level, Some(frame.len))
        .map_err(|e| io_error("cannot start the compressor", e))?;
    let mut archive = cpio::Writer::new(encoder);
    for i in frame.entries.clone() {
        crate::base::interrupt::check().map_err(|e| io_error("stopping", e))?;
        if stop.load(Ordering::Relaxed) {
            return Err(Error::failure("stopped"));
        }
        append(plan, spool, &mut archive, &plan.entries[i], None)?;
    }
    let last = frame.entries.end == plan.entries.len();
    let encoder = if last { archive.finish().map_err(|e| io_error("the trailer", e))? } else { archive.into_inner() };
    let hashing = encoder.finish().map_err(|e| io_error("the end of a compressed frame", e))?;
    let (file, sha256, size) = hashing.finish().map_err(|e| io_error("a compressed frame", e))?;
    Ok(Ready::Made(file, sha256, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
