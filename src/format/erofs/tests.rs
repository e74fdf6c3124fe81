//! Round trips through the EROFS writer and reader, and through erofs-utils and the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Cursor;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use super::*;
use crate::base::hash::digest_bytes;
use crate::base::path::ImagePath;
use crate::base::progress::Silent;
use crate::format::{Entry, FileType};

const EPOCH: u64 = 1_700_000_000;

enum Spec {
    Dir,
    File(Vec<u8>),
    /// Another name for the file at this path.
    Hardlink(&'static str),
    Symlink(Vec<u8>),
    Device(FileType, u32, u32),
}

struct Item {
    path: Vec<u8>,
    spec: Spec,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn item(path: impl AsRef<[u8]>, spec: Spec, mode: u32) -> Item {
    Item { path: path.as_ref().to_vec(), spec, mode, uid: 0, gid: 0 }
}

fn owned(item: Item, uid: u32, gid: u32) -> Item {
    Item { uid, gid, ..item }
}

fn image_path(bytes: &[u8]) -> ImagePath {
    ImagePath::normalise(bytes).unwrap()
}

/// Bytes that differ from block to block, so a misplaced block shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 12) as u8).wrapping_add(seed)).collect()
}

/// One entry of a test image, as bake's plans give them (inode numbers from 1 in path order,
/// hard links sharing one, link counts).
struct Fixed {
    path: Vec<u8>,
    file_type: FileType,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u32,
    nlink: u32,
    /// A file's content or a symlink's target.
    bytes: Vec<u8>,
    rdev: (u32, u32),
}

/// A test image: its entries and epoch.
struct Tree {
    epoch: u64,
    entries: Vec<Fixed>,
}

impl Tree {
    fn nodes(&self) -> Vec<Node<'_, Vec<u8>>> {
        self.entries
            .iter()
            .map(|e| Node {
                path: &e.path,
                file_type: e.file_type,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                ino: e.ino,
                nlink: e.nlink,
                file: (e.file_type == FileType::File).then_some((e.bytes.len() as u64, &e.bytes)),
                target: if e.file_type == FileType::Symlink { &e.bytes } else { &[] },
                rdev: e.rdev,
            })
            .collect()
    }

    fn options(&self) -> Options {
        Options { epoch: self.epoch, uuid: crate::base::hash::uuid_v8(&digest_bytes(&self.epoch.to_le_bytes())) }
    }

    /// Entries that are a directory at the top.
    fn top_dirs(&self) -> usize {
        self.entries.iter().filter(|e| e.file_type == FileType::Dir && !e.path.contains(&b'/')).count()
    }
}

/// The tree `items` describe, in path order with inode numbers and link counts.
fn tree(epoch: u64, mut items: Vec<Item>) -> Tree {
    items.sort_by_key(|item| image_path(&item.path));
    let canonical = |item: &Item| match &item.spec {
        Spec::Hardlink(target) => image_path(target.as_bytes()),
        _ => image_path(&item.path),
    };
    let mut contents = BTreeMap::new();
    let mut names: BTreeMap<ImagePath, usize> = BTreeMap::new();
    for item in &items {
        if let Spec::File(bytes) = &item.spec {
            contents.insert(image_path(&item.path), bytes.clone());
        }
        if let Spec::File(_) | Spec::Hardlink(_) = item.spec {
            *names.entry(canonical(item)).or_default() += 1;
        }
    }
    let mut inos = BTreeMap::new();
    let mut next = 0;
    let mut entries = Vec::new();
    for item in &items {
        let path = image_path(&item.path);
        let mut fresh = || {
            next += 1;
            next
        };
        let (file_type, ino, nlink, bytes, rdev) = match &item.spec {
            Spec::Dir => {
                let subdirs =
                    items.iter().filter(|o| matches!(o.spec, Spec::Dir) && image_path(&o.path).parent() == path);
                (FileType::Dir, fresh(), 2 + subdirs.count() as u32, Vec::new(), (0, 0))
            }
            Spec::File(_) | Spec::Hardlink(_) => {
                let key = canonical(item);
                let ino = *inos.entry(key.clone()).or_insert_with(fresh);
                (FileType::File, ino, names[&key] as u32, contents[&key].clone(), (0, 0))
            }
            Spec::Symlink(target) => (FileType::Symlink, fresh(), 1, target.clone(), (0, 0)),
            Spec::Device(file_type, major, minor) => (*file_type, fresh(), 1, Vec::new(), (*major, *minor)),
        };
        let path = path.as_bytes().to_vec();
        entries.push(Fixed { path, file_type, mode: item.mode, uid: item.uid, gid: item.gid, ino, nlink, bytes, rdev });
    }
    Tree { epoch, entries }
}

// The writer's data type is `Vec<u8>` here, so the opener takes one.
#[allow(clippy::ptr_arg)]
fn open_bytes(bytes: &Vec<u8>) -> crate::base::error::Result<Box<dyn Read + '_>> {
    Ok(Box::new(&bytes[..]))
}

