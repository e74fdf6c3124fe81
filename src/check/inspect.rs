//! `bake inspect`: every entry of an image, one line each like `ls -l`, in archive order, with
//! a heading for each archive of an image made of several.

use serde_json::json;

use crate::base::hash::hex;
use crate::check::image::{ImageEntry, Segment};
use crate::format::cpio;

/// `drwxr-xr-x`, `-rwsr-xr-x`, `crw-------`: the type letter and permission bits as `ls -l`
/// prints them (setuid, setgid and sticky included).
pub fn mode_string(mode: u32) -> String {
    let type_char = match mode & cpio::S_IFMT {
        cpio::S_IFDIR => 'd',
        cpio::S_IFREG => '-',
        cpio::S_IFLNK => 'l',
        cpio::S_IFCHR => 'c',
        cpio::S_IFBLK => 'b',
        cpio::S_IFIFO => 'p',
        0o140000 => 's',
        _ => '?',
    };
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

/// `YYYY-MM-DD HH:MM` in UTC, whatever the host's time zone.
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

fn size_column(entry: &ImageEntry) -> String {
    let h = &entry.header;
    match entry.file_type() {
        cpio::S_IFCHR | cpio::S_IFBLK => format!("{}, {}", h.rdev_major, h.rdev_minor),
        _ => h.size.to_string(),
    }
}

/// One `ls -l` style line.
pub fn line(entry: &ImageEntry) -> String {
    let h = &entry.header;
    let mut text = format!(
        "{} {:>3} {:<5} {:<5} {:>10} {} {}",
        mode_string(h.mode),
        h.nlink,
        h.uid,
        h.gid,
        size_column(entry),
        utc(h.mtime),
        String::from_utf8_lossy(&h.name)
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
        if segment.format != "cpio" {
            let place = segment.partition.as_ref().map(|p| format!(" in {p}")).unwrap_or_default();
            out.push_str(&format!(
                "# {} file system at byte {}{place}, {} entries\n",
                segment.format,
                segment.offset,
                segment.entries.len()
            ));
        } else if segments.len() > 1 {
            out.push_str(&format!(
                "# archive {} of {}: {}, at byte {}, {} entries\n",
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

pub fn entry_json(entry: &ImageEntry) -> serde_json::Value {
    let h = &entry.header;
    let mut value = json!({
        "path": entry.path(),
        "name": String::from_utf8_lossy(&h.name),
        "type": entry.type_name(),
        "mode": format!("{:04o}", h.mode & 0o7777),
        "uid": h.uid,
        "gid": h.gid,
        "nlink": h.nlink,
        "ino": h.ino,
        "mtime": h.mtime,
        "size": h.size,
    });
    if let Some(sha) = &entry.sha256 {
        value["sha256"] = json!(hex(sha));
    }
    if let Some(target) = &entry.target {
        value["target"] = json!(String::from_utf8_lossy(target));
    }
    if matches!(entry.file_type(), cpio::S_IFCHR | cpio::S_IFBLK) {
        value["major"] = json!(h.rdev_major);
        value["minor"] = json!(h.rdev_minor);
    }
    value
}

pub fn listing_json(segments: &[Segment]) -> String {
    let value = json!({
        "archives": segments.iter().map(|s| json!({
            "format": s.format,
            "compression": s.compression.name(),
            "offset": s.offset,
            "partition": s.partition,
            "entries": s.entries.iter().map(entry_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&value).expect("plain data");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(cpio::S_IFDIR | 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(cpio::S_IFREG | 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(cpio::S_IFREG | 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string(cpio::S_IFDIR | 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(cpio::S_IFCHR | 0o600), "crw-------");
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc(u64::from(u32::MAX)), "2106-02-07 06:28");
    }
}
