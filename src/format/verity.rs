//! dm-verity hash trees, in the format `veritysetup format` writes and the kernel's dm-verity
//! target reads (the kernel's `Documentation/admin-guide/device-mapper/verity.rst` and
//! cryptsetup's `lib/verity/`): version 1 ("normal") hashing, sha256, 4096-byte data and hash
//! blocks, a 32-byte salt.
//!
//! Every data block's hash is `sha256(salt || block)`. Level 0 holds the hashes of the data
//! blocks, 128 to a hash block (the last one padded with zeros); each level above holds the
//! hashes of the blocks of the level below, until one block holds a whole level; the root hash
//! is the hash of that top block (of the one data block, when there is only one). The hash
//! device is a 512-byte superblock in a block of its own, then the levels from the top down,
//! as the kernel looks for them from `hash_start_block` 1.
//!
//! Written by hand: no crate writes veritysetup's format, and every byte here is a function of
//! the data, the salt and the UUID, which bake derives from the content instead of drawing
//! them at random as `veritysetup format` does.

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::base::error::{Error, Result};
use crate::base::hash::Digest;

/// Bytes in a data block and in a hash block.
pub const BLOCK: u64 = 4096;
/// Hashes that fit in one hash block (4096 / 32).
const HASHES_PER_BLOCK_BITS: u32 = 7;
const SIGNATURE: &[u8; 8] = b"verity\0\0";
const SUPERBLOCK: usize = 512;
const ALGORITHM: &[u8] = b"sha256";
/// The salt's length, veritysetup's default.
pub const SALT_SIZE: usize = 32;

/// What the superblock records: what the tree was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// The hash device's UUID, in text byte order.
    pub uuid: [u8; 16],
    /// How many data blocks the tree covers.
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

