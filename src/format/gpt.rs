//! GPT disk images: a protective MBR, a GUID Partition Table and one partition holding the root
//! filesystem; and a reader that finds the partitions of any GPT disk image.
//!
//! The layout follows the UEFI specification, chapter 5 ("GUID Partition Table (GPT) Disk
//! Layout"), with 512-byte logical blocks (LBAs), for a disk of `n` blocks:
//!
//! | LBA               | contents                                                        |
//! |-------------------|-----------------------------------------------------------------|
//! | 0                 | protective MBR: one partition of type `0xee` over the disk      |
//! | 1                 | primary GPT header                                              |
//! | 2..=33            | primary partition entry array: 128 entries of 128 bytes         |
//! | 34..=2047         | zeros, so that the partition starts at 1 MiB                    |
//! | 2048..            | the partition: the filesystem, then zeros to a whole MiB        |
//! | ..=n-34           | zeros: the last MiB of the disk holds only the backup table     |
//! | n-33..=n-2        | backup partition entry array                                    |
//! | n-1               | backup GPT header                                               |
//!
//! Every byte is a pure function of [`write()`]'s arguments:
//! - The disk GUID and the partition's unique GUID, which partitioning tools pick at random, are
//!   derived from the label and the filesystem's SHA-256 (see `derived_guid`).
//! - The sizes follow from the filesystem's size alone. The partition is the filesystem rounded
//!   up to a whole MiB, and the disk is a whole number of MiB: the partition is then a multiple
//!   of any filesystem block size up to 1 MiB, a later partition added by a tool stays aligned, and clouds
//!   that import raw disks (Azure among them) accept only sizes in whole MiB. The cost is at
//!   most 2 MiB of zeros, which compress to nothing.
//! - The protective MBR carries no boot code and no disk signature, and its ending CHS address
//!   is `0xffffff`, the specification's value for "cannot be represented": any real CHS value
//!   would depend on a made-up disk geometry.
//! - Unused entries and every reserved field are zero.
//!
//! The partition has the Discoverable Partitions Specification's type for an x86-64 root
//! partition, so systemd and container managers find it without `root=`, and its read-only
//! attribute (bit 60), so that they mount it read-only: the filesystem bake writes never changes.
//!
//! Hand-written, not the `gpt` crate: that crate edits a table in place on a seekable disk of
//! known size, while [`write()`] streams the whole disk front to back into any [`Write`] (a
//! compressor, a hashing writer) with the filesystem copied through and never held in memory.

use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest as _, Sha256};

use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::{self, Digest};

/// Bytes in a logical block: the only block size written or read.
pub const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// Where the partition starts: 1 MiB, the alignment every partitioning tool uses.
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

