//! The disk output, `NAME.img`: a GPT disk whose first partition holds the file system this
//! build has just written (`NAME.erofs`), of the Discoverable Partitions Specification's type
//! for an x86-64 root and read-only, so systemd and container managers find and mount it
//! without `root=`; with dm-verity, a second partition holds the hash tree (`NAME.verity`), of
//! the root-verity type. The GUIDs, which partitioning tools pick at random, are derived from
//! the content: with verity, the partitions' are the first and the last 128 bits of the root
//! hash, as systemd-repart makes them and systemd-veritysetup-generator looks them up.
//!
//! A disk that boots by itself (`boot = "uefi"`) has an EFI system partition first: a FAT file
//! system bake writes, holding the unified kernel image (`NAME.efi`) as
//! `EFI/BOOT/BOOTX64.EFI`, the path UEFI firmware starts when it has no boot entries.

use sha2::{Digest as _, Sha256};

use std::io::BufReader;

use super::{Job, OutputKind, Sink, Writer, Written, esp};
use crate::base::error::{Error, Result};
use crate::base::hash::{Digest, uuid_v8};
use crate::format::gpt::{self, NewPartition};
use crate::format::verity;
use crate::plan::{Plan, VERITY_PARTITION_SUFFIX};
use crate::recipe::PartitionTable;

/// `NAME.img`.
pub struct Disk;

impl Writer for Disk {
    fn kind(&self) -> OutputKind {
        OutputKind::Disk
    }

    fn wanted(&self, plan: &Plan) -> bool {
        plan.disk.is_some_and(|disk| disk.partition_table == PartitionTable::Gpt)
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.img", plan.name)
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let fs = file_system(job)?;
        let (size, sha256) = (fs.output().size, fs.output().sha256);
        let label = &job.plan.name;
        let verity = job.earlier(OutputKind::Verity);
        let pair = verity.and_then(|v| v.output().root_hash).map(|hash| verity::partition_uuids(&hash));
        let root_guid = root_guid(job)?;
        let mut partitions = Vec::new();
        let mut esp_contents;
        let esp_file;
        if let Some(uki) = job.earlier(OutputKind::Uki) {
            let (file, esp_size, esp_sha256) = esp::write(job, uki)?;
            esp_file = file;
            esp_contents = BufReader::with_capacity(1 << 20, &esp_file);
            partitions.push(NewPartition {
                type_guid: gpt::ESP,
                unique_guid: derived_guid("esp partition", label, &esp_sha256),
                name: esp::PARTITION_NAME,
                attributes: 0,
                contents: &mut esp_contents,
                size: esp_size,
                sha256: esp_sha256,
            });
        }
        let mut fs_contents = BufReader::with_capacity(1 << 20, fs.reopen()?);
        partitions.push(NewPartition {
            type_guid: gpt::ROOT_X86_64,
            unique_guid: root_guid,
            name: label,
            attributes: gpt::READ_ONLY,
            contents: &mut fs_contents,
            size,
            sha256,
        });
        let verity_name = format!("{label}{VERITY_PARTITION_SUFFIX}");
        let mut tree_contents;
        if let (Some(tree), Some((_, tree_uuid))) = (verity, pair) {
            tree_contents = BufReader::with_capacity(1 << 20, tree.reopen()?);
            partitions.push(NewPartition {
                type_guid: gpt::ROOT_VERITY_X86_64,
                unique_guid: gpt::swap_guid_fields(tree_uuid),
                name: &verity_name,
                attributes: gpt::READ_ONLY,
                contents: &mut tree_contents,
                size: tree.output().size,
                sha256: tree.output().sha256,
            });
        }
        gpt::write(derived_guid("disk", label, &sha256), &mut partitions, out).map(Written::from)
    }
}

/// The file system this build wrote, which the disk holds.
fn file_system<'a>(job: &'a Job<'_>) -> Result<&'a super::stage::Staged> {
    job.earlier(OutputKind::FileSystem)
        .ok_or_else(|| Error::failure("the disk needs the file system, which this build did not write"))
}

/// The unique GUID of the disk's root partition, in GPT's on-disk order: with dm-verity the
/// first 128 bits of the root hash, else derived from the file system. The unified kernel
/// image names it on its command line (`root=PARTUUID=`), so it is known before the disk.
pub(super) fn root_guid(job: &Job<'_>) -> Result<[u8; 16]> {
    let fs = file_system(job)?;
    let root_hash = job.earlier(OutputKind::Verity).and_then(|v| v.output().root_hash);
    Ok(match root_hash {
        Some(hash) => gpt::swap_guid_fields(verity::partition_uuids(&hash).0),
        None => derived_guid("root partition", &job.plan.name, &fs.output().sha256),
    })
}

/// A GUID that stands for one image: the first 16 bytes of SHA-256 over a domain string, `which`
/// GUID it is, the label and the file system's digest, shaped as an RFC 9562 version 8 UUID (the
/// version for UUIDs made by other rules; its appendix B.2 shows one made from SHA-256 this way),
/// in GPT's on-disk byte order. The same inputs give the same GUID; another file system, label
/// or role gives another.
fn derived_guid(which: &str, label: &str, fs_sha256: &Digest) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"bake gpt guid v1\0");
    for part in [which.as_bytes(), label.as_bytes()] {
        // Length-prefixed, so that no two (which, label) pairs hash the same bytes.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.update(fs_sha256);
    gpt::swap_guid_fields(uuid_v8(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::hash::digest_bytes;

    #[test]
    fn guids_follow_the_content_the_label_and_the_role_and_nothing_else() {
        let fs = digest_bytes(b"a file system");
        let (disk, root) = (derived_guid("disk", "root", &fs), derived_guid("root partition", "root", &fs));
        assert_eq!(disk, derived_guid("disk", "root", &fs), "the same inputs give the same GUID");
        assert_ne!(disk, root);
        for guid in [disk, root] {
            let text = gpt::format_guid(&guid);
            assert_eq!(&text[14..15], "8", "version 8: {text}");
            assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "RFC variant: {text}");
        }
        let other = digest_bytes(b"another file system");
        assert_ne!(derived_guid("disk", "root", &other), disk);
        assert_ne!(derived_guid("root partition", "root", &other), root);
        assert_ne!(derived_guid("disk", "root2", &fs), disk);
        assert_ne!(derived_guid("root partition", "root2", &fs), root);
    }
}
