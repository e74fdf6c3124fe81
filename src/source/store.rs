//! The input store: what bake has read out of an input archive, filed under the archive's
//! sha256, so that a later build reads a small index and the few files it needs instead of
//! decompressing the archive again. It holds kernel packages ([`super::kernel`]: the module
//! index, every module's name, path, digest and `.modinfo`, and the files builds used), Debian
//! packages and tar archives ([`super::stored_archive`]: what reading them laid in, and every
//! file), and apt's remembered resolutions ([`super::apt::Lists`]).
//!
//! Layout: `CACHE/store/KIND/SHA256/index.json` and `.../blobs/SHA256` (a file's bytes, named by
//! their digest). Everything is written to a temporary name and renamed into place, so a build
//! running beside another sees a whole entry or none. Nothing in the store is trusted: an index
//! that does not parse, and a blob whose bytes no longer have their digest, are dropped and read
//! from the archive again (the archive itself was hashed against its pin before). The store is
//! invisible in the output: a build from it equals a `--no-cache` build byte for byte. Entries
//! are used most-recent first; when they add up to more than [`BUDGET`] bytes, the least
//! recently used go.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::base::hash::{Digest, digest_files, hex};

/// How many bytes the store keeps.
pub const BUDGET: u64 = 1 << 30;

const INDEX: &str = "index.json";

/// The store under a cache folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One archive's entry.
#[derive(Debug, Clone)]
pub struct Entry {
    dir: PathBuf,
}

impl Store {
    pub fn new(cache: &Path) -> Store {
        Store { root: cache.join("store") }
    }

    /// The entry of the archive with digest `archive`, of kind `kind` (`kernel`).
    pub fn entry(&self, kind: &str, archive: &Digest) -> Entry {
        Entry { dir: self.root.join(kind).join(hex(archive)) }
    }

    /// Removes the least recently used entries while the store holds more than `budget` bytes.
    pub fn evict(&self, budget: u64) {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for kind in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            for entry in fs::read_dir(kind.path()).into_iter().flatten().flatten() {
                let dir = entry.path();
                let used = fs::metadata(dir.join(INDEX)).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
                entries.push((used, tree_size(&dir), dir));
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        let mut kept = 0u64;
        for (_, size, dir) in entries {
            kept += size;
            if kept > budget {
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
}

impl Entry {
    /// The entry's index, when it has one that parses (one that does not is removed). Reading
    /// it marks the entry used.
    pub fn read_index<T: DeserializeOwned>(&self) -> Option<T> {
        let path = self.dir.join(INDEX);
        let bytes = fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(index) => {
                let _ = File::options().append(true).open(&path).and_then(|f| f.set_modified(SystemTime::now()));
                Some(index)
            }
            Err(_) => {
                let _ = fs::remove_dir_all(&self.dir);
                None
            }
        }
    }

    /// Removes the whole entry (a damaged one).
    pub fn remove(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Writes the entry's index.
    pub fn write_index<T: Serialize>(&self, index: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(index).map_err(io::Error::other)?;
        self.put(&self.dir.join(INDEX), &mut &bytes[..])
    }

    /// Whether the entry holds every one of `blobs` (digest and size) with those bytes, each
    /// hashed now, on two threads; a blob whose bytes changed is removed.
    pub fn blobs_intact(&self, blobs: &[(Digest, u64)]) -> bool {
        let paths: Vec<PathBuf> = blobs.iter().map(|(digest, _)| self.blob_path(digest)).collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let mut intact = true;
        for ((found, (digest, size)), path) in digest_files(&refs, 2).into_iter().zip(blobs).zip(&paths) {
            match found {
                Ok((d, s)) if d == *digest && s == *size => {}
                Ok(_) => {
                    let _ = fs::remove_file(path);
                    intact = false;
                }
                Err(_) => intact = false,
            }
        }
        intact
    }

    /// Stores `reader`'s bytes as the blob `digest` (the caller knows the digest; a blob
    /// already there is kept).
    pub fn put_blob(&self, digest: &Digest, reader: &mut dyn Read) -> io::Result<()> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        self.put(&path, reader)
    }

    /// Where the blob `digest` is (or would be), unchecked: see [`Entry::blobs_intact`].
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(hex(digest))
    }

    /// Writes `path` whole or not at all.
    fn put(&self, path: &Path, reader: &mut dyn Read) -> io::Result<()> {
        let dir = path.parent().expect("store paths have a folder");
        fs::create_dir_all(dir)?;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        io::copy(reader, &mut file)?;
        file.flush()?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn tree_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::hash::digest_bytes;

    #[test]
    fn blobs_come_back_only_with_their_bytes() {
        let t = tempfile::tempdir().unwrap();
        let entry = Store::new(t.path()).entry("kernel", &[7; 32]);
        let digest = digest_bytes(b"module");
        assert!(!entry.blobs_intact(&[(digest, 6)]));
        entry.put_blob(&digest, &mut &b"module"[..]).unwrap();
        assert!(entry.blobs_intact(&[(digest, 6)]));
        let path = entry.blob_path(&digest);
        assert_eq!(fs::read(&path).unwrap(), b"module");
        // Damaged: dropped, not handed out.
        fs::write(&path, b"modulE").unwrap();
        assert!(!entry.blobs_intact(&[(digest, 6)]));
        assert!(!path.exists());
    }

    #[test]
    fn an_index_that_does_not_parse_drops_the_entry() {
        let t = tempfile::tempdir().unwrap();
        let entry = Store::new(t.path()).entry("kernel", &[1; 32]);
        entry.write_index(&vec!["a".to_string()]).unwrap();
        assert_eq!(entry.read_index::<Vec<String>>(), Some(vec!["a".to_string()]));
        fs::write(entry.dir.join(INDEX), b"{not json").unwrap();
        assert_eq!(entry.read_index::<Vec<String>>(), None);
        assert!(!entry.dir.exists());
    }

    #[test]
    fn eviction_keeps_the_most_recently_used_within_the_budget() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let (old, new) = (store.entry("kernel", &[1; 32]), store.entry("kernel", &[2; 32]));
        for entry in [&old, &new] {
            entry.write_index(&vec!["x".repeat(1000)]).unwrap();
        }
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options().append(true).open(old.dir.join(INDEX)).unwrap().set_modified(past).unwrap();
        store.evict(1500);
        assert!(!old.dir.exists());
        assert!(new.dir.exists());
    }
}