fn image(tree: &Tree) -> Vec<u8> {
    let nodes = tree.nodes();
    let out = write(&nodes, tree.options(), &open_bytes, Vec::new(), &Silent).unwrap();
    assert_eq!(out.len() as u64, image_size(&nodes).unwrap());
    out
}

/// Whether an erofs-utils tool can be run; if not, says which test is skipped and why.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool).arg("-V").output().is_ok();
    if !found {
        eprintln!("skipping {test}: `{tool}` (erofs-utils) is not installed");
    }
    found
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // erofs-utils 1.5 reports some errors (a bad superblock checksum) and still exits 0.
    assert!(out.status.success() && !text.contains("<E>"), "{command:?} failed: {text}");
    text
}

/// Writes `bytes` to a file in `dir` and returns its path.
fn save(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("image.erofs");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `fsck.erofs` checks the image and extracts it; the tree must be the one written.
fn check_with_fsck(image: &[u8], tree: &Tree) {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), image);
    let root = dir.path().join("out");
    run(Command::new("fsck.erofs").arg(format!("--extract={}", root.display())).arg(&path));
    check_tree(&root, tree, false);
}

/// A read-only kernel mount of an image, unmounted when dropped (so a failed assertion
/// leaves none behind).
struct Mounted {
    root: std::path::PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.root).status();
    }
}

/// Mounts `image` at `root` through a loop device, or says why not (not root, no loop
/// devices, no EROFS in this kernel) and gives `None`.
fn mount(image: &Path, root: &Path, test: &str) -> Option<Mounted> {
    std::fs::create_dir(root).unwrap();
    let out = Command::new("mount").args(["-t", "erofs", "-o", "loop,ro"]).arg(image).arg(root).output();
    match out {
        Ok(out) if out.status.success() => Some(Mounted { root: root.to_path_buf() }),
        Ok(out) => {
            eprintln!("skipping the kernel mount in {test}: {}", String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        Err(e) => {
            eprintln!("skipping the kernel mount in {test}: cannot run `mount`: {e}");
            None
        }
    }
}

/// The kernel mounts the image; the tree must be the one written.
fn check_with_kernel(image: &[u8], tree: &Tree, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), image);
    if let Some(mounted) = mount(&path, &dir.path().join("mnt"), test) {
        check_tree(&mounted.root, tree, true);
    }
}

/// The tree at `root` holds exactly the entries written. `exact`: also the setuid and setgid
/// bits of files and hard links as shared inodes, which `fsck.erofs --extract` loses.
fn check_tree(root: &Path, tree: &Tree, exact: bool) {
    let mut host_inodes: BTreeMap<u32, u64> = BTreeMap::new();
    let mut found = 0;
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        entry.unwrap();
        found += 1;
    }
    assert_eq!(found, tree.entries.len(), "entries extracted");
    for entry in &tree.entries {
        let host = root.join(OsStr::from_bytes(&entry.path));
        let meta = std::fs::symlink_metadata(&host).unwrap();
        let what = String::from_utf8_lossy(&entry.path);
        // fsck.erofs 1.5 sets a file's mode before its owner, and chown clears setuid and
        // setgid.
        let kept = if !exact && entry.file_type == FileType::File { 0o1777 } else { 0o7777 };
        assert_eq!(meta.mode() & kept, entry.mode & kept, "{what} mode");
        assert_eq!((meta.uid(), meta.gid()), (entry.uid, entry.gid), "{what} owner");
        assert_eq!(meta.mtime() as u64, tree.epoch, "{what} mtime");
        let kind = meta.file_type();
        match entry.file_type {
            FileType::Dir => {
                assert!(kind.is_dir(), "{what}");
                if exact {
                    assert_eq!(meta.nlink(), u64::from(entry.nlink), "{what} links");
                }
            }
            FileType::File => {
                assert!(kind.is_file(), "{what}");
                assert_eq!(std::fs::read(&host).unwrap(), entry.bytes, "{what} content");
                // fsck.erofs 1.5 extracts every name of a hard-linked file as a file of its
                // own.
                if exact {
                    assert_eq!(meta.nlink(), u64::from(entry.nlink), "{what} links");
                    let ino = *host_inodes.entry(entry.ino).or_insert(meta.ino());
                    assert_eq!(ino, meta.ino(), "{what}: hard links share one inode");
                }
            }
            FileType::Symlink => {
                assert!(kind.is_symlink(), "{what}");
                assert_eq!(std::fs::read_link(&host).unwrap().as_os_str().as_bytes(), &entry.bytes[..], "{what}");
            }
            device => {
                match device {
                    FileType::Char => assert!(kind.is_char_device(), "{what}"),
                    FileType::Block => assert!(kind.is_block_device(), "{what}"),
                    _ => assert!(kind.is_fifo(), "{what}"),
                }
                let rdev = meta.rdev();
                let host_major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
                let host_minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
                assert_eq!((host_major, host_minor), (u64::from(entry.rdev.0), u64::from(entry.rdev.1)), "{what}");
            }
        }
    }
    let distinct: BTreeSet<u64> = host_inodes.values().copied().collect();
    assert_eq!(distinct.len(), host_inodes.len(), "distinct files share an inode");
}

