//! The bytes of regular files in the image, and where they are kept until they are written.
//!
//! Every [`Content`] knows its size and sha256 as soon as it is planned, so the manifest and any
//! check can be made without holding the bytes. The bytes themselves stay where they are cheapest:
//! inline text from the recipe in memory, host files on the host (read again when written, and
//! refused if they changed in between), and members of tar archives and Debian packages in a
//! spool file inside the output folder, because a compressed archive can only be read once, in
//! its own order, while the image is written in path order. Identical contents share one copy.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, hex};

/// The bytes of one regular file.
#[derive(Clone, Debug)]
pub struct Content {
    pub size: u64,
    pub sha256: Digest,
    place: Place,
}

#[derive(Clone, Debug)]
enum Place {
    Inline(Arc<[u8]>),
    Host(Arc<Path>),
    Spool(u64),
}

impl Content {
    /// Bytes given in the recipe.
    pub fn inline(bytes: &[u8]) -> Content {
        Content {
            size: bytes.len() as u64,
            sha256: crate::base::hash::digest_bytes(bytes),
            place: Place::Inline(bytes.into()),
        }
    }

    /// A host file whose size and digest were just measured.
    pub fn host(path: &Path, size: u64, sha256: Digest) -> Content {
        Content { size, sha256, place: Place::Host(path.into()) }
    }

    /// A reader of exactly these bytes. A host file that no longer has the planned size or
    /// digest fails the read rather than letting the image differ from its manifest.
    pub fn open<'a>(&'a self, spool: &'a Spool) -> Result<Box<dyn Read + 'a>> {
        Ok(match &self.place {
            Place::Inline(bytes) => Box::new(&bytes[..]),
            Place::Spool(offset) => {
                Box::new(SpoolReader { file: spool.file()?, pos: *offset, end: offset + self.size })
            }
            Place::Host(path) => {
                let file = File::open(path).reading(path)?;
                Box::new(Checked {
                    inner: file.take(self.size),
                    path: path.to_path_buf(),
                    hasher: Sha256::new(),
                    seen: 0,
                    size: self.size,
                    sha256: self.sha256,
                })
            }
        })
    }
}

/// Reads a host file and checks, when the planned size has been read, that the bytes are the
/// ones that were planned.
struct Checked<R> {
    inner: R,
    path: PathBuf,
    hasher: Sha256,
    seen: u64,
    size: u64,
    sha256: Digest,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.seen += n as u64;
        if n == 0 || self.seen == self.size {
            let digest: Digest = self.hasher.clone().finalize().into();
            if self.seen != self.size || digest != self.sha256 {
                return Err(io::Error::other(format!(
                    "`{}` changed while the image was being built (planned {} bytes, sha256 {})",
                    self.path.display(),
                    self.size,
                    hex(&self.sha256)
                )));
            }
        }
        Ok(n)
    }
}

/// An append-only file of archive members, deduplicated by digest.
pub struct Spool {
    path: PathBuf,
    file: Option<File>,
    len: u64,
    by_digest: HashMap<Digest, u64>,
}

impl Spool {
    /// A spool kept at `path` (created on first use; the caller removes the folder it is in).
    pub fn new(path: PathBuf) -> Spool {
        Spool { path, file: None, len: 0, by_digest: HashMap::new() }
    }

    fn file(&self) -> Result<&File> {
        self.file.as_ref().ok_or_else(|| Error::failure(format!("spool `{}` was never written", self.path.display())))
    }

    /// Copies exactly `size` bytes from `reader` into the spool. Failing to read (an archive
    /// that ends early or is corrupt) is the input's fault; failing to write (a full disk) is
    /// not, and the two come back apart.
    pub fn store(&mut self, reader: &mut dyn Read, size: u64) -> Result<Content, StoreError> {
        self.store_inner(reader, size).map_err(|e| match e {
            StoreError::Write(e) => StoreError::Write(io::Error::new(
                e.kind(),
                format!("cannot write the spool `{}`: {}", self.path.display(), crate::base::error::io_cause(&e)),
            )),
            read => read,
        })
    }