/// Partition type of a root partition for x86-64 (Discoverable Partitions Specification).
pub const ROOT_X86_64: [u8; 16] = guid("4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
/// Partition attribute bit 60: mount read-only (Discoverable Partitions Specification).
pub const READ_ONLY: u64 = 1 << 60;

/// Size in bytes of the disk [`write()`] makes for a filesystem of `fs_size` bytes: 1 MiB before
/// the partition, the partition (`fs_size` rounded up to a whole MiB, at least 1 MiB), and
/// 1 MiB after it for the backup table. Saturates at `u64::MAX` for sizes no disk has.
pub fn disk_size(fs_size: u64) -> u64 {
    Layout::new(fs_size).map_or(u64::MAX, |layout| layout.sectors * SECTOR)
}

/// Where things go on the disk, in LBAs.
struct Layout {
    /// Blocks on the disk.
    sectors: u64,
    /// The partition's last block (it starts at `PARTITION_LBA`).
    partition_last: u64,
}

impl Layout {
    fn new(fs_size: u64) -> Option<Layout> {
        let partition = fs_size.div_ceil(MIB).max(1).checked_mul(MIB / SECTOR)?;
        let sectors = partition.checked_add(2 * MIB / SECTOR)?;
        sectors.checked_mul(SECTOR)?; // the size in bytes fits too
        Some(Layout { sectors, partition_last: PARTITION_LBA + partition - 1 })
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

/// Writes a whole disk image into `out`: a GPT with one partition, named `label`, holding the
/// `fs_size` bytes `fs` yields, whose SHA-256 is `fs_sha256`. Returns `out`.
///
/// `label` must fit a partition name (36 UTF-16 units, no NUL); a longer one is refused, not
/// cut, so two images never share a name by accident. `fs` must yield exactly `fs_size` bytes
/// with digest `fs_sha256`: the GUIDs stand for that content, so a mismatch is an error.
pub fn write<W: Write>(label: &str, fs: &mut dyn Read, fs_size: u64, fs_sha256: &Digest, mut out: W) -> Result<W> {
    let name = partition_name(label)?;
    let layout = Layout::new(fs_size)
        .ok_or_else(|| Error::input(format!("a filesystem of {fs_size} bytes is too large for a disk image")))?;
    let disk_guid = derived_guid("disk", label, fs_sha256);
    let entry = Entry {
        type_guid: ROOT_X86_64,
        unique_guid: derived_guid("root partition", label, fs_sha256),
        first_lba: PARTITION_LBA,
        last_lba: layout.partition_last,
        attributes: READ_ONLY,
        name,
    };
    let mut entries = vec![0u8; (ARRAY_SECTORS * SECTOR) as usize];
    entries[..ENTRY_SIZE as usize].copy_from_slice(&entry.encode());
    let entries_crc = crc32fast::hash(&entries);
    let primary = layout.header(1, disk_guid, entries_crc).encode();
    let backup = layout.header(layout.last_lba(), disk_guid, entries_crc).encode();

    let failed =
        |what: &str, e: io::Error| Error::failure(format!("cannot write the disk image: {what}: {}", io_cause(&e)));
    out.write_all(&protective_mbr(layout.sectors)).map_err(|e| failed("the protective MBR", e))?;
    out.write_all(&primary).map_err(|e| failed("the primary GPT header", e))?;
    out.write_all(&entries).map_err(|e| failed("the primary partition entries", e))?;
    let gap = (PARTITION_LBA - 2 - ARRAY_SECTORS) * SECTOR;
    zeros(&mut out, gap).map_err(|e| failed("the gap before the partition", e))?;
    copy_filesystem(fs, fs_size, fs_sha256, &mut out)?;
    let rest = (layout.backup_array_lba() - PARTITION_LBA) * SECTOR - fs_size;
    zeros(&mut out, rest).map_err(|e| failed("the zeros after the filesystem", e))?;
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
            "image name `{label}` is {} UTF-16 units long; a GPT partition name holds at most {NAME_UNITS}",
            units.len()
        )));
    }
    if units.contains(&0) {
        return Err(Error::input(format!(
            "image name `{}` contains a NUL, which ends a GPT partition name",
            label.escape_debug()
        )));
    }
    let mut name = [0u16; NAME_UNITS];
    name[..units.len()].copy_from_slice(&units);
    Ok(name)
}

/// A GUID that stands for one image: the first 16 bytes of SHA-256 over a domain string, `which`
/// GUID it is, the label and the filesystem's digest, shaped as an RFC 9562 version 8 UUID (the
/// version for UUIDs made by other rules; its appendix B.2 shows one made from SHA-256 this way). The
/// same inputs give the same GUID; another filesystem, label or role gives another.
fn derived_guid(which: &str, label: &str, fs_sha256: &Digest) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"bake gpt guid v1\0");
    for part in [which.as_bytes(), label.as_bytes()] {
        // Length-prefixed, so that no two (which, label) pairs hash the same bytes.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.update(fs_sha256);
    swap_guid_fields(crate::base::hash::uuid_v8(&hasher.finalize()))
}

/// Converts between a GUID's text byte order and its on-disk order: on disk the first three
/// fields (4, 2 and 2 bytes) are little-endian, the last 8 bytes are as written (UEFI
/// specification, appendix A). The conversion is its own inverse.
const fn swap_guid_fields(b: [u8; 16]) -> [u8; 16] {
    [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]
}

