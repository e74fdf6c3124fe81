//! `[disk] verity = true`: the dm-verity hash tree bake computes itself, read back by
//! cryptsetup's `veritysetup` (which must accept it and compute the same root hash and the same
//! bytes from the same data, salt and UUID) and by `sgdisk`, and `bake inspect`, which checks a
//! disk's tree against its file system and refuses a damaged or mismatched pair.
//! (`recipes/appliance.toml` boots a verified root; `qemu-tests/must-fail/tampered.toml` proves
//! the guest cannot read a file changed on the disk.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A recipe of about 3 MB in 300 files (so the tree has two levels) and `extra` in `[disk]`.
fn fixture(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("data")).unwrap();
    for i in 0..300u64 {
        std::fs::write(tree.join(format!("data/file-{i:03}")), noise(4096 + 37 * i as usize, i)).unwrap();
    }
    std::fs::write(tree.join("data/big"), noise(1 << 20, 7)).unwrap();
    let recipe = format!(
        "[image]\nname = \"{name}\"\nepoch = 1700000000\n[disk]\nverity = true\n{extra}[[layer]]\ndir = \"tree\"\n"
    );
    write_recipe(dir, &recipe)
}

/// `veritysetup dump`'s `Key: value` lines.
fn dump(tree: &Path) -> Vec<(String, String)> {
    let out = run_ok(Command::new("veritysetup").arg("dump").arg(tree));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn field<'a>(dump: &'a [(String, String)], key: &str) -> &'a str {
    &dump.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no `{key}` in {dump:?}")).1
}

/// A partition's GUID as sgdisk prints it (`-i N`).
fn sgdisk_field(img: &Path, partition: u32, key: &str) -> String {
    let out = run_ok(Command::new("sgdisk").arg("-i").arg(partition.to_string()).arg(img));
    let said = text(&out.stdout);
    let line = said.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no `{key}` in {said}"));
    line[key.len()..].trim().split(' ').next().unwrap().to_string()
}

