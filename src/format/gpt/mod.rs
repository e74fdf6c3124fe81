//! GPT disk images: a protective MBR, a GUID Partition Table and the partitions given, written
//! front to back ([`write()`]); and a reader that finds the partitions of any GPT disk image
//! ([`read()`]).
//!
//! The layout follows the UEFI specification, chapter 5 ("GUID Partition Table (GPT) Disk
//! Layout"), with 512-byte logical blocks (LBAs), for a disk of `n` blocks:
//!
//! | LBA               | contents                                                        |
//! |-------------------|-----------------------------------------------------------------|
//! | 0                 | protective MBR: one partition of type `0xee` over the disk      |
//! | 1                 | primary GPT header                                              |
//! | 2..=33            | primary partition entry array: 128 entries of 128 bytes         |
//! | 34..=2047         | zeros, so that the first partition starts at 1 MiB              |
//! | 2048..            | each partition in turn: its contents, then zeros to a whole MiB |
//! | ..=n-34           | zeros: the last MiB of the disk holds only the backup table     |
//! | n-33..=n-2        | backup partition entry array                                    |
//! | n-1               | backup GPT header                                               |
//!
//! Every byte is a pure function of [`write()`]'s arguments:
//! - The disk GUID and each partition's unique GUID, which partitioning tools pick at random,
//!   are given by the caller (bake derives them from the content: `output::disk`).
//! - The sizes follow from the partitions' sizes alone. Each partition is its contents rounded
//!   up to a whole MiB, and the disk is a whole number of MiB: a partition is then a multiple
//!   of any filesystem block size up to 1 MiB, a later partition added by a tool stays aligned,
//!   and clouds that import raw disks (Azure among them) accept only sizes in whole MiB. The
//!   cost is at most 1 MiB of zeros a partition and 1 MiB at the start, which compress to
//!   nothing.
//! - The protective MBR carries no boot code and no disk signature, and its ending CHS address
//!   is `0xffffff`, the specification's value for "cannot be represented": any real CHS value
//!   would depend on a made-up disk geometry.
//! - Unused entries and every reserved field are zero.
//!
//! Hand-written, not the `gpt` crate: that crate edits a table in place on a seekable disk of
//! known size, while [`write()`] streams the whole disk front to back into any `Write` (a
//! compressor, a hashing writer) with the partitions' contents copied through and never held
//! in memory.

pub mod read;
#[cfg(test)]
mod tests;
pub mod write;

pub use read::{Partition, Table, is_gpt, read};
pub use write::{NewPartition, disk_size, write};

/// Bytes in a logical block: the only block size written or read.
pub const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// Where the first partition starts: 1 MiB, the alignment every partitioning tool uses.
const PARTITION_LBA: u64 = MIB / SECTOR;
const ENTRY_COUNT: u32 = 128;
const ENTRY_SIZE: u32 = 128;
/// Blocks of one entry array: 128 entries of 128 bytes, the minimum the specification allows.
const ARRAY_SECTORS: u64 = (ENTRY_COUNT as u64 * ENTRY_SIZE as u64) / SECTOR;
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// GPT revision 1.0.
const REVISION: u32 = 0x0001_0000;
/// Bytes of a header that its CRC32 covers, as this writer writes it.
const HEADER_SIZE: u32 = 92;
/// UTF-16 code units of a partition name.
pub const NAME_UNITS: usize = 36;
/// The largest entry array the reader accepts, so that a hostile count cannot make it allocate
/// much (partitioning tools write 16 KiB).
const MAX_ARRAY_BYTES: u64 = MIB;

/// Partition type of a root partition for x86-64 (Discoverable Partitions Specification): so
/// systemd and container managers find it without `root=`.
pub const ROOT_X86_64: [u8; 16] = guid("4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
/// Partition type of an EFI system partition (UEFI specification, 5.3.3): where firmware looks
/// for boot loaders.
pub const ESP: [u8; 16] = guid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
/// Partition type of the dm-verity hash tree of an x86-64 root partition (Discoverable
/// Partitions Specification).
pub const ROOT_VERITY_X86_64: [u8; 16] = guid("2c7357ed-ebd2-46d9-aec1-23d437ec2bf5");
/// Partition attribute bit 60: mount read-only (Discoverable Partitions Specification), for a
/// file system that never changes.
pub const READ_ONLY: u64 = 1 << 60;

/// Converts between a GUID's text byte order and its on-disk order: on disk the first three
/// fields (4, 2 and 2 bytes) are little-endian, the last 8 bytes are as written (UEFI
/// specification, appendix A). The conversion is its own inverse.
pub const fn swap_guid_fields(b: [u8; 16]) -> [u8; 16] {
    [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]
}

/// The on-disk bytes of a GUID written as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; a malformed
/// text is a compile-time error where this initialises a constant.
pub const fn guid(text: &str) -> [u8; 16] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit in a GUID"),
        }
    }
    let text = text.as_bytes();
    assert!(text.len() == 36, "a GUID is 36 characters");
    let mut bytes = [0u8; 16];
    let (mut i, mut n) = (0, 0);
    while i < 36 {
        if i == 8 || i == 13 || i == 18 || i == 23 {
            assert!(text[i] == b'-', "a GUID has dashes after 8, 12, 16 and 20 digits");
            i += 1;
            continue;
        }
        bytes[n] = nibble(text[i]) << 4 | nibble(text[i + 1]);
        n += 1;
        i += 2;
    }
    swap_guid_fields(bytes)
}