/// The on-disk bytes of a GUID written as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`; a malformed
/// text is a compile-time error where this initialises a constant.
const fn guid(text: &str) -> [u8; 16] {
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

/// Copies exactly `size` bytes of `fs` into `out`, checking that they are all there, that there
/// are no more, and that they have the digest the GUIDs were derived from.
fn copy_filesystem(fs: &mut dyn Read, size: u64, sha256: &Digest, out: &mut impl Write) -> Result<()> {
    let failed =
        |e: io::Error| Error::failure(format!("cannot write the disk image: the filesystem: {}", io_cause(&e)));
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
            "cannot write the disk image: the filesystem gave {more} {had} bytes where {size} were promised"
        )));
    }
    let digest: Digest = hasher.finalize().into();
    if &digest != sha256 {
        return Err(Error::failure(format!(
            "cannot write the disk image: the filesystem's SHA-256 is `{}`, not the `{}` it was given with",
            hash::hex(&digest),
            hash::hex(sha256)
        )));
    }
    Ok(())
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
    fn decode(block: &[u8; 512]) -> Result<Header, String> {
        if &block[0..8] != SIGNATURE {
            return Err("no `EFI PART` signature".to_string());
        }
        let revision = u32_at(block, 8);
        if revision >> 16 != 1 {
            return Err(format!("revision {:#010x} is not 1.x", revision));
        }
        let size = u32_at(block, 12);
        if !(HEADER_SIZE..=SECTOR as u32).contains(&size) {
            return Err(format!("header size {size} is outside {HEADER_SIZE}..={SECTOR}"));
        }
        let stored = u32_at(block, 16);
        let mut copy = *block;
        copy[16..20].fill(0);
        let computed = crc32fast::hash(&copy[..size as usize]);
        if stored != computed {
            return Err(format!("header CRC32 is {stored:#010x}, its bytes give {computed:#010x}"));
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

/// What [`read`] found.
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
/// the mark of a GPT disk. The GPT header itself is not required, so that [`read`] gets the
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
fn read_at(input: &mut (impl Read + Seek), len: u64, offset: u64, buf: &mut [u8]) -> Result<(), String> {
    match offset.checked_add(buf.len() as u64) {
        Some(end) if end <= len => {}
        _ => return Err(format!("lies past the end of the image ({len} bytes)")),
    }
    input
        .seek(SeekFrom::Start(offset))
        .and_then(|_| input.read_exact(buf))
        .map_err(|e| format!("cannot be read: {}", io_cause(&e)))
}

/// Reads the header at `lba` and the entries it points to. An error says why this copy of the
/// table is unusable, as the end of a sentence that starts with "the primary header".
fn read_copy(input: &mut (impl Read + Seek), len: u64, lba: u64) -> Result<Table, String> {
    let mut block = [0u8; 512];
    read_at(input, len, lba * SECTOR, &mut block)?;
    let header = Header::decode(&block).map_err(|why| format!("is damaged: {why}"))?;
    if header.my_lba != lba {
        return Err(format!("says it is at LBA {}", header.my_lba));
    }
    let size = header.entry_size;
    if size < ENTRY_SIZE || !(size / ENTRY_SIZE).is_power_of_two() || size % ENTRY_SIZE != 0 {
        return Err(format!("gives an entry size of {size} bytes, not 128 times a power of two"));
    }
    let array_bytes = u64::from(header.entry_count) * u64::from(size);
    if array_bytes > MAX_ARRAY_BYTES {
        return Err(format!(
            "gives {} entries of {size} bytes, more than the {MAX_ARRAY_BYTES} bytes of entries this reader accepts",
            header.entry_count
        ));
    }
    let sectors = len / SECTOR;
    if header.first_usable > header.last_usable.saturating_add(1) || header.last_usable >= sectors {
        return Err(format!(
            "gives usable LBAs {}..={} on a disk of {sectors} blocks",
            header.first_usable, header.last_usable
        ));
    }
    let mut array = vec![0u8; array_bytes as usize];
    let offset = header.entries_lba.saturating_mul(SECTOR);
    read_at(input, len, offset, &mut array)
        .map_err(|why| format!("points to an entry array at LBA {} that {why}", header.entries_lba))?;
    let computed = crc32fast::hash(&array);
    if computed != header.entries_crc {
        return Err(format!(
            "has entries whose CRC32 is {computed:#010x}, not the {:#010x} it records",
            header.entries_crc
        ));
    }
    let mut partitions = Vec::new();
    for (i, bytes) in array.chunks_exact(size as usize).enumerate() {
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
            ));
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
    Ok(Table { disk_guid: header.disk_guid, partitions, primary_damage: None })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::base::hash::digest_bytes;

    /// `size` bytes that differ from block to block, so a misplaced block shows.
    fn filesystem(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
    }

    fn image(label: &str, fs: &[u8]) -> Vec<u8> {
        write(label, &mut &fs[..], fs.len() as u64, &digest_bytes(fs), Vec::new()).unwrap()
    }

    fn on_disk(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file.flush().unwrap();
        file
    }

    /// Runs a checker (`scripts/install-deps.sh` installs them) and returns what it printed.
    fn run(program: &str, args: &[&str], path: &Path) -> String {
        let output = Command::new(program)
            .args(args)
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{program}` (is it installed?): {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "`{program} {args:?}` failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    fn sfdisk_json(path: &Path) -> serde_json::Value {
        let json: serde_json::Value = serde_json::from_str(&run("sfdisk", &["--json"], path)).unwrap();
        json["partitiontable"].clone()
    }

    /// Puts `value` at `at` in the header block at `lba` and makes the header's CRC32 right again.
    fn patch_header(image: &mut [u8], lba: u64, at: usize, value: &[u8]) {
        let block = &mut image[(lba * SECTOR) as usize..][..512];
        block[at..at + value.len()].copy_from_slice(value);
        block[16..20].fill(0);
        let crc = crc32fast::hash(&block[..92]);
        block[16..20].copy_from_slice(&crc.to_le_bytes());
    }

    fn last_lba(image: &[u8]) -> u64 {
        image.len() as u64 / SECTOR - 1
    }

    #[test]
    fn sfdisk_fdisk_and_blkid_read_the_table_we_write() {
        let fs = filesystem(5000);
        let bytes = image("demo_1.0-x", &fs);
        let file = on_disk(&bytes);
        let table = read(Cursor::new(&bytes)).unwrap();
        let disk_guid = format_guid(&table.disk_guid);
        assert_eq!(table.disk_guid, derived_guid("disk", "demo_1.0-x", &digest_bytes(&fs)));

        let json = sfdisk_json(file.path());
        let sectors = bytes.len() as u64 / SECTOR;
        assert_eq!(json["label"], "gpt");
        assert_eq!(json["id"], disk_guid.to_uppercase());
        assert_eq!(json["firstlba"], 34);
        assert_eq!(json["lastlba"], sectors - 34);
        let partitions = json["partitions"].as_array().unwrap();
        assert_eq!(partitions.len(), 1);
        let partition = &partitions[0];
        assert_eq!(partition["start"], 2048);
        assert_eq!(partition["size"], 2048);
        assert_eq!(partition["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        assert_eq!(partition["uuid"], format_guid(&table.partitions[0].unique_guid).to_uppercase());
        assert_eq!(partition["name"], "demo_1.0-x");
        assert_eq!(partition["attrs"], "GUID:60");

        let fdisk = run("fdisk", &["-l"], file.path());
        assert!(fdisk.contains("Disklabel type: gpt"), "{fdisk}");
        assert!(fdisk.contains(&format!("Disk identifier: {}", disk_guid.to_uppercase())), "{fdisk}");
        assert!(fdisk.contains("2048  4095    2048   1M Linux root (x86-64)"), "{fdisk}");

        let blkid = run("blkid", &["-p", "-o", "export"], file.path());
        assert!(blkid.contains("PTTYPE=gpt"), "{blkid}");
        assert!(blkid.contains(&format!("PTUUID={disk_guid}")), "{blkid}");
    }

    #[test]
    fn sgdisk_finds_no_problems_at_any_size() {
        for size in [1, 511, 512, 513, 5000, MIB as usize - 1, MIB as usize, MIB as usize + 1] {
            let bytes = image("root", &filesystem(size));
            let file = on_disk(&bytes);
            let verdict = run("sgdisk", &["-v"], file.path());
            // sgdisk also finds "no problems" in a table it could not read and replaced in
            // memory; the free space proves it read ours: the usable blocks less the partition.
            let usable = bytes.len() as u64 / SECTOR - 2 * 34 + 1;
            let free = usable - (size as u64).div_ceil(MIB) * MIB / SECTOR;
            assert!(verdict.contains(&format!("No problems found. {free} free sectors")), "size {size}: {verdict}");
            assert!(!verdict.contains("Creating new GPT"), "size {size}: {verdict}");
        }
    }

    #[test]
    fn the_partition_holds_the_filesystem_then_zeros() {
        for size in [1, 511, 512, 513, MIB as usize - 1, MIB as usize, MIB as usize + 1, 3 * MIB as usize + 7] {
            let fs = filesystem(size);
            let bytes = image("root", &fs);
            assert_eq!(bytes.len() as u64, disk_size(size as u64), "size {size}");
            assert_eq!(bytes.len() as u64 % MIB, 0, "size {size}: the disk is whole MiB");
            let table = read(Cursor::new(&bytes)).unwrap();
            assert_eq!(table.primary_damage, None);
            let [partition] = &table.partitions[..] else { panic!("{:?}", table.partitions) };
            assert_eq!((partition.index, partition.first_lba, partition.offset), (1, 2048, MIB));
            assert_eq!(partition.size, (size as u64).div_ceil(MIB) * MIB, "size {size}");
            assert_eq!(partition.last_lba, 2047 + partition.size / SECTOR);
            let inside = &bytes[partition.offset as usize..][..partition.size as usize];
            assert_eq!(&inside[..size], &fs[..], "size {size}");
            assert!(inside[size..].iter().all(|&b| b == 0), "size {size}: the partition's tail is not zero");
            // Between the partition and the backup array, and between the primary array and
            // the partition: zeros.
            let backup_array = bytes.len() - 33 * 512;
            assert!(bytes[(partition.offset + partition.size) as usize..backup_array].iter().all(|&b| b == 0));
            assert!(bytes[34 * 512..MIB as usize].iter().all(|&b| b == 0));
        }
        assert_eq!(disk_size(0), 3 * MIB);
        assert_eq!(disk_size(1), 3 * MIB);
        assert_eq!(disk_size(MIB), 3 * MIB);
        assert_eq!(disk_size(MIB + 1), 4 * MIB);
        assert_eq!(disk_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn headers_and_protective_mbr_follow_the_specification() {
        let bytes = image("root", &filesystem(1000));
        let n = bytes.len() as u64 / SECTOR;
        // Protective MBR: one record, not bootable, CHS 0/0/2 to "not representable", type 0xee,
        // LBA 1 for the rest of the disk.
        let mut record = vec![0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0];
        record.extend_from_slice(&(n as u32 - 1).to_le_bytes());
        assert_eq!(&bytes[446..462], &record[..]);
        assert!(bytes[..446].iter().chain(&bytes[462..510]).all(|&b| b == 0));
        assert_eq!(&bytes[510..512], &[0x55, 0xaa]);
        for (lba, alternate, entries) in [(1, n - 1, 2), (n - 1, 1, n - 33)] {
            let block = &bytes[(lba * SECTOR) as usize..][..512];
            assert_eq!(&block[0..8], b"EFI PART");
            assert_eq!(u32_at(block, 8), 0x0001_0000);
            assert_eq!(u32_at(block, 12), 92);
            assert_eq!(u32_at(block, 20), 0);
            assert_eq!((u64_at(block, 24), u64_at(block, 32)), (lba, alternate));
            assert_eq!((u64_at(block, 40), u64_at(block, 48)), (34, n - 34));
            assert_eq!(u64_at(block, 72), entries);
            assert_eq!((u32_at(block, 80), u32_at(block, 84)), (128, 128));
            assert!(block[92..].iter().all(|&b| b == 0));
            let array = &bytes[(entries * SECTOR) as usize..][..128 * 128];
            assert_eq!(u32_at(block, 88), crc32fast::hash(array));
            let mut covered = block[..92].to_vec();
            covered[16..20].fill(0);
            assert_eq!(u32_at(block, 16), crc32fast::hash(&covered), "the header CRC covers 92 bytes");
            assert!(array[128..].iter().all(|&b| b == 0), "unused entries are zero");
        }
        assert_eq!(&bytes[1024..1024 + 16384], &bytes[(n as usize - 33) * 512..][..16384]);
        assert_eq!(&bytes[512 + 56..512 + 72], &bytes[(n as usize - 1) * 512 + 56..][..16], "one disk GUID");
        // The first entry: type, attributes, name in UTF-16LE.
        let entry = &bytes[1024..1152];
        assert_eq!(&entry[0..4], &[0xe3, 0xbc, 0x68, 0x4f]);
        assert_eq!(u64_at(entry, 48), 1 << 60);
        assert_eq!(&entry[56..66], b"r\0o\0o\0t\0\0\0");
    }

    #[test]
    fn guids_are_text_in_mixed_endian_order() {
        assert_eq!(format_guid(&ROOT_X86_64), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
        assert_eq!(
            ROOT_X86_64,
            [0xe3, 0xbc, 0x68, 0x4f, 0xcd, 0xe8, 0xb1, 0x4d, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09]
        );
        assert_eq!(guid("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"), ROOT_X86_64);
    }

    #[test]
    fn guids_follow_the_content_and_nothing_else() {
        let fs = filesystem(3000);
        let bytes = image("root", &fs);
        assert_eq!(bytes, image("root", &fs), "two writes differ");
        let guids = |bytes: &[u8]| {
            let table = read(Cursor::new(bytes)).unwrap();
            (table.disk_guid, table.partitions[0].unique_guid)
        };
        let (disk, partition) = guids(&bytes);
        assert_ne!(disk, partition);
        for guid in [disk, partition] {
            let text = format_guid(&guid);
            assert_eq!(&text[14..15], "8", "version 8: {text}");
            assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "RFC variant: {text}");
        }
        let mut other_fs = fs.clone();
        other_fs[2999] ^= 1;
        let (other_disk, other_partition) = guids(&image("root", &other_fs));
        assert_ne!(other_disk, disk);
        assert_ne!(other_partition, partition);
        let (renamed_disk, renamed_partition) = guids(&image("root2", &fs));
        assert_ne!(renamed_disk, disk);
        assert_ne!(renamed_partition, partition);
    }

    #[test]
    fn names_that_do_not_fit_are_refused_not_cut() {
        let fs = filesystem(10);
        let write_named = |label: &str| write(label, &mut &fs[..], 10, &digest_bytes(&fs), Vec::new());
        let longest = "n".repeat(36);
        let table = read(Cursor::new(write_named(&longest).unwrap())).unwrap();
        assert_eq!(table.partitions[0].name, longest);
        let err = write_named(&"n".repeat(37)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("is 37 UTF-16 units long; a GPT partition name holds at most 36"), "{err}");
        // Outside the basic plane a character takes two units.
        assert!(write_named(&"\u{1f35e}".repeat(18)).is_ok());
        assert!(write_named(&"\u{1f35e}".repeat(19)).is_err());
        assert!(write_named("a\0b").unwrap_err().message().contains("contains a NUL"));
    }

    #[test]
    fn a_filesystem_unlike_its_size_or_digest_is_refused() {
        let fs = filesystem(1000);
        let digest = digest_bytes(&fs);
        let short = write("root", &mut &fs[..999], 1000, &digest, Vec::new()).unwrap_err();
        assert!(short.message().contains("gave only 999 bytes where 1000 were promised"), "{short}");
        let long = write("root", &mut &fs[..], 999, &digest_bytes(&fs[..999]), Vec::new()).unwrap_err();
        assert!(long.message().contains("gave more than 999 bytes where 999 were promised"), "{long}");
        let wrong = write("root", &mut &fs[..], 1000, &digest_bytes(b"other"), Vec::new()).unwrap_err();
        assert!(wrong.message().contains("the filesystem's SHA-256 is"), "{wrong}");
        assert_eq!(wrong.exit_code(), 1);
    }

    #[test]
    fn the_reader_agrees_with_sfdisk_on_tables_sgdisk_and_sfdisk_make() {
        let blank = vec![0u8; 8 * MIB as usize];
        let sgdisk = on_disk(&blank);
        run(
            "sgdisk",
            &[
                "-n",
                "1:2048:+1M",
                "-t",
                "1:ef00",
                "-c",
                "1:EFI system",
                "-n",
                "3:0:+2M",
                "-t",
                "3:8304",
                "-c",
                "3:root",
            ],
            sgdisk.path(),
        );
        let sfdisk = on_disk(&blank);
        let script = "label: gpt\nstart=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"d\u{e4}ta\"\n\
                      size=2048, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n";
        let mut child = Command::new("sfdisk")
            .arg("-q")
            .arg(sfdisk.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("cannot run `sfdisk` (is it installed?)");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());

        for (file, count) in [(&sgdisk, 2), (&sfdisk, 2)] {
            let table = read(std::fs::File::open(file.path()).unwrap()).unwrap();
            let json = sfdisk_json(file.path());
            assert_eq!(json["id"], format_guid(&table.disk_guid).to_uppercase());
            assert_eq!(table.partitions.len(), count);
            let listed = json["partitions"].as_array().unwrap();
            for (partition, theirs) in table.partitions.iter().zip(listed) {
                let node = theirs["node"].as_str().unwrap();
                assert!(node.ends_with(&partition.index.to_string()), "{node} is not partition {}", partition.index);
                assert_eq!(theirs["start"], partition.first_lba);
                assert_eq!(theirs["size"].as_u64().unwrap() * SECTOR, partition.size);
                assert_eq!(theirs["type"], format_guid(&partition.type_guid).to_uppercase());
                assert_eq!(theirs["uuid"], format_guid(&partition.unique_guid).to_uppercase());
                assert_eq!(theirs["name"].as_str().unwrap_or(""), partition.name);
            }
        }
        let table = read(std::fs::File::open(sgdisk.path()).unwrap()).unwrap();
        assert_eq!(table.partitions[1].index, 3, "an empty slot keeps its number");
        assert_eq!(table.partitions[0].name, "EFI system");
    }

    #[test]
    fn a_damaged_primary_table_is_read_from_the_backup_and_said() {
        let good = image("root", &filesystem(2000));
        let expected = read(Cursor::new(&good)).unwrap();

        let mut header = good.clone();
        header[512 + 60] ^= 0xff; // in the disk GUID
        let table = read(Cursor::new(&header)).unwrap();
        assert_eq!(table.partitions, expected.partitions);
        assert_eq!(table.disk_guid, expected.disk_guid);
        let damage = table.primary_damage.unwrap();
        assert!(damage.starts_with("the primary GPT header (LBA 1) is damaged: header CRC32 is"), "{damage}");

        let mut entries = good.clone();
        entries[1024 + 100] ^= 1; // in the first entry's name
        let damage = read(Cursor::new(&entries)).unwrap().primary_damage.unwrap();
        assert!(damage.contains("has entries whose CRC32 is"), "{damage}");

        let mut signature = good.clone();
        signature[512..520].copy_from_slice(b"NOT PART");
        let damage = read(Cursor::new(&signature)).unwrap().primary_damage.unwrap();
        assert!(damage.contains("no `EFI PART` signature"), "{damage}");

        let mut both = header.clone();
        let last = last_lba(&both) as usize;
        both[last * 512 + 60] ^= 0xff;
        let err = read(Cursor::new(&both)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.message().starts_with(&format!(
                "no usable GPT: the primary header (LBA 1) is damaged: header CRC32 is \
                 {:#010x}, its bytes give",
                u32_at(&both[512..], 16)
            )),
            "{err}"
        );
        assert!(err.message().contains(&format!("the backup header (LBA {last}) is damaged")), "{err}");
    }

    #[test]
    fn hostile_sizes_and_positions_are_errors_not_panics() {
        let good = image("root", &filesystem(2000));
        let last = last_lba(&good);
        let damage_in_both = |at: usize, value: &[u8]| {
            let mut bytes = good.clone();
            patch_header(&mut bytes, 1, at, value);
            patch_header(&mut bytes, last, at, value);
            read(Cursor::new(&bytes)).unwrap_err().message().to_string()
        };
        let absurd_count = damage_in_both(80, &u32::MAX.to_le_bytes());
        assert!(absurd_count.contains("gives 4294967295 entries of 128 bytes, more than"), "{absurd_count}");
        let odd_size = damage_in_both(84, &100u32.to_le_bytes());
        assert!(odd_size.contains("entry size of 100 bytes, not 128 times a power of two"), "{odd_size}");
        let huge_size = damage_in_both(84, &(1u32 << 31).to_le_bytes());
        assert!(huge_size.contains("more than the 1048576 bytes"), "{huge_size}");
        let far_entries = damage_in_both(72, &u64::MAX.to_le_bytes());
        assert!(
            far_entries.contains("entry array at LBA 18446744073709551615 that lies past the end"),
            "{far_entries}"
        );
        let far_usable = damage_in_both(48, &u64::MAX.to_le_bytes());
        assert!(far_usable.contains("gives usable LBAs 34..=18446744073709551615"), "{far_usable}");
        let misplaced = damage_in_both(24, &7u64.to_le_bytes());
        assert!(misplaced.contains("says it is at LBA 7"), "{misplaced}");
        let big_header = damage_in_both(12, &513u32.to_le_bytes());
        assert!(big_header.contains("header size 513 is outside 92..=512"), "{big_header}");

        // A partition outside the usable blocks, with every CRC right.
        let mut outside = good.clone();
        for (lba, entries) in [(1, 2), (last, last - 32)] {
            let at = (entries * SECTOR) as usize + 40;
            outside[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            let crc = crc32fast::hash(&outside[(entries * SECTOR) as usize..][..16384]);
            patch_header(&mut outside, lba, 88, &crc.to_le_bytes());
        }
        let err = read(Cursor::new(&outside)).unwrap_err();
        assert!(err.message().contains("has partition 1 at LBAs 2048..=18446744073709551615, outside"), "{err}");
    }

    #[test]
    fn truncated_and_garbage_images_are_errors_not_panics() {
        let good = image("root", &filesystem(2000));
        for cut in [0, 100, 511, 512, 600, 1024, 1024 + 16383, MIB as usize, good.len() - MIB as usize] {
            let err = read(Cursor::new(&good[..cut])).unwrap_err();
            assert_eq!(err.exit_code(), 2, "cut at {cut}: {err}");
        }
        let err = read(Cursor::new(&good[..MIB as usize + 4096])).unwrap_err();
        assert!(
            err.message().contains("primary header (LBA 1) gives usable LBAs 34..=6110 on a disk of 2056 blocks"),
            "{err}"
        );
        // Losing the last block loses only the backup, which the primary does not need.
        assert!(read(Cursor::new(&good[..good.len() - 1])).is_ok());

        assert!(read(Cursor::new(vec![0u8; 4096])).unwrap_err().message().contains("no MBR boot signature"));
        let mut mbr_only = vec![0u8; 4096];
        mbr_only[510..512].copy_from_slice(&[0x55, 0xaa]);
        mbr_only[446 + 4] = 0x83;
        assert!(read(Cursor::new(&mbr_only)).unwrap_err().message().contains("no protective partition"));

        // Every single byte of the MBR, the primary header and the first entry set to 0xff, then
        // pseudo-random garbage behind a protective MBR: whatever comes back, nothing panics.
        for at in 0..1024 + 128 {
            let mut bytes = good.clone();
            bytes[at] = 0xff;
            let _ = read(Cursor::new(&bytes));
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut garbage = vec![0u8; 64 * 1024];
        for _ in 0..64 {
            for byte in garbage.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            garbage[446..462].copy_from_slice(&good[446..462]);
            garbage[510..512].copy_from_slice(&[0x55, 0xaa]);
            garbage[512..520].copy_from_slice(b"EFI PART");
            assert!(read(Cursor::new(&garbage)).is_err());
        }
    }

    #[test]
    fn is_gpt_wants_a_protective_mbr() {
        let good = image("root", &filesystem(10));
        assert!(is_gpt(&good[..512]));
        assert!(is_gpt(&good[..1024]));
        let mut damaged_header = good[..1024].to_vec();
        damaged_header[512] = 0;
        assert!(is_gpt(&damaged_header), "the backup may still be good");
        assert!(!is_gpt(&good[..511]));
        assert!(!is_gpt(&[0u8; 1024]));
        assert!(!is_gpt(b"070701000000010000"));
    }
}
