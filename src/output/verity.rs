//! The dm-verity output, `NAME.verity`: the hash tree of the file system this build has just
//! written, in veritysetup's format, with a salt and a UUID derived from the file system's
//! digest (so the same file system always gives the same tree and root hash). Its root hash
//! goes to the disk's partition UUIDs, the manifest and the build's summary.

use std::io::BufReader;

use sha2::{Digest as _, Sha256};

use super::{Job, OutputKind, Sink, Writer, Written};
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, uuid_v8};
use crate::format::verity::{SALT_SIZE, Tree};
use crate::plan::Plan;

/// `NAME.verity`.
pub struct HashTree;

impl Writer for HashTree {
    fn kind(&self) -> OutputKind {
        OutputKind::Verity
    }

    fn wanted(&self, plan: &Plan) -> bool {
        plan.disk.is_some_and(|disk| disk.verity)
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.verity", plan.name)
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let fs = job
            .earlier(OutputKind::FileSystem)
            .ok_or_else(|| Error::failure("the hash tree needs the file system, which this build did not write"))?;
        let (size, sha256) = (fs.output().size, fs.output().sha256);
        let mut data = BufReader::with_capacity(1 << 20, fs.reopen()?);
        let tree = Tree::compute(&mut data, size, &salt(&sha256), uuid_v8(&derived(b"uuid", &sha256)))?;
        let sink = tree.write(out).writing(job.path)?;
        Ok(Written { sink, root_hash: Some(tree.root_hash) })
    }
}

/// A digest that stands for the file system whose digest is `fs_sha256`, for one `purpose`.
fn derived(purpose: &[u8], fs_sha256: &Digest) -> Digest {
    Sha256::new().chain_update(b"bake verity ").chain_update(purpose).chain_update(fs_sha256).finalize().into()
}

/// The salt: as long as veritysetup's, derived from the file system where veritysetup would
/// draw it at random.
fn salt(fs_sha256: &Digest) -> [u8; SALT_SIZE] {
    derived(b"salt", fs_sha256)
}
