//! Where a package's bytes can be found again after the archive has moved on: Debian's snapshot
//! service keeps every file the archives ever published, laid out as
//! `MIRROR/archive/ARCHIVE/TIME/FILENAME` (`https://snapshot.debian.org/archive/debian/
//! 20261201T013313Z/pool/main/j/jq/jq_1.6-2.1_amd64.deb`), where TIME is any moment at or after
//! the archive published it. bake takes TIME from the `Date:` of the Release file of the list
//! the package came from, so the lock names a moment the package was certainly published.

use crate::base::time::days_from_civil;

/// An archive and a moment in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The archive's name at the mirror: `debian`, `debian-security`, `debian-ports`, ...
    pub archive: String,
    /// `YYYYMMDDTHHMMSSZ`.
    pub time: String,
}

/// The archive a package list belongs to, from the file name apt gives it: the URI's path
/// before `dists/` (`deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages` is
/// `debian`, `deb.debian.org_debian-security_dists_...` is `debian-security`). `None` for a
/// flat repository or a URI with no path.
pub fn archive_of_list(file_name: &str) -> Option<String> {
    let (before, _) = file_name.split_once("_dists_")?;
    let (_host, path) = before.split_once('_')?;
    let archive = path.rsplit('_').next()?;
    (!archive.is_empty()).then(|| archive.to_string())
}

/// The `Date:` of a Release file (`Date: Sat, 08 Nov 2025 09:41:20 UTC`) as snapshot time
/// `20251108T094120Z`.
pub fn time_of_release(release: &str) -> Option<String> {
    let line = release.lines().find_map(|l| l.strip_prefix("Date:"))?.trim();
    let mut words = line.split_whitespace();
    // The weekday is optional in RFC 2822 dates.
    let mut day = words.next()?;
    if day.ends_with(',') {
        day = words.next()?;
    }
    let day: u64 = day.parse().ok()?;
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month_word = words.next()?;
    let month = months.iter().position(|m| month_word.starts_with(m))? as u64 + 1;
    let year: u64 = words.next()?.parse().ok()?;
    let mut clock = words.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next().flatten().unwrap_or(0));
    let zone = words.next().unwrap_or("UTC");
    if !["UTC", "GMT", "+0000", "Z"].contains(&zone)
        || !(1..=31).contains(&day)
        || year < 1970
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Normalise through days, so an impossible date (31 Feb) is refused.
    let days = days_from_civil(year, month, day);
    let (y, m, d) = crate::base::time::civil_from_days(days);
    ((y, m, d) == (year, month, day)).then(|| format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z"))
}

/// Whether `time` is a snapshot time as the lock writes it.
pub fn is_time(time: &str) -> bool {
    let b = time.as_bytes();
    b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// The URL of `filename` (`pool/main/...`) in `archive` at `time` on `mirror` (which may end in
/// `/`).
pub fn url(mirror: &str, archive: &str, time: &str, filename: &str) -> String {
    format!("{}/{archive}/{time}/{}", mirror.trim_end_matches('/'), filename.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_the_uri_path_before_dists() {
        assert_eq!(
            archive_of_list("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").as_deref(),
            Some("debian")
        );
        assert_eq!(
            archive_of_list("deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4")
                .as_deref(),
            Some("debian-security")
        );
        assert_eq!(archive_of_list("mirror_local_deb_debian_dists_bookworm_InRelease").as_deref(), Some("debian"));
        assert_eq!(archive_of_list("_repo_._Packages"), None);
    }

    #[test]
    fn release_dates_become_snapshot_times() {
        let release = "Origin: Debian\nDate: Sat, 08 Nov 2025 09:41:20 UTC\nValid-Until: x\n";
        assert_eq!(time_of_release(release).as_deref(), Some("20251108T094120Z"));
        assert_eq!(time_of_release("Date: 1 Dec 2026 01:33:13 UTC\n").as_deref(), Some("20261201T013313Z"));
        assert_eq!(time_of_release("Date: Mon, 31 Feb 2025 00:00:00 UTC\n"), None);
        assert_eq!(time_of_release("Date: Sat, 08 Nov 2025 09:41:20 +0100\n"), None, "only UTC");
        assert_eq!(time_of_release("Suite: x\n"), None);
        assert!(is_time("20251108T094120Z") && !is_time("2025-11-08") && !is_time("20251108T0941200"));
    }

    #[test]
    fn urls_follow_the_snapshot_layout() {
        assert_eq!(
            url("http://127.0.0.1:8000/archive/", "debian", "20251108T094120Z", "pool/main/j/jq/jq_1.6_amd64.deb"),
            "http://127.0.0.1:8000/archive/debian/20251108T094120Z/pool/main/j/jq/jq_1.6_amd64.deb"
        );
    }
}
