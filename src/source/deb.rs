//! A Debian package as a layer: its `data.tar.*` member, read straight out of the `ar` archive
//! as a stream and laid in like any tar layer. Maintainer scripts are not run.

use std::io::{BufReader, Read};

use crate::base::error::{Error, Result};
use crate::plan::tree::{Origin, Tree};
use crate::source::content::Spool;

/// Lays the data of the package read from `input` into `tree`; `label` names the package in
/// messages. Returns how many members its data archive had.
pub fn read(input: impl Read, label: &str, tree: &mut Tree, spool: &mut Spool, origin: Origin) -> Result<usize> {
    with_data(input, label, |data| crate::source::tar::read(data, label, tree, spool, origin))
}

/// Finds the package's `data.tar.*` member and hands it, as a stream, to `use_data`.
pub fn with_data<T>(input: impl Read, label: &str, use_data: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
    let mut archive = ar::Archive::new(BufReader::new(input));
    while let Some(member) = archive.next_entry() {
        let mut member = member.map_err(|e| Error::input(format!("`{label}`: not a Debian package: {e}")))?;
        if member.header().identifier().starts_with(b"data.tar") {
            return use_data(&mut member);
        }
    }
    Err(Error::input(format!("`{label}`: not a Debian package: it has no `data.tar` member")))
}