impl Superblock {
    fn encode(&self) -> [u8; SUPERBLOCK] {
        let mut b = [0u8; SUPERBLOCK];
        b[0..8].copy_from_slice(SIGNATURE);
        b[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
        b[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type: normal (salt first)
        b[16..32].copy_from_slice(&self.uuid);
        b[32..32 + ALGORITHM.len()].copy_from_slice(ALGORITHM);
        b[64..68].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[68..72].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(self.salt.len() as u16).to_le_bytes());
        b[88..88 + self.salt.len()].copy_from_slice(&self.salt);
        b
    }

    /// Reads a superblock bake can check: version 1, normal hashing, sha256, 4096-byte blocks.
    /// Anything else is an error saying what it is.
    pub fn decode(bytes: &[u8]) -> Result<Superblock> {
        let bad = |what: String| Error::input(format!("bad dm-verity superblock: {what}"));
        if bytes.len() < SUPERBLOCK || &bytes[0..8] != SIGNATURE {
            return Err(bad("no `verity` signature".to_string()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let (version, hash_type) = (u32_at(8), u32_at(12));
        if version != 1 || hash_type != 1 {
            return Err(bad(format!("version {version} with hash type {hash_type}; bake reads version 1, type 1")));
        }
        let algorithm = &bytes[32..64];
        let name_end = algorithm.iter().position(|&b| b == 0).unwrap_or(32);
        if &algorithm[..name_end] != ALGORITHM {
            let name = String::from_utf8_lossy(&algorithm[..name_end]);
            return Err(bad(format!("hash algorithm `{name}`; bake reads sha256")));
        }
        if u32_at(64) != BLOCK as u32 || u32_at(68) != BLOCK as u32 {
            return Err(bad(format!("blocks of {} and {} bytes; bake reads 4096", u32_at(64), u32_at(68))));
        }
        let salt_size = u16::from_le_bytes([bytes[80], bytes[81]]) as usize;
        if salt_size > 256 {
            return Err(bad(format!("a salt of {salt_size} bytes, more than the 256 it has room for")));
        }
        let data_blocks = u64::from_le_bytes(bytes[72..80].try_into().expect("8 bytes"));
        if data_blocks == 0 {
            return Err(bad("no data blocks".to_string()));
        }
        Ok(Superblock {
            uuid: bytes[16..32].try_into().expect("16 bytes"),
            data_blocks,
            salt: bytes[88..88 + salt_size].to_vec(),
        })
    }

    /// How many levels the tree has: the fewest that bring it down to one block (none for one
    /// data block), as the kernel counts them.
    pub fn levels(&self) -> u32 {
        let mut levels = 0;
        while HASHES_PER_BLOCK_BITS * levels < 64 && (self.data_blocks - 1) >> (HASHES_PER_BLOCK_BITS * levels) != 0 {
            levels += 1;
        }
        levels
    }

    /// Blocks of level `level` (0 is the lowest).
    fn level_blocks(&self, level: u32) -> u64 {
        let shift = HASHES_PER_BLOCK_BITS * (level + 1);
        if shift >= 64 { 1 } else { self.data_blocks.div_ceil(1 << shift) }
    }

    /// Bytes of the whole hash device: the superblock's block and every level.
    pub fn hash_device_size(&self) -> u64 {
        // Saturating: a hostile superblock may name any count, and is then refused as too large.
        (0..self.levels()).map(|level| self.level_blocks(level)).fold(1u64, u64::saturating_add).saturating_mul(BLOCK)
    }

    fn hash(&self, block: &[u8]) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(&self.salt);
        hasher.update(block);
        hasher.finalize().into()
    }
}

/// A hash tree, computed.
pub struct Tree {
    pub superblock: Superblock,
    /// The levels, the lowest first, each padded to whole blocks.
    levels: Vec<Vec<u8>>,
    pub root_hash: Digest,
}

impl Tree {
    /// The tree over the `size` bytes `data` yields (a whole number of 4096-byte blocks, at
    /// least one), with `salt` and `uuid`.
    pub fn compute(data: &mut dyn Read, size: u64, salt: &[u8], uuid: [u8; 16]) -> Result<Tree> {
        if size == 0 || !size.is_multiple_of(BLOCK) {
            return Err(Error::failure(format!("dm-verity needs whole 4096-byte blocks of data, not {size} bytes")));
        }
        let superblock = Superblock { uuid, data_blocks: size / BLOCK, salt: salt.to_vec() };
        let cannot = |e: io::Error| Error::failure(format!("cannot hash the data for dm-verity: {e}"));
        let mut block = vec![0u8; BLOCK as usize];
        let mut lowest = Vec::with_capacity((superblock.level_blocks(0) * BLOCK) as usize);
        let mut first: Option<Digest> = None;
        for _ in 0..superblock.data_blocks {
            crate::base::interrupt::check().map_err(cannot)?;
            data.read_exact(&mut block).map_err(cannot)?;
            let digest = superblock.hash(&block);
            first.get_or_insert(digest);
            lowest.extend_from_slice(&digest);
        }
        let levels = superblock.levels();
        if levels == 0 {
            let root_hash = first.expect("at least one data block");
            return Ok(Tree { superblock, levels: Vec::new(), root_hash });
        }
        let mut tree = vec![pad(lowest)];
        for _ in 1..levels {
            let below = tree.last().expect("a level");
            let level = below.chunks(BLOCK as usize).flat_map(|b| superblock.hash(b)).collect();
            tree.push(pad(level));
        }
        let root_hash = superblock.hash(tree.last().expect("a level"));
        Ok(Tree { superblock, levels: tree, root_hash })
    }

    /// Writes the hash device into `out`: the superblock in a block of its own, then the levels
    /// from the top down. Returns `out`.
    pub fn write<W: Write>(&self, mut out: W) -> io::Result<W> {
        let mut first = vec![0u8; BLOCK as usize];
        first[..SUPERBLOCK].copy_from_slice(&self.superblock.encode());
        out.write_all(&first)?;
        for level in self.levels.iter().rev() {
            out.write_all(level)?;
        }
        Ok(out)
    }
}

/// `bytes` zero-padded to a whole number of blocks.
fn pad(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(bytes.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
    bytes
}

/// The UUIDs of a verity pair's partitions, in text byte order: the data partition's is the
/// first 128 bits of the root hash, the hash partition's the last 128, as systemd-repart makes
/// them and systemd's generators look them up (so a disk names the root hash it was made for).
pub fn partition_uuids(root_hash: &Digest) -> ([u8; 16], [u8; 16]) {
    (root_hash[..16].try_into().expect("16 bytes"), root_hash[16..].try_into().expect("16 bytes"))
}

/// Whether `bytes` (the start of a file or partition) begin with a dm-verity superblock.
pub fn is_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

/// What [`check`] found: a hash device that matches its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub superblock: Superblock,
    pub root_hash: Digest,
}

/// Checks the hash device `hash` (`hash_size` bytes) against `data`: reads its superblock,
/// computes the tree over the data blocks it names, and requires every block of the stored
/// tree to be the computed one. Returns the superblock and the root hash. A hash device that
/// is damaged, or that belongs to other data, is an error saying where they part.
pub fn check(data: &mut dyn Read, hash: &mut dyn Read, hash_size: u64) -> Result<Checked> {
    let bad = |what: String| Error::input(format!("bad dm-verity hash tree: {what}"));
    let cannot = |e: io::Error| bad(format!("cannot be read: {e}"));
    let mut first = vec![0u8; BLOCK as usize];
    hash.read_exact(&mut first).map_err(cannot)?;
    let superblock = Superblock::decode(&first)?;
    if superblock.hash_device_size() > hash_size {
        return Err(too_small(&superblock, hash_size));
    }
    let size = superblock.data_blocks * BLOCK;
    let computed = Tree::compute(data, size, &superblock.salt, superblock.uuid)
        .map_err(|e| bad(format!("its data cannot be read: {e}")))?;
    // The stored levels, top first as written; about 1/128 of the data, as the computed tree.
    let mut stored: Vec<Vec<u8>> = Vec::with_capacity(computed.levels.len());
    for level in computed.levels.iter().rev() {
        let mut bytes = vec![0u8; level.len()];
        hash.read_exact(&mut bytes).map_err(cannot)?;
        stored.push(bytes);
    }
    stored.reverse();
    // The lowest level first, hash by hash, so that changed data is named by its block.
    if let (Some(expected), Some(found)) = (computed.levels.first(), stored.first()) {
        let pairs = expected.chunks(32).zip(found.chunks(32)).take(superblock.data_blocks as usize);
        if let Some(block) = pairs.clone().position(|(e, f)| e != f) {
            let more = match pairs.filter(|(e, f)| e != f).count() - 1 {
                0 => String::new(),
                n => format!(" (nor do {n} more)"),
            };
            return Err(bad(format!(
                "data block {block} (byte {}) does not match its hash in the tree{more}: the data changed after the \
                 tree was made, or the tree is damaged or of other data",
                block as u64 * BLOCK
            )));
        }
    }
    for (index, (expected, found)) in computed.levels.iter().zip(&stored).enumerate() {
        if let Some(block) = expected.chunks(BLOCK as usize).zip(found.chunks(BLOCK as usize)).position(|(e, f)| e != f)
        {
            return Err(bad(format!(
                "block {block} of level {index} is damaged: it is not the hash of the level below"
            )));
        }
    }
    Ok(Checked { superblock, root_hash: computed.root_hash })
}

fn too_small(superblock: &Superblock, hash_size: u64) -> Error {
    Error::input(format!(
        "bad dm-verity hash tree: its superblock names {} data blocks, whose tree takes {} bytes, more than the \
         {hash_size} there are",
        superblock.data_blocks,
        superblock.hash_device_size()
    ))
}

/// Reads a hash device without its data: the superblock and the root hash its top block gives
/// (`None` for a tree over one data block, whose root hash is that block's own). Says nothing
/// about whether the tree matches any data: [`check`] does.
pub fn stored(hash: &mut dyn Read, hash_size: u64) -> Result<(Superblock, Option<Digest>)> {
    let cannot = |e: io::Error| Error::input(format!("bad dm-verity hash tree: cannot be read: {e}"));
    let mut block = vec![0u8; BLOCK as usize];
    hash.read_exact(&mut block).map_err(cannot)?;
    let superblock = Superblock::decode(&block)?;
    if superblock.hash_device_size() > hash_size {
        return Err(too_small(&superblock, hash_size));
    }
    if superblock.levels() == 0 {
        return Ok((superblock, None));
    }
    hash.read_exact(&mut block).map_err(cannot)?;
    let root = superblock.hash(&block);
    Ok((superblock, Some(root)))
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    fn data(blocks: usize) -> Vec<u8> {
        (0..blocks * BLOCK as usize).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
    }

    fn tree(bytes: &[u8]) -> Tree {
        Tree::compute(&mut &bytes[..], bytes.len() as u64, &[7; SALT_SIZE], [9; 16]).unwrap()
    }

    fn written(tree: &Tree) -> Vec<u8> {
        tree.write(Vec::new()).unwrap()
    }

    #[test]
    fn levels_and_sizes_follow_the_kernel() {
        let sb = |data_blocks| Superblock { uuid: [0; 16], data_blocks, salt: vec![] };
        for (blocks, levels, size_in_blocks) in [
            (1, 0, 1),
            (2, 1, 2),
            (128, 1, 2),
            (129, 2, 4),
            (128 * 128, 2, 1 + 128 + 1),
            (128 * 128 + 1, 3, 1 + 129 + 2 + 1),
        ] {
            assert_eq!(sb(blocks).levels(), levels, "{blocks} blocks");
            assert_eq!(sb(blocks).hash_device_size(), size_in_blocks * BLOCK, "{blocks} blocks");
        }
    }

    #[test]
    fn the_root_is_the_salted_hash_of_the_top_block() {
        let bytes = data(3);
        let t = tree(&bytes);
        let device = written(&t);
        assert_eq!(device.len() as u64, 2 * BLOCK);
        let salted = |block: &[u8]| -> Digest {
            Sha256::new().chain_update([7; SALT_SIZE]).chain_update(block).finalize().into()
        };
        let top = &device[BLOCK as usize..];
        for i in 0..3 {
            assert_eq!(&top[i * 32..i * 32 + 32], salted(&bytes[i * 4096..(i + 1) * 4096]));
        }
        assert!(top[96..].iter().all(|&b| b == 0), "the level is padded with zeros");
        assert_eq!(t.root_hash, salted(top));
        // One data block: no levels, the root is its hash.
        let one = tree(&bytes[..4096]);
        assert_eq!((written(&one).len(), one.root_hash), (4096, salted(&bytes[..4096])));
    }

    #[test]
    fn the_superblock_round_trips_and_is_laid_out_as_cryptsetup_reads_it() {
        let t = tree(&data(2));
        let device = written(&t);
        assert_eq!(&device[..8], b"verity\0\0");
        assert_eq!(&device[32..39], b"sha256\0");
        assert_eq!(u64::from_le_bytes(device[72..80].try_into().unwrap()), 2);
        assert_eq!(u16::from_le_bytes([device[80], device[81]]), 32);
        assert_eq!(Superblock::decode(&device).unwrap(), t.superblock);
        let mut other = device.clone();
        other[32..38].copy_from_slice(b"sha512");
        assert!(Superblock::decode(&other).unwrap_err().message().contains("hash algorithm `sha512`"));
        assert!(Superblock::decode(&device[1..]).unwrap_err().message().contains("no `verity` signature"));
    }

    #[test]
    fn checking_finds_a_damaged_tree_and_changed_data() {
        let bytes = data(300);
        let t = tree(&bytes);
        let device = written(&t);
        let checked = check(&mut &bytes[..], &mut &device[..], device.len() as u64).unwrap();
        assert_eq!(checked.root_hash, t.root_hash);
        let mut changed = bytes.clone();
        changed[5 * 4096 + 17] ^= 1;
        let err = check(&mut &changed[..], &mut &device[..], device.len() as u64).unwrap_err();
        assert!(
            err.message().contains("data block 5 (byte 20480) does not match its hash in the tree: the data changed"),
            "{err}"
        );
        let mut damaged = device.clone();
        damaged[BLOCK as usize + 3] ^= 1; // the top level
        let err = check(&mut &bytes[..], &mut &damaged[..], device.len() as u64).unwrap_err();
        assert!(err.message().contains("block 0 of level 1 is damaged"), "{err}");
        let err = check(&mut &bytes[..], &mut &device[..BLOCK as usize * 2][..], 2 * BLOCK).unwrap_err();
        assert!(err.message().contains("more than the 8192 there are"), "{err}");
    }

    #[test]
    fn a_hostile_block_count_is_refused_without_overflow() {
        let mut device = written(&tree(&data(2)));
        device[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = stored(&mut &device[..], device.len() as u64).unwrap_err();
        assert!(err.message().contains("more than the 8192 there are"), "{err}");
        let err = check(&mut &data(2)[..], &mut &device[..], device.len() as u64).unwrap_err();
        assert!(err.message().contains("more than the 8192 there are"), "{err}");
    }

    #[test]
    fn the_stored_root_hash_is_read_from_the_top_block() {
        let bytes = data(300);
        let t = tree(&bytes);
        let device = written(&t);
        let (superblock, root) = stored(&mut &device[..], device.len() as u64).unwrap();
        assert_eq!((superblock, root), (t.superblock.clone(), Some(t.root_hash)));
        let one = tree(&bytes[..4096]);
        assert_eq!(stored(&mut &written(&one)[..], 4096).unwrap().1, None);
        let err = stored(&mut &device[..], 2 * BLOCK).unwrap_err();
        assert!(err.message().contains("more than the 8192 there are"), "{err}");
    }
}