/// Our reader gives back the entries written.
fn check_with_reader(image: &[u8], tree: &Tree) -> Vec<Entry> {
    let entries = read(Cursor::new(image)).unwrap();
    assert_eq!(entries.len(), tree.entries.len() + 1);
    let root = &entries[0];
    let dir = FileType::Dir.bits();
    assert_eq!((root.name.as_slice(), root.mode, root.uid, root.gid), (&b""[..], dir | 0o755, 0, 0));
    assert_eq!(root.nlink, 2 + tree.top_dirs() as u32);
    let mut nids: BTreeMap<u32, u64> = BTreeMap::new();
    for (found, entry) in entries[1..].iter().zip(&tree.entries) {
        let what = String::from_utf8_lossy(&entry.path);
        assert_eq!(found.name, entry.path);
        let size = match entry.file_type {
            FileType::Dir => found.size,
            FileType::File | FileType::Symlink => entry.bytes.len() as u64,
            _ => 0,
        };
        assert_eq!(found.mode, entry.file_type.bits() | entry.mode, "{what}");
        assert_eq!((found.uid, found.gid, found.nlink), (entry.uid, entry.gid, entry.nlink), "{what}");
        assert_eq!((found.mtime, found.size), (tree.epoch, size), "{what}");
        assert_eq!(*nids.entry(entry.ino).or_insert(found.ino), found.ino, "{what}: one inode per ino");
        match entry.file_type {
            FileType::File => assert_eq!(found.sha256, Some(digest_bytes(&entry.bytes)), "{what}"),
            FileType::Symlink => assert_eq!(found.target.as_ref(), Some(&entry.bytes), "{what}"),
            FileType::Char | FileType::Block => assert_eq!(found.rdev, entry.rdev, "{what}"),
            _ => assert_eq!((found.sha256, &found.target), (None, &None), "{what}"),
        }
    }
    let distinct: BTreeSet<u64> = nids.values().copied().collect();
    assert_eq!(distinct.len(), nids.len(), "distinct inodes have distinct nids");
    entries
}

/// `dump.erofs --path=...`: a lookup by name (a binary search over the sorted entries).
fn dump(image: &Path, path: &[u8]) -> String {
    let arg = OsStr::from_bytes(&[b"--path=/", path].concat()).to_owned();
    run(Command::new("dump.erofs").arg(arg).arg(image))
}

fn everything() -> Tree {
    let long_target: Vec<u8> = b"../".repeat(1400);
    let mut items = vec![
        item("bin", Spec::Dir, 0o755),
        item("bin/tool", Spec::File(pattern(4097, 1)), 0o4755),
        item("bin/tool2", Spec::Hardlink("bin/tool"), 0o4755),
        item("etc", Spec::Dir, 0o755),
        item("etc/a-link-to-tool", Spec::Hardlink("bin/tool"), 0o4755),
        item("data", Spec::Dir, 0o750),
        item("data/big", Spec::File(pattern(300_000, 2)), 0o644),
        item("empty", Spec::Dir, 0o700),
        owned(item("home", Spec::Dir, 0o755), 1000, 1000),
        owned(item("home/user", Spec::Dir, 0o700), 1000, 1000),
        item("tmp", Spec::Dir, 0o1777),
        owned(item("srv", Spec::Dir, 0o2775), 0, 50),
        owned(item("srv/shared", Spec::File(b"shared\n".to_vec()), 0o2664), 0, 50),
        item("dev", Spec::Dir, 0o755),
        item("dev/null", Spec::Device(FileType::Char, 1, 3), 0o666),
        owned(item("dev/sda", Spec::Device(FileType::Block, 8, 0), 0o660), 0, 6),
        item("dev/largest", Spec::Device(FileType::Char, 4095, 1_048_575), 0o600),
        item("dev/wide-minor", Spec::Device(FileType::Block, 259, 70_000), 0o600),
        item("dev/initctl", Spec::Device(FileType::Fifo, 0, 0), 0o600),
        item("links", Spec::Dir, 0o755),
        item("links/short", Spec::Symlink(b"../bin/tool".to_vec()), 0o777),
        item("links/dangling", Spec::Symlink(b"/nowhere".to_vec()), 0o777),
        item("links/long", Spec::Symlink(long_target[..3999].to_vec()), 0o777),
        item("links/longest", Spec::Symlink(long_target[..4095].to_vec()), 0o777),
        item("names", Spec::Dir, 0o755),
        item("names/-sorts-before-dot", Spec::File(b"-".to_vec()), 0o644),
        item("names/!bang", Spec::File(b"!".to_vec()), 0o644),
        item(b"names/caf\xe9", Spec::File(b"latin-1 name".to_vec()), 0o644),
        item([&b"names/"[..], &[b'n'; 255]].concat(), Spec::Dir, 0o755),
        item([&b"names/"[..], &[b'n'; 255], b"/", &[b'f'; 255]].concat(), Spec::File(b"x".to_vec()), 0o644),
        owned(item("owners", Spec::Dir, 0o755), 65_535, 65_535),
        owned(item("owners/high", Spec::File(b"extended inode".to_vec()), 0o640), 70_000, 80_000),
        owned(item("owners/high-dir", Spec::Dir, 0o755), 100_000, 0),
        owned(item("owners/high-link", Spec::Symlink(b"high".to_vec()), 0o777), 0, 4_000_000_000),
        owned(item("owners/max", Spec::File(b"compact inode".to_vec()), 0o600), 65_535, 65_535),
    ];
    // Tails around the block size and around what fits inline after a 32-byte inode.
    for size in [0usize, 1, 31, 32, 33, 4000, 4063, 4064, 4065, 4095, 4096, 4097, 8191, 8192, 8193, 12345] {
        items.push(item(format!("data/{size:05}"), Spec::File(pattern(size, size as u8)), 0o644));
    }
    tree(EPOCH, items)
}

