//! Reading the partition table of any GPT disk image, as untrusted input.

use std::io::{self, Read, Seek, SeekFrom};

use super::*;
use crate::base::error::{Error, Result, io_cause};

/// One used entry of a partition table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// The entry's place in the array, from 1: the number Linux gives it (`sda1`).
    pub index: u32,
    pub first_lba: u64,
    /// The last block, inclusive.
    pub last_lba: u64,
    /// Where the partition starts in the image, in bytes.
    pub offset: u64,
    /// The partition's length in bytes.
    pub size: u64,
    /// On-disk byte order; [`format_guid`] gives the text.
    pub type_guid: [u8; 16],
    /// On-disk byte order; [`format_guid`] gives the text.
    pub unique_guid: [u8; 16],
    pub attributes: u64,
    /// The name up to its first NUL (unpaired UTF-16 surrogates become U+FFFD).
    pub name: String,
}

/// What [`read()`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// On-disk byte order; [`format_guid`] gives the text.
    pub disk_guid: [u8; 16],
    /// The used entries, in array order.
    pub partitions: Vec<Partition>,
    /// `None` when the primary header and entries were sound; otherwise why they were refused,
    /// and the backup header at the end of the disk was read instead.
    pub primary_damage: Option<String>,
}

/// Whether `first_sectors` (the first 512 bytes of an image, or more) hold a protective MBR,
/// the mark of a GPT disk. The GPT header itself is not required, so that [`read()`] gets the
/// chance to fall back to the backup header when the primary one is damaged.
pub fn is_gpt(first_sectors: &[u8]) -> bool {
    first_sectors.len() >= SECTOR as usize
        && first_sectors[510..512] == [0x55, 0xaa]
        && (0..4).any(|i| first_sectors[446 + 16 * i + 4] == 0xee)
}

/// Reads the partition table of a GPT disk image with 512-byte blocks: the primary header and
/// entries, or the backup ones when the primary are damaged. Every size and position the image
/// gives is checked before it is used, so a damaged or hostile image is an error, never a panic
/// or a large allocation.
pub fn read(mut input: impl Read + Seek) -> Result<Table> {
    let len = input.seek(SeekFrom::End(0)).map_err(cannot_read)?;
    let mut mbr = [0u8; 512];
    read_at(&mut input, len, 0, &mut mbr).map_err(|e| Error::input(format!("no GPT: the MBR {e}")))?;
    if mbr[510..512] != [0x55, 0xaa] {
        return Err(Error::input("no GPT: the first block has no MBR boot signature (0x55 0xaa)"));
    }
    if !is_gpt(&mbr) {
        return Err(Error::input("no GPT: the MBR has no protective partition (type 0xee); an MBR partition table?"));
    }
    let primary = match read_copy(&mut input, len, 1) {
        Ok(table) => return Ok(table),
        Err(why) => why,
    };
    let last = (len / SECTOR).saturating_sub(1);
    if last <= 1 {
        return Err(Error::input(format!(
            "no usable GPT: the primary header (LBA 1) {primary}, and the image is too short for a backup header"
        )));
    }
    match read_copy(&mut input, len, last) {
        Ok(table) => Ok(Table { primary_damage: Some(format!("the primary GPT header (LBA 1) {primary}")), ..table }),
        Err(backup) => Err(Error::input(format!(
            "no usable GPT: the primary header (LBA 1) {primary}, and the backup header (LBA {last}) {backup}"
        ))),
    }
}

fn cannot_read(e: io::Error) -> Error {
    Error::input(format!("cannot read the disk image: {}", io_cause(&e)))
}

/// Reads `buf.len()` bytes at `offset`; an error message completes "the MBR ...".
fn read_at(input: &mut (impl Read + Seek), len: u64, offset: u64, buf: &mut [u8]) -> Result<(), Damage> {
    match offset.checked_add(buf.len() as u64) {
        Some(end) if end <= len => {}
        _ => return Err(format!("lies past the end of the image ({len} bytes)").into()),
    }
    input
        .seek(SeekFrom::Start(offset))
        .and_then(|_| input.read_exact(buf))
        .map_err(|e| Damage(format!("cannot be read: {}", io_cause(&e))))
}

/// Reads the header at `lba` and the entries it points to. An error says why this copy of the
/// table is unusable, as the end of a sentence that starts with "the primary header".
fn read_copy(input: &mut (impl Read + Seek), len: u64, lba: u64) -> Result<Table, Damage> {
    let mut block = [0u8; 512];
    read_at(input, len, lba * SECTOR, &mut block)?;
    let header = Header::decode(&block).map_err(|why| Damage(format!("is damaged: {why}")))?;
    if header.my_lba != lba {
        return Err(format!("says it is at LBA {}", header.my_lba).into());
    }
    let size = header.entry_size;
    if size < ENTRY_SIZE || !(size / ENTRY_SIZE).is_power_of_two() || size % ENTRY_SIZE != 0 {
        return Err(format!("gives an entry size of {size} bytes, not 128 times a power of two").into());
    }
    let array_bytes = u64::from(header.entry_count) * u64::from(size);
    if array_bytes > MAX_ARRAY_BYTES {
        return Err(format!(
            "gives {} entries of {size} bytes, more than the {MAX_ARRAY_BYTES} bytes of entries this reader accepts",
            header.entry_count
        )
        .into());
    }
    let sectors = len / SECTOR;
    if header.first_usable > header.last_usable.saturating_add(1) || header.last_usable >= sectors {
        return Err(format!(
            "gives usable LBAs {}..={} on a disk of {sectors} blocks",
            header.first_usable, header.last_usable
        )
        .into());
    }
    let mut array = vec![0u8; array_bytes as usize];
    let offset = header.entries_lba.saturating_mul(SECTOR);
    read_at(input, len, offset, &mut array)
        .map_err(|why| Damage(format!("points to an entry array at LBA {} that {why}", header.entries_lba)))?;
    let computed = crc32fast::hash(&array);
    if computed != header.entries_crc {
        return Err(format!(
            "has entries whose CRC32 is {computed:#010x}, not the {:#010x} it records",
            header.entries_crc
        )
        .into());
    }
    let partitions = partitions(&header, &array)?;
    Ok(Table { disk_guid: header.disk_guid, partitions, primary_damage: None })
}

/// The used entries of the entry `array` that `header` describes, each within its usable LBAs.
fn partitions(header: &Header, array: &[u8]) -> Result<Vec<Partition>, Damage> {
    let mut partitions = Vec::new();
    for (i, bytes) in array.chunks_exact(header.entry_size as usize).enumerate() {
        let entry = Entry::decode(bytes);
        if entry.type_guid == [0; 16] {
            continue;
        }
        let index = i as u32 + 1;
        if entry.first_lba > entry.last_lba
            || entry.first_lba < header.first_usable
            || entry.last_lba > header.last_usable
        {
            return Err(format!(
                "has partition {index} at LBAs {}..={}, outside the usable LBAs {}..={}",
                entry.first_lba, entry.last_lba, header.first_usable, header.last_usable
            )
            .into());
        }
        // Within the usable LBAs, which lie within the image: no overflow.
        let units: Vec<u16> = entry.name.iter().copied().take_while(|&unit| unit != 0).collect();
        partitions.push(Partition {
            index,
            first_lba: entry.first_lba,
            last_lba: entry.last_lba,
            offset: entry.first_lba * SECTOR,
            size: (entry.last_lba - entry.first_lba + 1) * SECTOR,
            type_guid: entry.type_guid,
            unique_guid: entry.unique_guid,
            attributes: entry.attributes,
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(partitions)
}
