//! `bake diff`: how two images differ, entry by entry, looking through compression and through
//! images made of several archives.
//!
//! Both images are first reduced to what the kernel would unpack: one entry per path (a later
//! archive or entry replaces an earlier one), hard-linked names given the data their group
//! carries. Those trees are compared field by field. When they are the same but the files are
//! not, the report says where the bytes differ instead: compression, entry order, or header
//! fields that never reach the unpacked files (inode numbers).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_json::json;

use super::image::{self, Format, Segment};
use super::inspect::type_name;
use crate::base::error::Result;
use crate::base::hash::{Digest, hex};
use crate::base::time;
use crate::format::compress::Compression;
use crate::format::{Entry, FileType};

/// An entry as it ends up on the unpacked file system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unpacked {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    /// Size and digest of a regular file's content (its hard-link group's data).
    content: Option<(u64, Digest)>,
    target: Option<Vec<u8>>,
    device: Option<(u32, u32)>,
    /// The other names of a hard-linked file.
    links: BTreeSet<String>,
}

/// One image, unpacked in memory (metadata and digests only).
struct Tree {
    entries: BTreeMap<String, Unpacked>,
    /// Paths in the order they first appear.
    order: Vec<String>,
}

fn unpack(segments: &[Segment]) -> Tree {
    let mut entries: BTreeMap<String, Unpacked> = BTreeMap::new();
    let mut order = Vec::new();
    for segment in segments {
        // Hard-link groups live within one archive: (device, inode) of files with nlink > 1.
        let mut groups: HashMap<((u32, u32), u64), Vec<&Entry>> = HashMap::new();
        let linked = |e: &Entry| e.file_type() == Some(FileType::File) && e.nlink > 1;
        for entry in segment.entries.iter().filter(|e| linked(e)) {
            groups.entry((entry.dev, entry.ino)).or_default().push(entry);
        }
        for entry in &segment.entries {
            let path = entry.path();
            let mut links = BTreeSet::new();
            let mut content = entry.sha256.map(|sha| (entry.size, sha));
            if let Some(group) = groups.get(&(entry.dev, entry.ino)).filter(|_| linked(entry)) {
                // The data travels with one name of the group (GNU cpio: the last).
                if let Some(carrier) = group.iter().rev().find(|e| e.size > 0).or(group.last()) {
                    content = carrier.sha256.map(|sha| (carrier.size, sha));
                }
                links = group.iter().map(|e| e.path()).filter(|p| *p != path).collect();
            }
            let device = entry.file_type().is_some_and(FileType::is_device).then_some(entry.rdev);
            let unpacked = Unpacked {
                kind: type_name(entry),
                mode: entry.mode & 0o7777,
                uid: entry.uid,
                gid: entry.gid,
                mtime: entry.mtime,
                content,
                target: entry.target.clone(),
                device,
                links,
            };
            if entries.insert(path.clone(), unpacked).is_none() {
                order.push(path);
            }
        }
    }
    Tree { entries, order }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: &'static str,
    pub a: String,
    pub b: String,
}

/// The comparison of two images.
#[derive(Debug, Clone)]
pub struct Report {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<(String, Vec<Change>)>,
    /// The first path whose position differs, when the common entries come in another order.
    pub order: Option<String>,
    pub same_bytes: bool,
    /// Where the bytes differ when the contents do not (empty when they do, or are the same).
    pub byte_notes: Vec<String>,
}

impl Report {
    pub fn same_content(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn size_text(content: &Option<(u64, Digest)>) -> String {
    content.map_or("-".to_string(), |(size, sha)| format!("{size} B, sha256 {}", hex(&sha)))
}

fn compare_entries(a: &Unpacked, b: &Unpacked) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut push = |field: &'static str, x: String, y: String| {
        if x != y {
            changes.push(Change { field, a: x, b: y });
        }
    };
    push("type", a.kind.to_string(), b.kind.to_string());
    push("content", size_text(&a.content), size_text(&b.content));
    push("mode", format!("{:04o}", a.mode), format!("{:04o}", b.mode));
    push("owner", format!("{}:{}", a.uid, a.gid), format!("{}:{}", b.uid, b.gid));
    let mtime = |m: u64| format!("{m} ({} UTC)", time::minutes(m));
    push("mtime", mtime(a.mtime), mtime(b.mtime));
    let target = |t: &Option<Vec<u8>>| t.as_ref().map_or("-".to_string(), |t| String::from_utf8_lossy(t).into_owned());
    push("target", target(&a.target), target(&b.target));
    let device = |d: &Option<(u32, u32)>| d.map_or("-".to_string(), |(x, y)| format!("{x},{y}"));
    push("device", device(&a.device), device(&b.device));
    let links = |l: &BTreeSet<String>| {
        if l.is_empty() { "none".to_string() } else { l.iter().cloned().collect::<Vec<_>>().join(" ") }
    };
    push("hard links", links(&a.links), links(&b.links));
    changes
}

