//! The binary module indexes depmod writes and libkmod reads (`modules.dep.bin`,
//! `modules.alias.bin`, `modules.symbols.bin`, `modules.builtin.bin`,
//! `modules.builtin.alias.bin`): a trie of keys with path compression, each key holding a list
//! of prioritised string values.
//!
//! Written here rather than by a crate because none writes this format, and because udev and
//! `modprobe` in a system image read nothing else. The layout (kmod's `libkmod-index.c`, format
//! 2.1), all integers big-endian:
//!
//! - header: magic `0xB007F457`, version `0x00020001`, the offset of the root node;
//! - nodes, each at an offset whose top nibble says what follows: `0x8` a prefix (the key bytes
//!   this node stands for beyond the byte that led to it, NUL-terminated), `0x2` children (the
//!   first and last child byte, then one offset per byte of that range, 0 for none), `0x4` values
//!   (a count, then per value its priority and NUL-terminated text).
//!
//! Nodes are written children first (post-order), in byte order, so the root comes last; values
//! keep ascending priority and, among equal ones, the most recently inserted first. Both are how
//! depmod does it, and the bytes of every index equal depmod's for the same keys and values (the
//! tests compare them with the host's depmod).

use std::collections::BTreeMap;

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const PREFIX: u32 = 0x8000_0000;
const VALUES: u32 = 0x4000_0000;
const CHILDREN: u32 = 0x2000_0000;
/// Offsets live in the low 28 bits.
const MAX_OFFSET: usize = 0x0FFF_FFFF;

#[derive(Debug, Default)]
struct Node {
    /// Key bytes below the byte that leads here.
    prefix: Vec<u8>,
    /// (priority, value), ascending priority; newest first among equal ones.
    values: Vec<(u32, String)>,
    children: BTreeMap<u8, Node>,
}

/// An index being built: insert keys, then [`Index::to_bytes`].
#[derive(Debug, Default)]
pub struct Index {
    root: Node,
}

/// A key or value the format cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadText(pub String);

impl std::fmt::Display for BadText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: a module index holds 7-bit ASCII without NUL bytes only", self.0.escape_debug())
    }
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// Adds `value` under `key` with `priority` (lower first).
    pub fn insert(&mut self, key: &str, value: &str, priority: u32) -> Result<(), BadText> {
        for text in [key, value] {
            if text.bytes().any(|b| b == 0 || b >= 0x80) {
                return Err(BadText(text.to_string()));
            }
        }
        let key = key.as_bytes();
        let mut node = &mut self.root;
        let mut at = 0;
        loop {
            let common = node.prefix.iter().zip(&key[at..]).take_while(|(a, b)| a == b).count();
            if common < node.prefix.len() {
                // The key leaves this node's prefix: the node keeps the shared part, and what
                // it held moves to a child under the first byte that differs.
                let rest = node.prefix.split_off(common);
                let moved = Node {
                    prefix: rest[1..].to_vec(),
                    values: std::mem::take(&mut node.values),
                    children: std::mem::take(&mut node.children),
                };
                node.children.insert(rest[0], moved);
            }
            at += common;
            let Some(&byte) = key.get(at) else {
                let place = node.values.iter().position(|(p, _)| *p >= priority).unwrap_or(node.values.len());
                node.values.insert(place, (priority, value.to_string()));
                return Ok(());
            };
            at += 1;
            match node.children.entry(byte) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    let values = vec![(priority, value.to_string())];
                    slot.insert(Node { prefix: key[at..].to_vec(), values, ..Node::default() });
                    return Ok(());
                }
                std::collections::btree_map::Entry::Occupied(slot) => node = slot.into_mut(),
            }
        }
    }

    /// The index file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let root = write_node(&self.root, &mut out);
        out[8..12].copy_from_slice(&root.to_be_bytes());
        out
    }
}

