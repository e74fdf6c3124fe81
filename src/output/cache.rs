//! The build cache: the outputs of earlier builds, filed under the key of everything they were
//! made from ([`Prepared::cache_key`]: the source this `bake` was built from, the recipe's text,
//! the epoch and every input's digest). Building an unchanged recipe again copies them into place instead of
//! unpacking and compressing; any change to anything the image is made from is another key.
//!
//! A cached output is trusted only if it still has the size and sha256 recorded with it: the
//! copy into the output folder is hashed on the way, and a mismatch (a file someone edited in
//! the cache) drops the entry and builds for real. Storing is best effort: a full disk or a
//! read-only cache only costs a warning.
//!
//! Layout: `CACHE/builds/KEY/` holds the outputs (hard links to the output folder's files where
//! possible, copies otherwise) and `record.json`. Entries are used most-recent first; when they
//! add up to more than [`BUDGET`] bytes, the least recently used go.
//!
//! A [`RemoteCache`] (`bake build --remote-cache`, a registry) holds the same entries, the
//! outputs and `record.json`, by the same keys: a remote entry is fetched into a scratch
//! folder and restored exactly as a local one is, checked against its record.
//!
//! [`Prepared::cache_key`]: crate::plan::Prepared::cache_key

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::stage::{OutputDir, Staged};
use super::{Built, Output, OutputKind, Written};
use crate::base::error::{Error, IoContext};
use crate::base::hash::{Digest, hex, parse_hex};
use crate::base::progress::{Event, Reporter};

/// How many bytes of outputs the cache keeps.
pub const BUDGET: u64 = 2 << 30;

const RECORD: &str = "record.json";

/// What a cache entry holds.
#[derive(Serialize, Deserialize)]
struct Record {
    name: String,
    entries: usize,
    data_bytes: u64,
    outputs: Vec<RecordOutput>,
}

#[derive(Serialize, Deserialize)]
struct RecordOutput {
    /// The output's kind, as [`OutputKind::name`] gives it.
    kind: String,
    file: String,
    size: u64,
    sha256: String,
    /// For a dm-verity hash tree: its root hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_hash: Option<String>,
}

impl Record {
    fn of(built: &Built) -> Record {
        Record {
            name: built.name.clone(),
            entries: built.entries,
            data_bytes: built.data_bytes,
            outputs: built.outputs.iter().map(record_output).collect(),
        }
    }
}

/// A build cache shared by several builders (a registry repository, for `bake build
/// --remote-cache`): entries by key, each the outputs and their record, as files.
pub trait RemoteCache {
    /// What to call it in a message.
    fn name(&self) -> String;
    /// Fetches every file of the entry `key` into the empty folder `into`, checked against the
    /// digests the remote names them by; `false` when it has no such entry.
    fn fetch(&self, key: &str, into: &Path, reporter: &dyn Reporter) -> crate::base::error::Result<bool>;
    /// Stores `files` (file name, where it is, and the kind of output it is; `None` for the
    /// record) as the entry `key`.
    fn store(
        &self,
        key: &str,
        files: &[(String, PathBuf, Option<OutputKind>)],
        reporter: &dyn Reporter,
    ) -> crate::base::error::Result<()>;
}

/// A build served from the cache, staged in the output folder but not yet committed.
pub struct Hit {
    pub name: String,
    pub entries: usize,
    pub data_bytes: u64,
    pub staged: Vec<Staged>,
}

pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    /// The build cache inside bake's cache folder `root`.
    pub fn new(root: &Path) -> BuildCache {
        BuildCache { dir: root.join("builds") }
    }

    /// The digest of the source this `bake` was built from (`build.rs`), part of every key: a
    /// bake that may write other bytes (another version, or a change in development) never
    /// takes another's outputs, and the same source built anywhere agrees on every key.
    pub fn source_digest() -> Digest {
        parse_hex(env!("BAKE_SOURCE_DIGEST")).expect("build.rs writes 64 hex digits")
    }

    fn entry(&self, key: &Digest) -> PathBuf {
        self.dir.join(hex(key))
    }

    /// Stages the outputs cached under `key` in `out`, or `None` when there are none or they
    /// are not exactly what was recorded (then the entry is removed).
    pub fn restore(&self, key: &Digest, out: &OutputDir, reporter: &dyn Reporter) -> Option<Hit> {
        let entry = self.entry(key);
        let text = std::fs::read(entry.join(RECORD)).ok()?;
        let restored = serde_json::from_slice::<Record>(&text)
            .map_err(|e| Error::failure(format!("its record cannot be read: {e}")))
            .and_then(|record| stage(&entry, record, out));
        match restored {
            Ok(hit) => {
                // Mark it used, for eviction.
                let _ = File::options()
                    .append(true)
                    .open(entry.join(RECORD))
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Some(hit)
            }
            Err(why) => {
                reporter.report(Event::Warning(format!(
                    "build cache entry `{}` is damaged ({why}): removed, building instead",
                    entry.display()
                )));
                let _ = std::fs::remove_dir_all(&entry);
                None
            }
        }
    }

    /// Stages the outputs of the remote entry `key` in `out`, or `None` when the remote has
    /// none, cannot be reached, or sends other bytes than its record says (a warning then).
    pub fn restore_remote(
        remote: &dyn RemoteCache,
        key: &Digest,
        out: &OutputDir,
        reporter: &dyn Reporter,
    ) -> Option<Hit> {
        let scratch = tempfile::Builder::new().prefix(".bake-remote-").tempdir_in(out.path()).ok()?;
        let fetched = remote.fetch(&hex(key), scratch.path(), reporter).and_then(|found| {
            if !found {
                return Ok(None);
            }
            let path = scratch.path().join(RECORD);
            let text = std::fs::read(&path).reading(&path)?;
            let record = serde_json::from_slice::<Record>(&text)
                .map_err(|e| Error::failure(format!("its record cannot be read: {e}")))?;
            stage(scratch.path(), record, out).map(Some)
        });
        match fetched {
            Ok(hit) => hit,
            Err(e) => {
                reporter.report(Event::Warning(format!("remote cache {} not used: {e}", remote.name())));
                None
            }
        }
    }

    /// Sends the outputs of `built` and their record to `remote` under `key`. Failing costs
    /// only a warning.
    pub fn store_remote(remote: &dyn RemoteCache, key: &Digest, built: &Built, reporter: &dyn Reporter) {
        let sent = (|| {
            let record = tempfile::Builder::new().prefix(".bake-record-").tempfile_in(&built.out_dir)?;
            std::fs::write(record.path(), serde_json::to_vec_pretty(&Record::of(built)).map_err(io::Error::other)?)?;
            let mut files: Vec<(String, PathBuf, Option<OutputKind>)> =
                built.outputs.iter().map(|o| (o.file.clone(), built.out_dir.join(&o.file), Some(o.kind))).collect();
            files.push((RECORD.to_string(), record.path().to_path_buf(), None));
            Ok::<_, io::Error>((record, files))
        })()
        .map_err(|e| Error::failure(format!("cannot write the record: {e}")))
        .and_then(|(_record, files)| remote.store(&hex(key), &files, reporter));
        if let Err(e) = sent {
            reporter
                .report(Event::Warning(format!("this build was not sent to the remote cache {}: {e}", remote.name())));
        }
    }

    /// Files the outputs of `made`, now in `out_dir`, under `key`; then evicts the least
    /// recently used entries beyond [`BUDGET`]. Failing costs only a warning.
    pub(super) fn store(&self, key: &Digest, built: &Built, reporter: &dyn Reporter) {
        if let Err(e) = self.store_entry(key, built) {
            reporter.report(Event::Warning(format!(
                "cannot keep this build in the cache `{}`: {}",
                self.dir.display(),
                crate::base::error::io_cause(&e)
            )));
        }
        self.evict(BUDGET);
    }

    fn store_entry(&self, key: &Digest, built: &Built) -> io::Result<()> {
        let entry = self.entry(key);
        if entry.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        // Filled under a temporary name and renamed, so a reader never sees half an entry.
        let temp = tempfile::Builder::new().prefix(".new-").tempdir_in(&self.dir)?;
        for output in &built.outputs {
            let (from, to) = (built.out_dir.join(&output.file), temp.path().join(&output.file));
            // A hard link costs no space while the output is in place; outputs are replaced by
            // renaming, never rewritten, so the linked bytes stay as they are.
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to)?;
            }
        }
        std::fs::write(
            temp.path().join(RECORD),
            serde_json::to_vec_pretty(&Record::of(built)).map_err(io::Error::other)?,
        )?;
        match std::fs::rename(temp.path(), &entry) {
            Ok(()) => {
                // Renamed away: nothing left for the guard to remove.
                let _ = temp.keep();
                Ok(())
            }
            // Another build stored the same key meanwhile: theirs is as good.
            Err(_) if entry.exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the least recently used entries until the rest fit in `budget` bytes (the most
    /// recent entry always stays).
    fn evict(&self, budget: u64) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .filter(|e| {
                // A `.new-` folder an hour old is what a killed build left behind.
                let temporary = e.file_name().to_string_lossy().starts_with('.');
                let abandoned = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(3600)));
                if temporary && abandoned {
                    let _ = std::fs::remove_dir_all(e.path());
                }
                !temporary
            })
            .filter_map(|e| {
                let used = std::fs::metadata(e.path().join(RECORD)).and_then(|m| m.modified()).ok()?;
                let size =
                    std::fs::read_dir(e.path()).ok()?.filter_map(|f| f.ok()?.metadata().ok()).map(|m| m.len()).sum();
                Some((used, size, e.path()))
            })
            .collect();
        entries.sort_by_key(|(used, _, _)| std::cmp::Reverse(*used));
        let mut kept = 0u64;
        for (index, (_, size, path)) in entries.into_iter().enumerate() {
            kept += size;
            if index > 0 && kept > budget {
                let _ = std::fs::remove_dir_all(path);
            }
        }
    }
}

