//! `bake inspect`: every entry of an image, one line each like `ls -l`, in archive order, with
//! a heading for each archive of an image made of several.

use serde_json::json;

use super::image::{Format, Segment};
use crate::base::hash::hex;
use crate::base::time;
use crate::format::{Entry, FileType};

/// `drwxr-xr-x`, `-rwsr-xr-x`, `crw-------`: the type letter and permission bits as `ls -l`
/// prints them (setuid, setgid and sticky included).
pub fn mode_string(mode: u32) -> String {
    let type_char = FileType::from_mode(mode).map_or('?', FileType::letter);
    let mut out = String::from(type_char);
    for (shift, special, letter) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (mode & special != 0, bits & 1 != 0) {
            (true, true) => letter,
            (true, false) => letter.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn is_device(entry: &Entry) -> bool {
    entry.file_type().is_some_and(FileType::is_device)
}

/// The type word of listings and `--json` (`unknown` for type bits no file type has).
pub fn type_name(entry: &Entry) -> &'static str {
    entry.file_type().map_or("unknown", FileType::name)
}

fn size_column(entry: &Entry) -> String {
    match is_device(entry) {
        true => format!("{}, {}", entry.rdev.0, entry.rdev.1),
        false => entry.size.to_string(),
    }
}

/// One `ls -l` style line.
pub fn line(entry: &Entry) -> String {
    let mut text = format!(
        "{} {:>3} {:<5} {:<5} {:>10} {} {}",
        mode_string(entry.mode),
        entry.nlink,
        entry.uid,
        entry.gid,
        size_column(entry),
        time::minutes(entry.mtime),
        String::from_utf8_lossy(&entry.name)
    );
    if let Some(target) = &entry.target {
        text.push_str(" -> ");
        text.push_str(&String::from_utf8_lossy(target));
    }
    text
}

/// The whole listing.
pub fn listing(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, segment) in segments.iter().enumerate() {
        if let Some(tree) = &segment.verity {
            let place = segment.partition.as_ref().map(|p| format!(" in {p}")).unwrap_or_default();
            let root = tree.root_hash_hex().unwrap_or_else(|| "that of its one data block".to_string());
            let checked = match &tree.checked_against {
                Some(data) => format!("checked against {data}"),
                None => "not checked against its data (`bake inspect` the disk, or `veritysetup verify`)".to_string(),
            };
            out.push_str(&format!(
                "# dm-verity hash tree at byte {}{place}: {} data blocks, sha256, root hash {root}, {checked}\n",
                segment.offset, tree.data_blocks
            ));
        } else if segment.format == Format::Pe {
            out.push_str(&format!("# PE image, {} sections\n", segment.entries.len()));
        } else if segment.format != Format::Cpio {
            let place = segment.partition.as_ref().map(|p| format!(" in {p}")).unwrap_or_default();
            out.push_str(&format!(
                "# {} file system at byte {}{place}, {} entries\n",
                segment.format.name(),
                segment.offset,
                segment.entries.len()
            ));
        } else if segments.len() > 1 {
            let place = segment.partition.as_ref().map(|p| format!(" in {p}")).unwrap_or_default();
            out.push_str(&format!(
                "# archive {} of {}: {}, at byte {}{place}, {} entries\n",
                i + 1,
                segments.len(),
                segment.compression.name(),
                segment.offset,
                segment.entries.len()
            ));
        }
        for entry in &segment.entries {
            out.push_str(&line(entry));
            out.push('\n');
        }
    }
    out
}

pub fn entry_json(entry: &Entry) -> serde_json::Value {
    let mut value = json!({
        "path": entry.path(),
        "name": String::from_utf8_lossy(&entry.name),
        "type": type_name(entry),
        "mode": format!("{:04o}", entry.mode & 0o7777),
        "uid": entry.uid,
        "gid": entry.gid,
        "nlink": entry.nlink,
        "ino": entry.ino,
        "mtime": entry.mtime,
        "size": entry.size,
    });
    if let Some(sha) = &entry.sha256 {
        value["sha256"] = json!(hex(sha));
    }
    if let Some(target) = &entry.target {
        value["target"] = json!(String::from_utf8_lossy(target));
    }
    if is_device(entry) {
        value["major"] = json!(entry.rdev.0);
        value["minor"] = json!(entry.rdev.1);
    }
    value
}

pub fn listing_json(segments: &[Segment]) -> String {
    let archive = |s: &Segment| {
        let mut value = json!({
            "format": s.format.name(),
            "compression": s.compression.name(),
            "offset": s.offset,
            "partition": s.partition,
            "entries": s.entries.iter().map(entry_json).collect::<Vec<_>>(),
        });
        if let Some(tree) = &s.verity {
            value["verity"] = json!({
                "root_hash": tree.root_hash_hex(),
                "data_blocks": tree.data_blocks,
                "salt": tree.salt.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                "hash": "sha256",
                "checked_against": tree.checked_against,
            });
        }
        value
    };
    let value = json!({ "archives": segments.iter().map(archive).collect::<Vec<_>>() });
    crate::base::json::pretty(&value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        let (dir, file) = (FileType::Dir.bits(), FileType::File.bits());
        assert_eq!(mode_string(dir | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(file | 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(file | 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(dir | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(FileType::Char.bits() | 0o600), "crw-------");
        assert_eq!(mode_string(0o030000 | 0o644), "?rw-r--r--");
    }
}