/// Writes `node` after its children; returns its offset with the flags of what it holds.
fn write_node(node: &Node, out: &mut Vec<u8>) -> u32 {
    let children: Vec<(u8, u32)> = node.children.iter().map(|(&b, child)| (b, write_node(child, out))).collect();
    assert!(out.len() <= MAX_OFFSET, "a module index past 256 MiB");
    let mut offset = out.len() as u32;
    if !node.prefix.is_empty() {
        out.extend_from_slice(&node.prefix);
        out.push(0);
        offset |= PREFIX;
    }
    if let (Some(&(first, _)), Some(&(last, _))) = (children.first(), children.last()) {
        out.push(first);
        out.push(last);
        let mut next = children.iter().peekable();
        for byte in first..=last {
            let child = next.next_if(|(b, _)| *b == byte).map_or(0, |(_, o)| *o);
            out.extend_from_slice(&child.to_be_bytes());
        }
        offset |= CHILDREN;
    }
    if !node.values.is_empty() {
        out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
        for (priority, value) in &node.values {
            out.extend_from_slice(&priority.to_be_bytes());
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
        offset |= VALUES;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// Looks `key` up the way libkmod does, for the tests.
    fn lookup(bytes: &[u8], key: &str) -> Vec<(u32, String)> {
        let mut offset = u32_at(bytes, 8);
        let key = key.as_bytes();
        let mut at = 0;
        loop {
            let mut pos = (offset & 0x0FFF_FFFF) as usize;
            if offset & PREFIX != 0 {
                let end = pos + bytes[pos..].iter().position(|&b| b == 0).unwrap();
                let prefix = &bytes[pos..end];
                if !key[at..].starts_with(prefix) {
                    return Vec::new();
                }
                at += prefix.len();
                pos = end + 1;
            }
            let mut child = None;
            if offset & CHILDREN != 0 {
                let (first, last) = (bytes[pos], bytes[pos + 1]);
                if let Some(&b) = key.get(at).filter(|b| (first..=last).contains(*b)) {
                    child = Some(u32_at(bytes, pos + 2 + 4 * (b - first) as usize));
                }
                pos += 2 + 4 * (last - first + 1) as usize;
            }
            if at == key.len() {
                if offset & VALUES == 0 {
                    return Vec::new();
                }
                let count = u32_at(bytes, pos) as usize;
                pos += 4;
                let mut values = Vec::new();
                for _ in 0..count {
                    let priority = u32_at(bytes, pos);
                    let end = pos + 4 + bytes[pos + 4..].iter().position(|&b| b == 0).unwrap();
                    values.push((priority, String::from_utf8(bytes[pos + 4..end].to_vec()).unwrap()));
                    pos = end + 1;
                }
                return values;
            }
            match child {
                Some(o) if o != 0 => {
                    offset = o;
                    at += 1;
                }
                _ => return Vec::new(),
            }
        }
    }

    #[test]
    fn an_empty_index_is_a_header_and_an_empty_root() {
        let bytes = Index::new().to_bytes();
        assert_eq!(bytes, [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12]);
    }

    #[test]
    fn keys_split_shared_prefixes_and_read_back() {
        let mut index = Index::new();
        for (key, value, priority) in [
            ("virtio_blk", "kernel/virtio_blk.ko:", 3),
            ("virtio", "kernel/virtio.ko:", 1),
            ("virtio_net", "kernel/virtio_net.ko:", 2),
            ("erofs", "kernel/erofs.ko:", 0),
        ] {
            index.insert(key, value, priority).unwrap();
        }
        let bytes = index.to_bytes();
        assert_eq!(lookup(&bytes, "virtio"), [(1, "kernel/virtio.ko:".to_string())]);
        assert_eq!(lookup(&bytes, "virtio_net"), [(2, "kernel/virtio_net.ko:".to_string())]);
        assert_eq!(lookup(&bytes, "virtio_blk"), [(3, "kernel/virtio_blk.ko:".to_string())]);
        assert_eq!(lookup(&bytes, "erofs"), [(0, "kernel/erofs.ko:".to_string())]);
        assert!(lookup(&bytes, "virtio_").is_empty());
        assert!(lookup(&bytes, "virt").is_empty());
        // The root is written last and has no prefix; its children are `e` and `v`.
        let root = u32_at(&bytes, 8);
        assert_eq!(root & PREFIX, 0);
        assert_eq!(root & CHILDREN, CHILDREN);
    }

    #[test]
    fn values_keep_priority_order_and_put_the_newest_first_among_equals() {
        let mut index = Index::new();
        index.insert("pci:v*", "b", 5).unwrap();
        index.insert("pci:v*", "a", 1).unwrap();
        index.insert("pci:v*", "c", 5).unwrap();
        let got = lookup(&index.to_bytes(), "pci:v*");
        assert_eq!(got, [(1, "a".to_string()), (5, "c".to_string()), (5, "b".to_string())]);
    }

    #[test]
    fn the_same_keys_in_any_order_give_the_same_bytes() {
        let keys = ["ab", "abc", "abd", "b", "a", "abcde", "x:y*z"];
        let build = |order: &[&str]| {
            let mut index = Index::new();
            for k in order {
                let priority = keys.iter().position(|x| x == k).unwrap() as u32;
                index.insert(k, k, priority).unwrap();
            }
            index.to_bytes()
        };
        let mut reversed = keys.to_vec();
        reversed.reverse();
        assert_eq!(build(&keys), build(&reversed));
    }

    #[test]
    fn text_beyond_ascii_is_refused() {
        assert!(Index::new().insert("modul\u{e9}", "x", 0).is_err());
        assert!(Index::new().insert("a", "x\0y", 0).is_err());
    }
}
