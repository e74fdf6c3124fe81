//! A tar archive as a layer, read as one stream of headers and data.
//!
//! Nothing is unpacked onto the host (the `tar` crate's `unpack` would turn device nodes into
//! empty files and needs root for owners): headers become image entries directly and file data
//! goes to the [`Spool`]. GNU long names, PAX paths, link targets and PAX `uid`/`gid` records are
//! honoured; the archive's own timestamps are not (every entry gets the image epoch). Member
//! names must be relative and free of `..`, and so must hard-link targets.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::thread::Scope;

use super::content::Spool;
use super::{Meta, Node, Sink};
use crate::base::error::{Error, Result};
use crate::base::interrupt;
use crate::base::path::ImagePath;
use crate::format::FileType;
use crate::format::compress::{Ahead, Compression};
use crate::format::limits::{check_device_numbers, check_symlink_target};
use crate::recipe::DeviceKind;

/// Lays every member of the tar stream `input` into `sink`. `label` names the archive in
/// messages. Returns how many members were read.
pub fn read(input: impl Read + Send, label: &str, sink: &mut dyn Sink, spool: &mut Spool) -> Result<usize> {
    std::thread::scope(|scope| read_archive(open(scope, input, label)?, label, sink, spool))
}

fn read_archive(mut archive: Archive, label: &str, sink: &mut dyn Sink, spool: &mut Spool) -> Result<usize> {
    let entries = archive.entries().map_err(|e| Error::input(format!("`{label}`: not a readable tar archive: {e}")))?;
    let mut count = 0;
    // What each path was earlier in this archive: one archive naming a path twice as different
    // kinds of thing is malformed or hostile, not a layer over a layer.
    let mut kinds: HashMap<ImagePath, FileType> = HashMap::new();
    for entry in entries {
        interrupt::stop_point()?;
        let mut entry =
            entry.map_err(|e| Error::input(format!("`{label}`: cannot read the member after {count} members: {e}")))?;
        let name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let bad = |what: String| Error::input(format!("`{label}`: entry `{shown}`: {what}"));
        let header = entry.header();
        let entry_type = header.entry_type();
        if entry_type.is_pax_global_extensions() {
            continue;
        }
        let path = ImagePath::from_member(&name).map_err(|e| bad(e.to_string()))?;
        let mode = header.mode().map_err(|e| bad(format!("bad mode field: {e}")))? & 0o7777;
        let (uid, gid) = owner(&mut entry, &bad)?;
        let meta = Meta { mode, uid, gid };
        let in_archive = |e: Error| e.context(format!("`{label}`"));
        match member(&mut entry, &name, sink, spool, &format!("`{label}`: entry `{shown}`"), &bad)? {
            Member::Link(target) => {
                same_kind(&mut kinds, &path, FileType::File, &bad)?;
                sink.link(&path, &target).map_err(in_archive)?;
            }
            Member::Node(node) => {
                let meta = match node {
                    Node::Symlink { .. } => Meta { mode: 0o777, ..meta },
                    _ => meta,
                };
                same_kind(&mut kinds, &path, node.file_type(), &bad)?;
                sink.insert(&path, node, meta).map_err(in_archive)?;
            }
        }
        count += 1;
    }
    finish(archive, label, count)?;
    Ok(count)
}

/// What one member of an archive is.
enum Member {
    Node(Node),
    /// A hard link to this earlier member.
    Link(ImagePath),
}

/// Reads what the member `entry` (named `name`, described as `what` in messages) is, its data
/// spooled; refuses a bad member with `bad`.
fn member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &[u8],
    sink: &dyn Sink,
    spool: &mut Spool,
    what: &str,
    bad: &dyn Fn(String) -> Error,
) -> Result<Member> {
    let entry_type = entry.header().entry_type();
    // Pre-POSIX archives mark directories only by a trailing `/` on a regular member.
    let old_style_dir = entry_type == tar::EntryType::Regular && name.ends_with(b"/") && entry.size() == 0;
    Ok(Member::Node(match entry_type {
        _ if old_style_dir => Node::Dir,
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            let size = entry.size();
            sink.check_file_size(what, size)?;
            let content = spool.store(entry, size).map_err(|e| e.into_error(bad))?;
            Node::File { content }
        }
        tar::EntryType::Directory => Node::Dir,
        tar::EntryType::Symlink => {
            let target = entry.link_name_bytes().ok_or_else(|| bad("symlink without a target".into()))?;
            check_symlink_target(&target).map_err(|e| bad(e.to_string()))?;
            Node::Symlink { target: target.into_owned() }
        }
        tar::EntryType::Link => {
            let target = entry.link_name_bytes().ok_or_else(|| bad("hard link without a target".into()))?;
            let target = ImagePath::from_member(&target)
                .map_err(|e| bad(format!("hard-link target `{}`: {e}", String::from_utf8_lossy(&target))))?;
            return Ok(Member::Link(target));
        }
        // GNU tar and Python leave the device fields of a FIFO empty: read them only for
        // devices.
        tar::EntryType::Fifo => Node::Device { kind: DeviceKind::Fifo, major: 0, minor: 0 },
        tar::EntryType::Char | tar::EntryType::Block => {
            let header = entry.header();
            let number = |n: std::io::Result<Option<u32>>| n.map(|n| n.unwrap_or(0));
            let major = number(header.device_major()).map_err(|e| bad(format!("bad device major: {e}")))?;
            let minor = number(header.device_minor()).map_err(|e| bad(format!("bad device minor: {e}")))?;
            check_device_numbers(major, minor).map_err(|e| bad(e.to_string()))?;
            let kind = if entry_type == tar::EntryType::Char { DeviceKind::Char } else { DeviceKind::Block };
            Node::Device { kind, major, minor }
        }
        other => return Err(bad(format!("unsupported member type {:?}", other.as_byte() as char))),
    }))
}

