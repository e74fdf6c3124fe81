//! dpkg's database, as `dpkg --unpack` and `--configure` leave it for installed packages, so
//! that `dpkg -l` in the image and `dpkg-query --admindir=…` (and SBOM scanners) outside it see
//! exactly the image's packages:
//!
//! - `status`: one stanza per package, sorted by name then architecture: `Package`, then
//!   `Status: install ok installed`, then the package's own control fields in the order its
//!   `control` file gives them;
//! - `info/NAME.list` (`NAME:ARCH.list` for `Multi-Arch: same`): `/.`, then every path of the
//!   package's data archive in archive order, as dpkg writes it;
//! - `info/NAME.md5sums` and `info/NAME.conffiles`: the package's own, as shipped;
//! - `info/format`: `1`, the layout with `NAME:ARCH` names (without it dpkg looks for the
//!   old names and finds no files).
//!
//! Not written: the `Conffiles` status field (it holds each conffile's md5sum at install time;
//! an immutable image never upgrades in place), maintainer scripts, triggers, and
//! `available`, `diversions` and `statoverride`, which dpkg treats as empty when missing.

use super::Malformed;

/// The content of `info/format`.
pub const INFO_FORMAT: &[u8] = b"1\n";

/// One installed package: its name, architecture and control file.
pub struct Package<'a> {
    pub name: &'a str,
    pub architecture: &'a str,
    pub control: &'a [u8],
}

/// The fields of a control file, in order, each as `Name` and its whole value text (the
/// first line's rest and any continuation lines, with their line breaks).
pub fn fields(control: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let text = std::str::from_utf8(control).map_err(|_| Malformed("the control file is not UTF-8".into()))?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(Malformed(format!("control line {}: a continuation line before any field", number + 1)));
            };
            value.push('\n');
            value.push_str(line);
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Malformed(format!("control line {}: `{line}` is not `Field: value`", number + 1)))?;
        fields.push((name.to_string(), value.trim_start().to_string()));
    }
    Ok(fields)
}

/// The value of field `name` (case-insensitive, as Policy has it).
pub fn field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `status`, for `packages` (in any order).
pub fn status(packages: &[Package<'_>]) -> Result<Vec<u8>, Malformed> {
    let mut stanzas: Vec<(&str, &str, String)> = Vec::with_capacity(packages.len());
    for package in packages {
        let fields = fields(package.control).map_err(|e| Malformed(format!("`{}`: {e}", package.name)))?;
        let mut stanza = format!("Package: {}\nStatus: install ok installed\n", package.name);
        for (name, value) in fields.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("Package")) {
            // `Status` is dpkg's own; a package shipping one does not decide it.
            if name.eq_ignore_ascii_case("Status") {
                continue;
            }
            stanza.push_str(&format!("{name}: {value}\n"));
        }
        stanzas.push((package.name, package.architecture, stanza));
    }
    stanzas.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Ok(stanzas.into_iter().map(|(_, _, s)| s + "\n").collect::<String>().into_bytes())
}

/// The name of a package's files in `info/`: `NAME`, or `NAME:ARCH` for `Multi-Arch: same`.
pub fn info_name(name: &str, architecture: &str, control: &[u8]) -> String {
    let same = fields(control).ok().is_some_and(|f| field(&f, "Multi-Arch").is_some_and(|m| m == "same"));
    if same { format!("{name}:{architecture}") } else { name.to_string() }
}

/// The lines of a package's `md5sums` (`MD5  PATH`, the path without a leading `/`) whose
/// path `keep` accepts.
pub fn md5sums_of(md5sums: &[u8], mut keep: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(md5sums.len());
    for line in md5sums.split_inclusive(|&b| b == b'\n') {
        let path = line.splitn(2, |&b| b == b' ').nth(1).map(|p| p.trim_ascii_start()).unwrap_or_default();
        if keep(path.trim_ascii_end()) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// `info/NAME.list`: `/.` and each path (as bytes, without a leading `/`) on its own line.
pub fn list<'p>(paths: impl IntoIterator<Item = &'p [u8]>) -> Vec<u8> {
    let mut out = b"/.\n".to_vec();
    for path in paths {
        out.push(b'/');
        out.extend_from_slice(path);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const JQ: &[u8] = b"Package: jq\nVersion: 1.6-2.1\nArchitecture: amd64\nMaintainer: X <x@example.org>\n\
Depends: libjq1 (= 1.6-2.1), libc6 (>= 2.34)\nDescription: lightweight JSON processor\n jq is like sed\n .\n for JSON.\n";
    const LIBC: &[u8] =
        b"Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nMulti-Arch: same\nDescription: GNU C Library\n";

    #[test]
    fn status_is_sorted_by_name_with_dpkgs_status_after_the_name() {
        let packages = [
            Package { name: "libc6", architecture: "amd64", control: LIBC },
            Package { name: "jq", architecture: "amd64", control: JQ },
        ];
        let text = String::from_utf8(status(&packages).unwrap()).unwrap();
        assert_eq!(
            text,
            "Package: jq\nStatus: install ok installed\nVersion: 1.6-2.1\nArchitecture: amd64\nMaintainer: X <x@example.org>\n\
Depends: libjq1 (= 1.6-2.1), libc6 (>= 2.34)\nDescription: lightweight JSON processor\n jq is like sed\n .\n for JSON.\n\n\
Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\nMulti-Arch: same\nDescription: GNU C Library\n\n"
        );
    }

    #[test]
    fn info_files_are_named_and_listed_as_dpkg_does() {
        assert_eq!(info_name("jq", "amd64", JQ), "jq");
        assert_eq!(info_name("libc6", "amd64", LIBC), "libc6:amd64");
        let paths: [&[u8]; 3] = [b"usr", b"usr/bin", b"usr/bin/jq"];
        assert_eq!(list(paths), b"/.\n/usr\n/usr/bin\n/usr/bin/jq\n");
    }

    #[test]
    fn a_control_file_that_is_not_fields_is_refused() {
        assert!(fields(b" continued\n").is_err());
        assert!(fields(b"Package jq\n").is_err());
        assert!(fields(b"\xff\n").is_err());
    }
}
