//! `[disk]`: the EROFS file system bake writes itself and the GPT disk holding it, read back by
//! independent tools (`fsck.erofs --extract`, `dump.erofs`, `sfdisk`, `sgdisk`) and by
//! `bake inspect` and `bake diff`. (`qemu-tests/disk.toml` boots one and checks it from inside.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The hard cases in one folder: a directory of thousands of entries (many directory blocks),
/// names of 255 bytes, empty files and folders, a deep tree, and file sizes around the block
/// size (the tail of a file is stored right after its inode when it fits).
fn hard_tree(root: &Path) {
    let many = root.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..3000 {
        std::fs::write(many.join(format!("entry-{i:05}")), format!("{i}\n")).unwrap();
    }
    std::fs::write(root.join("x".repeat(255)), b"long name\n").unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::write(root.join("empty-file"), b"").unwrap();
    let mut deep = root.to_path_buf();
    for level in 0..60 {
        deep.push(format!("d{level}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("bottom"), b"deep\n").unwrap();
    for size in [1usize, 4095, 4096, 4097, 8191, 100_000] {
        std::fs::write(root.join(format!("size-{size}")), noise(size, size as u64)).unwrap();
    }
    std::os::unix::fs::symlink("size-1", root.join("link")).unwrap();
}

const RECIPE: &str = r#"[image]
name = "d"
epoch = 1700000000

[disk]
format = "erofs"
partition-table = "gpt"

[[layer]]
dir = "tree"

[[file]]
path = "/etc/owned"
uid = 70000
gid = 80000
mode = "4750"
content = "owned\n"

[[hardlink]]
path = "/etc/owned-too"
target = "/etc/owned"

[[device]]
path = "/dev/console"
type = "char"
major = 5
minor = 1

[[device]]
path = "/dev/vdb"
type = "block"
major = 254
minor = 16

[[device]]
path = "/run/fifo"
type = "fifo"
"#;

fn fixture(dir: &Path) -> PathBuf {
    hard_tree(&dir.join("tree"));
    write_recipe(dir, RECIPE)
}

fn no_errors(out: &std::process::Output, what: &str) {
    // fsck.erofs 1.5 reports some corruption as `<E>` lines yet exits 0.
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success() && !said.contains("<E>"), "{what}:\n{said}");
}

#[test]
fn erofs_utils_and_the_partitioners_accept_the_disk_and_it_extracts_to_the_inputs() {
    require_tool("fsck.erofs");
    require_tool("sfdisk");
    require_tool("sgdisk");
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path());
    let out = t.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    let (fs, img) = (out.join("d.erofs"), out.join("d.img"));

    // fsck.erofs checks every file and extracts the tree; it matches the inputs.
    let extracted = t.path().join("extracted");
    let check = run(Command::new("fsck.erofs").arg(format!("--extract={}", extracted.display())).arg(&fs));
    no_errors(&check, "fsck.erofs --extract");
    let inputs = regular_files(&t.path().join("tree"));
    let got: Vec<(String, Vec<u8>)> =
        regular_files(&extracted).into_iter().filter(|(p, _)| inputs.iter().any(|(q, _)| q == p)).collect();
    assert_eq!(got.len(), 3000 + 1 + 1 + 1 + 6, "every regular file of the dir layer");
    assert_eq!(got, inputs, "the extracted files differ from the dir layer");
    assert_eq!(std::fs::read_dir(extracted.join("many")).unwrap().count(), 3000);
    assert_eq!(std::fs::read(extracted.join("etc/owned")).unwrap(), b"owned\n");
    let meta = |p: &str| std::fs::symlink_metadata(extracted.join(p)).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert_eq!((meta("etc/owned").uid(), meta("etc/owned").gid()), (70000, 80000));
    assert!(meta("dev/vdb").file_type().is_block_device() && meta("dev/vdb").rdev() == libc_makedev(254, 16));
    assert!(meta("run/fifo").file_type().is_fifo());
    assert_eq!(std::fs::read_link(extracted.join("link")).unwrap(), Path::new("size-1"));
    let dump = run(Command::new("dump.erofs").arg("-s").arg(&fs));
    no_errors(&dump, "dump.erofs -s");
    assert!(text(&dump.stdout).contains("Filesystem UUID"), "{}", text(&dump.stdout));

    // The disk: one partition at 1 MiB, the x86-64 root type, the image's name, holding the
    // file system byte for byte.
    let table = run_ok(Command::new("sfdisk").arg("--json").arg(&img));
    let json: serde_json::Value = serde_json::from_slice(&table.stdout).unwrap();
    let partitions = json["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(json["partitiontable"]["label"], "gpt");
    assert_eq!(partitions.len(), 1);
    assert_eq!(partitions[0]["start"], 2048);
    assert_eq!(partitions[0]["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    assert_eq!(partitions[0]["name"], "d");
    let verify = run_ok(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(text(&verify.stdout).contains("No problems found"), "{}", text(&verify.stdout));
    let disk = std::fs::read(&img).unwrap();
    let fs_bytes = std::fs::read(&fs).unwrap();
    assert_eq!(&disk[1 << 20..(1 << 20) + fs_bytes.len()], &fs_bytes[..]);

    // bake reads both, through the partition table, as it reads an initramfs.
    let listing = |p: &Path| Bake::new("inspect").arg(p).ok().stdout();
    let (of_fs, of_img) = (listing(&fs), listing(&img));
    assert!(of_img.starts_with("# erofs file system at byte 1048576 in GPT partition 1 (`d`)"), "{of_img}");
    let body = |l: &str| l.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(body(&of_fs), body(&of_img));
    let manifest = manifest(&out, "d");
    assert_eq!(body(&of_fs).len(), manifest["entries"].as_array().unwrap().len());
    assert!(of_fs.contains("-rwsr-x---   2 70000 80000") && of_fs.contains(" etc/owned"), "{of_fs}");
    Bake::new("diff").arg(&fs).arg(&img).ok();
}

/// Every regular file below `dir`, by path relative to it, with its bytes, sorted.
fn regular_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let relative = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (relative, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

#[test]
fn two_builds_under_other_conditions_give_the_same_disk_and_diff_names_a_change() {
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path());
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    Bake::build(&recipe).out(&a).ok();
    Bake::build(&recipe).arg("-j1").out(&b).env("TZ", "Pacific/Chatham").ok();
    assert_eq!(files_of(&a), files_of(&b));
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&a));

    std::fs::write(t.path().join("tree/size-4097"), b"changed\n").unwrap();
    let c = t.path().join("c");
    Bake::build(&recipe).out(&c).ok();
    let said = Bake::new("diff").arg(a.join("d.img")).arg(c.join("d.img")).fails(1).stdout();
    assert!(said.contains("/size-4097") && said.contains("content"), "{said}");
}

#[test]
fn without_a_partition_table_only_the_file_system_is_written() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("tree")).unwrap();
    std::fs::write(t.path().join("tree/hello"), b"hi\n").unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"bare\"\n[disk]\npartition-table = \"none\"\n[[layer]]\ndir = \"tree\"\n",
    );
    let out = t.path().join("out");
    let said = Bake::build(&recipe).out(&out).ok().stdout();
    assert!(said.contains("bare.erofs"), "{said}");
    assert!(out.join("bare.erofs").is_file() && !out.join("bare.img").exists());
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  bare.erofs\n"), "{sums}");
}

#[test]
fn disk_mistakes_are_refused_with_their_line() {
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(t.path(), "[image]\nname = \"x\"\n[disk]\nformat = \"ext4\"\n");
    let stderr = Bake::build(&recipe).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:4:10: unknown variant `ext4`"), "{stderr}");
    // The partition is named after the image: a name that does not fit is refused up front.
    let long = "n".repeat(37);
    let recipe = write_recipe(t.path(), &format!("[image]\nname = \"{long}\"\n[disk]\n"));
    let stderr = Bake::build(&recipe).out(t.path().join("out")).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:2:8: image name") && stderr.contains("36 characters"));
    assert!(!t.path().join("out").exists());
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"x\"\n[initramfs]\n[test]\nboot-recipe = \"boot.toml\"\nexpect = [\"x\"]\n",
    );
    let stderr = Bake::new("test").arg(&recipe).arg("--kernel").arg(&recipe).fails(2).stderr();
    assert!(stderr.contains("`boot-recipe` boots a `[disk]`, and this recipe has none"), "{stderr}");
}