    fn store_inner(&mut self, reader: &mut dyn Read, size: u64) -> Result<Content, StoreError> {
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&self.path);
            self.file = Some(file.map_err(StoreError::Write)?);
        }
        let Some(file) = self.file.as_mut() else { unreachable!("opened above") };
        let offset = self.len;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 128 * 1024];
        let mut left = size;
        let mut writer = io::BufWriter::with_capacity(256 * 1024, &*file);
        while left > 0 {
            crate::base::interrupt::check().map_err(StoreError::Write)?;
            let want = left.min(buf.len() as u64) as usize;
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(StoreError::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the data ends {left} bytes short of the {size} its header gives"),
                    )));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Read(e)),
            };
            hasher.update(&buf[..n]);
            writer.write_all(&buf[..n]).map_err(StoreError::Write)?;
            left -= n as u64;
        }
        writer.flush().map_err(StoreError::Write)?;
        drop(writer);
        let sha256: Digest = hasher.finalize().into();
        let offset = match self.by_digest.get(&sha256) {
            Some(&earlier) => {
                // The same bytes are already spooled: forget this copy.
                file.set_len(offset).map_err(StoreError::Write)?;
                earlier
            }
            None => {
                self.by_digest.insert(sha256, offset);
                self.len += size;
                offset
            }
        };
        // The writer appended at the file's cursor; keep the cursor at the logical end.
        std::io::Seek::seek(file, io::SeekFrom::Start(self.len)).map_err(StoreError::Write)?;
        Ok(Content { size, sha256, place: Place::Spool(offset) })
    }
}

/// Why [`Spool::store`] failed.
#[derive(Debug)]
pub enum StoreError {
    /// Reading the member failed: the input is at fault.
    Read(io::Error),
    /// Writing the spool failed: the build is.
    Write(io::Error),
}

impl StoreError {
    /// An input error worded by `bad` for a failed read; a build failure for a failed write.
    pub fn into_error(self, bad: impl FnOnce(String) -> crate::base::error::Error) -> crate::base::error::Error {
        match self {
            StoreError::Read(e) => bad(e.to_string()),
            StoreError::Write(e) => crate::base::error::Error::failure(e.to_string()),
        }
    }
}

struct SpoolReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the spool file is truncated"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(content: &Content, spool: &Spool) -> Vec<u8> {
        let mut out = Vec::new();
        content.open(spool).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn spooled_contents_read_back_and_duplicates_share_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path().join("spool"));
        let a = spool.store(&mut &b"first file"[..], 10).unwrap();
        let b = spool.store(&mut &b"second"[..], 6).unwrap();
        let c = spool.store(&mut &b"first file"[..], 10).unwrap();
        assert_eq!(read_all(&a, &spool), b"first file");
        assert_eq!(read_all(&b, &spool), b"second");
        assert_eq!(read_all(&c, &spool), b"first file");
        assert_eq!(std::fs::metadata(dir.path().join("spool")).unwrap().len(), 16);
        let d = spool.store(&mut &b"third"[..], 5).unwrap();
        assert_eq!(read_all(&d, &spool), b"third");
    }

    #[test]
    fn a_member_shorter_than_its_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path().join("spool"));
        let err = spool.store(&mut &b"abc"[..], 10).unwrap_err();
        assert!(matches!(err, StoreError::Read(ref e) if e.kind() == io::ErrorKind::UnexpectedEof), "{err:?}");
    }

    #[test]
    fn a_host_file_that_changed_after_planning_fails_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"planned").unwrap();
        let (sha256, size) = crate::base::hash::digest_file(&path).unwrap();
        let content = Content::host(&path, size, sha256);
        let spool = Spool::new(dir.path().join("spool"));
        assert_eq!(read_all(&content, &spool), b"planned");
        std::fs::write(&path, b"changed").unwrap();
        let mut out = Vec::new();
        let err = content.open(&spool).unwrap().read_to_end(&mut out).unwrap_err();
        assert!(err.to_string().contains("changed while the image was being built"), "{err}");
    }
}
