//! FAT32 file systems, for the EFI system partition: a writer that lays out a whole volume
//! front to back from a list of files ([`write()`]), and a reader that lists the files of a
//! FAT32 volume with their digests ([`read()`]).
//!
//! The layout follows Microsoft's FAT specification ("FAT: General Overview of On-Disk Format")
//! with 512-byte sectors and one sector per cluster, for a volume of `n` sectors:
//!
//! | sector            | contents                                                     |
//! |-------------------|--------------------------------------------------------------|
//! | 0                 | boot sector with the BIOS parameter block                    |
//! | 1                 | FSInfo: free cluster count and the next free cluster         |
//! | 6, 7              | backup boot sector and backup FSInfo                         |
//! | 32..              | two copies of the FAT, 4 bytes per cluster                   |
//! | ..                | clusters from 2: the root directory, then each directory and |
//! |                   | file in path order, each in consecutive clusters             |
//! | ..=n-1            | free clusters, zero                                          |
//!
//! Every byte is a pure function of [`write()`]'s arguments:
//! - The volume serial, which `mkfs.vfat` takes from the clock, is given by the caller (bake
//!   derives it from the content), as is the label.
//! - Every time stamp is the one time given, in UTC, clamped to what FAT can hold (1980-01-01
//!   to 2107-12-31, to two seconds).
//! - Names are 8.3 names only, upper case, so there are no long-name entries (whose short
//!   aliases tools derive in ways that differ); `EFI/BOOT/BOOTX64.EFI` needs nothing else.
//! - The size follows from the contents: the smallest whole number of MiB that holds them with
//!   at least 65,541 clusters, since a FAT32 volume must have 65,525 or more (and tools are
//!   unreliable within 16 of that boundary): 33 MiB for a 30 MB unified kernel image.
//!   FAT32, not FAT16, because the UEFI specification asks for FAT32 on system partitions of
//!   fixed disks.
//!
//! Hand-written, not the `fatfs` crate: that crate formats a volume in place on a seekable
//! device and stamps files with the clock, while [`write()`] streams the volume into any
//! `Write` (a hashing writer, the disk) with each file's contents copied through, never held in
//! memory, and every field chosen.

pub mod read;
#[cfg(test)]
mod tests;
pub mod write;

pub use read::{Volume, is_fat, read};
pub use write::{NewFile, Options, write};

use crate::base::time::{civil_from_days, days_from_civil};

pub const SECTOR: u64 = 512;
/// Sectors before the first FAT, as `mkfs.vfat` leaves for FAT32.
const RESERVED_SECTORS: u16 = 32;
const FAT_COUNT: u8 = 2;
const FSINFO_SECTOR: u16 = 1;
const BACKUP_BOOT_SECTOR: u16 = 6;
const ROOT_CLUSTER: u32 = 2;
/// The fewest clusters a FAT32 volume has, and a margin from the boundary with FAT16.
const MIN_CLUSTERS: u64 = 65_525 + 16;
/// The most clusters a FAT32 volume can have.
const MAX_CLUSTERS: u64 = 0x0fff_fff5 - 2;
/// A FAT entry that ends a chain.
const END_OF_CHAIN: u32 = 0x0fff_ffff;
const DIR_ENTRY: usize = 32;
const ATTR_READ_ONLY: u8 = 0x01;
const ATTR_VOLUME_ID: u8 = 0x08;
const ATTR_DIRECTORY: u8 = 0x10;
const ATTR_ARCHIVE: u8 = 0x20;
/// The attribute byte of a long-name entry.
const ATTR_LONG_NAME: u8 = 0x0f;

/// The first and last seconds FAT can record: 1980-01-01 00:00:00 and 2107-12-31 23:59:58 UTC.
const FIRST_TIME: u64 = 315_532_800;
const LAST_TIME: u64 = 4_354_819_198;

/// A time as FAT stores it: (date, time), clamped to what FAT can hold.
fn fat_time(seconds: u64) -> (u16, u16) {
    let seconds = seconds.clamp(FIRST_TIME, LAST_TIME);
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let rest = seconds % 86_400;
    let date = ((year - 1980) << 9) | (month << 5) | day;
    let time = ((rest / 3600) << 11) | ((rest / 60 % 60) << 5) | (rest % 60 / 2);
    (date as u16, time as u16)
}

/// Seconds since 1970 of a FAT (date, time); `None` for an impossible date.
fn unix_time(date: u16, time: u16) -> Option<u64> {
    let (year, month, day) = (1980 + u64::from(date >> 9), u64::from(date >> 5 & 0xf), u64::from(date & 0x1f));
    let (hour, minute, second) = (u64::from(time >> 11), u64::from(time >> 5 & 0x3f), u64::from(time & 0x1f) * 2);
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The 11-byte directory name of `name`, an 8.3 name in upper case (`BOOTX64.EFI`, `EFI`).
fn short_name(name: &str) -> Option<[u8; 11]> {
    let (base, extension) = name.split_once('.').unwrap_or((name, ""));
    let allowed = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || b"!#$%&'()-@^_`{}~".contains(&c);
    let fits = |part: &str, max: usize| part.len() <= max && part.bytes().all(allowed);
    if base.is_empty() || !fits(base, 8) || !fits(extension, 3) || (name.contains('.') && extension.is_empty()) {
        return None;
    }
    let mut out = [b' '; 11];
    out[..base.len()].copy_from_slice(base.as_bytes());
    out[8..8 + extension.len()].copy_from_slice(extension.as_bytes());
    if out[0] == 0xe5 {
        out[0] = 0x05;
    }
    Some(out)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}
