//! Outputs appear atomically: each is written to a temporary file in the output folder and
//! renamed into place only when the whole build has succeeded. A failed or interrupted build
//! leaves the previous outputs as they were and no partial file at an output path.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{Output, OutputKind, Sink, Written};
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::HashingWriter;

/// An output being written.
pub struct Staged {
    temp: NamedTempFile,
    dest: PathBuf,
    output: Output,
}

impl Staged {
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The staged bytes, to read back (an output made from another, such as a disk holding a
    /// file system).
    pub fn reopen(&self) -> Result<File> {
        File::open(self.temp.path()).reading(&self.dest)
    }
}

/// The output folder of one build.
pub struct OutputDir {
    dir: PathBuf,
}

impl OutputDir {
    pub fn new(dir: &Path) -> OutputDir {
        OutputDir { dir: dir.to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes the output `file` of `kind` through `write`, which gets a buffered, hashing
    /// writer and must return it when done.
    pub fn stage<F>(&self, kind: OutputKind, file: &str, write: F) -> Result<Staged>
    where
        F: FnOnce(Sink) -> Result<Written>,
    {
        let dest = self.dir.join(file);
        let temp = tempfile::Builder::new().prefix(".bake-").suffix(".part").tempfile_in(&self.dir).writing(&dest)?;
        let handle = temp.as_file().try_clone().writing(&dest)?;
        let Written { sink: writer, root_hash } = write(HashingWriter::new(handle))?;
        // Not fsync'd: like cpio, gzip or mkfs.erofs, bake leaves flushing to the kernel, which
        // for a large image saves seconds. Outputs are reproducible, a crash that loses one is
        // mended by building again, and `SHA256SUMS` (`sha256sum -c`) shows a damaged file.
        let (_, sha256, size) = writer.finish().writing(&dest)?;
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o644)).writing(&dest)?;
        Ok(Staged { temp, dest, output: Output { kind, file: file.to_string(), size, sha256, root_hash } })
    }

    /// Renames every staged output into place, in order.
    pub fn commit(&self, staged: Vec<Staged>) -> Result<Vec<Output>> {
        // A signal that came while a library call held the build (a compressor finishing its
        // last blocks) still stops it here, before anything is replaced.
        crate::base::interrupt::stop_point()?;
        let mut outputs = Vec::with_capacity(staged.len());
        for s in staged {
            s.temp.persist(&s.dest).map_err(|e| {
                Error::failure(format!(
                    "cannot write `{}`: {}",
                    s.dest.display(),
                    crate::base::error::io_cause(&e.error)
                ))
            })?;
            outputs.push(s.output);
        }
        Ok(outputs)
    }
}
