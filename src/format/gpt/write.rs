//! Writing a whole disk image front to back (see the module documentation of [`super`] for
//! the layout).

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use super::*;
use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::{Digest, hex};

/// A partition to write, with its contents.
pub struct NewPartition<'a> {
    /// On-disk byte order ([`guid`] makes it from text).
    pub type_guid: [u8; 16],
    /// On-disk byte order.
    pub unique_guid: [u8; 16],
    /// At most 36 UTF-16 units, no NUL: a longer name is refused, not cut, so two partitions
    /// never share a name by accident.
    pub name: &'a str,
    pub attributes: u64,
    /// The contents: exactly `size` bytes whose SHA-256 is `sha256` (the GUIDs usually stand
    /// for that content, so other bytes are an error).
    pub contents: &'a mut dyn Read,
    pub size: u64,
    pub sha256: Digest,
}

/// Where things go on the disk, in LBAs.
struct Layout {
    /// Blocks on the disk.
    sectors: u64,
    /// Each partition's first and last block.
    partitions: Vec<(u64, u64)>,
}

impl Layout {
    /// The partitions one after another from 1 MiB, each a whole number of MiB (at least one),
    /// and 1 MiB after the last for the backup table; `None` for sizes no disk has.
    fn new(sizes: impl IntoIterator<Item = u64>) -> Option<Layout> {
        let mut next = PARTITION_LBA;
        let mut partitions = Vec::new();
        for size in sizes {
            let span = size.div_ceil(MIB).max(1).checked_mul(MIB / SECTOR)?;
            partitions.push((next, next.checked_add(span - 1)?));
            next = next.checked_add(span)?;
        }
        let sectors = next.checked_add(MIB / SECTOR)?;
        sectors.checked_mul(SECTOR)?; // the size in bytes fits too
        Some(Layout { sectors, partitions })
    }

    fn last_lba(&self) -> u64 {
        self.sectors - 1
    }

    /// The first block of the backup entry array.
    fn backup_array_lba(&self) -> u64 {
        self.last_lba() - ARRAY_SECTORS
    }

    /// The header written at `my_lba`, which is 1 or the last block.
    fn header(&self, my_lba: u64, disk_guid: [u8; 16], entries_crc: u32) -> Header {
        let primary = my_lba == 1;
        Header {
            my_lba,
            alternate_lba: if primary { self.last_lba() } else { 1 },
            first_usable: 2 + ARRAY_SECTORS,
            last_usable: self.backup_array_lba() - 1,
            disk_guid,
            entries_lba: if primary { 2 } else { self.backup_array_lba() },
            entry_count: ENTRY_COUNT,
            entry_size: ENTRY_SIZE,
            entries_crc,
        }
    }
}

/// Size in bytes of the disk [`write()`] makes for partitions of `sizes` bytes: 1 MiB before
/// the first, each rounded up to a whole MiB (at least 1 MiB), and 1 MiB after the last for the
/// backup table. Saturates at `u64::MAX` for sizes no disk has.
pub fn disk_size(sizes: &[u64]) -> u64 {
    Layout::new(sizes.iter().copied()).map_or(u64::MAX, |layout| layout.sectors * SECTOR)
}