#[test]
fn crc32c_is_the_castagnoli_crc() {
    // The check value of CRC-32C is e3069283 (with the final inversion this code leaves out).
    assert_eq!(!crc32c(!0, b"123456789"), 0xe306_9283);
}

#[test]
fn superblock_fields_follow_the_format() {
    let tree = everything();
    let out = image(&tree);
    assert!(is_magic(&out));
    assert_eq!(out.len() % BLOCK as usize, 0);
    assert!(out[..SUPER_OFFSET].iter().all(|&b| b == 0));
    let sb = &out[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE];
    assert_eq!(le32(sb, 8), COMPAT_SB_CHKSUM);
    assert_eq!(sb[12], 12);
    assert_eq!(le16(sb, 14), 0, "root nid");
    let inodes = tree.entries.iter().map(|e| e.ino).collect::<BTreeSet<_>>().len();
    assert_eq!(le64(sb, 16), inodes as u64 + 1);
    assert_eq!((le64(sb, 24), le32(sb, 32)), (EPOCH, 0), "build time");
    assert_eq!(u64::from(le32(sb, 36)) * BLOCK, out.len() as u64);
    assert_eq!(sb[54] >> 4, 8, "UUID version");
    assert_eq!(sb[56] >> 6, 0b10, "UUID variant");
    assert_eq!(le32(sb, 80), 0, "no incompatible features");
    let mut area = out[SUPER_OFFSET..BLOCK as usize].to_vec();
    area[4..8].fill(0);
    assert_eq!(crc32c(!0, &area), le32(sb, 4));
}

#[test]
fn fsck_erofs_extracts_exactly_what_was_written() {
    let tree = everything();
    let out = image(&tree);
    check_with_reader(&out, &tree);
    if !have("fsck.erofs", "fsck_erofs_extracts_exactly_what_was_written") {
        return;
    }
    check_with_fsck(&out, &tree);
}

#[test]
fn the_kernel_mounts_exactly_what_was_written() {
    let tree = everything();
    check_with_kernel(&image(&tree), &tree, "the_kernel_mounts_exactly_what_was_written");
}

#[test]
fn dump_erofs_finds_every_name_and_the_superblock() {
    if !have("dump.erofs", "dump_erofs_finds_every_name_and_the_superblock") {
        return;
    }
    let tree = everything();
    let out = image(&tree);
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), &out);
    let text = run(Command::new("dump.erofs").arg("-s").arg(&path));
    let uuid = &out[SUPER_OFFSET + 48..SUPER_OFFSET + 64];
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
    assert!(text.contains(&format!("Filesystem UUID:                              {uuid}")), "{text}");
    assert!(text.contains("Filesystem root nid:                          0\n"), "{text}");
    assert!(text.contains("sb_csum"), "{text}");
    let mut nids: BTreeMap<u32, String> = BTreeMap::new();
    for entry in &tree.entries {
        let text = dump(&path, &entry.path);
        let what = String::from_utf8_lossy(&entry.path);
        assert!(text.contains(&format!("Links: {} ", entry.nlink)), "{what}: {text}");
        // dump.erofs 1.5 shows only the 0777 bits; setuid and setgid are compared with
        // mkfs.erofs's own encoding in `the_reader_reads_mkfs_erofs_images_as_ours`.
        assert!(text.contains(&format!("Access: {:04o}/", entry.mode & 0o777)), "{what}: {text}");
        assert!(text.contains(&format!("Uid: {}   Gid: {} ", entry.uid, entry.gid)), "{what}: {text}");
        let nid = text.split("NID: ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap().to_string();
        assert_eq!(*nids.entry(entry.ino).or_insert(nid.clone()), nid, "{what}: hard links share one inode");
    }
    assert_eq!(nids.values().collect::<BTreeSet<_>>().len(), nids.len(), "distinct inodes have distinct nids");
    // Small tails are inline (layout 2); a tail that cannot share a block with its inode,
    // and a size of whole blocks, are not (layout 0).
    for (name, layout) in [("data/00001", 2), ("data/04065", 0), ("data/04096", 0), ("data/12345", 2)] {
        let text = dump(&path, name.as_bytes());
        assert!(text.contains(&format!("Layout: {layout} ")), "{name}: {text}");
    }
    let text = dump(&path, b"owners/high");
    assert!(text.contains("Inode size: 64 ") && text.contains("Uid: 70000 "), "{text}");
    let text = dump(&path, b"owners/max");
    assert!(text.contains("Inode size: 32 ") && text.contains("Uid: 65535 "), "{text}");
}

