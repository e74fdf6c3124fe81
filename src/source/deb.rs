//! A Debian package as a layer: its `data.tar.*` member, read straight out of the `ar` archive
//! as a stream and laid in like any tar layer. Maintainer scripts are not run.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::content::Spool;
use crate::error::{Error, IoContext, Result};
use crate::tree::{Origin, Tree};

/// Lays the data of the package at `path` into `tree`; returns how many members it had.
pub fn read(path: &Path, tree: &mut Tree, spool: &mut Spool, origin: Origin) -> Result<usize> {
    let label = path.display().to_string();
    let file = File::open(path).reading(path)?;
    let mut archive = ar::Archive::new(BufReader::new(file));
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(|e| Error::input(format!("`{label}`: not a Debian package: {e}")))?;
        if member.header().identifier().starts_with(b"data.tar") {
            return crate::source::tar::read(member, &label, tree, spool, origin);
        }
    }
    Err(Error::input(format!("`{label}`: not a Debian package: it has no `data.tar` member")))
}
