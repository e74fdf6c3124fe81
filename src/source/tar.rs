//! A tar archive as a layer, read as one stream of headers and data.
//!
//! Nothing is unpacked onto the host (the `tar` crate's `unpack` would turn device nodes into
//! empty files and needs root for owners): headers become image entries directly and file data
//! goes to the [`Spool`]. GNU long names, PAX paths, link targets and PAX `uid`/`gid` records are
//! honoured; the archive's own timestamps are not (every entry gets the image epoch). Member
//! names must be relative and free of `..`, and so must hard-link targets.

use std::collections::HashMap;
use std::io::Read;

use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::plan::tree::{Entry, Kind, Meta, Origin, Tree};
use crate::recipe::DeviceKind;
use crate::source::content::Spool;

/// Lays every member of the tar stream `input` into `tree`. `label` names the archive in
/// messages. Returns how many members were read.
pub fn read(input: impl Read, label: &str, tree: &mut Tree, spool: &mut Spool, origin: Origin) -> Result<usize> {
    let mut archive = open(input, label)?;
    let entries = archive.entries().map_err(|e| Error::input(format!("`{label}`: not a readable tar archive: {e}")))?;
    let mut count = 0;
    // What each path was earlier in this archive: one archive naming a path twice as different
    // kinds of thing is malformed or hostile, not a layer over a layer.
    let mut kinds: HashMap<ImagePath, &'static str> = HashMap::new();
    for entry in entries {
        crate::base::interrupt::check().map_err(|e| Error::failure(e.to_string()))?;
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
        let (uid, gid) = owner(&mut entry).map_err(bad)?;
        let meta = Meta { mode, uid, gid };
        let header = entry.header();
        // Pre-POSIX archives mark directories only by a trailing `/` on a regular member.
        let old_style_dir = entry_type == tar::EntryType::Regular && name.ends_with(b"/") && entry.size() == 0;
        let kind = match entry_type {
            _ if old_style_dir => Kind::Dir { implied: false },
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let size = entry.size();
                tree.check_file_size(&format!("`{label}`: entry `{shown}`"), size)?;
                let content = spool.store(&mut entry, size).map_err(|e| e.into_error(bad))?;
                Kind::File { content, inode: tree.new_inode() }
            }
            tar::EntryType::Directory => Kind::Dir { implied: false },
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| bad("symlink without a target".into()))?;
                crate::plan::tree::check_symlink_target(&target).map_err(bad)?;
                Kind::Symlink { target: target.into_owned() }
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| bad("hard link without a target".into()))?;
                let target = ImagePath::from_member(&target)
                    .map_err(|e| bad(format!("hard-link target `{}`: {e}", String::from_utf8_lossy(&target))))?;
                same_kind(&mut kinds, &path, "regular file").map_err(bad)?;
                tree.link(&path, &target, origin).map_err(|e| e.context(format!("`{label}`")))?;
                count += 1;
                continue;
            }
            // GNU tar and Python leave the device fields of a FIFO empty: read them only for
            // devices.
            tar::EntryType::Fifo => Kind::Device { kind: DeviceKind::Fifo, major: 0, minor: 0 },
            tar::EntryType::Char | tar::EntryType::Block => {
                let number = |n: std::io::Result<Option<u32>>| n.map(|n| n.unwrap_or(0));
                let major = number(header.device_major()).map_err(|e| bad(format!("bad device major: {e}")))?;
                let minor = number(header.device_minor()).map_err(|e| bad(format!("bad device minor: {e}")))?;
                crate::plan::tree::check_device_numbers(major, minor).map_err(bad)?;
                let kind = if entry_type == tar::EntryType::Char { DeviceKind::Char } else { DeviceKind::Block };
                Kind::Device { kind, major, minor }
            }
            other => return Err(bad(format!("unsupported member type {:?}", other.as_byte() as char))),
        };
        let meta = match kind {
            Kind::Symlink { .. } => Meta { mode: 0o777, ..meta },
            _ => meta,
        };
        same_kind(&mut kinds, &path, kind.noun()).map_err(bad)?;
        tree.insert(&path, Entry { kind, meta, origin }).map_err(|e| e.context(format!("`{label}`")))?;
        count += 1;
    }
    finish(archive, label, count)?;
    Ok(count)
}

/// Records that `path` is a `noun` in this archive; refuses a second entry of another kind.
fn same_kind(
    kinds: &mut HashMap<ImagePath, &'static str>,
    path: &ImagePath,
    noun: &'static str,
) -> std::result::Result<(), String> {
    match kinds.insert(path.clone(), noun) {
        Some(earlier) if earlier != noun && !path.is_root() => {
            Err(format!("the archive has this path twice, as a {earlier} and as a {noun}"))
        }
        _ => Ok(()),
    }
}

type Archive<'a> = tar::Archive<EndMarker<Box<dyn Read + 'a>>>;

/// Opens the tar stream `input`, whatever its compression.
fn open<'a>(input: impl Read + 'a, label: &str) -> Result<Archive<'a>> {
    let (_, decoded) = crate::format::compress::decoder(input)
        .map_err(|e| Error::input(format!("`{label}`: cannot read the archive: {e}")))?;
    Ok(tar::Archive::new(EndMarker { inner: decoded, last_block: Vec::with_capacity(512) }))
}

/// Checks that the archive really ended: the tar crate stops quietly at an end of file between
/// members, which is also what a truncated archive looks like, so insist on the end-of-archive
/// block. Then reads the rest, so the compressor's own checksum (gzip CRC, xz check, zstd
/// checksum) is verified too.
fn finish(archive: Archive<'_>, label: &str, count: usize) -> Result<()> {
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
    input: impl Read,
    label: &str,
    mut each: impl FnMut(&str, u64, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut archive = open(input, label)?;
    let entries = archive.entries().map_err(|e| Error::input(format!("`{label}`: not a readable tar archive: {e}")))?;
    let mut count = 0;
    for entry in entries {
        crate::base::interrupt::check().map_err(|e| Error::failure(e.to_string()))?;
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

/// The numeric owner, from PAX records when present (they hold ids too large for the header).
fn owner<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::result::Result<(u32, u32), String> {
    let header = entry.header();
    let mut uid = header.uid().map_err(|e| format!("bad uid field: {e}"))?;
    let mut gid = header.gid().map_err(|e| format!("bad gid field: {e}"))?;
    if let Ok(Some(records)) = entry.pax_extensions() {
        for record in records.flatten() {
            let value = || record.value().ok().and_then(|v| v.parse::<u64>().ok());
            match record.key() {
                Ok("uid") => uid = value().ok_or("bad PAX uid record")?,
                Ok("gid") => gid = value().ok_or("bad PAX gid record")?,
                _ => {}
            }
        }
    }
    let uid = u32::try_from(uid).map_err(|_| format!("uid {uid} is larger than an image can hold"))?;
    let gid = u32::try_from(gid).map_err(|_| format!("gid {gid} is larger than an image can hold"))?;
    Ok((uid, gid))
}