#[test]
fn a_directory_of_5000_entries_spans_blocks_and_stays_searchable() {
    let mut items = vec![item("many", Spec::Dir, 0o755)];
    for i in 0..5000 {
        items.push(item(format!("many/entry-{i:05}"), Spec::File(format!("{i}\n").into_bytes()), 0o644));
    }
    for c in [b'a', b'z'] {
        items.push(item([&b"many/"[..], &[c; 255]].concat(), Spec::File(vec![c]), 0o644));
    }
    items.push(item("many/sub", Spec::Dir, 0o755));
    let tree = tree(EPOCH, items);
    let out = image(&tree);
    let entries = check_with_reader(&out, &tree);
    assert!(entries[1].size > 20 * BLOCK, "the directory has {} bytes", entries[1].size);
    if !have("fsck.erofs", "a_directory_of_5000_entries_spans_blocks") {
        return;
    }
    check_with_fsck(&out, &tree);
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), &out);
    for name in ["many/entry-00000", "many/entry-02500", "many/entry-04999", "many/sub"] {
        dump(&path, name.as_bytes());
    }
    dump(&path, &[&b"many/"[..], &[b'z'; 255]].concat());
    // Every name is looked up by the kernel's binary search over the sorted blocks.
    check_with_kernel(&out, &tree, "a_directory_of_5000_entries_spans_blocks");
}

#[test]
fn a_tree_100_deep_round_trips() {
    let mut items = Vec::new();
    let mut path = String::from("d");
    for depth in 0..100 {
        items.push(item(&path, Spec::Dir, 0o755));
        items.push(item(format!("{path}/file"), Spec::File(format!("{depth}").into_bytes()), 0o644));
        path.push_str("/d");
    }
    let tree = tree(EPOCH, items);
    let out = image(&tree);
    check_with_reader(&out, &tree);
    if have("fsck.erofs", "a_tree_100_deep_round_trips") {
        check_with_fsck(&out, &tree);
    }
    check_with_kernel(&out, &tree, "a_tree_100_deep_round_trips");
}

#[test]
fn an_empty_image_is_a_root_directory() {
    let tree = tree(0, Vec::new());
    let out = image(&tree);
    assert_eq!(out.len() as u64, 2 * BLOCK, "superblock and one inode block");
    let entries = check_with_reader(&out, &tree);
    assert_eq!(entries[0].size, 2 * DIRENT_SIZE as u64 + 3, "`.` and `..`");
    if have("fsck.erofs", "an_empty_image_is_a_root_directory") {
        check_with_fsck(&out, &tree);
    }
}

#[test]
fn two_writes_are_identical() {
    assert_eq!(image(&everything()), image(&everything()));
}

