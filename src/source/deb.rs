//! A Debian package as a layer: its `data.tar.*` member, read straight out of the `ar` archive
//! as a stream and laid in like any tar layer. Maintainer scripts are not run.

use std::io::{BufReader, Read};

use super::Sink;
use super::content::Spool;
use crate::base::error::{Error, Result};
use crate::format::ar;

/// Lays the data of the package read from `input` into `sink`; `label` names the package in
/// messages. Returns how many members its data archive had.
pub fn read(input: impl Read, label: &str, sink: &mut dyn Sink, spool: &mut Spool) -> Result<usize> {
    with_data(input, label, |data| super::tar::read(data, label, sink, spool))
}

/// Finds the package's `data.tar.*` member and hands it, as a stream, to `use_data`.
pub fn with_data<T>(input: impl Read, label: &str, use_data: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
    let not_a_package = |e: std::io::Error| Error::input(format!("`{label}`: not a Debian package: {e}"));
    let mut archive = ar::Reader::new(BufReader::new(input));
    while let Some(member) = archive.next_member().map_err(not_a_package)? {
        if member.name.starts_with(b"data.tar") {
            return use_data(&mut archive.data());
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
