//! Reading the files of a FAT32 volume, as untrusted input.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom};

use super::*;
use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::digest_reader;
use crate::format::{Entry, FileType};

/// The most bytes of FAT a reader takes into memory (a 32 GiB volume of 4 KiB clusters).
const MAX_FAT_BYTES: u64 = 64 << 20;
/// The deepest directory nesting followed.
const MAX_DEPTH: usize = 64;
/// The most entries one directory may have (as FAT itself allows).
const MAX_DIR_ENTRIES: u64 = 65_536;

/// What [`read()`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub volume_id: u32,
    /// The label in the boot sector, spaces trimmed.
    pub label: String,
    pub total_sectors: u64,
    pub clusters: u64,
    /// Every directory and file, parents first, each directory's entries in the order stored;
    /// names are paths from the root without a leading `/`.
    pub entries: Vec<Entry>,
}

struct Layout {
    cluster_bytes: u64,
    data_start: u64,
    clusters: u64,
    fat: Vec<u32>,
}

/// Whether `head` (a volume's first 512 bytes or more) looks like a FAT32 boot sector: a jump,
/// the boot signature and `FAT32` as the file system type.
pub fn is_fat(head: &[u8]) -> bool {
    head.len() >= 512 && matches!(head[0], 0xeb | 0xe9) && head[510..512] == [0x55, 0xaa] && &head[82..87] == b"FAT32"
}

/// Reads a FAT32 volume: its boot sector, its FAT and every directory, digesting each file.
/// Every number the volume gives is checked before it is used, and cluster chains are followed
/// with a bound and a loop check, so a damaged or hostile volume is an error, never a panic, a
/// hang or a large allocation.
pub fn read(mut input: impl Read + Seek) -> Result<Volume> {
    let cannot = |e: io::Error| Error::input(format!("cannot read the FAT file system: {}", io_cause(&e)));
    let bad = |what: String| Error::input(format!("not a FAT32 file system: {what}"));
    let len = input.seek(SeekFrom::End(0)).map_err(cannot)?;
    input.seek(SeekFrom::Start(0)).map_err(cannot)?;
    let mut boot = [0u8; 512];
    input.read_exact(&mut boot).map_err(|_| bad("shorter than a boot sector".into()))?;
    if boot[510..512] != [0x55, 0xaa] {
        return Err(bad("the boot sector has no signature (0x55 0xaa)".into()));
    }
    let sector = u64::from(u16_at(&boot, 11));
    let per_cluster = u64::from(boot[13]);
    let reserved = u64::from(u16_at(&boot, 14));
    let fats = u64::from(boot[16]);
    let root_entries = u16_at(&boot, 17);
    let total = match u16_at(&boot, 19) {
        0 => u64::from(u32_at(&boot, 32)),
        small => u64::from(small),
    };
    let fat16_size = u16_at(&boot, 22);
    let fat_sectors = u64::from(u32_at(&boot, 36));
    if ![512, 1024, 2048, 4096].contains(&sector) {
        return Err(bad(format!("{sector} bytes per sector")));
    }
    if !per_cluster.is_power_of_two() || per_cluster > 128 {
        return Err(bad(format!("{per_cluster} sectors per cluster")));
    }
    if reserved == 0 || fats == 0 {
        return Err(bad("no reserved sectors or no FAT".into()));
    }
    if root_entries != 0 || fat16_size != 0 || fat_sectors == 0 {
        return Err(bad("a FAT12 or FAT16 volume (bake reads FAT32)".into()));
    }
    let meta = reserved + fats * fat_sectors;
    if total <= meta || total.saturating_mul(sector) > len {
        return Err(bad(format!("{total} sectors, which do not fit the {len} bytes there are or leave no clusters")));
    }
    let clusters = (total - meta) / per_cluster;
    if clusters < 65_525 {
        return Err(bad(format!("{clusters} clusters, too few for FAT32")));
    }
    let fat_bytes = fat_sectors * sector;
    if fat_bytes > MAX_FAT_BYTES || fat_bytes < (clusters + 2) * 4 {
        return Err(bad(format!("a FAT of {fat_bytes} bytes for {clusters} clusters")));
    }
    input.seek(SeekFrom::Start(reserved * sector)).map_err(cannot)?;
    let mut raw = vec![0u8; ((clusters + 2) * 4) as usize];
    input.read_exact(&mut raw).map_err(cannot)?;
    let fat = raw.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) & 0x0fff_ffff).collect();
    let layout = Layout { cluster_bytes: sector * per_cluster, data_start: meta * sector, clusters, fat };
    let root = u32_at(&boot, 44);
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    walk(&mut input, &layout, root, "", 0, &mut seen, &mut entries)?;
    let label = String::from_utf8_lossy(&boot[71..82]).trim_end().to_string();
    Ok(Volume { volume_id: u32_at(&boot, 67), label, total_sectors: total, clusters, entries })
}