/// The canonical text of a GUID given in on-disk order: lower-case, as `blkid` prints it.
pub fn format_guid(guid: &[u8; 16]) -> String {
    let text: String = swap_guid_fields(*guid).iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &text[0..8], &text[8..12], &text[12..16], &text[16..20], &text[20..32])
}

/// Why a copy of the table (or a header) cannot be used, worded as the end of a sentence that
/// starts with "the primary header": `is damaged: ...`, `says it is at LBA 7`.
#[derive(Debug)]
struct Damage(String);

impl From<String> for Damage {
    fn from(text: String) -> Damage {
        Damage(text)
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A GPT header's fields (UEFI specification, 5.3.2 "GPT Header").
#[derive(Debug)]
struct Header {
    my_lba: u64,
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: [u8; 16],
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
    entries_crc: u32,
}

impl Header {
    /// The header's block: the fields at their offsets, the CRC32 of the first 92 bytes (taken
    /// with the CRC field zero) at offset 16, zeros to the end of the block.
    fn encode(&self) -> [u8; 512] {
        let mut block = [0u8; 512];
        block[0..8].copy_from_slice(SIGNATURE);
        block[8..12].copy_from_slice(&REVISION.to_le_bytes());
        block[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
        // 16..20: the CRC, below; 20..24: reserved.
        block[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        block[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        block[40..48].copy_from_slice(&self.first_usable.to_le_bytes());
        block[48..56].copy_from_slice(&self.last_usable.to_le_bytes());
        block[56..72].copy_from_slice(&self.disk_guid);
        block[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        block[80..84].copy_from_slice(&self.entry_count.to_le_bytes());
        block[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        block[88..92].copy_from_slice(&self.entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&block[..HEADER_SIZE as usize]);
        block[16..20].copy_from_slice(&crc.to_le_bytes());
        block
    }

    /// Reads and checks a header block: signature, revision, size, CRC32. The message of an
    /// error says what is wrong, without saying which header it is.
    fn decode(block: &[u8; 512]) -> Result<Header, Damage> {
        if &block[0..8] != SIGNATURE {
            return Err("no `EFI PART` signature".to_string().into());
        }
        let revision = u32_at(block, 8);
        if revision >> 16 != 1 {
            return Err(format!("revision {:#010x} is not 1.x", revision).into());
        }
        let size = u32_at(block, 12);
        if !(HEADER_SIZE..=SECTOR as u32).contains(&size) {
            return Err(format!("header size {size} is outside {HEADER_SIZE}..={SECTOR}").into());
        }
        let stored = u32_at(block, 16);
        let mut copy = *block;
        copy[16..20].fill(0);
        let computed = crc32fast::hash(&copy[..size as usize]);
        if stored != computed {
            return Err(format!("header CRC32 is {stored:#010x}, its bytes give {computed:#010x}").into());
        }
        Ok(Header {
            my_lba: u64_at(block, 24),
            alternate_lba: u64_at(block, 32),
            first_usable: u64_at(block, 40),
            last_usable: u64_at(block, 48),
            disk_guid: block[56..72].try_into().expect("16 bytes"),
            entries_lba: u64_at(block, 72),
            entry_count: u32_at(block, 80),
            entry_size: u32_at(block, 84),
            entries_crc: u32_at(block, 88),
        })
    }
}

/// One partition entry's fields (UEFI specification, 5.3.3 "GPT Partition Entry Array").
struct Entry {
    type_guid: [u8; 16],
    unique_guid: [u8; 16],
    first_lba: u64,
    last_lba: u64,
    attributes: u64,
    name: [u16; NAME_UNITS],
}

impl Entry {
    fn encode(&self) -> [u8; ENTRY_SIZE as usize] {
        let mut bytes = [0u8; ENTRY_SIZE as usize];
        bytes[0..16].copy_from_slice(&self.type_guid);
        bytes[16..32].copy_from_slice(&self.unique_guid);
        bytes[32..40].copy_from_slice(&self.first_lba.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.last_lba.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.attributes.to_le_bytes());
        for (i, unit) in self.name.iter().enumerate() {
            bytes[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
        bytes
    }

    /// The first 128 bytes of an entry; the rest of a larger entry is reserved.
    fn decode(bytes: &[u8]) -> Entry {
        let mut name = [0u16; NAME_UNITS];
        for (i, unit) in name.iter_mut().enumerate() {
            *unit = u16::from_le_bytes([bytes[56 + 2 * i], bytes[57 + 2 * i]]);
        }
        Entry {
            type_guid: bytes[0..16].try_into().expect("16 bytes"),
            unique_guid: bytes[16..32].try_into().expect("16 bytes"),
            first_lba: u64_at(bytes, 32),
            last_lba: u64_at(bytes, 40),
            attributes: u64_at(bytes, 48),
            name,
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