/// Writes a whole disk image into `out`: a GPT with `disk_guid` and `partitions`, in this
/// order (the first is partition 1), each followed by zeros to its end. Returns `out`.
pub fn write<W: Write>(disk_guid: [u8; 16], partitions: &mut [NewPartition<'_>], mut out: W) -> Result<W> {
    let layout = Layout::new(partitions.iter().map(|p| p.size))
        .ok_or_else(|| Error::input("the partitions are too large for a disk image"))?;
    let mut entries = vec![0u8; (ARRAY_SECTORS * SECTOR) as usize];
    for (i, (partition, &(first_lba, last_lba))) in partitions.iter().zip(&layout.partitions).enumerate() {
        let entry = Entry {
            type_guid: partition.type_guid,
            unique_guid: partition.unique_guid,
            first_lba,
            last_lba,
            attributes: partition.attributes,
            name: partition_name(partition.name)?,
        };
        entries[i * ENTRY_SIZE as usize..][..ENTRY_SIZE as usize].copy_from_slice(&entry.encode());
    }
    let entries_crc = crc32fast::hash(&entries);
    let primary = layout.header(1, disk_guid, entries_crc).encode();
    let backup = layout.header(layout.last_lba(), disk_guid, entries_crc).encode();

    let failed =
        |what: &str, e: io::Error| Error::failure(format!("cannot write the disk image: {what}: {}", io_cause(&e)));
    out.write_all(&protective_mbr(layout.sectors)).map_err(|e| failed("the protective MBR", e))?;
    out.write_all(&primary).map_err(|e| failed("the primary GPT header", e))?;
    out.write_all(&entries).map_err(|e| failed("the primary partition entries", e))?;
    let mut at = 2 + ARRAY_SECTORS;
    for (partition, &(first_lba, last_lba)) in partitions.iter_mut().zip(&layout.partitions) {
        zeros(&mut out, (first_lba - at) * SECTOR).map_err(|e| failed("the gap before a partition", e))?;
        copy_contents(partition, &mut out)?;
        zeros(&mut out, (last_lba + 1 - first_lba) * SECTOR - partition.size)
            .map_err(|e| failed("the zeros after a partition's contents", e))?;
        at = last_lba + 1;
    }
    zeros(&mut out, (layout.backup_array_lba() - at) * SECTOR).map_err(|e| failed("the last MiB", e))?;
    out.write_all(&entries).map_err(|e| failed("the backup partition entries", e))?;
    out.write_all(&backup).map_err(|e| failed("the backup GPT header", e))?;
    out.flush().map_err(|e| failed("flushing", e))?;
    Ok(out)
}

/// `label` as a partition name: UTF-16LE, zero-padded to 36 units.
fn partition_name(label: &str) -> Result<[u16; NAME_UNITS]> {
    let units: Vec<u16> = label.encode_utf16().collect();
    if units.len() > NAME_UNITS {
        return Err(Error::input(format!(
            "partition name `{label}` is {} UTF-16 units long; a GPT partition name holds at most {NAME_UNITS}",
            units.len()
        )));
    }
    if units.contains(&0) {
        return Err(Error::input(format!(
            "partition name `{}` contains a NUL, which ends a GPT partition name",
            label.escape_debug()
        )));
    }
    let mut name = [0u16; NAME_UNITS];
    name[..units.len()].copy_from_slice(&units);
    Ok(name)
}

/// LBA 0: an MBR with one partition of type `0xee` from LBA 1 over the rest of the disk, so
/// that MBR-only tools see a disk in use (UEFI specification, 5.2.3 "Protective MBR").
fn protective_mbr(disk_sectors: u64) -> [u8; 512] {
    let mut sector = [0u8; 512];
    let record = &mut sector[446..462];
    record[0] = 0x00; // not bootable
    record[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // starting CHS: head 0, sector 2, cylinder 0
    record[4] = 0xee;
    record[5..8].copy_from_slice(&[0xff, 0xff, 0xff]); // ending CHS: not representable
    record[8..12].copy_from_slice(&1u32.to_le_bytes());
    let size = u32::try_from(disk_sectors - 1).unwrap_or(u32::MAX);
    record[12..16].copy_from_slice(&size.to_le_bytes());
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
}

fn zeros(out: &mut impl Write, bytes: u64) -> io::Result<()> {
    io::copy(&mut io::repeat(0).take(bytes), out).map(|_| ())
}

/// Copies exactly `size` bytes of the partition's contents into `out`, checking that they are
/// all there, that there are no more, and that they have the digest given.
fn copy_contents(partition: &mut NewPartition<'_>, out: &mut impl Write) -> Result<()> {
    let (fs, size, sha256) = (&mut partition.contents, partition.size, &partition.sha256);
    let name = partition.name;
    let failed =
        |e: io::Error| Error::failure(format!("cannot write the disk image: partition `{name}`: {}", io_cause(&e)));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut copied = 0u64;
    while copied < size {
        crate::base::interrupt::check().map_err(failed)?;
        let want = buf.len().min(usize::try_from(size - copied).unwrap_or(usize::MAX));
        let n = match fs.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(failed)?;
        copied += n as u64;
    }
    let extra = loop {
        match fs.read(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => break result.map_err(failed)?,
        }
    };
    if copied != size || extra != 0 {
        let more = if extra != 0 { "more than" } else { "only" };
        let had = if extra != 0 { size } else { copied };
        return Err(Error::failure(format!(
            "cannot write the disk image: partition `{name}` gave {more} {had} bytes where {size} were promised"
        )));
    }
    let digest: Digest = hasher.finalize().into();
    if &digest != sha256 {
        return Err(Error::failure(format!(
            "cannot write the disk image: partition `{name}`'s SHA-256 is `{}`, not the `{}` it was given with",
            hex(&digest),
            hex(sha256)
        )));
    }
    Ok(())
}
