//! A Debian package as a layer: its `data.tar.*` member, read straight out of the `ar` archive
//! as a stream and laid in like any tar layer. Maintainer scripts are not run.

use std::io::{BufReader, Read};

use super::Sink;
use super::content::Spool;
use crate::base::error::{Error, Result};

/// Lays the data of the package read from `input` into `sink`; `label` names the package in
/// messages. Returns how many members its data archive had.
pub fn read(input: impl Read, label: &str, sink: &mut dyn Sink, spool: &mut Spool) -> Result<usize> {
    with_data(input, label, |data| super::tar::read(data, label, sink, spool))
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