impl Layout {
    /// The clusters of the chain starting at `first`, checked: each in range, no loop.
    fn chain(&self, first: u32) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut cluster = first;
        loop {
            if cluster < 2 || u64::from(cluster) >= self.clusters + 2 {
                return Err(Error::input(format!(
                    "damaged FAT file system: a chain reaches cluster {cluster}, outside 2..{}",
                    self.clusters + 2
                )));
            }
            if out.len() as u64 >= self.clusters {
                return Err(Error::input(format!("damaged FAT file system: the chain from cluster {first} loops")));
            }
            out.push(cluster);
            let next = self.fat[cluster as usize];
            if next >= 0x0fff_fff8 {
                return Ok(out);
            }
            if next == 0x0fff_fff7 || next == 0 {
                return Err(Error::input(format!(
                    "damaged FAT file system: cluster {cluster} is marked bad or free inside a chain"
                )));
            }
            cluster = next;
        }
    }

    fn offset(&self, cluster: u32) -> u64 {
        self.data_start + (u64::from(cluster) - 2) * self.cluster_bytes
    }
}

fn walk(
    input: &mut (impl Read + Seek),
    layout: &Layout,
    first: u32,
    prefix: &str,
    depth: usize,
    seen: &mut HashSet<u32>,
    entries: &mut Vec<Entry>,
) -> Result<()> {
    let cannot = |e: io::Error| Error::input(format!("cannot read the FAT file system: {}", io_cause(&e)));
    if depth > MAX_DEPTH {
        return Err(Error::input(format!(
            "damaged FAT file system: directories nest deeper than {MAX_DEPTH} at `{prefix}`"
        )));
    }
    if !seen.insert(first) {
        return Err(Error::input(format!("damaged FAT file system: directory `{prefix}` is reached twice")));
    }
    let chain = layout.chain(first)?;
    if chain.len() as u64 * layout.cluster_bytes > MAX_DIR_ENTRIES * DIR_ENTRY as u64 {
        return Err(Error::input(format!(
            "damaged FAT file system: directory `{prefix}` has more than {MAX_DIR_ENTRIES} entries"
        )));
    }
    let mut bytes = Vec::with_capacity(chain.len() * layout.cluster_bytes as usize);
    for cluster in &chain {
        input.seek(SeekFrom::Start(layout.offset(*cluster))).map_err(cannot)?;
        (&mut *input).take(layout.cluster_bytes).read_to_end(&mut bytes).map_err(cannot)?;
    }
    let mut long = LongName::default();
    for raw in bytes.chunks_exact(DIR_ENTRY) {
        match raw[0] {
            0x00 => break,
            0xe5 => {
                long = LongName::default();
                continue;
            }
            _ => {}
        }
        let attributes = raw[11];
        if attributes & 0x3f == ATTR_LONG_NAME {
            long.add(raw);
            continue;
        }
        let name = long.take(raw).unwrap_or_else(|| short(raw));
        if attributes & ATTR_VOLUME_ID != 0 || name == "." || name == ".." {
            continue;
        }
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let cluster = u32::from(u16_at(raw, 20)) << 16 | u32::from(u16_at(raw, 26));
        let size = u64::from(u32_at(raw, 28));
        let mtime = unix_time(u16_at(raw, 24), u16_at(raw, 22)).unwrap_or(0);
        let read_only = attributes & ATTR_READ_ONLY != 0;
        let directory = attributes & ATTR_DIRECTORY != 0;
        let (file_type, bits) = match (directory, read_only) {
            (true, false) => (FileType::Dir, 0o755),
            (true, true) => (FileType::Dir, 0o555),
            (false, false) => (FileType::File, 0o644),
            (false, true) => (FileType::File, 0o444),
        };
        let mut entry = Entry {
            name: path.clone().into_bytes(),
            mode: file_type.bits() | bits,
            uid: 0,
            gid: 0,
            nlink: 1,
            ino: u64::from(cluster),
            mtime,
            size: if directory { 0 } else { size },
            dev: (0, 0),
            rdev: (0, 0),
            sha256: None,
            target: None,
        };
        if directory {
            entries.push(entry);
            walk(input, layout, cluster, &path, depth + 1, seen, entries)?;
            continue;
        }
        let clusters = if size == 0 { Vec::new() } else { layout.chain(cluster)? };
        if (clusters.len() as u64) < size.div_ceil(layout.cluster_bytes) {
            return Err(Error::input(format!(
                "damaged FAT file system: `{path}` is {size} bytes but its chain holds fewer"
            )));
        }
        let reader =
            ChainReader { input: &mut *input, layout, clusters: &clusters, next: 0, left_in_cluster: 0, left: size };
        let (sha256, got) = digest_reader(reader).map_err(cannot)?;
        if got != size {
            return Err(Error::input(format!("damaged FAT file system: `{path}` is cut short")));
        }
        entry.sha256 = Some(sha256);
        entries.push(entry);
    }
    Ok(())
}

