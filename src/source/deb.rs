//! A Debian package as a layer: its `data.tar.*` member, read straight out of the `ar` archive
//! as a stream and laid in like any tar layer. Maintainer scripts are not run.

use std::io::{BufReader, Read};

use super::content::Spool;
use super::{Meta, Node, Sink};
use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::format::ar;

/// What dpkg keeps about an installed package (in `/var/lib/dpkg`): its control files, and every
/// path its data archive holds, in archive order.
#[derive(Debug, Default, Clone)]
pub struct Installed {
    /// `control`: the package's fields.
    pub control: Vec<u8>,
    /// `md5sums` and `conffiles`, when the package has them.
    pub md5sums: Option<Vec<u8>>,
    pub conffiles: Option<Vec<u8>>,
    /// `postinst`, when the package has one (bake reads what it does, never runs it).
    pub postinst: Option<Vec<u8>>,
    /// The paths of the data archive, as dpkg lists them (`/usr/bin/jq`), each once.
    pub paths: Vec<ImagePath>,
}

/// The most bytes of a control file bake reads.
const MAX_CONTROL_FILE: u64 = 16 << 20;

/// Lays the data of the package read from `input` into `sink`, as [`read`], and returns what
/// dpkg would record about it: the `control.tar` member's `control`, `md5sums` and `conffiles`,
/// and the paths the data holds.
pub fn read_installed(
    input: impl Read + Send,
    label: &str,
    sink: &mut dyn Sink,
    spool: &mut Spool,
) -> Result<Installed> {
    let not_a_package = |e: std::io::Error| Error::input(format!("`{label}`: not a Debian package: {e}"));
    let mut archive = ar::Reader::new(BufReader::new(input));
    let mut installed = Installed::default();
    let mut seen_control = false;
    while let Some(member) = archive.next_member().map_err(not_a_package)? {
        if member.name.starts_with(b"control.tar") {
            seen_control = true;
            super::tar::for_each_file(archive.data(), &format!("{label}: control.tar"), |name, size, data| {
                let slot = match name {
                    "control" => &mut installed.control,
                    "md5sums" => installed.md5sums.get_or_insert_default(),
                    "conffiles" => installed.conffiles.get_or_insert_default(),
                    "postinst" => installed.postinst.get_or_insert_default(),
                    _ => return Ok(()),
                };
                if size > MAX_CONTROL_FILE {
                    return Err(Error::input(format!("`{label}`: control file `{name}` is {size} bytes")));
                }
                data.read_to_end(slot).map_err(|e| Error::input(format!("`{label}`: control file `{name}`: {e}")))?;
                Ok(())
            })?;
        } else if member.name.starts_with(b"data.tar") {
            if !seen_control || installed.control.is_empty() {
                return Err(Error::input(format!("`{label}`: not a Debian package: no `control` before its data")));
            }
            let mut recording = Recording { inner: sink, paths: &mut installed.paths, seen: Default::default() };
            super::tar::read(archive.data(), label, &mut recording, spool)?;
            return Ok(installed);
        }
    }
    Err(Error::input(format!("`{label}`: not a Debian package: it has no `data.tar` member")))
}

/// A sink that notes every path laid through it, each once, in order.
struct Recording<'s> {
    inner: &'s mut dyn Sink,
    paths: &'s mut Vec<ImagePath>,
    seen: std::collections::HashSet<ImagePath>,
}

impl Recording<'_> {
    fn note(&mut self, path: &ImagePath) {
        if !path.is_root() && self.seen.insert(path.clone()) {
            self.paths.push(path.clone());
        }
    }
}

impl Sink for Recording<'_> {
    fn insert(&mut self, path: &ImagePath, node: Node, meta: Meta) -> Result<()> {
        self.note(path);
        self.inner.insert(path, node, meta)
    }

    fn link(&mut self, path: &ImagePath, target: &ImagePath) -> Result<()> {
        self.note(path);
        self.inner.link(path, target)
    }

    fn check_file_size(&self, what: &str, size: u64) -> Result<()> {
        self.inner.check_file_size(what, size)
    }
}

/// Lays the data of the package read from `input` into `sink`; `label` names the package in
/// messages. Returns how many members its data archive had.
pub fn read(input: impl Read + Send, label: &str, sink: &mut dyn Sink, spool: &mut Spool) -> Result<usize> {
    with_data(input, label, |data| super::tar::read(data, label, sink, spool))
}

/// Finds the package's `data.tar.*` member and hands it, as a stream, to `use_data`.
pub fn with_data<T>(
    input: impl Read + Send,
    label: &str,
    use_data: impl FnOnce(&mut (dyn Read + Send)) -> Result<T>,
) -> Result<T> {
    let mut archive = ar::Reader::new(BufReader::new(input));
    find_data(&mut archive, label)?;
    use_data(&mut archive.data())
}

/// Where the package `file`'s `data.tar.*` member is: its offset and size.
pub fn data_member(file: &std::fs::File, label: &str) -> Result<(u64, u64)> {
    let member = find_data(&mut ar::Reader::new(BufReader::new(file)), label)?;
    Ok((member.offset, member.size))
}

/// Reads `archive` up to its `data.tar.*` member.
fn find_data(archive: &mut ar::Reader<impl Read>, label: &str) -> Result<ar::Member> {
    let not_a_package = |e: std::io::Error| Error::input(format!("`{label}`: not a Debian package: {e}"));
    while let Some(member) = archive.next_member().map_err(not_a_package)? {
        if member.name.starts_with(b"data.tar") {
            return Ok(member);
        }
    }
    Err(Error::input(format!("`{label}`: not a Debian package: it has no `data.tar` member")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `scripts/fuzz.sh` found: a GNU long-name reference with no name table, on which the
    /// `ar` crate panicked. Now it is a package without a data member.
    #[test]
    fn a_long_name_without_a_name_table_is_not_a_package() {
        let mut data =
            b"!<arch>\nde2222222222000000000000000000000000000000000000000000000000/0000000100000000x0000000".to_vec();
        data.extend([0xff; 8]);
        data.extend(b"00000000000000000397105843297379213bia\x97-binary222000\ncontrol.tar.xz  17    0    .f");
        let error = with_data(&data[..], "fuzz.deb", |_| Ok(())).unwrap_err().to_string();
        assert!(error.contains("`fuzz.deb`: not a Debian package"), "{error}");
    }
}
