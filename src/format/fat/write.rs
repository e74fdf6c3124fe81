//! Writing a whole FAT32 volume front to back (see the module documentation of [`super`] for
//! the layout).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use super::*;
use crate::base::error::{Error, Result, io_cause};

/// What the volume records besides its files.
#[derive(Clone, Debug)]
pub struct Options {
    /// The volume serial number.
    pub volume_id: u32,
    /// The volume label, 11 bytes padded with spaces.
    pub label: [u8; 11],
    /// Seconds since 1970 (UTC) for every time stamp.
    pub time: u64,
}

/// A file to write, with its contents.
pub struct NewFile<'a> {
    /// Its path from the root, one 8.3 name per component (`["EFI", "BOOT", "BOOTX64.EFI"]`);
    /// the directories on the way are made.
    pub path: Vec<String>,
    /// The contents: exactly `size` bytes.
    pub contents: &'a mut dyn Read,
    pub size: u64,
}

/// A directory in the making: its entries by 11-byte name.
#[derive(Default)]
struct Dir {
    children: BTreeMap<[u8; 11], Child>,
}

enum Child {
    Dir(Dir),
    /// The index of the file in the caller's list.
    File(usize),
}

/// One thing in the data region, in cluster order.
enum Item {
    /// A directory's contents, made in memory (a few entries).
    Dir(Vec<u8>),
    /// The file with this index.
    File(usize),
}

/// The volume's geometry.
#[derive(Debug, PartialEq, Eq)]
struct Geometry {
    total_sectors: u64,
    fat_sectors: u64,
    clusters: u64,
}

/// The smallest volume of whole MiB with at least `used` clusters, and enough clusters to be
/// FAT32.
fn geometry(used: u64) -> Result<Geometry> {
    const MIB_SECTORS: u64 = (1 << 20) / SECTOR;
    if used > MAX_CLUSTERS {
        return Err(Error::input(format!("{used} clusters of files are more than a FAT32 volume holds")));
    }
    // Clusters are about the sectors left after the reserved ones and the FATs; start from
    // there and add a MiB until they are enough.
    let mut total =
        (u64::from(RESERVED_SECTORS) + used.max(MIN_CLUSTERS) * 130 / 128).div_ceil(MIB_SECTORS) * MIB_SECTORS;
    loop {
        // Each FAT holds 4 bytes for each cluster and the two reserved entries: with F sectors
        // per FAT, C = T - R - 2F clusters need 128F >= C + 2, so F = ceil((T - R + 2) / 130).
        let fat_sectors = (total - u64::from(RESERVED_SECTORS) + 2).div_ceil(130);
        let clusters = total - u64::from(RESERVED_SECTORS) - 2 * fat_sectors;
        if clusters >= used.max(MIN_CLUSTERS) {
            return Ok(Geometry { total_sectors: total, fat_sectors, clusters });
        }
        total += MIB_SECTORS;
    }
}