/// A host tree for `mkfs.erofs`, and the test tree that describes the same tree.
fn host_tree(root: &Path) -> Tree {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let sparse = {
        let mut bytes = vec![0u8; 1 << 20];
        bytes[700_000..700_005].copy_from_slice(b"data!");
        bytes
    };
    let items = vec![
        item("a", Spec::File(pattern(5000, 1)), 0o644),
        owned(item("b", Spec::File(pattern(8192, 2)), 0o4711), 1234, 5678),
        item("hard", Spec::Hardlink("a"), 0o644),
        item("empty", Spec::File(Vec::new()), 0o600),
        item("sparse", Spec::File(sparse), 0o644),
        item("sub", Spec::Dir, 0o2755),
        owned(item("sub/high", Spec::File(b"x".to_vec()), 0o640), 70_000, 70_001),
        item("sub/link", Spec::Symlink(b"../a".to_vec()), 0o777),
        item("sub/fifo", Spec::Device(FileType::Fifo, 0, 0), 0o600),
        item("sub/null", Spec::Device(FileType::Char, 1, 3), 0o666),
        item("sub/deeper", Spec::Dir, 0o1777),
    ];
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for item in &items {
        let host = root.join(OsStr::from_bytes(&item.path));
        match &item.spec {
            Spec::Dir => std::fs::create_dir(&host).unwrap(),
            Spec::File(bytes) => std::fs::write(&host, bytes).unwrap(),
            Spec::Hardlink(target) => std::fs::hard_link(root.join(target), &host).unwrap(),
            Spec::Symlink(target) => symlink(OsStr::from_bytes(target), &host).unwrap(),
            Spec::Device(kind, major, minor) => {
                let kind = kind.bits();
                let name = std::ffi::CString::new(host.as_os_str().as_bytes()).unwrap();
                let dev = libc::makedev(*major, *minor);
                // SAFETY: a valid NUL-terminated path; mknod touches nothing else.
                assert_eq!(unsafe { libc::mknod(name.as_ptr(), kind | item.mode, dev) }, 0);
            }
        }
        if !matches!(item.spec, Spec::Symlink(_)) {
            std::os::unix::fs::chown(&host, Some(item.uid), Some(item.gid)).unwrap();
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(item.mode)).unwrap();
        }
    }
    // Extended attributes, which mkfs.erofs stores inline and the reader must step over.
    for name in ["a", "sub"] {
        let path = std::ffi::CString::new(root.join(name).as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated path and name, and a value of the length given.
        let set = unsafe { libc::setxattr(path.as_ptr(), c"user.bake".as_ptr(), b"value".as_ptr().cast(), 5, 0) };
        assert_eq!(set, 0, "setxattr: {}", io::Error::last_os_error());
    }
    // The sparse file really has holes, so the chunk-based image below has some.
    let sparse = std::fs::OpenOptions::new().write(true).open(root.join("sparse")).unwrap();
    sparse.set_len(0).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"data!", 700_000).unwrap();
    sparse.set_len(1 << 20).unwrap();
    tree(0, items)
}

/// Entries without their nids, and the groups of names that share one.
fn comparable(entries: Vec<Entry>) -> (Vec<Entry>, BTreeSet<Vec<Vec<u8>>>) {
    let mut groups: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let entries = entries
        .into_iter()
        .map(|e| {
            groups.entry(e.ino).or_default().push(e.name.clone());
            Entry { ino: 0, ..e }
        })
        .collect();
    (entries, groups.into_values().collect())
}

fn mkfs(args: &[&str], tree: &Path, dir: &Path) -> Vec<u8> {
    let image = dir.join("mkfs.erofs");
    let mut command = Command::new("mkfs.erofs");
    command.args(["-T0", "-U", "00000000-0000-0000-0000-000000000000"]).args(args).arg(&image).arg(tree);
    run(&mut command);
    std::fs::read(image).unwrap()
}

#[test]
fn the_reader_reads_mkfs_erofs_images_as_ours() {
    if !have("mkfs.erofs", "the_reader_reads_mkfs_erofs_images_as_ours") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let written = host_tree(&tree);
    let ours = comparable(check_with_reader(&image(&written), &written));
    let theirs = comparable(read(Cursor::new(mkfs(&[], &tree, dir.path()))).unwrap());
    assert_eq!(ours, theirs);
    // Chunk-based files, with holes for the zero chunks of `sparse`.
    let chunked = mkfs(&["--chunksize=4096"], &tree, dir.path());
    assert!(chunked.len() < 512 * 1024, "holes are not stored");
    assert_eq!(ours, comparable(read(Cursor::new(chunked)).unwrap()));
    // Compressed files are refused by name.
    let err = read(Cursor::new(mkfs(&["-zlz4"], &tree, dir.path()))).unwrap_err();
    assert!(err.message().contains("compressed EROFS files are not supported"), "{err}");
}

#[test]
fn fsck_erofs_checks_the_superblock_checksum() {
    if !have("fsck.erofs", "fsck_erofs_checks_the_superblock_checksum") {
        return;
    }
    let mut out = image(&tree(EPOCH, vec![item("f", Spec::File(b"x".to_vec()), 0o644)]));
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("fsck.erofs").arg(save(dir.path(), &out)));
    out[SUPER_OFFSET + 100] ^= 1; // a reserved byte: only the checksum notices
    let bad = Command::new("fsck.erofs").arg(save(dir.path(), &out)).output().unwrap();
    let text = String::from_utf8_lossy(&bad.stderr).into_owned() + &String::from_utf8_lossy(&bad.stdout);
    assert!(text.contains("chksum doesn't match"), "fsck.erofs did not check the checksum: {text}");
    let err = read(Cursor::new(&out)).unwrap_err();
    assert!(err.message().contains("checksum"), "{err}");
}