/// `0123abcd...` (32 hex digits) as `0123ABCD-....`, sgdisk's way.
fn as_guid(hex: &str) -> String {
    let h = hex.to_uppercase();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[test]
fn veritysetup_accepts_the_tree_and_computes_the_same_root_hash_and_bytes() {
    require_tool("veritysetup");
    require_tool("sgdisk");
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path(), "v", "");
    let out = t.path().join("out");
    let built = Bake::build(&recipe).arg("--json").out(&out).ok().json();
    let (fs, tree, img) = (out.join("v.erofs"), out.join("v.verity"), out.join("v.img"));
    let root = manifest(&out, "v")["verity"]["root_hash"].as_str().unwrap().to_string();
    assert_eq!(root.len(), 64);
    assert_eq!(built["root_hash"], root.as_str(), "{built:#}");
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&out));
    assert!(std::fs::read_to_string(out.join("SHA256SUMS")).unwrap().contains("  v.verity\n"));

    // cryptsetup reads bake's superblock and checks every block of the tree against the data.
    let fields = dump(&tree);
    assert_eq!(field(&fields, "Hash type"), "1");
    assert_eq!(field(&fields, "Hash algorithm"), "sha256");
    assert_eq!(field(&fields, "Data block size"), "4096");
    assert_eq!(field(&fields, "Hash block size"), "4096");
    let data_blocks: u64 = field(&fields, "Data blocks").parse().unwrap();
    assert_eq!(data_blocks * 4096, std::fs::metadata(&fs).unwrap().len());
    assert!(data_blocks > 128, "the tree should have two levels: {data_blocks} blocks");
    run_ok(Command::new("veritysetup").arg("verify").arg(&fs).arg(&tree).arg(&root));
    let wrong = format!("{}{}", if root.starts_with('0') { "1" } else { "0" }, &root[1..]);
    let refused = run(Command::new("veritysetup").arg("verify").arg(&fs).arg(&tree).arg(&wrong));
    assert!(!refused.status.success(), "veritysetup accepted a wrong root hash");

    // `veritysetup format` with bake's salt and UUID makes the same tree and root hash.
    let (salt, uuid) = (field(&fields, "Salt").to_string(), field(&fields, "UUID").to_string());
    let theirs = t.path().join("theirs.verity");
    let formatted =
        run_ok(Command::new("veritysetup").args(["format", "--salt", &salt, "--uuid", &uuid]).arg(&fs).arg(&theirs));
    let said = text(&formatted.stdout);
    let their_root = said.lines().find_map(|l| l.strip_prefix("Root hash:")).unwrap().trim();
    assert_eq!(their_root, root);
    assert_eq!(std::fs::read(&theirs).unwrap(), std::fs::read(&tree).unwrap(), "the trees differ");

    // The disk: the root partition, then the root-verity partition holding the tree, their
    // UUIDs the halves of the root hash (as systemd-repart makes them).
    let verify = run_ok(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(text(&verify.stdout).contains("No problems found"), "{}", text(&verify.stdout));
    assert_eq!(sgdisk_field(&img, 1, "Partition GUID code:"), "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    assert_eq!(sgdisk_field(&img, 2, "Partition GUID code:"), "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5");
    assert_eq!(sgdisk_field(&img, 1, "Partition unique GUID:"), as_guid(&root[..32]));
    assert_eq!(sgdisk_field(&img, 2, "Partition unique GUID:"), as_guid(&root[32..]));
    assert_eq!(sgdisk_field(&img, 2, "Partition name:"), "'v-verity'");
    let first: u64 = sgdisk_field(&img, 2, "First sector:").parse().unwrap();
    let disk = std::fs::read(&img).unwrap();
    let tree_bytes = std::fs::read(&tree).unwrap();
    let at = (first * 512) as usize;
    assert_eq!(&disk[at..at + tree_bytes.len()], &tree_bytes[..], "the partition holds the tree");

    // bake inspect shows the root hash, checked against the partition it covers.
    let listing = Bake::new("inspect").arg(&img).ok().stdout();
    let heading = listing.lines().find(|l| l.starts_with("# dm-verity")).expect(&listing);
    assert!(
        heading.contains(&format!("root hash {root}, checked against GPT partition 1 (`v`)"))
            && heading.contains(&format!("{data_blocks} data blocks")),
        "{heading}"
    );
    let json = Bake::new("inspect").arg("--json").arg(&img).ok().json();
    let verity = &json["archives"][1]["verity"];
    assert_eq!((verity["root_hash"].as_str(), verity["salt"].as_str()), (Some(root.as_str()), Some(salt.as_str())));
    let bare = Bake::new("inspect").arg(&tree).ok().stdout();
    assert!(bare.contains(&format!("root hash {root}, not checked against its data")), "{bare}");
}

#[test]
fn two_builds_give_the_same_root_hash_tree_and_disk() {
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path(), "v", "");
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    Bake::build(&recipe).out(&a).ok();
    Bake::build(&recipe).arg("-j1").out(&b).env("TZ", "Pacific/Chatham").ok();
    assert_eq!(files_of(&a), files_of(&b));
    assert!(a.join("v.verity").is_file());
    // From the build cache: the same files and the same root hash, which the cache kept.
    let cache = t.path().join("xdg");
    let cached = |dir: &Path| Bake::build(&recipe).arg("--json").out(dir).allow_cache().env("XDG_CACHE_HOME", &cache);
    let first = cached(&t.path().join("c1")).ok().json();
    let second = cached(&t.path().join("c2")).ok().json();
    assert_eq!((first["cached"].as_bool(), second["cached"].as_bool()), (Some(false), Some(true)));
    assert_eq!(second["root_hash"], first["root_hash"]);
    assert_eq!(files_of(&t.path().join("c2")), files_of(&a));
    // Another file system gets another salt and root hash.
    std::fs::write(t.path().join("tree/data/file-000"), b"changed\n").unwrap();
    let c = t.path().join("c");
    Bake::build(&recipe).out(&c).ok();
    let root = |d: &Path| manifest(d, "v")["verity"]["root_hash"].as_str().unwrap().to_string();
    assert_ne!(root(&a), root(&c));
    assert_ne!(dump_salt(&a), dump_salt(&c));
}

fn dump_salt(out: &Path) -> Vec<u8> {
    let tree = std::fs::read(out.join("v.verity")).unwrap();
    tree[88..120].to_vec()
}

/// A copy of `img` with `f` applied to its bytes.
fn changed(img: &Path, to: &Path, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(img).unwrap();
    f(&mut bytes);
    std::fs::write(to, bytes).unwrap();
    to.to_path_buf()
}

