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
    match fill(reader, buf) {
        (_, Some(e)) => Err(e),
        (filled, None) => Ok(filled),
    }
}

/// Reads until `buf` is full, the stream ends or a read fails: how many bytes it holds, and
/// the error, if one stopped it.
fn fill(reader: &mut (impl Read + ?Sized), buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Some(e)),
        }
    }
    (filled, None)
}

/// Reads up to a chunk from `reader` into `chunk` and passes it to `each`, and then the error
/// that stopped the read, if one did (so the reader gets every byte that came before the
/// damage, as it would reading the decompressor itself). Returns whether to read on: `false`
/// at the end, after an error, or once `each` says so.
pub(crate) fn pass_on(
    reader: &mut dyn Read,
    chunk: &mut [u8],
    each: &mut dyn FnMut(io::Result<&[u8]>) -> bool,
) -> bool {
    let (got, failed) = fill(reader, chunk);
    if got > 0 && !each(Ok(&chunk[..got])) {
        return false;
    }
    match failed {
        Some(e) => {
            each(Err(e));
            false
        }
        None => got == chunk.len(),
    }
}