#[test]
fn names_out_of_order_or_repeated_are_refused() {
    // Regression: the reader took any order, so a directory could list one name many times.
    let items = vec![item("aaaa1", Spec::File(b"1".to_vec()), 0o644), item("aaaa2", Spec::File(b"2".to_vec()), 0o644)];
    let good = image(&tree(EPOCH, items));
    assert_eq!(read(Cursor::new(&good)).unwrap().len(), 3);
    let at = good.windows(10).position(|w| w == b"aaaa1aaaa2").expect("the two names, side by side");
    for (swap, why) in [(&b"aaaa2aaaa1"[..], "out of order"), (&b"aaaa1aaaa1"[..], "repeated")] {
        let mut bad = good.clone();
        bad[at..at + 10].copy_from_slice(swap);
        let err = read(Cursor::new(&bad)).unwrap_err();
        assert!(err.message().contains("out of order or repeated"), "{why}: {err}");
    }
}

#[test]
fn a_small_image_cannot_claim_more_entries_than_it_can_hold() {
    // Regression: a 5 MB image of 65k hard links under a deep path made `bake inspect` hold
    // 500 MB; entries and path bytes are now bounded by the image's size.
    let mut items: Vec<Item> = (1..=300).map(|depth| item("d/".repeat(depth), Spec::Dir, 0o755)).collect();
    let deep = "d/".repeat(300);
    items.extend((0..20_000).map(|i| item(format!("{deep}n{i:05}"), Spec::Hardlink("f"), 0)));
    items.push(item("f", Spec::File(b"x".to_vec()), 0o644));
    let out = image(&tree(EPOCH, items));
    assert!(20_000 * 606 > out.len() * 16 + (4 << 20), "the paths must outgrow the budget: {} bytes", out.len());
    let err = read(Cursor::new(&out)).unwrap_err();
    assert!(err.message().contains("more than 16 times its size"), "{err}");
}

#[test]
fn truncated_and_garbage_images_are_errors_not_panics() {
    let out = image(&everything());
    for cut in (0..out.len()).step_by(61) {
        let result = read(Cursor::new(&out[..cut]));
        if cut <= out.len() - BLOCK as usize {
            // The last block holds inodes every walk needs.
            assert!(result.is_err(), "cut at {cut}");
        }
    }
    let err = read(Cursor::new(&out[..1100])).unwrap_err();
    assert!(err.message().contains("too short for a superblock"), "{err}");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let err = read(Cursor::new(&garbage)).unwrap_err();
    assert!(err.message().contains("not an EROFS image"), "{err}");
    // Garbage behind a plausible superblock without a checksum.
    let mut sb = out[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE].to_vec();
    sb[8] = 0;
    for nid in [0u16, 3, 100, 2047] {
        sb[14..16].copy_from_slice(&nid.to_le_bytes());
        sb[40..44].copy_from_slice(&1u32.to_le_bytes());
        garbage[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE].copy_from_slice(&sb);
        let _ = read(Cursor::new(&garbage));
    }
}

#[test]
fn every_flipped_metadata_byte_is_read_without_panic() {
    let tree = tree(
        EPOCH,
        vec![
            item("d", Spec::Dir, 0o755),
            item("d/f", Spec::File(pattern(5000, 3)), 0o644),
            item("d/l", Spec::Symlink(b"f".to_vec()), 0o777),
            item("d/h", Spec::Hardlink("d/f"), 0o644),
            item("c", Spec::Device(FileType::Char, 1, 3), 0o600),
        ],
    );
    let mut out = image(&tree);
    out[SUPER_OFFSET + 8] = 0; // no checksum, so flips reach the rest
    for at in SUPER_OFFSET..out.len() {
        for mask in [0x01, 0x80, 0xff] {
            out[at] ^= mask;
            let _ = read(Cursor::new(&out));
            out[at] ^= mask;
        }
    }
}

/// Where the 4 GiB test's files come from.
enum Bytes<'a> {
    Inline(&'a [u8]),
    Host(&'a Path),
}

fn open_host_or_bytes<'a>(data: &'a Bytes<'a>) -> crate::base::error::Result<Box<dyn Read + 'a>> {
    Ok(match data {
        Bytes::Inline(bytes) => Box::new(*bytes),
        Bytes::Host(path) => Box::new(std::fs::File::open(path).unwrap()),
    })
}

/// An image kept sparsely: only blocks that are not all zeros are stored.
#[derive(Default)]
struct Sparse {
    blocks: BTreeMap<u64, Vec<u8>>,
    len: u64,
    partial: Vec<u8>,
}

impl Write for Sparse {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let zeros = [0u8; BLOCK as usize];
        self.partial.extend_from_slice(buf);
        let whole = self.partial.len() / BLOCK as usize * BLOCK as usize;
        for block in self.partial[..whole].chunks(BLOCK as usize) {
            if block != zeros {
                self.blocks.insert(self.len / BLOCK, block.to_vec());
            }
            self.len += BLOCK;
        }
        self.partial.drain(..whole);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct SparseReader<'a> {
    image: &'a Sparse,
    pos: u64,
}

impl Read for SparseReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (block, offset) = (self.pos / BLOCK, (self.pos % BLOCK) as usize);
        let n = buf.len().min(BLOCK as usize - offset).min(self.image.len.saturating_sub(self.pos) as usize);
        match self.image.blocks.get(&block) {
            Some(bytes) => buf[..n].copy_from_slice(&bytes[offset..offset + n]),
            None => buf[..n].fill(0),
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SparseReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(at) => at,
            SeekFrom::End(delta) => self.image.len.checked_add_signed(delta).unwrap(),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta).unwrap(),
        };
        Ok(self.pos)
    }
}

