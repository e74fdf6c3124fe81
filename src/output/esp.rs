//! The EFI system partition of a disk that boots by itself: a FAT file system holding the
//! unified kernel image as `EFI/BOOT/BOOTX64.EFI`, the removable-media path UEFI firmware boots
//! when it has no boot entries of its own (a new VM, a copied disk). Written into a scratch
//! file, since the disk takes it as a partition of known size.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use super::Job;
use super::stage::Staged;
use crate::base::error::{IoContext, Result};
use crate::base::hash::{Digest, HashingWriter};
use crate::format::fat;

/// The ESP's partition name, as systemd-repart names it.
pub const PARTITION_NAME: &str = "esp";
/// Where the unified kernel image goes.
pub const UKI_PATH: [&str; 3] = ["EFI", "BOOT", "BOOTX64.EFI"];
/// The FAT volume label.
const LABEL: &[u8; 11] = b"ESP        ";

/// Writes the ESP holding `uki` into an anonymous scratch file in the output folder; returns
/// it (at its start), its size and its sha256. Its volume serial is derived from the UKI, its
/// times are the image's epoch.
pub fn write(job: &Job<'_>, uki: &Staged) -> Result<(File, u64, Digest)> {
    let dir = job.path.parent().unwrap_or(job.path);
    let scratch = tempfile::tempfile_in(dir).writing(job.path)?;
    let serial: [u8; 32] =
        Sha256::new().chain_update(b"bake esp serial\0").chain_update(uki.output().sha256).finalize().into();
    let options = fat::Options {
        volume_id: u32::from_le_bytes(serial[..4].try_into().expect("4 bytes")),
        label: *LABEL,
        time: job.plan.epoch,
    };
    let mut contents = BufReader::with_capacity(1 << 20, uki.reopen()?);
    let mut files = [fat::NewFile {
        path: UKI_PATH.iter().map(|s| s.to_string()).collect(),
        size: uki.output().size,
        contents: &mut contents,
    }];
    let out = fat::write(&options, &mut files, HashingWriter::new(scratch))?;
    let (mut file, sha256, size) = out.finish().writing(job.path)?;
    file.flush().writing(job.path)?;
    file.seek(SeekFrom::Start(0)).writing(job.path)?;
    Ok((file, size, sha256))
}
