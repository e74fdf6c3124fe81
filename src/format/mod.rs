//! The on-disk formats bake writes and reads, each owning its types and split into reading and
//! writing where it does both: [`ar`] (the archive a Debian package is), [`cpio`] (the
//! initramfs), [`compress`] (the compressors around it), [`erofs`] (the read-only file system),
//! [`gpt`] (the partitioned disk), [`fat`] (the EFI system partition), [`pe`] (the unified
//! kernel image), [`verity`] (dm-verity hash trees), [`kmod_index`] (the module indexes libkmod
//! reads). A format knows
//! nothing of recipes or plans: writers take the format's own input types, readers give the one
//! [`Entry`] every format shares, and [`FileType`] names what an entry is everywhere.

pub mod ar;
pub mod compress;
pub mod cpio;
pub mod entry;
pub mod erofs;
pub mod fat;
mod file_type;
pub mod gpt;
pub mod kmod_index;
pub mod limits;
pub mod pe;
pub mod verity;

pub use entry::Entry;
pub use file_type::FileType;

use std::io::{self, Read};

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