fn record_output(output: &Output) -> RecordOutput {
    let Output { kind, file, size, sha256, root_hash } = output;
    let (kind, file, size, sha256) = (kind.name().to_string(), file.clone(), *size, hex(sha256));
    RecordOutput { kind, file, size, sha256, root_hash: root_hash.as_ref().map(hex) }
}

/// Stages a copy of every output `record` lists from the entry folder `entry`; an error says
/// what is wrong with the entry.
fn stage(entry: &Path, record: Record, out: &OutputDir) -> crate::base::error::Result<Hit> {
    let mut staged = Vec::with_capacity(record.outputs.len());
    for output in &record.outputs {
        let kind = OutputKind::from_name(&output.kind);
        let Some(kind) = kind.filter(|_| !output.file.contains('/') && !output.file.starts_with('.')) else {
            return Err(Error::failure(format!("its record names `{}` `{}`", output.kind, output.file)));
        };
        let root_hash = match &output.root_hash {
            Some(text) => Some(parse_hex(text).ok_or_else(|| Error::failure(format!("its record gives `{text}`")))?),
            None => None,
        };
        let source = entry.join(&output.file);
        let copy = out.stage(kind, &output.file, |mut w| {
            let mut file = File::open(&source).reading(&source)?;
            io::copy(&mut file, &mut w).reading(&source)?;
            Ok(Written { sink: w, root_hash })
        })?;
        let got = copy.output();
        if got.size != output.size || hex(&got.sha256) != output.sha256 {
            return Err(Error::failure(format!("`{}` is not the file that was cached", output.file)));
        }
        staged.push(copy);
    }
    Ok(Hit { name: record.name, entries: record.entries, data_bytes: record.data_bytes, staged })
}