/// The 8.3 name of a directory entry as text (`BOOTX64.EFI`), lower case where its flags say.
fn short(raw: &[u8]) -> String {
    let mut name = raw[..11].to_vec();
    if name[0] == 0x05 {
        name[0] = 0xe5;
    }
    let lower = |part: &[u8], flag: bool| -> String {
        let text = String::from_utf8_lossy(part).trim_end().to_string();
        if flag { text.to_ascii_lowercase() } else { text }
    };
    let base = lower(&name[..8], raw[12] & 0x08 != 0);
    let extension = lower(&name[8..11], raw[12] & 0x10 != 0);
    if extension.is_empty() { base } else { format!("{base}.{extension}") }
}

/// Long-name entries collected before the short entry they belong to.
#[derive(Default)]
struct LongName {
    /// Parts by their order number (1 first), each 13 UTF-16 units.
    parts: Vec<Option<[u16; 13]>>,
    checksum: Option<u8>,
}

impl LongName {
    fn add(&mut self, raw: &[u8]) {
        let order = raw[0];
        let index = usize::from(order & 0x1f);
        if index == 0 {
            *self = LongName::default();
            return;
        }
        if order & 0x40 != 0 {
            *self = LongName { parts: vec![None; index], checksum: Some(raw[13]) };
        }
        if self.checksum != Some(raw[13]) || index > self.parts.len() {
            *self = LongName::default();
            return;
        }
        let mut units = [0u16; 13];
        let offsets = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        for (unit, at) in units.iter_mut().zip(offsets) {
            *unit = u16_at(raw, at);
        }
        self.parts[index - 1] = Some(units);
    }

    /// The long name for the short entry `raw`, if complete and its checksum matches.
    fn take(&mut self, raw: &[u8]) -> Option<String> {
        let taken = std::mem::take(self);
        let checksum = raw[..11].iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b));
        if taken.checksum != Some(checksum) || taken.parts.is_empty() {
            return None;
        }
        let mut units = Vec::new();
        for part in taken.parts {
            units.extend(part?);
        }
        let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
        Some(String::from_utf16_lossy(&units[..end]))
    }
}

/// A file's data, cluster by cluster along its chain.
struct ChainReader<'a, R> {
    input: &'a mut R,
    layout: &'a Layout,
    clusters: &'a [u32],
    next: usize,
    left_in_cluster: u64,
    left: u64,
}

impl<R: Read + Seek> Read for ChainReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.left_in_cluster == 0 {
            // The next run of consecutive clusters, read without seeking between them.
            let Some(&cluster) = self.clusters.get(self.next) else { return Ok(0) };
            self.input.seek(SeekFrom::Start(self.layout.offset(cluster)))?;
            let mut run = 1;
            while self.clusters.get(self.next + run) == Some(&(cluster + run as u32)) {
                run += 1;
            }
            self.next += run;
            self.left_in_cluster = self.layout.cluster_bytes * run as u64;
        }
        let want = (buf.len() as u64).min(self.left_in_cluster).min(self.left) as usize;
        let n = self.input.read(&mut buf[..want])?;
        self.left_in_cluster -= n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}