/// Writes a FAT32 volume holding `files` to `out`; returns `out`. Its size is a whole number of
/// MiB, as small as the files allow ([`super`]).
pub fn write<W: Write>(options: &Options, files: &mut [NewFile<'_>], mut out: W) -> Result<W> {
    let mut root = Dir::default();
    for (index, file) in files.iter().enumerate() {
        add(&mut root, &file.path, 0, index)?;
    }
    let (date, time) = fat_time(options.time);
    let stamp = Stamp { date, time };
    // Clusters in order: each directory, then what it holds, depth first.
    let mut items = Vec::new();
    let mut next = u64::from(ROOT_CLUSTER);
    lay_out(&root, None, options, &stamp, files, &mut next, &mut items)?;
    let used = next - u64::from(ROOT_CLUSTER);
    let geometry = geometry(used)?;

    let io = |e: io::Error| Error::failure(format!("cannot write the FAT file system: {}", io_cause(&e)));
    let boot = boot_sector(options, &geometry);
    let fsinfo = fsinfo(&geometry, used);
    let mut reserved = vec![0u8; RESERVED_SECTORS as usize * SECTOR as usize];
    for (sector, bytes) in
        [(0, &boot), (FSINFO_SECTOR, &fsinfo), (BACKUP_BOOT_SECTOR, &boot), (BACKUP_BOOT_SECTOR + 1, &fsinfo)]
    {
        reserved[sector as usize * 512..][..512].copy_from_slice(bytes);
    }
    out.write_all(&reserved).map_err(io)?;
    let fat = fat(&items, files, &geometry);
    for _ in 0..FAT_COUNT {
        out.write_all(&fat).map_err(io)?;
    }
    for item in &items {
        match item {
            Item::Dir(bytes) => out.write_all(bytes).map_err(io)?,
            Item::File(index) => {
                let file = &mut files[*index];
                let name = file.path.join("/");
                let copied = io::copy(&mut (&mut file.contents).take(file.size), &mut out).map_err(io)?;
                if copied != file.size {
                    return Err(Error::failure(format!("`{name}`: {copied} bytes, not the {} expected", file.size)));
                }
                if file.contents.read(&mut [0u8; 1]).map_err(io)? != 0 {
                    return Err(Error::failure(format!("`{name}`: more than the {} bytes expected", file.size)));
                }
                zeros(&mut out, clusters_of(file.size) * SECTOR - file.size).map_err(io)?;
            }
        }
    }
    zeros(&mut out, (geometry.clusters - used) * SECTOR).map_err(io)?;
    Ok(out)
}

/// Adds the file `index` at `path` under `dir`, the directory of `path[..depth]`.
fn add(dir: &mut Dir, path: &[String], depth: usize, index: usize) -> Result<()> {
    let whole = || path.join("/");
    let first = path.get(depth).ok_or_else(|| Error::failure("a FAT file with an empty path"))?;
    let rest = &path[depth + 1..];
    let name = short_name(first).ok_or_else(|| {
        Error::input(format!(
            "`{first}` in `{}` is not an upper-case 8.3 name, the only names bake writes to FAT",
            whole()
        ))
    })?;
    if rest.is_empty() {
        if dir.children.insert(name, Child::File(index)).is_some() {
            return Err(Error::input(format!("`{}` is given twice", whole())));
        }
        return Ok(());
    }
    match dir.children.entry(name).or_insert_with(|| Child::Dir(Dir::default())) {
        Child::Dir(sub) => add(sub, path, depth + 1, index),
        Child::File(_) => Err(Error::input(format!("`{first}` is both a file and a directory in `{}`", whole()))),
    }
}

struct Stamp {
    date: u16,
    time: u16,
}

/// Clusters a file of `size` bytes takes.
fn clusters_of(size: u64) -> u64 {
    size.div_ceil(SECTOR)
}

/// Gives `dir` (at `parent`, `None` for the root) and everything in it clusters from `*next`,
/// in order, and appends them to `items`.
#[allow(clippy::too_many_arguments)]
fn lay_out(
    dir: &Dir,
    parent: Option<u32>,
    options: &Options,
    stamp: &Stamp,
    files: &[NewFile<'_>],
    next: &mut u64,
    items: &mut Vec<Item>,
) -> Result<u32> {
    let is_root = parent.is_none();
    let entries = dir.children.len() + if is_root { 1 } else { 2 };
    let own = clusters_of((entries * DIR_ENTRY) as u64).max(1);
    let first = cluster_number(*next)?;
    *next += own;
    let slot = items.len();
    items.push(Item::Dir(Vec::new()));
    let mut bytes = Vec::with_capacity((own * SECTOR) as usize);
    if let Some(parent) = parent {
        bytes.extend(entry(b".          ", ATTR_DIRECTORY, first, 0, stamp));
        // The root is cluster 0 in `..`, whatever its real cluster.
        let up = if parent == ROOT_CLUSTER { 0 } else { parent };
        bytes.extend(entry(b"..         ", ATTR_DIRECTORY, up, 0, stamp));
    } else {
        bytes.extend(entry(&options.label, ATTR_VOLUME_ID, 0, 0, stamp));
    }
    for (name, child) in &dir.children {
        match child {
            Child::Dir(sub) => {
                let cluster = lay_out(sub, Some(first), options, stamp, files, next, items)?;
                bytes.extend(entry(name, ATTR_DIRECTORY, cluster, 0, stamp));
            }
            Child::File(index) => {
                let size = files[*index].size;
                let size32 = u32::try_from(size).map_err(|_| {
                    Error::input(format!(
                        "`{}` is {size} bytes, more than the 4 GiB a FAT file can hold",
                        files[*index].path.join("/")
                    ))
                })?;
                let count = clusters_of(size);
                let cluster = if count == 0 { 0 } else { cluster_number(*next)? };
                *next += count;
                items.push(Item::File(*index));
                bytes.extend(entry(name, ATTR_ARCHIVE, cluster, size32, stamp));
            }
        }
    }
    bytes.resize((own * SECTOR) as usize, 0);
    items[slot] = Item::Dir(bytes);
    Ok(first)
}

fn cluster_number(cluster: u64) -> Result<u32> {
    u32::try_from(cluster)
        .ok()
        .filter(|&c| u64::from(c) <= MAX_CLUSTERS + 1)
        .ok_or_else(|| Error::input("the files are more than a FAT32 volume holds"))
}

/// A 32-byte directory entry.
fn entry(name: &[u8; 11], attributes: u8, cluster: u32, size: u32, stamp: &Stamp) -> [u8; DIR_ENTRY] {
    let mut e = [0u8; DIR_ENTRY];
    e[..11].copy_from_slice(name);
    e[11] = attributes;
    // 12: no lower-case flags; 13: no tenths of a second.
    e[14..16].copy_from_slice(&stamp.time.to_le_bytes());
    e[16..18].copy_from_slice(&stamp.date.to_le_bytes());
    e[18..20].copy_from_slice(&stamp.date.to_le_bytes());
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[22..24].copy_from_slice(&stamp.time.to_le_bytes());
    e[24..26].copy_from_slice(&stamp.date.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// The boot sector: a jump, the BIOS parameter block, no boot code, the signature.
fn boot_sector(options: &Options, geometry: &Geometry) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
    b[3..11].copy_from_slice(b"BAKE    ");
    b[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    b[13] = 1; // sectors per cluster
    b[14..16].copy_from_slice(&RESERVED_SECTORS.to_le_bytes());
    b[16] = FAT_COUNT;
    // 17..21: no fixed root directory, no 16-bit sector count.
    b[21] = 0xf8; // media: a fixed disk
    // 22..24: no 16-bit FAT size. Geometry for BIOSes that ask, as mkfs.vfat gives an image file.
    b[24..26].copy_from_slice(&32u16.to_le_bytes());
    b[26..28].copy_from_slice(&64u16.to_le_bytes());
    // 28..32: no hidden sectors (the partition's place is the partition table's to say).
    b[32..36].copy_from_slice(&(geometry.total_sectors as u32).to_le_bytes());
    b[36..40].copy_from_slice(&(geometry.fat_sectors as u32).to_le_bytes());
    // 40..44: both FATs active, version 0.0.
    b[44..48].copy_from_slice(&ROOT_CLUSTER.to_le_bytes());
    b[48..50].copy_from_slice(&FSINFO_SECTOR.to_le_bytes());
    b[50..52].copy_from_slice(&BACKUP_BOOT_SECTOR.to_le_bytes());
    b[64] = 0x80; // drive number: a fixed disk
    b[66] = 0x29; // the serial, label and type follow
    b[67..71].copy_from_slice(&options.volume_id.to_le_bytes());
    b[71..82].copy_from_slice(&options.label);
    b[82..90].copy_from_slice(b"FAT32   ");
    b[510..512].copy_from_slice(&[0x55, 0xaa]);
    b
}

/// The FSInfo sector: how many clusters are free and where the first free one is.
fn fsinfo(geometry: &Geometry, used: u64) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    b[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    let free = geometry.clusters - used;
    b[488..492].copy_from_slice(&(free as u32).to_le_bytes());
    let next_free = if free == 0 { u32::MAX } else { (u64::from(ROOT_CLUSTER) + used) as u32 };
    b[492..496].copy_from_slice(&next_free.to_le_bytes());
    b[508..512].copy_from_slice(&0xaa55_0000u32.to_le_bytes());
    b
}

/// One copy of the FAT: the two reserved entries, then each item's clusters chained in order.
fn fat(items: &[Item], files: &[NewFile<'_>], geometry: &Geometry) -> Vec<u8> {
    let mut table = vec![0u32; 2];
    table[0] = 0x0fff_fff8; // media byte, as the boot sector says
    table[1] = END_OF_CHAIN; // clean, no errors
    for item in items {
        let count = match item {
            Item::Dir(bytes) => bytes.len() as u64 / SECTOR,
            Item::File(index) => clusters_of(files[*index].size),
        };
        for i in 0..count {
            let this = table.len() as u32;
            table.push(if i + 1 == count { END_OF_CHAIN } else { this + 1 });
        }
    }
    let mut bytes: Vec<u8> = table.iter().flat_map(|e| e.to_le_bytes()).collect();
    bytes.resize((geometry.fat_sectors * SECTOR) as usize, 0);
    bytes
}

fn zeros(out: &mut impl Write, count: u64) -> io::Result<()> {
    io::copy(&mut io::repeat(0).take(count), out).map(|_| ())
}

#[cfg(test)]
pub(super) fn geometry_for(used: u64) -> (u64, u64, u64) {
    let g = geometry(used).unwrap();
    (g.total_sectors, g.fat_sectors, g.clusters)
}
