//! Remembered digests of the files of `dir` layers, so that learning an unchanged tree is
//! unchanged does not mean reading all of it again (what `git status` does with its index).
//!
//! A digest is reused only when the file's device, inode, size, modification time and change
//! time (to the nanosecond) are all what they were when it was hashed. Any write to a file sets
//! its change time to the current time, and nothing but the clock can set it back, so a file
//! whose bytes changed always looks changed. One case needs care: a file written again within
//! the clock's granularity after it was hashed could keep the same times. So a digest is
//! remembered only for a file whose times were at least two seconds old when hashing began;
//! a file changed more recently is hashed again on every build until it settles.
//!
//! The digests only ever decide whether the build cache has the outputs. A real build still
//! reads every file as it writes it and refuses one whose bytes are not the planned digest.
//!
//! One file per layer folder: `CACHE/digests/KEY`, where KEY is from the folder's absolute
//! path. Reading or writing it never fails a build; a damaged file is as good as none.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::base::hash::Digest;

/// How old a file's times must be, when hashing starts, for its digest to be remembered.
const SETTLED: Duration = Duration::from_secs(2);

const MAGIC: &[u8] = b"bake file digests 1\n";

/// What must not have changed for a remembered digest to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stat {
    pub fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    const BYTES: usize = 7 * 8;

    fn encode(&self, out: &mut Vec<u8>) {
        for value in [self.dev, self.ino, self.size] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for value in [self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> Stat {
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Stat {
            dev: word(0),
            ino: word(1),
            size: word(2),
            mtime: (word(3) as i64, word(4) as i64),
            ctime: (word(5) as i64, word(6) as i64),
        }
    }
}

/// The remembered digests of one folder's files, by path relative to it.
pub struct Remembered {
    file: PathBuf,
    known: HashMap<Vec<u8>, (Stat, Digest)>,
    /// Times at or after this are too recent to trust.
    settled_before: (i64, i64),
}

impl Remembered {
    /// The digests remembered in the cache folder `cache` for the folder `root` (none if there
    /// are none, or they cannot be read). Call it before hashing anything.
    pub fn load(cache: &Path, root: &Path) -> Remembered {
        let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let key = crate::base::hash::hex(&crate::base::hash::digest_bytes(absolute.as_os_str().as_bytes()));
        let file = cache.join("digests").join(&key[..32]);
        let settled = SystemTime::now().checked_sub(SETTLED).unwrap_or(UNIX_EPOCH);
        let since = settled.duration_since(UNIX_EPOCH).unwrap_or_default();
        let known = std::fs::File::open(&file).ok().and_then(|f| read(f).ok()).unwrap_or_default();
        Remembered { file, known, settled_before: (since.as_secs() as i64, i64::from(since.subsec_nanos())) }
    }

    /// The digest and size of the file at `relative`, if it is known and unchanged.
    pub fn get(&self, relative: &[u8], stat: &Stat) -> Option<(Digest, u64)> {
        self.known.get(relative).filter(|(known, _)| known == stat).map(|(_, digest)| (*digest, stat.size))
    }

    /// Remembers the digests of `files` (relative path, stat taken before hashing, digest),
    /// those whose times were settled, in place of what was remembered before.
    pub fn save<'a>(self, files: impl Iterator<Item = (&'a [u8], Stat, Digest)>) {
        let settled = |stat: &Stat| stat.mtime < self.settled_before && stat.ctime < self.settled_before;
        let fresh: Vec<_> = files.filter(|(_, stat, _)| settled(stat)).collect();
        let unchanged = fresh.len() == self.known.len()
            && fresh.iter().all(|(path, stat, digest)| self.known.get(*path) == Some(&(*stat, *digest)));
        if !unchanged {
            let _ = write(&self.file, &fresh);
        }
    }
}

fn read(mut file: std::fs::File) -> std::io::Result<HashMap<Vec<u8>, (Stat, Digest)>> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let bad = || std::io::Error::other("not a digest file");
    let mut rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
    let mut known = HashMap::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
        let record = rest.get(4..4 + len + Stat::BYTES + 32).ok_or_else(bad)?;
        let (path, tail) = record.split_at(len);
        let stat = Stat::decode(&tail[..Stat::BYTES]);
        let digest: Digest = tail[Stat::BYTES..].try_into().expect("32 bytes");
        known.insert(path.to_vec(), (stat, digest));
        rest = &rest[4 + len + Stat::BYTES + 32..];
    }
    Ok(known)
}

fn write(file: &Path, files: &[(&[u8], Stat, Digest)]) -> std::io::Result<()> {
    let dir = file.parent().expect("inside the digests folder");
    std::fs::create_dir_all(dir)?;
    let temp = tempfile::Builder::new().prefix(".new-").tempfile_in(dir)?;
    let mut out = BufWriter::new(temp.as_file());
    out.write_all(MAGIC)?;
    let mut record = Vec::new();
    for (path, stat, digest) in files {
        record.clear();
        record.extend_from_slice(&(path.len() as u32).to_le_bytes());
        record.extend_from_slice(path);
        stat.encode(&mut record);
        record.extend_from_slice(digest);
        out.write_all(&record)?;
    }
    out.flush()?;
    drop(out);
    temp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_of(path: &Path) -> Stat {
        Stat::of(&std::fs::metadata(path).unwrap())
    }

    #[test]
    fn a_settled_file_is_remembered_and_any_write_forgets_it() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        std::fs::write(&path, b"old").unwrap();
        // Settled: times well in the past (setting the mtime moves the ctime to now, so the
        // ctime is what keeps a fresh write from being trusted; pretend hashing began later).
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        let digest = crate::base::hash::digest_bytes(b"old");
        let mut remembered = Remembered::load(cache.path(), root.path());
        remembered.settled_before = (i64::MAX, 0);
        remembered.save([(&b"f"[..], stat_of(&path), digest)].into_iter());

        let remembered = Remembered::load(cache.path(), root.path());
        assert_eq!(remembered.get(b"f", &stat_of(&path)), Some((digest, 3)));
        assert_eq!(remembered.get(b"g", &stat_of(&path)), None);
        // Same size, mtime put back: the change time still gives the write away.
        std::fs::write(&path, b"new").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert_eq!(remembered.get(b"f", &stat_of(&path)), None);
    }

    #[test]
    fn a_file_changed_just_before_hashing_is_not_remembered() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("f");
        std::fs::write(&path, b"recent").unwrap();
        let remembered = Remembered::load(cache.path(), root.path());
        remembered.save([(&b"f"[..], stat_of(&path), crate::base::hash::digest_bytes(b"recent"))].into_iter());
        assert_eq!(Remembered::load(cache.path(), root.path()).get(b"f", &stat_of(&path)), None);
    }

    #[test]
    fn a_damaged_file_is_as_good_as_none() {
        let cache = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let remembered = Remembered::load(cache.path(), root.path());
        std::fs::create_dir_all(remembered.file.parent().unwrap()).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[200, 0, 0, 0, b'x']);
        std::fs::write(&remembered.file, bytes).unwrap();
        let again = Remembered::load(cache.path(), root.path());
        assert!(again.known.is_empty());
    }
}