/// Where two images whose contents match still differ in their bytes.
fn byte_notes(a: &[Segment], b: &[Segment], ta: &Tree, tb: &Tree) -> Vec<String> {
    let mut notes = Vec::new();
    let describe = |s: &[Segment]| {
        s.iter()
            .map(|x| if x.format == Format::Cpio { x.compression.name() } else { x.format.name() })
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let file_system = a.iter().chain(b).any(|s| s.format != Format::Cpio);
    if describe(a) != describe(b) {
        let how = if file_system { "stored" } else { "compressed" };
        notes.push(format!("the archives are {how} differently: {} and {}", describe(a), describe(b)));
    }
    if ta.order != tb.order {
        notes.push("the entries come in another order".to_string());
    }
    let headers =
        |s: &[Segment]| s.iter().flat_map(|x| &x.entries).map(|e| (e.ino, e.nlink, e.dev, e.size)).collect::<Vec<_>>();
    if ta.order == tb.order && headers(a) != headers(b) {
        notes.push("header fields that do not reach the unpacked files differ (inode numbers, link counts, which name of a hard link carries the data)".to_string());
    }
    let names = |s: &[Segment]| s.iter().flat_map(|x| &x.entries).map(|e| e.name.clone()).collect::<Vec<_>>();
    if ta.order == tb.order && names(a) != names(b) {
        notes.push("the entries' names are written differently (such as `./etc` and `etc`)".to_string());
    }
    if notes.is_empty() && file_system {
        notes.push(
            "the file systems hold the same entries: the bytes differ in their layout (UUID, block placement, \
             partition table)"
                .to_string(),
        );
    }
    if notes.is_empty() {
        let compressed = a.iter().chain(b).any(|s| s.compression != Compression::None);
        notes.push(if compressed {
            "the archives hold the same entries in the same order: the bytes differ in the compression \
             (another level or compressor version) or in the archive's framing (header magic, padding)"
                .to_string()
        } else {
            "the archives hold the same entries in the same order: the bytes differ in the archive's framing \
             (header magic, check fields, padding between archives)"
                .to_string()
        });
    }
    notes
}

/// Compares the images at `a` and `b`.
pub fn compare_files(a: &Path, b: &Path) -> Result<Report> {
    let (sa, sb) = (image::read_file(a)?, image::read_file(b)?);
    let same_bytes = files_equal(a, b)?;
    Ok(compare(&sa, &sb, same_bytes))
}

fn files_equal(a: &Path, b: &Path) -> Result<bool> {
    let (da, _) = crate::base::hash::digest_file(a)?;
    let (db, _) = crate::base::hash::digest_file(b)?;
    Ok(da == db)
}

/// Compares two images already read; `same_bytes` says whether the files are identical.
pub fn compare(a: &[Segment], b: &[Segment], same_bytes: bool) -> Report {
    let (ta, tb) = (unpack(a), unpack(b));
    let removed: Vec<String> = ta.entries.keys().filter(|p| !tb.entries.contains_key(*p)).cloned().collect();
    let added: Vec<String> = tb.entries.keys().filter(|p| !ta.entries.contains_key(*p)).cloned().collect();
    let changed: Vec<(String, Vec<Change>)> = ta
        .entries
        .iter()
        .filter_map(|(path, x)| tb.entries.get(path).map(|y| (path.clone(), compare_entries(x, y))))
        .filter(|(_, changes)| !changes.is_empty())
        .collect();
    let common =
        |t: &Tree, other: &Tree| t.order.iter().filter(|p| other.entries.contains_key(*p)).cloned().collect::<Vec<_>>();
    let (oa, ob) = (common(&ta, &tb), common(&tb, &ta));
    let order = oa.iter().zip(&ob).find(|(x, y)| x != y).map(|(x, _)| x.clone());
    let mut report = Report { added, removed, changed, order, same_bytes, byte_notes: Vec::new() };
    if report.same_content() && !same_bytes {
        report.byte_notes = byte_notes(a, b, &ta, &tb);
    }
    report
}

/// The report as text, one line per difference.
pub fn text(report: &Report, a: &str, b: &str) -> String {
    let mut out = String::new();
    if report.same_bytes {
        return format!("`{a}` and `{b}` are identical, byte for byte\n");
    }
    if report.same_content() {
        out.push_str(&format!("`{a}` and `{b}` unpack to the same files, but their bytes differ:\n"));
        for note in &report.byte_notes {
            out.push_str(&format!("  {note}\n"));
        }
        return out;
    }
    for path in &report.removed {
        out.push_str(&format!("- {path}  (only in {a})\n"));
    }
    for path in &report.added {
        out.push_str(&format!("+ {path}  (only in {b})\n"));
    }
    for (path, changes) in &report.changed {
        for c in changes {
            out.push_str(&format!("~ {path}: {}: {} -> {}\n", c.field, c.a, c.b));
        }
    }
    if let Some(first) = &report.order {
        out.push_str(&format!("~ entry order differs, first at {first}\n"));
    }
    out.push_str(&format!(
        "{} removed, {} added, {} changed\n",
        report.removed.len(),
        report.added.len(),
        report.changed.len()
    ));
    out
}

/// The report as JSON text (pretty, with a final newline).
pub fn json(report: &Report) -> String {
    crate::base::json::pretty(&json_value(report))
}

/// The report as a JSON value.
pub fn json_value(report: &Report) -> serde_json::Value {
    json!({
        "same_content": report.same_content(),
        "same_bytes": report.same_bytes,
        "removed": report.removed,
        "added": report.added,
        "changed": report.changed.iter().map(|(path, changes)| json!({
            "path": path,
            "changes": changes.iter().map(|c| json!({"field": c.field, "a": c.a, "b": c.b})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "order_differs_at": report.order,
        "byte_notes": report.byte_notes,
    })
}
