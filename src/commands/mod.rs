//! The commands, each as a function of its arguments that returns what it has to say: the
//! command line ([`crate::cli`]) parses, calls one, prints the result and picks the exit status.
//! `build`, `lock`, `test`, `vendor` and `verify` have a module each; `inspect` and `diff` are below.

pub mod build;
pub mod lock;
pub mod registry;
pub mod test;
pub mod vendor;
pub mod verify;

use std::path::Path;

use crate::base::error::Result;
use crate::check::{diff, image, inspect};

/// `bake inspect`: every entry of the image at `path`, like `ls -l` or as JSON.
pub fn inspect(path: &Path, json: bool) -> Result<String> {
    let segments = image::read_file(path)?;
    Ok(if json { inspect::listing_json(&segments) } else { inspect::listing(&segments) })
}

/// `bake diff`: how the images at `a` and `b` differ, and the exit status (0 for the same
/// content, 1 otherwise).
pub fn diff(a: &Path, b: &Path, json: bool) -> Result<(String, i32)> {
    let report = diff::compare_files(a, b)?;
    let text = if json {
        diff::json(&report)
    } else {
        diff::text(&report, &a.display().to_string(), &b.display().to_string())
    };
    Ok((text, if report.same_content() { 0 } else { 1 }))
}

/// `1.2 MiB`, for summaries.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