/// Records that `path` is a `file_type` in this archive; refuses a second entry of another kind
/// with `bad`.
fn same_kind(
    kinds: &mut HashMap<ImagePath, FileType>,
    path: &ImagePath,
    file_type: FileType,
    bad: &dyn Fn(String) -> Error,
) -> Result<()> {
    match kinds.insert(path.clone(), file_type) {
        Some(earlier) if earlier != file_type && !path.is_root() => {
            Err(bad(format!("the archive has this path twice, as a {} and as a {}", earlier.noun(), file_type.noun())))
        }
        _ => Ok(()),
    }
}

type Archive = tar::Archive<EndMarker<Ahead>>;

/// Opens the tar stream `input`, whatever its compression, decompressed on a thread of `scope`
/// while the caller reads what came before.
fn open<'scope>(scope: &'scope Scope<'scope, '_>, input: impl Read + Send + 'scope, label: &str) -> Result<Archive> {
    archive(crate::format::compress::decoder_ahead(scope, input), label)
}

fn archive(decoded: std::io::Result<(Compression, Ahead)>, label: &str) -> Result<Archive> {
    let (_, decoded) = decoded.map_err(|e| Error::input(format!("`{label}`: cannot read the archive: {e}")))?;
    Ok(tar::Archive::new(EndMarker { inner: decoded, last_block: Vec::with_capacity(512) }))
}

/// Checks that the archive really ended: the tar crate stops quietly at an end of file between
/// members, which is also what a truncated archive looks like, so insist on the end-of-archive
/// block. Then reads the rest, so the compressor's own checksum (gzip CRC, xz check, zstd
/// checksum) is verified too.
fn finish(archive: Archive, label: &str, count: usize) -> Result<()> {
    let mut rest = archive.into_inner();
    if !rest.saw_end_block() {
        return Err(Error::input(format!(
            "`{label}`: the archive ends after {count} members without an end-of-archive block: it is truncated"
        )));
    }
    std::io::copy(&mut rest, &mut std::io::sink())
        .map_err(|e| Error::input(format!("`{label}`: cannot read the end of the archive: {e}")))?;
    Ok(())
}

/// Calls `each` with the normalised name (no leading `./` or `/`), size and data of every
/// regular file in the tar stream `input`; other members are skipped.
pub fn for_each_file(
    input: impl Read + Send,
    label: &str,
    each: impl FnMut(&str, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| each_file(open(scope, input, label)?, label, each))
}

/// [`for_each_file`] for the tar stream `file[start..start + len]`: an xz stream of several
/// blocks is decompressed two blocks at a time.
pub fn for_each_file_at(
    file: &File,
    start: u64,
    len: u64,
    label: &str,
    each: impl FnMut(&str, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let decoded = crate::format::compress::decoder_ahead_at(scope, file, start, len);
        each_file(archive(decoded, label)?, label, each)
    })
}

fn each_file(
    mut archive: Archive,
    label: &str,
    mut each: impl FnMut(&str, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let entries = archive.entries().map_err(|e| Error::input(format!("`{label}`: not a readable tar archive: {e}")))?;
    let mut count = 0;
    for entry in entries {
        interrupt::stop_point()?;
        let mut entry =
            entry.map_err(|e| Error::input(format!("`{label}`: cannot read the member after {count} members: {e}")))?;
        count += 1;
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
            continue;
        }
        let name = entry.path_bytes().into_owned();
        let path = ImagePath::from_member(&name)
            .map_err(|e| Error::input(format!("`{label}`: entry `{}`: {e}", String::from_utf8_lossy(&name))))?;
        let size = entry.size();
        each(&String::from_utf8_lossy(path.as_bytes()), size, &mut entry)?;
    }
    finish(archive, label, count)
}

/// Remembers the last 512-byte block read, to tell an archive that ended with its
/// end-of-archive block (zeros) from one cut off between two members.
struct EndMarker<R> {
    inner: R,
    last_block: Vec<u8>,
}

impl<R> EndMarker<R> {
    fn saw_end_block(&self) -> bool {
        self.last_block.len() == 512 && self.last_block.iter().all(|&b| b == 0)
    }
}

impl<R: Read> Read for EndMarker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        if read.len() >= 512 {
            self.last_block.clear();
            self.last_block.extend_from_slice(&read[read.len() - 512..]);
        } else {
            self.last_block.extend_from_slice(read);
            let excess = self.last_block.len().saturating_sub(512);
            self.last_block.drain(..excess);
        }
        Ok(n)
    }
}

/// The numeric owner, from PAX records when present (they hold ids too large for the header); a
/// bad field is refused with `bad`.
fn owner<R: Read>(entry: &mut tar::Entry<'_, R>, bad: &dyn Fn(String) -> Error) -> Result<(u32, u32)> {
    let header = entry.header();
    let mut uid = header.uid().map_err(|e| bad(format!("bad uid field: {e}")))?;
    let mut gid = header.gid().map_err(|e| bad(format!("bad gid field: {e}")))?;
    if let Ok(Some(records)) = entry.pax_extensions() {
        for record in records.flatten() {
            let value = || record.value().ok().and_then(|v| v.parse::<u64>().ok());
            match record.key() {
                Ok("uid") => uid = value().ok_or_else(|| bad("bad PAX uid record".into()))?,
                Ok("gid") => gid = value().ok_or_else(|| bad("bad PAX gid record".into()))?,
                _ => {}
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| bad(format!("uid {uid} is larger than an image can hold")))?;
    let gid = u32::try_from(gid).map_err(|_| bad(format!("gid {gid} is larger than an image can hold")))?;
    Ok((uid, gid))
}