#[test]
fn inspect_refuses_a_damaged_tree_changed_data_and_partition_uuids_that_do_not_match() {
    require_tool("sgdisk");
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path(), "v", "");
    let out = t.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    let img = out.join("v.img");
    let tree_at = sgdisk_field(&img, 2, "First sector:").parse::<usize>().unwrap() * 512;

    // One byte of the top level of the tree.
    let damaged = changed(&img, &t.path().join("damaged.img"), |b| b[tree_at + 4096 + 5] ^= 1);
    let said = Bake::new("inspect").arg(&damaged).fails(2).stderr();
    assert!(
        said.contains("GPT partition 2 (`v-verity`), checked against GPT partition 1 (`v`): bad dm-verity hash tree")
            && said.contains("block 0 of level 1 is damaged"),
        "{said}"
    );
    // The superblock.
    let damaged = changed(&img, &t.path().join("superblock.img"), |b| b[tree_at + 72] ^= 0x40);
    let said = Bake::new("inspect").arg(&damaged).fails(2).stderr();
    assert!(said.contains("bad dm-verity"), "{said}");
    // One byte of a file's data in the root partition (the last block of `data/big`, which
    // the file system reader does not check).
    let data = changed(&img, &t.path().join("data.img"), |b| {
        let fs = std::fs::read(out.join("v.erofs")).unwrap();
        let needle = &noise(1 << 20, 7)[4096..4096 + 64];
        let at = fs.windows(64).position(|w| w == needle).unwrap();
        b[(1 << 20) + at] ^= 1;
    });
    let said = Bake::new("inspect").arg(&data).fails(2).stderr();
    assert!(said.contains("does not match its hash in the tree: the data changed after the tree was made"), "{said}");
    // The partition UUIDs no longer the halves of the root hash.
    let renamed = changed(&img, &t.path().join("renamed.img"), |_| {});
    run_ok(Command::new("sgdisk").args(["-u", "1:01234567-89ab-cdef-0123-456789abcdef"]).arg(&renamed));
    let said = Bake::new("inspect").arg(&renamed).fails(2).stderr();
    assert!(
        said.contains("their partition UUIDs (01234567-89ab-cdef-0123-456789abcdef and")
            && said.contains("are not the halves of its root hash"),
        "{said}"
    );
    // The disk as built is still read.
    Bake::new("inspect").arg(&img).ok();
}

#[test]
fn without_a_partition_table_the_file_system_and_the_tree_are_two_files() {
    require_tool("veritysetup");
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path(), "bare", "partition-table = \"none\"\n");
    let out = t.path().join("out");
    let said = Bake::build(&recipe).out(&out).ok().stdout();
    assert!(said.contains("bare.erofs") && said.contains("bare.verity") && said.contains("dm-verity root hash"));
    assert!(!out.join("bare.img").exists());
    let root = manifest(&out, "bare")["verity"]["root_hash"].as_str().unwrap().to_string();
    run_ok(
        Command::new("veritysetup").arg("verify").arg(out.join("bare.erofs")).arg(out.join("bare.verity")).arg(&root),
    );
}

#[test]
fn verity_mistakes_are_refused_with_their_line() {
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(t.path(), "[image]\nname = \"x\"\n[disk]\nverity = \"yes\"\n");
    let stderr = Bake::build(&recipe).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:4:10") && stderr.contains("expected a boolean"), "{stderr}");
    // The hash partition is named `NAME-verity`: a name that fits alone but not with it.
    let name = "n".repeat(30);
    let recipe = write_recipe(t.path(), &format!("[image]\nname = \"{name}\"\n[disk]\nverity = true\n"));
    let stderr = Bake::build(&recipe).out(t.path().join("out")).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:2:8: image name") && stderr.contains(&format!("`{name}-verity`")), "{stderr}");
    assert!(!t.path().join("out").exists());
    // `tamper` changes a disk: a test that boots an initramfs has none.
    let recipe =
        write_recipe(t.path(), "[image]\nname = \"x\"\n[initramfs]\n[test]\ntamper = \"/etc/x\"\nexpect = [\"x\"]\n");
    let stderr = Bake::new("test").arg(&recipe).arg("--kernel").arg(&recipe).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:4:1") && stderr.contains("`tamper` changes a file on a `[disk]`"), "{stderr}");
}