#[test]
fn a_file_over_4_gib_gets_an_extended_inode_and_64_bit_size() {
    // A sparse host file, so the test needs no disk (on tmpfs where there is one, whose
    // holes read fastest); the image is kept sparsely too.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let host = dir.path().join("big");
    let size = (4u64 << 30) + 5000;
    let file = std::fs::File::create(&host).unwrap();
    file.set_len(size).unwrap();
    let marks = [(0, &b"first block"[..]), ((4 << 30) - 3, b"across 4 GiB"), (size - 904, &pattern(904, 9))];
    for (at, bytes) in marks {
        std::os::unix::fs::FileExt::write_at(&file, bytes, at).unwrap();
    }
    // `sha256sum` of that file, so the test reads its 4 GiB twice (writing, and reading the
    // image back), not three times.
    let sha256 =
        crate::base::hash::parse_hex("45a14ad6f331f054f29fd4d42a0db7b3d2db564aff7f332d7ae6348ee45fc1c9").unwrap();
    let small = tree(EPOCH, vec![item("small", Spec::File(b"small".to_vec()), 0o644)]);
    let file = |path: &'static [u8], ino, size, data| Node {
        path,
        file_type: FileType::File,
        mode: if ino == 1 { 0o600 } else { 0o644 },
        uid: 0,
        gid: 0,
        ino,
        nlink: 1,
        file: Some((size, data)),
        target: &[],
        rdev: (0, 0),
    };
    let (big, small_bytes) = (Bytes::Host(&host), Bytes::Inline(b"small"));
    let nodes = [file(b"big", 1, size, &big), file(b"small", 2, 5, &small_bytes)];
    let out = write(&nodes, small.options(), &open_host_or_bytes, Sparse::default(), &Silent).unwrap();
    assert_eq!(out.len, image_size(&nodes).unwrap());
    let entries = read(SparseReader { image: &out, pos: 0 }).unwrap();
    assert_eq!((entries[1].name.as_slice(), entries[1].size, entries[1].sha256), (&b"big"[..], size, Some(sha256)));
    assert_eq!(entries[2].sha256, Some(crate::base::hash::digest_bytes(b"small")));

    // The kernel reads it back, sparsely stored on the host as well.
    let image = dir.path().join("image.erofs");
    let file = std::fs::File::create(&image).unwrap();
    file.set_len(out.len).unwrap();
    for (block, bytes) in &out.blocks {
        std::os::unix::fs::FileExt::write_at(&file, bytes, block * BLOCK).unwrap();
    }
    if have("dump.erofs", "a_file_over_4_gib_gets_an_extended_inode") {
        let text = dump(&image, b"big");
        assert!(text.contains(&format!("Size: {size} ")) && text.contains("Inode size: 64 "), "{text}");
    }
    if let Some(mounted) = mount(&image, &dir.path().join("mnt"), "a_file_over_4_gib_gets_an_extended_inode") {
        let big = std::fs::File::open(mounted.root.join("big")).unwrap();
        assert_eq!(big.metadata().unwrap().len(), size);
        for (at, bytes) in marks {
            let mut found = vec![0u8; bytes.len()];
            std::os::unix::fs::FileExt::read_exact_at(&big, &mut found, at).unwrap();
            assert_eq!(found, bytes, "at {at}");
        }
    }
}

#[test]
fn a_directory_that_contains_itself_is_an_error() {
    let mut out = image(&tree(EPOCH, vec![item("d", Spec::Dir, 0o755), item("d/f", Spec::File(b"x".to_vec()), 0o644)]));
    let entries = read(Cursor::new(&out)).unwrap();
    let (dir, file) = (entries[1].ino, entries[2].ino);
    // `f`'s entry in `d`: its nid, name offset, type "regular file"; point it at `d`.
    let at = out.windows(12).position(|w| w[..8] == file.to_le_bytes() && w[10] == FT_REG_FILE && w[11] == 0).unwrap();
    out[at..at + 8].copy_from_slice(&dir.to_le_bytes());
    let err = read(Cursor::new(&out)).unwrap_err();
    assert!(err.message().contains("already reached by another name"), "{err}");
}
